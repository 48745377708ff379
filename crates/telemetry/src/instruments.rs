//! How a subsystem owns its metrics: it defines them next to its code as one [`Instruments`]
//! type, and [`super::Metrics::instruments`] registers them once into the host's one registry.
//! The per-call series, guest metrics and the export pipeline's counters stay in this module;
//! the workflow engine, the server and the HTTP client keep theirs in their own files.

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use std::collections::HashMap;

/// The label value standing for everything past a cardinality cap.
pub const OVERFLOW: &str = "other";

/// A subsystem's instruments, registered once per registry.
pub trait Instruments: Send + Sync + 'static {
    /// Defines the instruments and registers them into `registry`.
    fn register(registry: &Registry) -> Self;

    /// Removes the series of `labels` (`primitive_name`, `tenant`): what a deleted upload
    /// leaves. Only instruments labelled by primitive have any.
    fn forget(&self, labels: &[(&str, &str)]) {
        let _ = labels;
    }
}

/// A counter vector `name`, registered into `registry`.
#[allow(
    clippy::expect_used,
    reason = "the definitions are static: a clash is a bug the tests find"
)]
pub fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry.register(Box::new(c.clone())).expect("unique static metric");
    c
}

/// A histogram vector `name` with `buckets`, registered into `registry`.
#[allow(
    clippy::expect_used,
    reason = "the definitions are static: a clash is a bug the tests find"
)]
pub fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        .expect("static metric definition");
    registry.register(Box::new(h.clone())).expect("unique static metric");
    h
}

/// A gauge vector `name`, registered into `registry`.
#[allow(
    clippy::expect_used,
    reason = "the definitions are static: a clash is a bug the tests find"
)]
pub fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry.register(Box::new(g.clone())).expect("unique static metric");
    g
}

/// Removes every series of `vec` whose labels include all of `labels`.
pub fn remove_matching<T: MetricVecBuilder>(vec: &MetricVec<T>, labels: &[(&str, &str)]) {
    use prometheus::core::Collector as _;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let pairs: HashMap<&str, &str> = metric.get_label().iter().map(|l| (l.name(), l.value())).collect();
            if labels.iter().all(|(k, v)| pairs.get(k) == Some(v)) {
                let _ = vec.remove(&pairs);
            }
        }
    }
}
