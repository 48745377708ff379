//! The cluster state's instruments.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};
use tta_telemetry::instruments::{Instruments, counter, gauge};

/// Every metric of the shared state.
pub struct ClusterMetrics {
    /// `cluster_state_fallback_total{reason}`: calls admitted or refused by the fallback
    /// policy because Redis could not answer (`timeout`, `error`, `down`).
    pub fallback: IntCounterVec,
    /// `cluster_state_up`: 1 while Redis answers, 0 while calls use the fallback.
    pub up: prometheus::IntGauge,
    /// `cluster_replicas`: replicas seen alive at the last heartbeat.
    pub replicas: prometheus::IntGauge,
}

impl Instruments for ClusterMetrics {
    fn register(r: &Registry) -> Self {
        let up: IntGaugeVec = gauge(
            r,
            "cluster_state_up",
            "1 while the shared state (Redis) answers; 0 while calls use `cluster.on_unavailable`.",
            &[],
        );
        let replicas: IntGaugeVec = gauge(
            r,
            "cluster_replicas",
            "Replicas of serve seen alive at this replica's last heartbeat to the shared state.",
            &[],
        );
        ClusterMetrics {
            fallback: counter(
                r,
                "cluster_state_fallback_total",
                "Calls decided by `cluster.on_unavailable` because the shared state could not answer, by reason: timeout, error, down (skipped after a failure, for `cluster.retry_ms`).",
                &["reason"],
            ),
            up: up.with_label_values::<&str>(&[]),
            replicas: replicas.with_label_values::<&str>(&[]),
        }
    }
}
