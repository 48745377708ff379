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

use crate::bindings::Value;
use crate::config::telemetry::MetricsConfig;
use crate::report::{CallReport, GuestMetric, MetricKind};
use crate::telemetry::call_series::{CallCollector, CallSample, CallSeries};
use crate::telemetry::instruments::{Instruments, counter, remove_matching};
use arc_swap::ArcSwap;
use prometheus::{CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const GUEST_BUCKETS: &[f64] = &[
    0.001,
    0.01,
    0.1,
    1.0,
    10.0,
    100.0,
    1_000.0,
    10_000.0,
    100_000.0,
    1_000_000.0,
];

/// The label value standing for everything past a cardinality cap.
pub const OVERFLOW: &str = "other";
/// The longest label value taken from a guest string, in characters.
const MAX_LABEL_CHARS: usize = 64;
/// The longest metric name taken from a guest, in characters.
const MAX_NAME_CHARS: usize = 96;

/// Every metric of the host, in one registry.
pub struct Metrics {
    registry: Registry,
    calls: Arc<CallCollector>,
    errors: IntCounterVec,
    guest_dropped: IntCounterVec,
    telemetry_dropped: IntCounterVec,
    telemetry_exported: IntCounterVec,
    llm_tokens: IntCounterVec,
    llm_cost: CounterVec,
    llm_requests: IntCounterVec,
    primitives: ArcSwap<HashMap<Box<str>, Arc<PrimitiveMetrics>>>,
    tenants: Mutex<HashSet<String>>,
    guest: Mutex<GuestState>,
    config: MetricsConfig,
    /// Each subsystem's instruments, by type, registered on first use.
    instruments: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    /// How to remove a primitive's series from each subsystem's instruments.
    forgetters: Mutex<Vec<Forgetter>>,
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

#[derive(Default)]
struct GuestState {
    /// Registered guest families by exported name: their kind and label names.
    families: HashMap<String, GuestFamily>,
    /// Series already created, by key; the value indexes `families`.
    series: HashMap<String, GuestSeries>,
    /// Series created per (primitive, tenant), for the cap.
    per_primitive: HashMap<(String, String), usize>,
    /// Series created per tenant, for the cap.
    per_tenant: HashMap<String, usize>,
    /// `llm.model` values seen per (primitive, tenant), for the cap.
    llm_models: HashMap<(String, String), HashSet<String>>,
}

struct GuestFamily {
    kind: MetricKind,
    labels: Vec<String>,
    counter: Option<CounterVec>,
    histogram: Option<HistogramVec>,
}

enum GuestSeries {
    Counter(prometheus::Counter),
    Histogram(Histogram),
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
        let llm_cost = CounterVec::new(
            Opts::new(
                "llm_cost_usd_total",
                "Cost of LLM requests reported by guests (span attribute llm.cost_usd), in US dollars.",
            ),
            &["primitive_name", "model", "tenant"],
        )
        .expect("static metric definition");
        r.register(Box::new(llm_cost.clone())).expect("unique static metric");
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
            guest_dropped: counter(
                &r,
                "primitive_telemetry_dropped_total",
                "Guest telemetry over its limits, dropped: logs, spans, span_items, metrics, metric_series, stdio_bytes.",
                &["primitive_name", "kind", "tenant"],
            ),
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
            llm_tokens: counter(
                &r,
                "llm_tokens_total",
                "LLM tokens reported by guests (span attributes llm.prompt_tokens, llm.completion_tokens).",
                &["primitive_name", "model", "kind", "tenant"],
            ),
            llm_cost,
            llm_requests: counter(
                &r,
                "llm_requests_total",
                "LLM requests reported by guests (spans carrying llm.* attributes).",
                &["primitive_name", "model", "tenant"],
            ),
            registry: r,
            primitives: ArcSwap::default(),
            tenants: Mutex::new(HashSet::from(["default".to_owned()])),
            guest: Mutex::default(),
            config: config.clone(),
            instruments: Mutex::default(),
            forgetters: Mutex::default(),
        }
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
        remove_matching(&self.llm_tokens, &labels);
        remove_matching(&self.llm_cost, &labels);
        remove_matching(&self.llm_requests, &labels);
        for forget in lock(&self.forgetters).iter() {
            forget(&labels);
        }
        let mut state = lock(&self.guest);
        for family in state.families.values() {
            if let Some(c) = &family.counter {
                remove_matching(c, &labels);
            }
            if let Some(h) = &family.histogram {
                remove_matching(h, &labels);
            }
        }
        let owner = format!("{primitive}\u{0}{tenant}");
        state.series.retain(|key, _| {
            !key.split_once('\u{0}')
                .is_some_and(|(_, rest)| is_series_of(rest, &owner))
        });
        let key = (primitive.to_owned(), tenant.clone());
        let created = state.per_primitive.remove(&key).unwrap_or(0);
        if let Some(total) = state.per_tenant.get_mut(&tenant) {
            *total = total.saturating_sub(created);
        }
        state.llm_models.remove(&key);
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
            self.record_guest(&primitive.name, &h.tenant, report);
        }
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

    fn record_guest(&self, primitive: &str, tenant: &str, report: &CallReport) {
        let mut state = lock(&self.guest);
        let mut overflow = 0;
        for point in &report.metrics {
            if !self.record_guest_point(&mut state, primitive, tenant, point) {
                overflow += 1;
            }
        }
        for span in &report.spans {
            self.record_llm(&mut state, primitive, tenant, &span.attributes);
        }
        drop(state);
        if overflow > 0 {
            self.guest_dropped
                .with_label_values(&[primitive, "metric_series", tenant])
                .inc_by(overflow);
        }
    }

    /// Records one guest point; `false` when it was dropped (cap, bad name, bad value, clash).
    fn record_guest_point(&self, state: &mut GuestState, primitive: &str, tenant: &str, point: &GuestMetric) -> bool {
        let valid = match point.kind {
            MetricKind::Counter => point.value >= 0.0 && point.value.is_finite(),
            MetricKind::Histogram => point.value.is_finite(),
        };
        let Some(name) = guest_metric_name(&point.name, point.kind) else {
            return false;
        };
        if !valid {
            return false;
        }
        let mut key = format!("{name}\u{0}{primitive}\u{0}{tenant}");
        let labels = match state.families.get(&name) {
            Some(family) if family.kind != point.kind => return false,
            Some(family) => family.labels.clone(),
            None => {
                let mut labels: Vec<String> = point
                    .attributes
                    .iter()
                    .filter_map(|(k, _)| label_name(k))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .take(self.config.guest_labels)
                    .collect();
                labels.insert(0, "tenant".into());
                labels.insert(0, "primitive_name".into());
                labels
            }
        };
        let values: Vec<String> = labels[2..]
            .iter()
            .map(|label| {
                point
                    .attributes
                    .iter()
                    .find(|(k, _)| label_name(k).as_deref() == Some(label.as_str()))
                    .map(|(_, v)| label_value(v))
                    .unwrap_or_default()
            })
            .collect();
        for v in &values {
            key.push('\u{0}');
            key.push_str(v);
        }
        if !state.series.contains_key(&key) {
            let owner = (primitive.to_owned(), tenant.to_owned());
            let created = state.per_primitive.get(&owner).copied().unwrap_or(0);
            let total = state.per_tenant.get(tenant).copied().unwrap_or(0);
            if created >= self.config.guest_series_per_primitive || total >= self.config.guest_series_per_tenant {
                return false;
            }
            let Some(series) = self.create_guest_series(state, &name, point.kind, labels, primitive, tenant, &values)
            else {
                return false;
            };
            *state.per_primitive.entry(owner).or_default() += 1;
            *state.per_tenant.entry(tenant.to_owned()).or_default() += 1;
            state.series.insert(key.clone(), series);
        }
        match state.series.get(&key) {
            Some(GuestSeries::Counter(c)) => c.inc_by(point.value),
            Some(GuestSeries::Histogram(h)) => h.observe(point.value),
            None => return false,
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn create_guest_series(
        &self,
        state: &mut GuestState,
        name: &str,
        kind: MetricKind,
        labels: Vec<String>,
        primitive: &str,
        tenant: &str,
        values: &[String],
    ) -> Option<GuestSeries> {
        if !state.families.contains_key(name) {
            let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let help = format!(
                "Guest-defined {} `{name}`.",
                if kind == MetricKind::Counter {
                    "counter"
                } else {
                    "histogram"
                }
            );
            let family = match kind {
                MetricKind::Counter => {
                    let c = CounterVec::new(Opts::new(name, help), &label_refs).ok()?;
                    self.registry.register(Box::new(c.clone())).ok()?;
                    GuestFamily {
                        kind,
                        labels,
                        counter: Some(c),
                        histogram: None,
                    }
                }
                MetricKind::Histogram => {
                    let h = HistogramVec::new(
                        HistogramOpts::new(name, help).buckets(GUEST_BUCKETS.to_vec()),
                        &label_refs,
                    )
                    .ok()?;
                    self.registry.register(Box::new(h.clone())).ok()?;
                    GuestFamily {
                        kind,
                        labels,
                        counter: None,
                        histogram: Some(h),
                    }
                }
            };
            state.families.insert(name.to_owned(), family);
        }
        let family = state.families.get(name)?;
        let mut all: Vec<&str> = vec![primitive, tenant];
        all.extend(values.iter().map(String::as_str));
        match (&family.counter, &family.histogram) {
            (Some(c), _) => c.get_metric_with_label_values(&all).ok().map(GuestSeries::Counter),
            (_, Some(h)) => h.get_metric_with_label_values(&all).ok().map(GuestSeries::Histogram),
            _ => None,
        }
    }

    fn record_llm(&self, state: &mut GuestState, primitive: &str, tenant: &str, attributes: &[(String, Value)]) {
        let get = |key: &str| attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let prompt = get("llm.prompt_tokens").and_then(as_count);
        let completion = get("llm.completion_tokens").and_then(as_count);
        let cost = get("llm.cost_usd")
            .and_then(as_float)
            .filter(|c| *c >= 0.0 && c.is_finite());
        let model = get("llm.model");
        if prompt.is_none() && completion.is_none() && cost.is_none() && model.is_none() {
            return;
        }
        let model = match model {
            Some(v) => label_value(v),
            None => "unknown".to_owned(),
        };
        let models = state
            .llm_models
            .entry((primitive.to_owned(), tenant.to_owned()))
            .or_default();
        let model = if models.contains(&model) || models.len() < self.config.llm_models_per_primitive {
            models.insert(model.clone());
            model
        } else {
            OVERFLOW.to_owned()
        };
        self.llm_requests.with_label_values(&[primitive, &model, tenant]).inc();
        if let Some(n) = prompt {
            self.llm_tokens
                .with_label_values(&[primitive, &model, "prompt", tenant])
                .inc_by(n);
        }
        if let Some(n) = completion {
            self.llm_tokens
                .with_label_values(&[primitive, &model, "completion", tenant])
                .inc_by(n);
        }
        if let Some(c) = cost {
            self.llm_cost.with_label_values(&[primitive, &model, tenant]).inc_by(c);
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

/// Whether a guest series key (past its family name) belongs to `owner`, which is
/// `primitive \0 tenant`: the key goes on with `\0` and the label values, or ends.
fn is_series_of(rest: &str, owner: &str) -> bool {
    rest.strip_prefix(owner)
        .is_some_and(|tail| tail.is_empty() || tail.starts_with('\u{0}'))
}

/// Removes every series of `vec` whose labels include all of `labels`.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn as_count(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Float(f) if *f >= 0.0 && f.is_finite() => Some(*f as u64),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => s.trim().parse().ok(),
        Value::Boolean(_) => None,
    }
}

/// The exported name of a guest metric: `tta_guest_` + snake_case name; counters end in
/// `_total`, histograms never end in a suffix Prometheus reserves. `None` if nothing is left.
pub fn guest_metric_name(name: &str, kind: MetricKind) -> Option<String> {
    let mut base = String::with_capacity(name.len());
    let mut last_underscore = true;
    for c in name.chars().take(MAX_NAME_CHARS) {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            base.push(c);
            last_underscore = false;
        } else if !last_underscore {
            base.push('_');
            last_underscore = true;
        }
    }
    let mut base = base.trim_matches('_').to_owned();
    loop {
        let stripped = ["_total", "_count", "_sum", "_bucket"]
            .iter()
            .find_map(|s| base.strip_suffix(s).map(str::to_owned));
        match stripped {
            Some(s) => base = s,
            None => break,
        }
    }
    if base.is_empty() || base == "total" {
        return None;
    }
    Some(match kind {
        MetricKind::Counter => format!("tta_guest_{base}_total"),
        MetricKind::Histogram => format!("tta_guest_{base}"),
    })
}

/// A guest attribute key as a label name, or `None` if it is reserved or has no usable characters.
fn label_name(key: &str) -> Option<String> {
    let mut out: String = key
        .chars()
        .take(MAX_LABEL_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    out = out.trim_matches('_').to_owned();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if matches!(out.as_str(), "primitive_name" | "tenant" | "le" | "quantile") {
        return None;
    }
    Some(out)
}

/// A guest value as a label value, cut to `MAX_LABEL_CHARS` characters, control characters removed.
fn label_value(v: &Value) -> String {
    let text = crate::telemetry::value_text(v);
    text.chars().filter(|c| !c.is_control()).take(MAX_LABEL_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn guest_series_are_capped_per_primitive_and_tenant_and_per_tenant() {
        let metrics = Metrics::new(&MetricsConfig {
            guest_series_per_primitive: 3,
            guest_series_per_tenant: 5,
            ..MetricsConfig::default()
        });
        let mut state = lock(&metrics.guest);
        for i in 0..10 {
            metrics.record_guest_point(&mut state, "p", "a", &point(i));
            metrics.record_guest_point(&mut state, "q", "a", &point(i));
            metrics.record_guest_point(&mut state, "p", "b", &point(i));
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
        let mut state = lock(&metrics.guest);
        for i in 20..30 {
            metrics.record_guest_point(&mut state, "r", "a", &point(i));
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
