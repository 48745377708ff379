//! Prometheus metrics, named as the TTA.dev design names them, plus our WASM ones.
//!
//! The fixed per-call metrics are recorded through handles cached per primitive and
//! tenant: a call costs a lock-free map read and a few atomic adds, never a label lookup
//! by string in the registry. Guest-defined and `llm.*` metrics are keyed by strings the
//! guest chose; they take a short mutex, and every guest string that becomes a label is
//! cut to size and counted against caps per (primitive, tenant) and per tenant, so what
//! one tenant's guests do never changes another tenant's metrics.
//!
//! Every label value comes from a closed set or from the operator's config: HTTP methods
//! are the standard ones or `other`, routes are matched templates, tenants are configured,
//! primitive names are the operator's files or a tenant's bounded uploads, whose series
//! are removed with the upload ([`Metrics::forget`]).

use crate::call_series::{CallCollector, CallSample, CallSeries};
use crate::guest_metrics::GuestMetrics;
use crate::instruments::{Instruments, counter, remove_matching};
use arc_swap::ArcSwap;
use prometheus::{IntCounter, IntCounterVec, Registry};
use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tta_core::config::telemetry::MetricsConfig;
use tta_core::report::CallReport;

pub use crate::instruments::OVERFLOW;
/// Every metric of the host, in one registry.
pub struct Metrics {
    registry: Registry,
    calls: Arc<CallCollector>,
    errors: IntCounterVec,
    pub(super) guest_dropped: IntCounterVec,
    telemetry_dropped: IntCounterVec,
    telemetry_exported: IntCounterVec,
    primitives: ArcSwap<HashMap<Box<str>, Arc<PrimitiveMetrics>>>,
    tenants: Mutex<HashSet<String>>,
    guest: GuestMetrics,
    config: MetricsConfig,
    /// Each subsystem's instruments, by type, registered on first use.
    instruments: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    /// How to remove a primitive's series from each subsystem's instruments.
    forgetters: Mutex<Vec<Forgetter>>,
    /// How many more (primitive, tenant) pairs [`Metrics::prepare`] may make at zero.
    zero_left: AtomicUsize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The handles of one primitive, per tenant; held by the loaded plugin.
pub struct PrimitiveMetrics {
    name: Box<str>,
    tenants: ArcSwap<HashMap<Box<str>, Arc<CallHandles>>>,
    /// Set when a tenant's upload is deleted: its calls still in flight record nothing, so
    /// they cannot bring back the series [`Metrics::forget`] removed.
    retired: AtomicBool,
}

impl PrimitiveMetrics {
    fn new(name: &str) -> Self {
        PrimitiveMetrics {
            name: name.into(),
            tenants: ArcSwap::default(),
            retired: AtomicBool::new(false),
        }
    }

    /// Stops recording this primitive's calls (its upload was deleted).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.tenants.store(Arc::default());
    }
}

