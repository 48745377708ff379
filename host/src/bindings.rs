//! The host side of the WIT contract `tta:primitives@0.1.0`, generated in this one place.
//!
//! Everything else in the host uses these types; nothing else runs `bindgen!`. The
//! `invoke.call` import is async because it runs another guest; the telemetry imports
//! are synchronous and never fail, so a guest cannot trap the host through them.

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "tta:primitives/primitive-plugin@0.1.0",
    imports: {
        "tta:primitives/invoke.call": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    additional_derives: [PartialEq],
    with: {
        "tta:primitives/telemetry.span": crate::guest_api::GuestSpan,
    },
});

pub use exports::tta::primitives::primitive::{Context, Error as WitError, Metadata};
pub use tta::primitives::telemetry::{Level, Value};
pub use tta::primitives::types::ErrorKind;
