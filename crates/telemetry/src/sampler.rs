//! The sampling decision for new traces: the OpenTelemetry samplers of `OTEL_TRACES_SAMPLER`.
//!
//! It runs once per top-level call, before the call, because the guest's `traceparent`
//! carries the decision; calls made through `invoke` inherit it.

use tta_core::config::telemetry::SamplerKind;

/// The sampling decision for new traces, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    kind: SamplerKind,
    ratio: f64,
}

impl Sampler {
    /// A sampler of `kind` with `ratio` for the ratio kinds.
    pub fn new(kind: SamplerKind, ratio: f64) -> Self {
        Sampler {
            kind,
            ratio: ratio.clamp(0.0, 1.0),
        }
    }

    /// Whether a span of trace `trace_id` is recorded, given its parent's flag if it has a parent.
    pub fn sample(&self, trace_id: u128, parent_sampled: Option<bool>) -> bool {
        let by_ratio = || {
            // The OpenTelemetry TraceIdRatioBased rule: the low 63 bits of the id against the ratio.
            let bound = (self.ratio * (1u64 << 63) as f64) as u64;
            ((trace_id as u64) >> 1) < bound
        };
        match (self.kind, parent_sampled) {
            (SamplerKind::AlwaysOn, _) => true,
            (SamplerKind::AlwaysOff, _) => false,
            (SamplerKind::Traceidratio, _) => by_ratio(),
            (_, Some(parent)) => parent,
            (SamplerKind::ParentbasedAlwaysOn, None) => true,
            (SamplerKind::ParentbasedAlwaysOff, None) => false,
            (SamplerKind::ParentbasedTraceidratio, None) => by_ratio(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_sampler_keeps_about_its_share() {
        let sampler = Sampler::new(SamplerKind::Traceidratio, 0.25);
        let kept = (0..10_000u128)
            .filter(|i| sampler.sample(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835), None))
            .count();
        assert!((2_000..3_000).contains(&kept), "kept {kept} of 10000 at ratio 0.25");
    }

    #[test]
    fn parent_based_samplers_follow_the_parent() {
        for kind in [
            SamplerKind::ParentbasedAlwaysOn,
            SamplerKind::ParentbasedAlwaysOff,
            SamplerKind::ParentbasedTraceidratio,
        ] {
            let sampler = Sampler::new(kind, 0.0);
            assert!(sampler.sample(7, Some(true)));
            assert!(!sampler.sample(7, Some(false)));
        }
        assert!(Sampler::new(SamplerKind::ParentbasedAlwaysOn, 0.0).sample(7, None));
        assert!(!Sampler::new(SamplerKind::ParentbasedAlwaysOff, 1.0).sample(7, None));
        assert!(!Sampler::new(SamplerKind::AlwaysOff, 1.0).sample(7, Some(true)));
    }
}
