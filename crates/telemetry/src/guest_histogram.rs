//! A guest histogram family with the guest's own buckets.
//!
//! A `prometheus` histogram only observes one value at a time, so a distribution a guest's
//! SDK aggregated (its bounds, its count per bucket, its sum) could only be replayed as
//! guesses. This family keeps bucket counts as given: its bounds are those of the first
//! point that made it (the host's guest buckets for a single observation), a later point's
//! buckets are added into the family's first bound that holds each of them, and count and
//! sum are the guest's exactly.

use prometheus::core::{Collector, Desc};
use prometheus::proto;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tta_core::report::GuestMetric;

/// One series: counts per family bucket (one more than the bounds), count and sum.
#[derive(Debug, Default)]
struct Series {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

#[derive(Debug)]
struct Family {
    desc: Desc,
    bounds: Vec<f64>,
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

/// A guest histogram family; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct GuestHistogramVec(Arc<Family>);

/// The bucket of `value`: the first bound it does not exceed, or the last (`+Inf`).
fn bucket(bounds: &[f64], value: f64) -> usize {
    bounds.partition_point(|bound| *bound < value)
}

impl GuestHistogramVec {
    /// A family `name` with `labels` and `bounds` (increasing and finite).
    pub(crate) fn new(name: &str, help: String, labels: &[String], bounds: Vec<f64>) -> prometheus::Result<Self> {
        let desc = Desc::new(name.to_owned(), help, labels.to_vec(), Default::default())?;
        Ok(GuestHistogramVec(Arc::new(Family {
            desc,
            bounds,
            series: Mutex::default(),
        })))
    }

    /// Creates the series of `values` at zero, if it is not there.
    pub(crate) fn touch(&self, values: &[String]) {
        let mut series = lock(&self.0.series);
        series.entry(values.to_vec()).or_insert_with(|| Series {
            counts: vec![0; self.0.bounds.len() + 1],
            ..Series::default()
        });
    }

    /// Adds `point` (one observation, or the guest's distribution) to the series of `values`.
    pub(crate) fn add(&self, values: &[String], point: &GuestMetric) {
        let bounds = &self.0.bounds;
        let mut all = lock(&self.0.series);
        let series = all.entry(values.to_vec()).or_insert_with(|| Series {
            counts: vec![0; bounds.len() + 1],
            ..Series::default()
        });
        match &point.distribution {
            None => {
                series.counts[bucket(bounds, point.value)] += 1;
                series.count += 1;
            }
            Some(d) => {
                for (i, n) in d.counts.iter().enumerate() {
                    let upper = d.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    series.counts[bucket(bounds, upper)] += n;
                }
                series.count += d.count;
            }
        }
        series.sum += point.value;
    }

    /// Removes every series whose labels match all of `labels`.
    pub(crate) fn remove_matching(&self, labels: &[(&str, &str)]) {
        let names = self.0.desc.variable_labels.clone();
        let positions: Vec<(usize, &str)> = labels
            .iter()
            .filter_map(|(name, value)| names.iter().position(|n| n == name).map(|i| (i, *value)))
            .collect();
        if positions.len() != labels.len() {
            return;
        }
        lock(&self.0.series).retain(|values, _| {
            !positions
                .iter()
                .all(|(i, v)| values.get(*i).map(String::as_str) == Some(*v))
        });
    }

    /// The family as a collector for the registry.
    pub(crate) fn collector(&self) -> Box<dyn Collector> {
        Box::new(self.clone())
    }
}

impl Collector for GuestHistogramVec {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let family = &self.0;
        let mut out = proto::MetricFamily::default();
        out.set_name(family.desc.fq_name.clone());
        out.set_help(family.desc.help.clone());
        out.set_field_type(proto::MetricType::HISTOGRAM);
        let series = lock(&family.series);
        for (values, s) in series.iter() {
            let labels = family
                .desc
                .variable_labels
                .iter()
                .zip(values)
                .map(|(name, value)| {
                    let mut pair = proto::LabelPair::default();
                    pair.set_name(name.clone());
                    pair.set_value(value.clone());
                    pair
                })
                .collect();
            let mut cumulative = 0;
            let buckets = family
                .bounds
                .iter()
                .zip(&s.counts)
                .map(|(bound, n)| {
                    cumulative += n;
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(cumulative);
                    b
                })
                .collect();
            let mut h = proto::Histogram::default();
            h.set_bucket(buckets);
            h.set_sample_count(s.count);
            h.set_sample_sum(s.sum);
            let mut metric = proto::Metric::from_label(labels);
            metric.set_histogram(h);
            out.mut_metric().push(metric);
        }
        if out.get_metric().is_empty() {
            Vec::new()
        } else {
            vec![out]
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tta_core::report::{Distribution, MetricKind};

    fn point(value: f64, distribution: Option<Distribution>) -> GuestMetric {
        GuestMetric {
            kind: MetricKind::Histogram,
            name: "latency".into(),
            value,
            attributes: Vec::new(),
            distribution: distribution.map(Box::new),
        }
    }

    #[test]
    fn a_guests_buckets_are_kept_not_placed_from_the_mean() {
        let family = GuestHistogramVec::new("tta_guest_latency", "h".into(), &["tenant".into()], vec![10.0, 100.0])
            .expect("a valid family");
        let values = vec!["acme".to_owned()];
        // 9 and 15: one at most 10, one at most 100 (the mean, 12, would put both in 100).
        family.add(
            &values,
            &point(
                24.0,
                Some(Distribution {
                    count: 2,
                    bounds: vec![10.0, 100.0],
                    counts: vec![1, 1, 0],
                }),
            ),
        );
        family.add(&values, &point(500.0, None));
        let families = family.collect();
        let h = families[0].get_metric()[0].get_histogram();
        let cumulative: Vec<u64> = h.get_bucket().iter().map(|b| b.cumulative_count()).collect();
        assert_eq!(cumulative, [1, 2]);
        assert_eq!(h.get_sample_count(), 3);
        assert_eq!(h.get_sample_sum(), 524.0);
        family.remove_matching(&[("tenant", "acme")]);
        assert!(family.collect().is_empty());
    }
}
