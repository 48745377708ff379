//! The kinds of step, one file each: its definition (the TOML it reads and the checks of
//! it), its compiled form, and how it runs. The driver (`validate`, `plan`, `run`) knows
//! none of them by name: it asks a step for the one kind it was given
//! ([`Step::kinds`](super::definition::Step::kinds)) and goes through the traits of
//! [`super::step`].
//!
//! A new combinator is one file here, with its definition and its implementations of
//! `Definition` and `Combinator`, and its registration in `definition.rs`: a field of
//! `Step` and one line of `Step::kinds`.

pub mod cache;
pub mod circuit_breaker;
pub mod conditional;
pub mod fallback;
pub mod parallel;
pub mod primitive;
pub mod remote;
pub mod retry;
pub mod router;
pub mod saga;
pub mod sequential;
pub mod timeout;
