//! Metrics a guest records, and the `llm.*` span attributes that become `llm_*` metrics
//! (and, through [`crate::genai`], the GenAI conventions' `gen_ai_client_*` histograms):
//! names made Prometheus names, attributes made labels, every series capped per
//! (primitive, tenant) and per tenant, so no guest can grow the registry without bound.

use crate::genai::GenAiMetrics;
use crate::guest_histogram::GuestHistogramVec;
use crate::instruments::{OVERFLOW, counter, remove_matching};
use prometheus::{CounterVec, GaugeVec, IntCounterVec, Opts, Registry};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use tta_core::bindings::Value;
use tta_core::config::telemetry::MetricsConfig;
use tta_core::report::{CallReport, GuestMetric, GuestSpanRecord, MetricKind};

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

/// The longest label value taken from a guest string, in characters.
const MAX_LABEL_CHARS: usize = 64;
/// The longest metric name taken from a guest, in characters.
const MAX_NAME_CHARS: usize = 96;

#[derive(Default)]
pub(super) struct GuestState {
    /// Registered guest families by exported name: their kind and label names.
    pub(super) families: HashMap<String, GuestFamily>,
    /// Series already created, by key; the value indexes `families`.
    pub(super) series: HashMap<String, GuestSeries>,
    /// Series created per (primitive, tenant), for the cap.
    pub(super) per_primitive: HashMap<(String, String), usize>,
    /// Series created per tenant, for the cap.
    pub(super) per_tenant: HashMap<String, usize>,
    /// `llm.model` values seen per (primitive, tenant), for the cap.
    pub(super) llm_models: HashMap<(String, String), HashSet<String>>,
}

pub(super) struct GuestFamily {
    kind: MetricKind,
    labels: Vec<String>,
    instrument: Instrument,
}

/// A guest family's instrument: gauges and up-down counters are both gauges to Prometheus.
enum Instrument {
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(GuestHistogramVec),
}

pub(super) enum GuestSeries {
    Counter(prometheus::Counter),
    Gauge(prometheus::Gauge),
    Histogram(GuestHistogramVec, Vec<String>),
}

impl GuestState {
    /// Removes the guest and `llm.*` series of `primitive` for `tenant` (`labels` names
    /// both) and what the caps counted of them.
    pub(super) fn forget(&mut self, primitive: &str, tenant: &str, labels: &[(&str, &str)]) {
        for family in self.families.values() {
            match &family.instrument {
                Instrument::Counter(c) => remove_matching(c, labels),
                Instrument::Gauge(g) => remove_matching(g, labels),
                Instrument::Histogram(h) => h.remove_matching(labels),
            }
        }
        let owner = format!("{primitive}\u{0}{tenant}");
        self.series.retain(|key, _| {
            !key.split_once('\u{0}')
                .is_some_and(|(_, rest)| is_series_of(rest, &owner))
        });
        let key = (primitive.to_owned(), tenant.to_owned());
        let created = self.per_primitive.remove(&key).unwrap_or(0);
        if let Some(total) = self.per_tenant.get_mut(tenant) {
            *total = total.saturating_sub(created);
        }
        self.llm_models.remove(&key);
    }
}

/// The guest and `llm.*` instruments and the state of their caps.
pub(super) struct GuestMetrics {
    pub(super) state: Mutex<GuestState>,
    llm_tokens: IntCounterVec,
    llm_cost: CounterVec,
    llm_requests: IntCounterVec,
    genai: GenAiMetrics,
    /// `primitive_telemetry_dropped_total`, which series over the caps count in.
    guest_dropped: IntCounterVec,
    registry: Registry,
    config: MetricsConfig,
}

