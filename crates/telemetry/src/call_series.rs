//! The series every call updates — `primitive_executions_total` and the duration,
//! instantiation, fuel and memory histograms — kept in per-CPU shards.
//!
//! A call adds to the shard of its thread with relaxed atomic adds: nine of them, on cache
//! lines no other core writes while threads ≤ shards, so calls on different cores never
//! contend (a `prometheus` histogram makes every observer of a series increment one shared
//! counter first). A scrape sums the shards. Sums are integers (nanoseconds, fuel, bytes),
//! so they are exact. Each histogram's `_count` is the sum of its buckets, so a scrape
//! racing a call never shows a count that disagrees with `le="+Inf"`.

use crate::buckets::{DURATION_BUCKETS, FUEL_BUCKETS, MEMORY_BUCKETS};
use prometheus::core::{Collector, Desc};
use prometheus::proto;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const D: usize = DURATION_BUCKETS.len() + 1;
const F: usize = FUEL_BUCKETS.len() + 1;
const M: usize = MEMORY_BUCKETS.len() + 1;
/// The most shards a series has: enough for 16 cores to add without sharing one.
const MAX_SHARDS: usize = 16;

/// One thread's share of a series; aligned so two shards never share a cache line.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    success: AtomicU64,
    error: AtomicU64,
    duration: [AtomicU64; D],
    duration_ns: AtomicU64,
    instantiate: [AtomicU64; D],
    instantiate_ns: AtomicU64,
    fuel: [AtomicU64; F],
    fuel_sum: AtomicU64,
    memory: [AtomicU64; M],
    memory_sum: AtomicU64,
    /// Fuel of top-level calls only (a nested call's fuel is in its caller's already).
    billed_fuel: AtomicU64,
    /// Peak memory × wall time, byte-seconds, as the bits of an `f64`.
    memory_byte_seconds: AtomicU64,
}

/// What one finished call adds to its series.
#[derive(Debug, Clone, Copy)]
pub struct CallSample {
    /// Whether the call succeeded.
    pub ok: bool,
    /// Wall time, instantiation included.
    pub wall: Duration,
    /// Instantiation time.
    pub instantiate: Duration,
    /// Fuel burned.
    pub fuel: u64,
    /// Peak linear memory, bytes.
    pub memory: u64,
    /// Whether it was a top-level call, whose fuel is billed (a nested call's fuel is
    /// charged to its caller's, so counting it too would bill it twice).
    pub top_level: bool,
}

/// The series of one primitive for one tenant label.
pub struct CallSeries {
    primitive: Box<str>,
    tenant: Box<str>,
    shards: Box<[Shard]>,
}

/// How many shards a series has: the CPUs, rounded up to a power of two, at most 16.
fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// This thread's shard index; threads are numbered as they first record.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static INDEX: usize = NEXT.fetch_add(1, Relaxed));
    INDEX.with(|i| *i)
}

