//! What identifies and bounds one call, decided before it runs: its ids, tenant, budget and
//! deadline. Every call — top-level, nested through `invoke`, a workflow's leaf — gets its
//! invocation from one of the constructors here.

use crate::recording::Session;
use crate::tenant::Access;
use std::sync::Arc;
use std::time::SystemTime;
use std::time::{Duration, Instant};
use tta_core::bindings::Value;
use tta_core::config::Limits;
use tta_core::guest_config::GuestConfig;
use tta_core::report::{CallReport, CallStats, Dropped};
use tta_core::trace_context::{Parent, SpanIds, new_span_id};

/// Everything that identifies and bounds one call, decided by the caller.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Ties together every span, log and metric of one request.
    pub correlation_id: String,
    /// The tenant the call runs for.
    pub tenant: String,
    /// The W3C ids of the call's host span.
    pub ids: SpanIds,
    /// The W3C `tracestate` passed along.
    pub tracestate: String,
    /// Workflow data.
    pub data: Vec<(String, String)>,
    /// When the call must be finished.
    pub deadline: Instant,
    /// The wall-clock limit the deadline came from, for messages.
    pub timeout: Duration,
    /// The fuel the call may burn.
    pub fuel: u64,
    /// How many `invoke` levels above this call.
    pub depth: u32,
    /// Whether the parent span is in another process (an incoming `traceparent`).
    pub remote_parent: bool,
    /// The limits the call runs under: the host's, or its tenant's quotas.
    pub limits: Limits,
    /// What the tenant may reach through `invoke`; `None` is the operator (everything shared).
    pub access: Option<Arc<Access>>,
    /// What the tenant's guests read through `wasi:config`, and the secrets scrubbed from
    /// the call's signals.
    pub config: Arc<GuestConfig>,
    /// What the caller puts on this call's host span; only a top-level call has any.
    pub attributes: Vec<(String, Value)>,
    /// The recording or replay the call belongs to; a nested call has none (its result is
    /// on its caller's tape).
    pub session: Option<Arc<Session>>,
}

impl Invocation {
    /// The invocation of a top-level call: a new trace (or the caller's, from `traceparent`),
    /// the full budget of `limits`.
    pub fn root(limits: &Limits, correlation_id: String, tenant: String, parent: Option<Parent>) -> Self {
        let ids = parent.map_or_else(SpanIds::new_trace, SpanIds::continuing);
        Invocation {
            correlation_id,
            tenant,
            ids,
            tracestate: String::new(),
            data: Vec::new(),
            deadline: Instant::now() + limits.timeout(),
            timeout: limits.timeout(),
            fuel: limits.fuel,
            depth: 0,
            remote_parent: parent.is_some(),
            limits: *limits,
            access: None,
            config: GuestConfig::empty(),
            attributes: Vec::new(),
            session: None,
        }
    }

    /// A call this one makes through `invoke`, under span `parent_span_id`: the same trace,
    /// tenant and deadline, `fuel` (what this call has left), one level deeper.
    pub fn child(&self, parent_span_id: u64, fuel: u64) -> Self {
        Invocation {
            ids: self.ids.child(parent_span_id),
            fuel,
            depth: self.depth + 1,
            remote_parent: false,
            attributes: Vec::new(),
            session: None,
            ..self.clone()
        }
    }

    /// A workflow's leaf call under span `parent_span_id` of this (the run's) invocation, with
    /// the step's `data`: a full budget of fuel and time, cut to `deadline` if the step has one.
    pub fn step(&self, parent_span_id: u64, data: Vec<(String, String)>, deadline: Option<Instant>) -> Self {
        let now = Instant::now();
        let own = now + self.limits.timeout();
        let deadline = deadline.map_or(own, |d| d.min(own));
        Invocation {
            correlation_id: self.correlation_id.clone(),
            tenant: self.tenant.clone(),
            ids: self.ids.child(parent_span_id),
            tracestate: self.tracestate.clone(),
            data,
            deadline,
            timeout: deadline.saturating_duration_since(now),
            fuel: self.limits.fuel,
            depth: 0,
            remote_parent: false,
            limits: self.limits,
            access: self.access.clone(),
            config: Arc::clone(&self.config),
            attributes: Vec::new(),
            session: self.session.clone(),
        }
    }

    /// An empty report for a call of `primitive` under this invocation, starting now.
    pub fn report(&self, primitive: &str, version: &str) -> CallReport {
        CallReport {
            primitive: primitive.to_owned(),
            version: version.to_owned(),
            correlation_id: self.correlation_id.clone(),
            tenant: self.tenant.clone(),
            ids: self.ids,
            tracestate: self.tracestate.clone(),
            instantiate_span_id: new_span_id(),
            nested_depth: self.depth,
            remote_parent: self.remote_parent,
            start: SystemTime::now(),
            stats: CallStats::default(),
            error: None,
            logs: Vec::new(),
            spans: Vec::new(),
            metrics: Vec::new(),
            nested: Vec::new(),
            dropped: Dropped::default(),
            attributes: self.attributes.clone(),
        }
    }
}
