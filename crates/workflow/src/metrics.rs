//! The workflow engine's instruments: runs, and what each combinator decided.

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};
use tta_telemetry::buckets::DURATION_BUCKETS;
use tta_telemetry::instruments::{Instruments, counter, gauge, histogram};

/// Every metric of workflow runs; `tenant` is the bounded tenant label.
pub struct WorkflowMetrics {
    /// `workflow_executions_total{workflow_name,status,tenant}`.
    pub workflow_executions: IntCounterVec,
    /// `workflow_duration_seconds{workflow_name,tenant}`.
    pub workflow_duration: HistogramVec,
    /// `active_workflows{tenant}`.
    pub active_workflows: IntGaugeVec,
    /// `router_route_selected_total{workflow_name,router,route,tenant}`.
    pub router_route_selected: IntCounterVec,
    /// `router_decision_duration_seconds{workflow_name,router,tenant}`.
    pub router_decision_duration: HistogramVec,
    /// `retry_attempts_total{workflow_name,step,tenant}`: attempts after the first.
    pub retry_attempts: IntCounterVec,
    /// `fallback_used_total{workflow_name,step,tenant}`: answers from a fallback, by the step that answered.
    pub fallback_used: IntCounterVec,
    /// `timeout_exceeded_total{workflow_name,step,tenant}`.
    pub timeout_exceeded: IntCounterVec,
    /// `cache_hit_total{workflow_name,cache,tenant}`.
    pub cache_hit: IntCounterVec,
    /// `cache_miss_total{workflow_name,cache,tenant}`.
    pub cache_miss: IntCounterVec,
    /// `cache_evictions_total{workflow_name,cache,tenant}`.
    pub cache_evictions: IntCounterVec,
    /// `cache_size_bytes{workflow_name,cache}`.
    pub cache_size_bytes: IntGaugeVec,
    /// `cache_operation_duration_seconds{workflow_name,cache,operation,tenant}`, operation `hit` or `miss`.
    pub cache_operation_duration: HistogramVec,
    /// `circuit_breaker_state{workflow_name,breaker}`: 0 closed, 1 open, 2 half-open.
    pub circuit_breaker_state: IntGaugeVec,
    /// `compensations_total{workflow_name,step,tenant}`.
    pub compensations: IntCounterVec,
}

impl Instruments for WorkflowMetrics {
    fn register(r: &Registry) -> Self {
        WorkflowMetrics {
            workflow_executions: counter(
                r,
                "workflow_executions_total",
                "Workflow runs by outcome.",
                &["workflow_name", "status", "tenant"],
            ),
            workflow_duration: histogram(
                r,
                "workflow_duration_seconds",
                "Wall time of workflow runs.",
                &["workflow_name", "tenant"],
                DURATION_BUCKETS,
            ),
            active_workflows: gauge(r, "active_workflows", "Workflows running now.", &["tenant"]),
            router_route_selected: counter(
                r,
                "router_route_selected_total",
                "Routes chosen by workflow routers.",
                &["workflow_name", "router", "route", "tenant"],
            ),
            router_decision_duration: histogram(
                r,
                "router_decision_duration_seconds",
                "Time a router took to choose (a classifier call included).",
                &["workflow_name", "router", "tenant"],
                DURATION_BUCKETS,
            ),
            retry_attempts: counter(
                r,
                "retry_attempts_total",
                "Retries made by workflow retry steps (attempts after the first).",
                &["workflow_name", "step", "tenant"],
            ),
            fallback_used: counter(
                r,
                "fallback_used_total",
                "Answers given by a fallback instead of the primary, by the step that answered.",
                &["workflow_name", "step", "tenant"],
            ),
            timeout_exceeded: counter(
                r,
                "timeout_exceeded_total",
                "Workflow timeout steps whose deadline passed.",
                &["workflow_name", "step", "tenant"],
            ),
            cache_hit: counter(
                r,
                "cache_hit_total",
                "Workflow cache hits.",
                &["workflow_name", "cache", "tenant"],
            ),
            cache_miss: counter(
                r,
                "cache_miss_total",
                "Workflow cache misses.",
                &["workflow_name", "cache", "tenant"],
            ),
            cache_evictions: counter(
                r,
                "cache_evictions_total",
                "Entries evicted from workflow caches (least recently used first).",
                &["workflow_name", "cache", "tenant"],
            ),
            cache_size_bytes: gauge(
                r,
                "cache_size_bytes",
                "Bytes of outputs a workflow cache step holds.",
                &["workflow_name", "cache"],
            ),
            cache_operation_duration: histogram(
                r,
                "cache_operation_duration_seconds",
                "Time of a cache step, by outcome (a miss includes computing the value).",
                &["workflow_name", "cache", "operation", "tenant"],
                DURATION_BUCKETS,
            ),
            circuit_breaker_state: gauge(
                r,
                "circuit_breaker_state",
                "State of a workflow circuit breaker: 0 closed, 1 open, 2 half-open.",
                &["workflow_name", "breaker"],
            ),
            compensations: counter(
                r,
                "compensations_total",
                "Saga compensations run, by the step they undo.",
                &["workflow_name", "step", "tenant"],
            ),
        }
    }
}