/// The bucket of `value`: the first upper bound it does not exceed, or the last (`+Inf`).
fn bucket(bounds: &[f64], value: f64) -> usize {
    bounds.partition_point(|bound| *bound < value)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl CallSeries {
    fn new(primitive: &str, tenant: &str) -> Self {
        CallSeries {
            primitive: primitive.into(),
            tenant: tenant.into(),
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
        }
    }

    /// Adds one call.
    pub fn record(&self, call: &CallSample) {
        let shard = &self.shards[thread_index() & (self.shards.len() - 1)];
        if call.ok { &shard.success } else { &shard.error }.fetch_add(1, Relaxed);
        shard.duration[bucket(DURATION_BUCKETS, call.wall.as_secs_f64())].fetch_add(1, Relaxed);
        shard.duration_ns.fetch_add(nanos(call.wall), Relaxed);
        shard.instantiate[bucket(DURATION_BUCKETS, call.instantiate.as_secs_f64())].fetch_add(1, Relaxed);
        shard.instantiate_ns.fetch_add(nanos(call.instantiate), Relaxed);
        shard.fuel[bucket(FUEL_BUCKETS, call.fuel as f64)].fetch_add(1, Relaxed);
        shard.fuel_sum.fetch_add(call.fuel, Relaxed);
        shard.memory[bucket(MEMORY_BUCKETS, call.memory as f64)].fetch_add(1, Relaxed);
        shard.memory_sum.fetch_add(call.memory, Relaxed);
        if call.top_level {
            shard.billed_fuel.fetch_add(call.fuel, Relaxed);
        }
        let byte_seconds = call.memory as f64 * call.wall.as_secs_f64();
        // Only this thread adds to its shard while threads ≤ shards, so the loop rarely turns.
        let _ = shard.memory_byte_seconds.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + byte_seconds).to_bits())
        });
    }

    /// What the series bills its tenant: fuel of top-level calls, and byte-seconds.
    fn bill(&self) -> (u64, f64) {
        let fuel = self.total(|sh| &sh.billed_fuel);
        let memory = self
            .shards
            .iter()
            .map(|sh| f64::from_bits(sh.memory_byte_seconds.load(Relaxed)))
            .sum();
        (fuel, memory)
    }

    /// A counter's total over the shards.
    fn total(&self, field: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| field(s).load(Relaxed)).sum()
    }

    /// A histogram summed over the shards, as the exposition wants it: cumulative buckets.
    fn histogram<const N: usize>(
        &self,
        bounds: &[f64],
        buckets: impl Fn(&Shard) -> &[AtomicU64; N],
        sum: f64,
    ) -> proto::Histogram {
        let mut counts = [0u64; N];
        for shard in self.shards.iter() {
            for (total, count) in counts.iter_mut().zip(buckets(shard)) {
                *total += count.load(Relaxed);
            }
        }
        let mut cumulative = 0;
        let mut h = proto::Histogram::default();
        h.set_bucket(
            bounds
                .iter()
                .zip(counts)
                .map(|(bound, count)| {
                    cumulative += count;
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(cumulative);
                    b
                })
                .collect(),
        );
        h.set_sample_count(counts.iter().sum());
        h.set_sample_sum(sum);
        h
    }

    fn labels(&self, status: Option<&str>) -> Vec<proto::LabelPair> {
        let pair = |name: &str, value: &str| {
            let mut p = proto::LabelPair::default();
            p.set_name(name.to_owned());
            p.set_value(value.to_owned());
            p
        };
        let mut labels = vec![pair("primitive_name", &self.primitive)];
        labels.extend(status.map(|s| pair("status", s)));
        labels.push(pair("tenant", &self.tenant));
        labels
    }
}

/// The families, in the order [`CallCollector::collect`] returns them.
const FAMILIES: [(&str, &str, bool); 5] = [
    (
        "primitive_executions_total",
        "Primitive calls by outcome (success or error).",
        false,
    ),
    (
        "primitive_duration_seconds",
        "Wall time of primitive calls, instantiation included.",
        true,
    ),
    (
        "primitive_instantiate_seconds",
        "Time to instantiate the component for a call.",
        true,
    ),
    (
        "primitive_fuel_consumed",
        "Fuel (roughly, wasm instructions) burned per call, nested invoke calls included.",
        true,
    ),
    (
        "primitive_memory_peak_bytes",
        "Peak linear memory per call, in bytes.",
        true,
    ),
];

/// The per-tenant families, summed over a tenant's series: what an operator bills.
const BILL_FAMILIES: [(&str, &str); 2] = [
    (
        "tenant_fuel_consumed_total",
        "Fuel a tenant's calls burned (top-level calls, their nested calls included), for billing.",
    ),
    (
        "tenant_memory_byte_seconds_total",
        "Peak linear memory times wall time of a tenant's calls, every level, in byte-seconds, for billing.",
    ),
];

/// A series' primitive name and tenant label.
type SeriesKey = (Box<str>, Box<str>);

/// Every [`CallSeries`], as one collector of the registry.
pub struct CallCollector {
    descs: Vec<Desc>,
    series: Mutex<HashMap<SeriesKey, Arc<CallSeries>>>,
    /// What removed series had billed, per tenant, so the tenant counters never go down.
    retired: Mutex<HashMap<Box<str>, (u64, f64)>>,
}

impl CallCollector {
    /// The collector, with no series yet.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let mut descs: Vec<Desc> = FAMILIES
            .iter()
            .map(|(name, help, histogram)| {
                let labels: &[&str] = if *histogram {
                    &["primitive_name", "tenant"]
                } else {
                    &["primitive_name", "status", "tenant"]
                };
                let labels = labels.iter().map(|l| (*l).to_owned()).collect();
                Desc::new((*name).into(), (*help).into(), labels, HashMap::new()).expect("static metric definition")
            })
            .collect();
        descs.extend(BILL_FAMILIES.iter().map(|(name, help)| {
            Desc::new(
                (*name).into(),
                (*help).into(),
                vec!["tenant".to_owned()],
                HashMap::new(),
            )
            .expect("static metric definition")
        }));
        CallCollector {
            descs,
            series: Mutex::default(),
            retired: Mutex::default(),
        }
    }

    /// The series of `primitive` for `tenant` (a label already within the cap), created at
    /// zero on first use.
    pub fn series(&self, primitive: &str, tenant: &str) -> Arc<CallSeries> {
        let mut all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            all.entry((primitive.into(), tenant.into()))
                .or_insert_with(|| Arc::new(CallSeries::new(primitive, tenant))),
        )
    }
}

