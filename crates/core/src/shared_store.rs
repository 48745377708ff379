//! A key-value store the replicas of a cluster share (Redis under `[cluster]`): what the
//! workflow `cache` combinator keeps entries in with `store = "redis"`, and where a
//! `circuit_breaker` with `shared = true` keeps its state. The trait lives in the data
//! layer so a workflow can use a store the server above it provides.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A future a store returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the store could not answer; the caller treats it as a miss (and a skipped write).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// It did not answer within its bound.
    #[error("the shared store did not answer in time")]
    Timeout,
    /// It answered with an error, or could not be reached.
    #[error("the shared store failed ({0})")]
    Failed(String),
}

/// What a shared circuit breaker says to a call that wants to go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerEntry {
    /// Closed: go through.
    Closed,
    /// Open past its cooldown, and this call is the one trial of the whole cluster.
    Trial,
    /// Open (or half-open with another replica's trial running): fail at once; a trial may
    /// go through after this long.
    Open(Duration),
}

/// A shared circuit breaker's state after a call: the `circuit_breaker_state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once.
    Open,
}

/// A shared circuit breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures within `window` that open it.
    pub failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// How long it stays open before one trial goes through.
    pub cooldown: Duration,
}

/// Entries kept under a tenant's own prefix, with a time to live.
pub trait SharedStore: Send + Sync + std::fmt::Debug {
    /// Asks the breaker `breaker` of `tenant` whether a call may go through.
    fn breaker_enter<'a>(
        &'a self,
        tenant: &'a str,
        breaker: &'a str,
        settings: BreakerSettings,
    ) -> StoreFuture<'a, Result<BreakerEntry, StoreError>>;
    /// Tells the breaker how a call it let through ended (`trial`: the one
    /// [`BreakerEntry::Trial`] call); returns its state after.
    fn breaker_exit<'a>(
        &'a self,
        tenant: &'a str,
        breaker: &'a str,
        settings: BreakerSettings,
        succeeded: bool,
        trial: bool,
    ) -> StoreFuture<'a, Result<BreakerState, StoreError>>;
    /// The entry `key` of `tenant`, if there is one.
    fn get<'a>(&'a self, tenant: &'a str, key: &'a [u8]) -> StoreFuture<'a, Result<Option<Vec<u8>>, StoreError>>;
    /// Stores `value` as the entry `key` of `tenant` for `ttl`.
    fn put<'a>(
        &'a self,
        tenant: &'a str,
        key: &'a [u8],
        value: &'a [u8],
        ttl: Duration,
    ) -> StoreFuture<'a, Result<(), StoreError>>;
}
