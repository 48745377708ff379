//! `wasi:otel/metrics`: what a guest's OpenTelemetry SDK aggregated, kept as it measured it.
//!
//! Every kind the WIT carries keeps its meaning: a monotonic sum is a counter, any other
//! sum an up-down counter, a gauge the last reading, and a histogram its own buckets, count
//! and sum (an exponential histogram's buckets turned into explicit bounds). An instance
//! lives for one call, so what an SDK exports is what this call measured; a cumulative
//! export repeated in the same call replaces the earlier one instead of counting twice.

use super::{OtelCtx, attributes};
use tta_core::bindings::wasi::otel::metrics;
use tta_core::report::{Distribution, GuestMetric, MetricKind};

/// The most buckets a guest histogram point may carry; a point with more is dropped.
pub const MAX_BUCKETS: usize = 160;

fn number(n: metrics::MetricNumber) -> f64 {
    match n {
        metrics::MetricNumber::F64(f) => f,
        metrics::MetricNumber::S64(i) => i as f64,
        metrics::MetricNumber::U64(u) => u as f64,
    }
}

/// An explicit-bucket point as a distribution; `None` unless its bounds are finite and
/// increasing, its counts one more than its bounds, and it fits [`MAX_BUCKETS`].
fn explicit(count: u64, bounds: Vec<f64>, counts: Vec<u64>) -> Option<Distribution> {
    let increasing = bounds.windows(2).all(|w| w[0] < w[1]);
    let fits = counts.len() == bounds.len() + 1 && counts.len() <= MAX_BUCKETS;
    if !(increasing && fits && bounds.iter().all(|b| b.is_finite())) {
        return None;
    }
    let total = counts.iter().try_fold(0u64, |sum, c| sum.checked_add(*c))?;
    (total == count).then_some(Distribution { count, bounds, counts })
}

/// An exponential-bucket point as explicit bounds: bucket `i` at scale `s` holds values in
/// `(base^i, base^(i+1)]` with `base = 2^(2^-s)` (negated for the negative buckets), and the
/// zero bucket those within the zero threshold.
fn exponential(point: &metrics::ExponentialHistogramDataPoint) -> Option<Distribution> {
    let base = 2f64.powf(2f64.powi(-i32::from(point.scale)));
    let edge = |index: i64| base.powf(index as f64);
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    let negative = &point.negative_bucket;
    for (k, count) in negative.counts.iter().enumerate().rev() {
        let index = i64::from(negative.offset) + k as i64;
        buckets.push((-edge(index), *count));
    }
    if point.zero_count > 0 || !negative.counts.is_empty() {
        buckets.push((point.zero_threshold.max(0.0), point.zero_count));
    }
    let positive = &point.positive_bucket;
    for (k, count) in positive.counts.iter().enumerate() {
        let index = i64::from(positive.offset) + k as i64;
        buckets.push((edge(index + 1), *count));
    }
    if buckets.len() + 1 > MAX_BUCKETS {
        return None;
    }
    let (bounds, mut counts): (Vec<f64>, Vec<u64>) = buckets.into_iter().unzip();
    counts.push(0);
    explicit(point.count, bounds, counts)
}

fn point(
    kind: MetricKind,
    name: &str,
    value: f64,
    attributes: Vec<(String, tta_core::bindings::Value)>,
) -> GuestMetric {
    GuestMetric {
        kind,
        name: name.to_owned(),
        value,
        attributes,
        distribution: None,
    }
}

impl OtelCtx<'_> {
    /// Keeps a histogram point, or counts it dropped when its buckets make no sense.
    fn distribution(
        &mut self,
        name: &str,
        attrs: Vec<metrics::KeyValue>,
        sum: f64,
        found: Option<Distribution>,
        cumulative: bool,
    ) {
        match found {
            Some(d) if d.count > 0 => {
                let mut point = point(MetricKind::Histogram, name, sum, attributes(attrs));
                point.distribution = Some(Box::new(d));
                self.rec.record_point(point, cumulative);
            }
            Some(_) => {}
            None => self.rec.report.dropped.metrics += 1,
        }
    }
}

impl metrics::Host for OtelCtx<'_> {
    fn export(&mut self, batch: metrics::ResourceMetrics) -> wasmtime::Result<Result<(), String>> {
        use metrics::MetricData as D;
        for metric in batch.scope_metrics.into_iter().flat_map(|scope| scope.metrics) {
            let name = metric.name;
            match metric.data {
                D::F64Sum(sum) | D::U64Sum(sum) | D::S64Sum(sum) => {
                    let kind = if sum.is_monotonic {
                        MetricKind::Counter
                    } else {
                        MetricKind::UpDownCounter
                    };
                    let cumulative = sum.temporality == metrics::Temporality::Cumulative;
                    for p in sum.data_points {
                        let point = point(kind, &name, number(p.value), attributes(p.attributes));
                        self.rec.record_point(point, cumulative);
                    }
                }
                D::F64Gauge(g) | D::U64Gauge(g) | D::S64Gauge(g) => {
                    for p in g.data_points {
                        let point = point(MetricKind::Gauge, &name, number(p.value), attributes(p.attributes));
                        self.rec.record_point(point, true);
                    }
                }
                D::F64Histogram(h) | D::U64Histogram(h) | D::S64Histogram(h) => {
                    let cumulative = h.temporality == metrics::Temporality::Cumulative;
                    for p in h.data_points {
                        let found = explicit(p.count, p.bounds, p.bucket_counts);
                        self.distribution(&name, p.attributes, number(p.sum), found, cumulative);
                    }
                }
                D::F64ExponentialHistogram(h) | D::U64ExponentialHistogram(h) | D::S64ExponentialHistogram(h) => {
                    let cumulative = h.temporality == metrics::Temporality::Cumulative;
                    for p in h.data_points {
                        let found = exponential(&p);
                        self.distribution(&name, p.attributes, number(p.sum), found, cumulative);
                    }
                }
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_buckets_must_add_up_and_increase() {
        assert!(explicit(3, vec![1.0, 10.0], vec![1, 2, 0]).is_some());
        assert!(explicit(4, vec![1.0, 10.0], vec![1, 2, 0]).is_none());
        assert!(explicit(3, vec![10.0, 1.0], vec![1, 2, 0]).is_none());
        assert!(explicit(3, vec![1.0, f64::NAN], vec![1, 2, 0]).is_none());
        assert!(explicit(3, vec![1.0], vec![1, 2, 0]).is_none());
        assert!(explicit(u64::MAX, vec![1.0], vec![u64::MAX, 1]).is_none());
    }

    #[test]
    fn exponential_buckets_become_their_upper_edges() {
        // Scale 0: base 2; positive buckets 1 and 2 hold (2, 4] and (4, 8].
        let point = metrics::ExponentialHistogramDataPoint {
            attributes: Vec::new(),
            count: 4,
            min: None,
            max: None,
            sum: metrics::MetricNumber::F64(17.0),
            scale: 0,
            zero_count: 1,
            positive_bucket: metrics::ExponentialBucket {
                offset: 1,
                counts: vec![2, 1],
            },
            negative_bucket: metrics::ExponentialBucket {
                offset: 0,
                counts: Vec::new(),
            },
            zero_threshold: 0.0,
            exemplars: Vec::new(),
        };
        let d = exponential(&point).expect("a valid point");
        assert_eq!(d.bounds, [0.0, 4.0, 8.0]);
        assert_eq!(d.counts, [1, 2, 1, 0]);
    }
}