impl CallCollector {
    /// Removes the series of `primitive` for `tenant`; handles still held record into a
    /// series no scrape sees.
    pub fn remove(&self, primitive: &str, tenant: &str) {
        let mut all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = all.remove(&(Box::from(primitive), Box::from(tenant))) {
            let (fuel, memory) = series.bill();
            let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
            let kept = retired.entry(tenant.into()).or_default();
            kept.0 = kept.0.saturating_add(fuel);
            kept.1 += memory;
        }
    }
}

impl Default for CallCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for CallCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let series: Vec<Arc<CallSeries>> = {
            let all = self.series.lock().unwrap_or_else(|e| e.into_inner());
            all.values().cloned().collect()
        };
        let mut families: Vec<proto::MetricFamily> = FAMILIES
            .iter()
            .map(|(name, help, histogram)| {
                let mut family = proto::MetricFamily::default();
                family.set_name((*name).to_owned());
                family.set_help((*help).to_owned());
                family.set_field_type(if *histogram {
                    proto::MetricType::HISTOGRAM
                } else {
                    proto::MetricType::COUNTER
                });
                family
            })
            .collect();
        for s in &series {
            for (status, count) in [
                ("success", s.total(|sh| &sh.success)),
                ("error", s.total(|sh| &sh.error)),
            ] {
                let mut counter = proto::Counter::default();
                counter.set_value(count as f64);
                let mut metric = proto::Metric::from_label(s.labels(Some(status)));
                metric.set_counter(counter);
                families[0].mut_metric().push(metric);
            }
            let seconds = |ns: u64| ns as f64 / 1e9;
            let histograms = [
                s.histogram(
                    DURATION_BUCKETS,
                    |sh| &sh.duration,
                    seconds(s.total(|sh| &sh.duration_ns)),
                ),
                s.histogram(
                    DURATION_BUCKETS,
                    |sh| &sh.instantiate,
                    seconds(s.total(|sh| &sh.instantiate_ns)),
                ),
                s.histogram(FUEL_BUCKETS, |sh| &sh.fuel, s.total(|sh| &sh.fuel_sum) as f64),
                s.histogram(MEMORY_BUCKETS, |sh| &sh.memory, s.total(|sh| &sh.memory_sum) as f64),
            ];
            for (family, histogram) in families[1..].iter_mut().zip(histograms) {
                let mut metric = proto::Metric::from_label(s.labels(None));
                metric.set_histogram(histogram);
                family.mut_metric().push(metric);
            }
        }
        families.extend(self.bills(&series));
        families
    }
}

/// What a tenant's calls of one primitive add up to since the host started.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// The primitive.
    pub primitive: String,
    /// Calls that succeeded.
    pub success: u64,
    /// Calls that failed.
    pub error: u64,
    /// The median wall time, seconds, interpolated within its bucket.
    pub p50: Option<f64>,
    /// The 99th percentile wall time, seconds.
    pub p99: Option<f64>,
    /// Fuel burned, nested calls included.
    pub fuel: u64,
}

/// The `q` quantile of a histogram's per-bucket `counts` over `bounds`, interpolated
/// linearly within its bucket (as PromQL's `histogram_quantile` does).
fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if (below + n) as f64 >= rank && n > 0 {
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let Some(&upper) = bounds.get(i) else {
                return Some(lower);
            };
            return Some(lower + (upper - lower) * (rank - below as f64) / n as f64);
        }
        below += n;
    }
    bounds.last().copied()
}

impl CallCollector {
    /// The totals of each primitive `tenant` (a tenant label) called, sorted by primitive.
    pub fn totals(&self, tenant: &str) -> Vec<Totals> {
        let series: Vec<Arc<CallSeries>> = {
            let all = self.series.lock().unwrap_or_else(|e| e.into_inner());
            all.values().filter(|s| &*s.tenant == tenant).cloned().collect()
        };
        let mut out: Vec<Totals> = series
            .iter()
            .map(|s| {
                let mut counts = [0u64; D];
                for shard in s.shards.iter() {
                    for (total, n) in counts.iter_mut().zip(&shard.duration) {
                        *total += n.load(Relaxed);
                    }
                }
                Totals {
                    primitive: s.primitive.to_string(),
                    success: s.total(|sh| &sh.success),
                    error: s.total(|sh| &sh.error),
                    p50: quantile(DURATION_BUCKETS, &counts, 0.5),
                    p99: quantile(DURATION_BUCKETS, &counts, 0.99),
                    fuel: s.total(|sh| &sh.fuel_sum),
                }
            })
            .collect();
        out.sort_by(|a, b| a.primitive.cmp(&b.primitive));
        out
    }