impl GuestMetrics {
    /// Registers the `llm_*` families into `registry`; guest families come as guests name them.
    #[allow(
        clippy::expect_used,
        reason = "the definitions are static: a clash is a bug the tests find"
    )]
    pub(super) fn new(registry: &Registry, guest_dropped: IntCounterVec, config: &MetricsConfig) -> Self {
        let llm_cost = CounterVec::new(
            Opts::new(
                "llm_cost_usd_total",
                "Cost of LLM requests reported by guests (span attribute llm.cost_usd), in US dollars.",
            ),
            &["primitive_name", "model", "tenant"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(llm_cost.clone()))
            .expect("unique static metric");
        GuestMetrics {
            state: Mutex::default(),
            llm_tokens: counter(
                registry,
                "llm_tokens_total",
                "LLM tokens reported by guests (span attributes llm.prompt_tokens, llm.completion_tokens).",
                &["primitive_name", "model", "kind", "tenant"],
            ),
            llm_cost,
            llm_requests: counter(
                registry,
                "llm_requests_total",
                "LLM requests reported by guests (spans carrying llm.* attributes).",
                &["primitive_name", "model", "tenant"],
            ),
            genai: GenAiMetrics::register(registry),
            guest_dropped,
            registry: registry.clone(),
            config: config.clone(),
        }
    }

    /// Removes every guest and `llm.*` series of the primitive and tenant `labels` name.
    pub(super) fn forget(&self, primitive: &str, tenant: &str, labels: &[(&str, &str)]) {
        remove_matching(&self.llm_tokens, labels);
        remove_matching(&self.llm_cost, labels);
        remove_matching(&self.llm_requests, labels);
        self.genai.forget(labels);
        lock(&self.state).forget(primitive, tenant, labels);
    }

    /// Records the metric points and `llm.*` attributes of one call.
    pub(super) fn record(&self, primitive: &str, tenant: &str, report: &CallReport) {
        let mut state = lock(&self.state);
        let mut overflow = 0;
        for point in &report.metrics {
            if !self.record_guest_point(&mut state, primitive, tenant, point) {
                overflow += 1;
            }
        }
        for span in &report.spans {
            self.record_llm(&mut state, primitive, tenant, span);
        }
        drop(state);
        if overflow > 0 {
            self.guest_dropped
                .with_label_values(&[primitive, "metric_series", tenant])
                .inc_by(overflow);
        }
    }

    /// Records one guest point; `false` when it was dropped (cap, bad name, bad value, clash).
    pub(super) fn record_guest_point(
        &self,
        state: &mut GuestState,
        primitive: &str,
        tenant: &str,
        point: &GuestMetric,
    ) -> bool {
        let valid = match point.kind {
            MetricKind::Counter => point.value >= 0.0 && point.value.is_finite(),
            MetricKind::Histogram | MetricKind::Gauge | MetricKind::UpDownCounter => point.value.is_finite(),
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
            let Some(series) = self.create_guest_series(state, &name, point, labels, primitive, tenant, &values) else {
                return false;
            };
            *state.per_primitive.entry(owner).or_default() += 1;
            *state.per_tenant.entry(tenant.to_owned()).or_default() += 1;
            state.series.insert(key.clone(), series);
        }
        match state.series.get(&key) {
            Some(GuestSeries::Counter(c)) => c.inc_by(point.value),
            Some(GuestSeries::Gauge(g)) if point.kind == MetricKind::Gauge => g.set(point.value),
            Some(GuestSeries::Gauge(g)) => g.add(point.value),
            Some(GuestSeries::Histogram(h, values)) => h.add(values, point),
            None => return false,
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn create_guest_series(
        &self,
        state: &mut GuestState,
        name: &str,
        point: &GuestMetric,
        labels: Vec<String>,
        primitive: &str,
        tenant: &str,
        values: &[String],
    ) -> Option<GuestSeries> {
        let kind = point.kind;
        if !state.families.contains_key(name) {
            let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let help = format!(
                "Guest-defined {} `{name}`.",
                match kind {
                    MetricKind::Counter => "counter",
                    MetricKind::Histogram => "histogram",
                    MetricKind::Gauge => "gauge",
                    MetricKind::UpDownCounter => "up-down counter",
                }
            );
            let instrument = match kind {
                MetricKind::Counter => {
                    let c = CounterVec::new(Opts::new(name, help), &label_refs).ok()?;
                    self.registry.register(Box::new(c.clone())).ok()?;
                    Instrument::Counter(c)
                }
                MetricKind::Gauge | MetricKind::UpDownCounter => {
                    let g = GaugeVec::new(Opts::new(name, help), &label_refs).ok()?;
                    self.registry.register(Box::new(g.clone())).ok()?;
                    Instrument::Gauge(g)
                }
                MetricKind::Histogram => {
                    // The family's buckets are those of the point that makes it.
                    let bounds = match &point.distribution {
                        Some(d) => d.bounds.clone(),
                        None => GUEST_BUCKETS.to_vec(),
                    };
                    let h = GuestHistogramVec::new(name, help, &labels, bounds).ok()?;
                    self.registry.register(h.collector()).ok()?;
                    Instrument::Histogram(h)
                }
            };
            state.families.insert(
                name.to_owned(),
                GuestFamily {
                    kind,
                    labels,
                    instrument,
                },
            );
        }
        let family = state.families.get(name)?;
        let mut all: Vec<&str> = vec![primitive, tenant];
        all.extend(values.iter().map(String::as_str));
        match &family.instrument {
            Instrument::Counter(c) => c.get_metric_with_label_values(&all).ok().map(GuestSeries::Counter),
            Instrument::Gauge(g) => g.get_metric_with_label_values(&all).ok().map(GuestSeries::Gauge),
            Instrument::Histogram(h) => {
                let all: Vec<String> = all.iter().map(|v| (*v).to_owned()).collect();
                h.touch(&all);
                Some(GuestSeries::Histogram(h.clone(), all))
            }
        }
    }

    fn record_llm(&self, state: &mut GuestState, primitive: &str, tenant: &str, span: &GuestSpanRecord) {
        let get = |key: &str| span.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let prompt = get("llm.prompt_tokens").and_then(crate::genai::count);
        let completion = get("llm.completion_tokens").and_then(crate::genai::count);
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
        self.genai.record(span, primitive, tenant, &model);
    }
}

/// Whether a guest series key (past its family name) belongs to `owner`, which is
/// `primitive \0 tenant`: the key goes on with `\0` and the label values, or ends.
pub(super) fn is_series_of(rest: &str, owner: &str) -> bool {
    rest.strip_prefix(owner)
        .is_some_and(|tail| tail.is_empty() || tail.starts_with('\u{0}'))
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
/// `_total`, other kinds never end in a suffix Prometheus reserves. `None` if nothing is left.
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
        MetricKind::Histogram | MetricKind::Gauge | MetricKind::UpDownCounter => format!("tta_guest_{base}"),
    })
}

/// A guest attribute key as a label name, or `None` if it is reserved or has no usable characters.
pub(super) fn label_name(key: &str) -> Option<String> {
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
    let text = crate::value_text(v);
    text.chars().filter(|c| !c.is_control()).take(MAX_LABEL_CHARS).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