impl std::fmt::Debug for PrimitiveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimitiveMetrics")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The series one call of one primitive for one tenant updates.
struct CallHandles {
    tenant: Box<str>,
    series: Arc<CallSeries>,
    /// `primitive_errors_total` by error type, filled in as types occur (the set is fixed and small).
    errors: ArcSwap<Vec<(&'static str, IntCounter)>>,
}

/// The call series as a collector of the registry, which wants to own what it collects.
struct SharedCollector(Arc<CallCollector>);

impl prometheus::core::Collector for SharedCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

/// Removes one primitive's series from a subsystem's instruments.
type Forgetter = Box<dyn Fn(&[(&str, &str)]) + Send + Sync>;

impl Metrics {
    /// A registry with the host's own metrics defined (and no series yet); subsystems add
    /// theirs through [`Metrics::instruments`].
    #[allow(
        clippy::expect_used,
        reason = "the definitions are static: a clash is a bug the tests find"
    )]
    pub fn new(config: &MetricsConfig) -> Self {
        let r = Registry::new();
        let guest_dropped = counter(
            &r,
            "primitive_telemetry_dropped_total",
            "Guest telemetry over its limits, dropped: logs, spans, span_items, metrics, metric_series, stdio_bytes.",
            &["primitive_name", "kind", "tenant"],
        );
        let calls = Arc::new(CallCollector::new());
        r.register(Box::new(SharedCollector(Arc::clone(&calls))))
            .expect("unique static metric");
        Metrics {
            calls,
            errors: counter(
                &r,
                "primitive_errors_total",
                "Failed primitive calls by error type (guest error kind, trap class or limit).",
                &["primitive_name", "error_type", "tenant"],
            ),
            guest: GuestMetrics::new(&r, guest_dropped.clone(), config),
            guest_dropped,
            telemetry_dropped: counter(
                &r,
                "telemetry_dropped_total",
                "Spans, log records and metric pushes the exporters could not take (queue full, backend down or slow).",
                &["signal", "tenant"],
            ),
            telemetry_exported: counter(
                &r,
                "telemetry_exported_total",
                "Spans, log records and metric pushes a destination took (OTLP, file, console), once per destination.",
                &["signal", "tenant"],
            ),
            registry: r,
            primitives: ArcSwap::default(),
            tenants: Mutex::new(HashSet::from(["default".to_owned()])),
            config: config.clone(),
            instruments: Mutex::default(),
            forgetters: Mutex::default(),
            zero_left: AtomicUsize::new(config.zero_series),
        }
    }

    /// Makes the call series of `primitive` for `tenant` at zero, before its first call, so
    /// `rate()` and `increase()` count that call; at most `metrics.zero_series` pairs in
    /// all (tenants past the tenant cap are never made). Returns `false` once that many
    /// exist, so a caller going through every pair can stop.
    pub fn prepare(&self, primitive: &PrimitiveMetrics, tenant: &str) -> bool {
        if primitive.retired.load(Ordering::Relaxed) || primitive.tenants.load().contains_key(tenant) {
            return true;
        }
        // A tenant past the tenant cap has no series of its own to make.
        if self.tenant_label(tenant) != tenant {
            return true;
        }
        let taken = self
            .zero_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1));
        if taken.is_err() {
            return false;
        }
        self.handles(primitive, tenant);
        self.touch_telemetry_counters(tenant);
        true
    }

    /// The registry, to gather or to add collectors to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding only fails on inconsistent families, which `register` rules out.
        let _ = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out);
        out
    }

    /// The handles of primitive `name`, created once per name.
    pub fn primitive(&self, name: &str) -> Arc<PrimitiveMetrics> {
        if let Some(p) = self.primitives.load().get(name) {
            return Arc::clone(p);
        }
        let created = Arc::new(PrimitiveMetrics::new(name));
        self.primitives.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.entry(name.into()).or_insert_with(|| Arc::clone(&created));
            map
        });
        self.primitives.load().get(name).map_or(created, Arc::clone)
    }

    /// The handles of a tenant's upload `name`: its own, not shared by name with other
    /// tenants' primitives, so that deleting it retires only its calls.
    pub fn owned_primitive(&self, name: &str) -> Arc<PrimitiveMetrics> {
        Arc::new(PrimitiveMetrics::new(name))
    }

    /// Removes every series of `primitive` for `tenant`: the call series, errors, dropped
    /// telemetry, guest metrics, `llm.*` and outgoing HTTP. What a deleted upload leaves.
    pub fn forget(&self, primitive: &str, tenant: &str) {
        let label = self.tenant_label(tenant);
        if label != tenant {
            // Past the tenant cap the series are shared with every other tenant there.
            return;
        }
        let tenant = label;
        self.calls.remove(primitive, &tenant);
        let labels = [("primitive_name", primitive), ("tenant", tenant.as_str())];
        remove_matching(&self.errors, &labels);
        remove_matching(&self.guest_dropped, &labels);
        for forget in lock(&self.forgetters).iter() {
            forget(&labels);
        }
        self.guest.forget(primitive, &tenant, &labels);
    }

    /// The instruments of a subsystem, registered into this registry on first use and
    /// shared after: the subsystem keeps the `Arc`, so its hot paths do no lookup.
    pub fn instruments<T: Instruments>(&self) -> Arc<T> {
        let mut all = lock(&self.instruments);
        if let Some(found) = all
            .get(&TypeId::of::<T>())
            .and_then(|any| Arc::clone(any).downcast::<T>().ok())
        {
            return found;
        }
        let created = Arc::new(T::register(&self.registry));
        all.insert(TypeId::of::<T>(), Arc::clone(&created) as Arc<dyn Any + Send + Sync>);
        let forgetting = Arc::clone(&created);
        lock(&self.forgetters).push(Box::new(move |labels| forgetting.forget(labels)));
        created
    }

    /// The tenant label for `tenant`: itself while under the cap, `other` past it.
    pub fn tenant_label(&self, tenant: &str) -> String {
        let mut tenants = lock(&self.tenants);
        if tenants.contains(tenant) {
            return tenant.to_owned();
        }
        if tenants.len() < self.config.tenants {
            tenants.insert(tenant.to_owned());
            return tenant.to_owned();
        }
        OVERFLOW.to_owned()
    }

    fn handles(&self, primitive: &PrimitiveMetrics, tenant: &str) -> Arc<CallHandles> {
        if let Some(h) = primitive.tenants.load().get(tenant) {
            return Arc::clone(h);
        }
        let label = self.tenant_label(tenant);
        let name = &*primitive.name;
        let created = Arc::new(CallHandles {
            series: self.calls.series(name, &label),
            errors: ArcSwap::default(),
            tenant: label.into(),
        });
        // Tenants past the cap share the `other` series but are not cached one by one.
        if &*created.tenant == tenant {
            primitive.tenants.rcu(|map| {
                let mut map = HashMap::clone(map);
                map.entry(tenant.into()).or_insert_with(|| Arc::clone(&created));
                map
            });
        }
        created
    }

    /// Records one finished call (not its nested calls, which record themselves).
    pub fn record_call(&self, primitive: &PrimitiveMetrics, report: &CallReport) {
        if primitive.retired.load(Ordering::Relaxed) {
            return;
        }
        // The cached handles are borrowed, not cloned: no reference count shared between
        // cores changes on the way.
        let cached = primitive.tenants.load();
        let created;
        let h = match cached.get(&*report.tenant) {
            Some(h) => h,
            None => {
                created = self.handles(primitive, &report.tenant);
                &created
            }
        };
        let stats = &report.stats;
        h.series.record(&CallSample {
            ok: report.error.is_none(),
            wall: stats.wall,
            instantiate: stats.instantiate,
            fuel: stats.fuel_consumed,
            memory: stats.memory_peak_bytes as u64,
            top_level: report.nested_depth == 0,
        });
        if let Some(error) = &report.error {
            let error_type = error.error_type();
            match h.errors.load().iter().find(|(t, _)| *t == error_type) {
                Some((_, counter)) => counter.inc(),
                None => {
                    let counter = self.errors.with_label_values(&[&primitive.name, error_type, &h.tenant]);
                    counter.inc();
                    h.errors.rcu(|list| {
                        let mut list = Vec::clone(list);
                        if !list.iter().any(|(t, _)| *t == error_type) {
                            list.push((error_type, counter.clone()));
                        }
                        list
                    });
                }
            }
        }
        let d = &report.dropped;
        if d.logs + d.spans + d.span_items + d.metrics + d.stdio_bytes > 0 {
            for (kind, n) in [
                ("logs", d.logs),
                ("spans", d.spans),
                ("span_items", d.span_items),
                ("metrics", d.metrics),
                ("stdio_bytes", d.stdio_bytes),
            ] {
                if n > 0 {
                    self.guest_dropped
                        .with_label_values(&[&primitive.name, kind, &h.tenant])
                        .inc_by(n);
                }
            }
        }
        if !report.metrics.is_empty()
            || report
                .spans
                .iter()
                .any(|s| s.attributes.iter().any(|(k, _)| k.starts_with("llm.")))
        {
            self.guest.record(&primitive.name, &h.tenant, report);
        }
    }

    /// What `tenant`'s calls of each primitive add up to; nothing for a tenant past the
    /// tenant cap (its series are shared with others under `other`).
    pub fn totals(&self, tenant: &str) -> Vec<crate::call_series::Totals> {
        if !lock(&self.tenants).contains(tenant) {
            return Vec::new();
        }
        self.calls.totals(tenant)
    }

    /// Counts telemetry the export pipeline could not take.
    pub fn telemetry_dropped(&self, signal: &str, tenant: &str, n: u64) {
        if n > 0 {
            let tenant = self.tenant_label(tenant);
            self.telemetry_dropped.with_label_values(&[signal, &tenant]).inc_by(n);
        }
    }

    /// Counts telemetry a destination took.
    pub fn telemetry_exported(&self, signal: &str, tenant: &str, n: u64) {
        if n > 0 {
            let tenant = self.tenant_label(tenant);
            self.telemetry_exported.with_label_values(&[signal, &tenant]).inc_by(n);
        }
    }

    /// Makes the export counters visible at zero, so alerts and drop ratios can use them
    /// before the first export or drop.
    pub fn touch_telemetry_counters(&self, tenant: &str) {
        for signal in ["spans", "logs", "metrics"] {
            self.telemetry_dropped.with_label_values(&[signal, tenant]);
            self.telemetry_exported.with_label_values(&[signal, tenant]);
        }
    }

    /// How many series the registry holds, for tests of the caps.
    pub fn series_count(&self) -> usize {
        self.registry.gather().iter().map(|f| f.get_metric().len()).sum()
    }

    /// Every collector's descriptors, for tests.
    pub fn family_names(&self) -> Vec<String> {
        self.registry.gather().iter().map(|f| f.name().to_owned()).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_metrics::{guest_metric_name, label_name};
    use tta_core::bindings::Value;
    use tta_core::report::{GuestMetric, MetricKind};

    #[test]
    fn guest_names_become_prometheus_names() {
        assert_eq!(
            guest_metric_name("words.counted", MetricKind::Counter).as_deref(),
            Some("tta_guest_words_counted_total")
        );
        assert_eq!(
            guest_metric_name("Latency-MS", MetricKind::Histogram).as_deref(),
            Some("tta_guest_latency_ms")
        );
        assert_eq!(
            guest_metric_name("hits_total", MetricKind::Counter).as_deref(),
            Some("tta_guest_hits_total")
        );
        assert_eq!(
            guest_metric_name("size_bucket_count", MetricKind::Histogram).as_deref(),
            Some("tta_guest_size")
        );
        assert_eq!(guest_metric_name("🙂", MetricKind::Counter), None);
        assert_eq!(guest_metric_name("_total", MetricKind::Counter), None);
    }

    fn point(i: usize) -> GuestMetric {
        GuestMetric {
            kind: MetricKind::Counter,
            name: "hits".into(),
            value: 1.0,
            attributes: vec![("user".into(), Value::Str(format!("u{i}")))],
            distribution: None,
        }
    }

    fn guest_series(metrics: &Metrics, primitive: &str, tenant: &str) -> usize {
        metrics
            .render()
            .lines()
            .filter(|l| {
                l.starts_with("tta_guest_hits_total{")
                    && l.contains(&format!("primitive_name=\"{primitive}\""))
                    && l.contains(&format!("tenant=\"{tenant}\""))
            })
            .count()
    }

    #[test]
    fn series_made_ahead_of_calls_are_at_zero_and_bounded() {
        let metrics = Metrics::new(&MetricsConfig {
            zero_series: 2,
            ..MetricsConfig::default()
        });
        let (p, q, r) = (metrics.primitive("p"), metrics.primitive("q"), metrics.primitive("r"));
        assert!(metrics.prepare(&p, "acme") && metrics.prepare(&q, "acme"));
        assert!(metrics.prepare(&p, "acme"), "a pair made already costs nothing");
        assert!(!metrics.prepare(&r, "acme"), "past zero_series none are made");
        let text = metrics.render();
        let executions = |name: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("primitive_executions_total{{primitive_name=\"{name}\"")))
                .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(executions("p"), ["0", "0"], "success and error, at zero");
        assert_eq!(executions("q"), ["0", "0"]);
        assert!(executions("r").is_empty());
        assert!(text.contains("tenant_fuel_consumed_total{tenant=\"acme\"} 0"));
    }

    #[test]
    fn guest_series_are_capped_per_primitive_and_tenant_and_per_tenant() {
        let metrics = Metrics::new(&MetricsConfig {
            guest_series_per_primitive: 3,
            guest_series_per_tenant: 5,
            ..MetricsConfig::default()
        });
        let guest = &metrics.guest;
        let mut state = guest.state.lock().expect("unpoisoned");
        for i in 0..10 {
            guest.record_guest_point(&mut state, "p", "a", &point(i));
            guest.record_guest_point(&mut state, "q", "a", &point(i));
            guest.record_guest_point(&mut state, "p", "b", &point(i));
        }
        drop(state);
        // a: 3 of p and 2 of q (its total of 5); b: its own 3 of p, untouched by a.
        assert_eq!(guest_series(&metrics, "p", "a"), 3);
        assert_eq!(guest_series(&metrics, "q", "a"), 2);
        assert_eq!(guest_series(&metrics, "p", "b"), 3);

        metrics.forget("p", "a");
        assert_eq!(guest_series(&metrics, "p", "a"), 0);
        assert_eq!(guest_series(&metrics, "p", "b"), 3, "another tenant's series stay");
        // The forgotten series no longer count against a's caps.
        let mut state = guest.state.lock().expect("unpoisoned");
        for i in 20..30 {
            guest.record_guest_point(&mut state, "r", "a", &point(i));
        }
        drop(state);
        assert_eq!(guest_series(&metrics, "r", "a"), 3);
    }

    #[test]
    fn reserved_label_names_are_refused() {
        assert_eq!(label_name("tenant"), None);
        assert_eq!(label_name("le"), None);
        assert_eq!(label_name("9lives"), None);
        assert_eq!(label_name("http.method").as_deref(), Some("http_method"));
    }
}