    /// `tenant_fuel_consumed_total` and `tenant_memory_byte_seconds_total`: each tenant's
    /// series summed, with what its removed series had billed.
    fn bills(&self, series: &[Arc<CallSeries>]) -> [proto::MetricFamily; 2] {
        let mut per_tenant: std::collections::BTreeMap<Box<str>, (u64, f64)> = self
            .retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(tenant, bill)| (tenant.clone(), *bill))
            .collect();
        for s in series {
            let (fuel, memory) = s.bill();
            let bill = per_tenant.entry(s.tenant.clone()).or_default();
            bill.0 = bill.0.saturating_add(fuel);
            bill.1 += memory;
        }
        BILL_FAMILIES.map(|(name, help)| {
            let mut family = proto::MetricFamily::default();
            family.set_name(name.to_owned());
            family.set_help(help.to_owned());
            family.set_field_type(proto::MetricType::COUNTER);
            for (tenant, (fuel, memory)) in &per_tenant {
                let mut label = proto::LabelPair::default();
                label.set_name("tenant".to_owned());
                label.set_value(tenant.to_string());
                let mut counter = proto::Counter::default();
                counter.set_value(if name == BILL_FAMILIES[0].0 {
                    *fuel as f64
                } else {
                    *memory
                });
                let mut metric = proto::Metric::from_label(vec![label]);
                metric.set_counter(counter);
                family.mut_metric().push(metric);
            }
            family
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_to_what_every_thread_recorded() {
        let collector = CallCollector::new();
        let series = collector.series("echo", "acme");
        let call = CallSample {
            ok: true,
            wall: Duration::from_micros(30),
            instantiate: Duration::from_micros(6),
            fuel: 2_000,
            memory: 1 << 20,
            top_level: true,
        };
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        series.record(&call);
                    }
                });
            }
        });
        series.record(&CallSample { ok: false, ..call });
        let families = collector.collect();
        let executions: Vec<f64> = families[0]
            .get_metric()
            .iter()
            .map(|m| m.get_counter().get_value())
            .collect();
        assert_eq!(executions, [4_000.0, 1.0]);
        let duration = families[1].get_metric()[0].get_histogram();
        assert_eq!(duration.get_sample_count(), 4_001);
        assert!((duration.get_sample_sum() - 4_001.0 * 30e-6).abs() < 1e-9);
        // 30 µs falls in the 50 µs bucket, and every bucket after it.
        let buckets: Vec<(f64, u64)> = duration
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(buckets[1], (0.000_025, 0));
        assert_eq!(buckets[2], (0.000_05, 4_001));
        let fuel = families[3].get_metric()[0].get_histogram();
        assert_eq!(fuel.get_sample_sum(), 4_001.0 * 2_000.0);
        // Nested calls are not billed fuel (their caller's fuel holds theirs) but are billed memory.
        series.record(&CallSample {
            top_level: false,
            ..call
        });
        collector.remove("echo", "acme");
        collector.series("echo", "acme").record(&call);
        let families = collector.collect();
        let billed = families[5].get_metric()[0].get_counter().get_value();
        assert_eq!(billed, 4_002.0 * 2_000.0, "the removed series' bill is kept");
        let byte_seconds = families[6].get_metric()[0].get_counter().get_value();
        assert!(
            (byte_seconds - 4_003.0 * 1_048_576.0 * 30e-6).abs() < 1e-3,
            "{byte_seconds}"
        );
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        assert_eq!(quantile(&[1.0, 2.0], &[0, 0, 0], 0.5), None);
        assert_eq!(quantile(&[1.0, 2.0], &[0, 4, 0], 0.5), Some(1.5));
        let p99 = quantile(&[1.0, 2.0], &[2, 2, 0], 0.99).expect("a quantile");
        assert!((p99 - 1.98).abs() < 1e-9, "{p99}");
        assert_eq!(quantile(&[1.0, 2.0], &[0, 0, 3], 0.5), Some(2.0));
    }

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket() {
        assert_eq!(bucket(&[1.0, 2.0], 1.0), 0);
        assert_eq!(bucket(&[1.0, 2.0], 1.5), 1);
        assert_eq!(bucket(&[1.0, 2.0], 9.0), 2);
    }
}
