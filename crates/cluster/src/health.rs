//! Whether Redis is answering: after a failure, calls skip Redis for `retry_ms` (one call
//! pays the timeout, not every call), then the next call or the keeper's tick tries again.

use super::metrics::ClusterMetrics;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a call went to the fallback: the closed label set of `cluster_state_fallback_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Redis did not answer within `timeout_ms`.
    Timeout,
    /// Redis answered with an error, or the connection failed.
    Error,
    /// Redis failed recently and is skipped until `retry_ms` has passed.
    Down,
}

impl Fallback {
    /// The metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::Down => "down",
        }
    }
}

/// Up or down, and since when.
pub(crate) struct Health {
    started: Instant,
    /// When Redis may be asked again, in ms since `started`; 0 while it answers.
    retry_at_ms: AtomicU64,
    up: AtomicBool,
    retry: Duration,
}

impl Health {
    pub(crate) fn new(retry: Duration) -> Self {
        Health {
            started: Instant::now(),
            retry_at_ms: AtomicU64::new(0),
            up: AtomicBool::new(false),
            retry,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether calls should skip Redis now (it failed less than `retry_ms` ago).
    pub(crate) fn skipping(&self) -> bool {
        let retry_at = self.retry_at_ms.load(Ordering::Relaxed);
        retry_at != 0 && self.now_ms() < retry_at
    }

    pub(crate) fn succeeded(&self, metrics: &ClusterMetrics) {
        self.retry_at_ms.store(0, Ordering::Relaxed);
        if !self.up.swap(true, Ordering::Relaxed) {
            metrics.up.set(1);
            tracing::info!("cluster state: Redis answers; tenants' quotas are shared");
        }
    }

    pub(crate) fn failed(&self, metrics: &ClusterMetrics) {
        let retry = u64::try_from(self.retry.as_millis()).unwrap_or(u64::MAX);
        self.retry_at_ms
            .store(self.now_ms().saturating_add(retry).max(1), Ordering::Relaxed);
        if self.up.swap(false, Ordering::Relaxed) {
            metrics.up.set(0);
            tracing::warn!("cluster state: Redis is not answering; calls use the fallback policy");
        }
    }
}
