//! Running a compiled workflow: each combinator is a span with its decisions on it, each
//! leaf is a primitive call under its step's span, and the same context (correlation id,
//! trace, tenant, data) reaches every guest. Steps recurse through boxed futures, so
//! depth costs heap, not stack.

use crate::bindings::Value;
use crate::error::{ErrorClass, StepError, StepErrorKind};
use crate::host::CallOptions;
use crate::invocation::Invocation;
use crate::plugin::Plugin;
use crate::report::{CallReport, GuestSpanRecord, SpanEvent, WorkflowReport};
use crate::trace_context::{new_span_id, traceparent};
use crate::workflow::definition::Comparison;
use crate::workflow::plan::{BreakerPhase, Kind, RouteBy, Workflow};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The result of one run and its report.
#[derive(Debug)]
pub struct WorkflowOutcome {
    /// The workflow's output, or why there is none.
    pub output: Result<Vec<u8>, StepError>,
    /// Every span and call of the run; shared with the exporters.
    pub report: Arc<WorkflowReport>,
}

type Data = Vec<(String, String)>;
type StepResult = Result<(Vec<u8>, Data), StepError>;

/// Where a step runs: under which span, by when, with which data.
#[derive(Clone)]
struct Scope {
    parent: u64,
    deadline: Option<Instant>,
    data: Data,
}

#[derive(Default)]
struct Collected {
    spans: Vec<GuestSpanRecord>,
    calls: Vec<CallReport>,
}

struct Run<'w> {
    wf: &'w Workflow,
    /// The run's own invocation: its ids, tenant and limits; each leaf's is a step of it.
    invocation: Invocation,
    /// The tenant as a metric label (bounded), looked up once per run.
    tenant_label: String,
    collected: Mutex<Collected>,
}

/// A span being recorded for a combinator step.
struct StepSpan {
    record: GuestSpanRecord,
}

impl StepSpan {
    fn new(name: &str, kind: &str, parent: u64) -> Self {
        StepSpan {
            record: GuestSpanRecord {
                span_id: new_span_id(),
                parent_span_id: parent,
                name: name.to_owned(),
                start: SystemTime::now(),
                end: None,
                attributes: vec![
                    ("workflow.step".into(), Value::Str(name.to_owned())),
                    ("workflow.step.kind".into(), Value::Str(kind.to_owned())),
                ],
                events: Vec::new(),
                error: None,
                client: false,
            },
        }
    }

    fn id(&self) -> u64 {
        self.record.span_id
    }

    fn attr(&mut self, key: &str, value: Value) {
        self.record.attributes.push((key.to_owned(), value));
    }

    fn event(&mut self, name: &str, attributes: Vec<(String, Value)>) {
        self.record.events.push(SpanEvent {
            name: name.to_owned(),
            time: SystemTime::now(),
            attributes,
        });
    }
}

fn text(value: &str) -> Value {
    Value::Str(value.to_owned())
}

/// The output as JSON: parsed if it is JSON, else a JSON string of its text.
fn as_json(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Json::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn json_bytes(value: &Json) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// How long after a timeout step's deadline its subtree is dropped if it has not stopped.
const TIMEOUT_GRACE: Duration = Duration::from_millis(250);

/// The longest value `set_data` copies into the context.
const MAX_DATA_VALUE: usize = 8 * 1024;

impl Workflow {
    /// Runs the workflow once on `input`.
    pub async fn run(&self, input: &[u8], options: CallOptions) -> WorkflowOutcome {
        let host = &self.host;
        let invocation = host.invocation(options);
        let telemetry = host.telemetry();
        let metrics = telemetry.metrics();
        let tenant_label = metrics.tenant_label(&invocation.tenant);
        let run = Run {
            wf: self,
            invocation: invocation.clone(),
            tenant_label: tenant_label.clone(),
            collected: Mutex::new(Collected::default()),
        };
        let active = metrics.active_workflows.with_label_values(&[&tenant_label]);
        active.inc();
        let start = SystemTime::now();
        let began = Instant::now();
        let scope = Scope {
            parent: invocation.ids.span_id,
            deadline: None,
            data: invocation.data.clone(),
        };
        let result = run.step(self.root, input.to_vec(), scope).await;
        let wall = began.elapsed();
        active.dec();
        let status = if result.is_ok() { "success" } else { "error" };
        metrics
            .workflow_executions
            .with_label_values(&[&self.name, status, &tenant_label])
            .inc();
        metrics
            .workflow_duration
            .with_label_values(&[&self.name, &tenant_label])
            .observe(wall.as_secs_f64());
        let collected = run
            .collected
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let report = Arc::new(WorkflowReport {
            workflow: self.name.clone(),
            correlation_id: invocation.correlation_id,
            tenant: invocation.tenant,
            ids: invocation.ids,
            remote_parent: invocation.remote_parent,
            tracestate: invocation.tracestate,
            start,
            wall,
            error: result.as_ref().err().cloned(),
            spans: collected.spans,
            calls: collected.calls,
        });
        telemetry.export_workflow(&report);
        WorkflowOutcome {
            output: result.map(|(output, _)| output),
            report,
        }
    }
}

impl Run<'_> {
    fn finish(&self, mut span: StepSpan, result: &StepResult) {
        span.record.end = Some(SystemTime::now());
        if let Err(e) = result {
            span.record.error = Some(e.to_string());
            span.attr("error.type", text(e.error_type()));
        }
        self.collected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .spans
            .push(span.record);
    }

    /// The `workflow_name` and `tenant` labels of this run's metrics.
    fn labels(&self) -> (&str, &str) {
        (&self.wf.name, &self.tenant_label)
    }

    /// Calls `plugin` on `input` as step `step` under `scope`.
    async fn call(&self, step: &str, plugin: &Arc<Plugin>, input: &[u8], scope: &Scope) -> Result<Vec<u8>, StepError> {
        let invocation = self.invocation.step(scope.parent, scope.data.clone(), scope.deadline);
        let (result, report) = self.wf.host.execute(plugin, invocation, input).await;
        self.collected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .calls
            .push(report);
        result.map_err(|e| StepError::from_call(step, &e))
    }

    /// Calls a primitive on another tta-host: the step's span is the client span, and its id
    /// goes out in `traceparent`, so the remote call span is its child in the same trace.
    async fn remote(
        &self,
        step: &str,
        url: &str,
        api_key: Option<&str>,
        input: Vec<u8>,
        scope: &Scope,
        span: &mut StepSpan,
    ) -> Result<Vec<u8>, StepError> {
        let now = Instant::now();
        let deadline = scope.deadline.map_or(now + self.invocation.limits.timeout(), |d| {
            d.min(now + self.invocation.limits.timeout())
        });
        span.attr("http.request.method", text("POST"));
        span.attr("url.full", text(url));
        let traceparent = traceparent(self.invocation.ids.trace_id, span.id(), self.invocation.ids.sampled);
        let mut request = remote_client()
            .post(url)
            .timeout(deadline.saturating_duration_since(now))
            .header("traceparent", traceparent)
            .header("x-correlation-id", &self.invocation.correlation_id)
            .header("content-type", "application/json")
            .body(input);
        if !self.invocation.tracestate.is_empty() {
            request = request.header("tracestate", &self.invocation.tracestate);
        }
        if let Some(key) = api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let unreachable = |e: reqwest::Error| {
            let kind = StepErrorKind::Call(if e.is_timeout() {
                ErrorClass::DeadlineExceeded
            } else {
                ErrorClass::Unavailable
            });
            let mut error = StepError::new(step, kind, format!("remote primitive {url}: {e}"));
            error.retryable = true;
            error
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        span.attr("http.response.status_code", Value::Int(i64::from(status.as_u16())));
        let limit = self.invocation.limits.max_output_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > limit {
                return Err(StepError::new(
                    step,
                    StepErrorKind::Call(ErrorClass::PayloadTooLarge),
                    format!("remote primitive {url} answered more than {limit} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        // A tta-host answers a problem document; anything else is reported by status.
        let problem: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
        let field = |key: &str| problem.get(key).and_then(Json::as_str).map(str::to_owned);
        let mut error = StepError::new(
            step,
            field("type").map_or(StepErrorKind::RemoteError, |t| StepErrorKind::from_name(&t)),
            format!(
                "remote primitive {url} answered {status}: {}",
                field("detail").unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect())
            ),
        );
        error.retryable = problem
            .get("retryable")
            .and_then(Json::as_bool)
            .unwrap_or(status.is_server_error() || status.as_u16() == 429);
        Err(error)
    }

    fn step(&self, index: usize, input: Vec<u8>, scope: Scope) -> BoxFuture<'_, StepResult> {
        Box::pin(GrowStack(Box::pin(async move {
            let node = &self.wf.nodes[index];
            let result = match &node.kind {
                Kind::Primitive(plugin) => self
                    .call(&node.name, plugin, &input, &scope)
                    .await
                    .map(|output| (output, scope.data.clone())),
                Kind::Remote { url, api_key } => {
                    let mut span = StepSpan::new(&node.name, "remote", scope.parent);
                    span.record.client = true;
                    let result = self
                        .remote(&node.name, url, api_key.as_deref(), input, &scope, &mut span)
                        .await
                        .map(|output| (output, scope.data.clone()));
                    self.finish(span, &result);
                    result
                }
                kind => {
                    let mut span = StepSpan::new(&node.name, kind.key(), scope.parent);
                    let inner = Scope {
                        parent: span.id(),
                        ..scope.clone()
                    };
                    let result = self.combinator(index, input, inner, &mut span).await;
                    self.finish(span, &result);
                    result
                }
            };
            result.map(|(output, data)| {
                let data = set_data(&node.set_data, &output, data);
                (output, data)
            })
        })))
    }

    async fn combinator(&self, index: usize, input: Vec<u8>, scope: Scope, span: &mut StepSpan) -> StepResult {
        let node = &self.wf.nodes[index];
        let name = node.name.as_str();
        match &node.kind {
            Kind::Primitive(_) | Kind::Remote { .. } => unreachable_primitive(name),
            Kind::Sequential(steps) => self.sequence(steps, input, scope).await,
            Kind::Parallel { branches, fail_fast } => {
                self.parallel(name, branches, *fail_fast, input, scope, span).await
            }
            Kind::Conditional {
                pointer,
                op,
                value,
                then,
                otherwise,
            } => {
                let document = serde_json::from_slice::<Json>(&input).map_err(|e| {
                    StepError::new(
                        name,
                        StepErrorKind::NotJson,
                        format!("the input is not JSON ({e}); a condition reads JSON"),
                    )
                })?;
                let holds = compare(document.pointer(pointer), *op, value.as_ref());
                span.attr("condition.result", Value::Boolean(holds));
                match (holds, otherwise) {
                    (true, _) => self.step(*then, input, scope).await,
                    (false, Some(other)) => self.step(*other, input, scope).await,
                    (false, None) => Ok((input, scope.data)),
                }
            }
            Kind::Router { routes, by, default } => {
                let decided = Instant::now();
                let (wanted, how) = match by {
                    RouteBy::Pointer(pointer) => {
                        let document: Option<Json> = serde_json::from_slice(&input).ok();
                        let wanted = document.as_ref().and_then(|d| d.pointer(pointer)).map(|v| match v {
                            Json::String(s) => s.clone(),
                            other => other.to_string(),
                        });
                        (wanted, "rule")
                    }
                    RouteBy::Classifier(plugin) => {
                        let output = self.call(name, plugin, &input, &scope).await?;
                        let wanted = match as_json(&output) {
                            Json::String(s) => Some(s.trim().to_owned()),
                            Json::Object(o) => o.get("route").and_then(Json::as_str).map(str::to_owned),
                            _ => None,
                        };
                        (wanted, "classifier")
                    }
                };
                let route = match wanted.as_deref() {
                    Some(r) if routes.contains_key(r) => r.to_owned(),
                    _ => match default {
                        Some(d) => d.clone(),
                        None => {
                            let known: Vec<&str> = routes.keys().map(String::as_str).collect();
                            return Err(StepError::new(
                                name,
                                StepErrorKind::NoRoute,
                                format!(
                                    "the {how} chose {}, which is not a route ({}), and there is no default",
                                    wanted.map_or("nothing".to_owned(), |w| format!("`{w}`")),
                                    known.join(", ")
                                ),
                            ));
                        }
                    },
                };
                let (workflow, tenant) = self.labels();
                let metrics = self.wf.host.telemetry().metrics();
                metrics
                    .router_route_selected
                    .with_label_values(&[workflow, name, route.as_str(), tenant])
                    .inc();
                metrics
                    .router_decision_duration
                    .with_label_values(&[workflow, name, tenant])
                    .observe(decided.elapsed().as_secs_f64());
                span.attr("route_selected", text(&route));
                span.event(
                    "route_decision_made",
                    vec![("route".into(), text(&route)), ("by".into(), text(how))],
                );
                match routes.get(&route) {
                    Some(&target) => self.step(target, input, scope).await,
                    None => Err(StepError::new(
                        name,
                        StepErrorKind::NoRoute,
                        format!("route `{route}` has no target"),
                    )),
                }
            }
            Kind::Retry {
                step,
                max_attempts,
                backoff,
                max_backoff,
                retry_traps,
            } => {
                let mut attempt = 1;
                loop {
                    let mut attempt_span = StepSpan::new(&format!("{name}.attempt"), "retry.attempt", scope.parent);
                    attempt_span.attr("retry.attempt", Value::Int(i64::from(attempt)));
                    let mut data = scope.data.clone();
                    data.retain(|(k, _)| k != "retry.attempt");
                    data.push(("retry.attempt".into(), attempt.to_string()));
                    let inner = Scope {
                        parent: attempt_span.id(),
                        deadline: scope.deadline,
                        data,
                    };
                    let result = self.step(*step, input.clone(), inner).await;
                    self.finish(attempt_span, &result);
                    if attempt > 1 {
                        let (workflow, tenant) = self.labels();
                        self.wf
                            .host
                            .telemetry()
                            .metrics()
                            .retry_attempts
                            .with_label_values(&[workflow, name, tenant])
                            .inc();
                    }
                    let error = match result {
                        Ok(done) => {
                            span.attr("retry.attempts", Value::Int(i64::from(attempt)));
                            return Ok(done);
                        }
                        Err(e) => e,
                    };
                    let retryable = error.retryable || (*retry_traps && error.trap);
                    if !retryable || attempt >= *max_attempts {
                        span.attr("retry.attempts", Value::Int(i64::from(attempt)));
                        span.attr("retry.exhausted", Value::Boolean(retryable));
                        return Err(error);
                    }
                    let base = backoff.saturating_mul(1 << (attempt - 1).min(16)).min(*max_backoff);
                    let delay = base.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                    if scope.deadline.is_some_and(|d| Instant::now() + delay >= d) {
                        span.attr("retry.attempts", Value::Int(i64::from(attempt)));
                        return Err(error);
                    }
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
            Kind::Fallback(steps) => {
                let mut errors = Vec::new();
                for (position, step) in steps.iter().enumerate() {
                    match self.step(*step, input.clone(), scope.clone()).await {
                        Ok(done) => {
                            let used = &self.wf.nodes[*step].name;
                            span.attr("fallback.used", text(used));
                            span.attr("fallback.index", Value::Int(position as i64));
                            if position > 0 {
                                let (workflow, tenant) = self.labels();
                                self.wf
                                    .host
                                    .telemetry()
                                    .metrics()
                                    .fallback_used
                                    .with_label_values(&[workflow, used.as_str(), tenant])
                                    .inc();
                            }
                            return Ok(done);
                        }
                        Err(e) => errors.push(e),
                    }
                }
                let last = errors.last().cloned();
                Err(StepError {
                    step: name.to_owned(),
                    kind: StepErrorKind::AllFailed,
                    message: format!(
                        "all {} alternatives failed: {}",
                        errors.len(),
                        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                    ),
                    retryable: last.as_ref().is_some_and(|e| e.retryable),
                    trap: false,
                })
            }
            Kind::Timeout { step, limit } => {
                let deadline = Instant::now() + *limit;
                let inner = Scope {
                    deadline: Some(scope.deadline.map_or(deadline, |d| d.min(deadline))),
                    ..scope
                };
                span.attr(
                    "timeout.ms",
                    Value::Int(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)),
                );
                // Calls stop themselves at the deadline (epoch interruption) and report it; the
                // timer is only a backstop for host-side waits, with a little grace.
                let result = match tokio::time::timeout(*limit + TIMEOUT_GRACE, self.step(*step, input, inner)).await {
                    Ok(result) => result,
                    Err(_) => Err(StepError {
                        retryable: true,
                        ..StepError::new(
                            name,
                            StepErrorKind::Call(ErrorClass::DeadlineExceeded),
                            format!("took longer than {} ms", limit.as_millis()),
                        )
                    }),
                };
                if let Err(e) = &result
                    && e.kind == StepErrorKind::Call(ErrorClass::DeadlineExceeded)
                    && Instant::now() >= deadline
                {
                    let (workflow, tenant) = self.labels();
                    self.wf
                        .host
                        .telemetry()
                        .metrics()
                        .timeout_exceeded
                        .with_label_values(&[workflow, name, tenant])
                        .inc();
                    span.attr("timeout.exceeded", Value::Boolean(true));
                }
                result
            }
            Kind::Cache {
                step,
                ttl,
                key_data,
                store,
            } => {
                let started = Instant::now();
                let mut hasher = Sha256::new();
                for part in [
                    self.wf.name.as_bytes(),
                    name.as_bytes(),
                    self.invocation.tenant.as_bytes(),
                ] {
                    hasher.update((part.len() as u64).to_le_bytes());
                    hasher.update(part);
                }
                for key in key_data {
                    let value = scope
                        .data
                        .iter()
                        .find(|(k, _)| k == key)
                        .map_or("", |(_, v)| v.as_str());
                    hasher.update((value.len() as u64).to_le_bytes());
                    hasher.update(value.as_bytes());
                }
                hasher.update(&input);
                let key: [u8; 32] = hasher.finalize().into();
                let (workflow, tenant) = self.labels();
                let metrics = self.wf.host.telemetry().metrics();
                let hit = store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&key, *ttl);
                if let Some(output) = hit {
                    metrics.cache_hit.with_label_values(&[workflow, name, tenant]).inc();
                    metrics
                        .cache_operation_duration
                        .with_label_values(&[workflow, name, "hit", tenant])
                        .observe(started.elapsed().as_secs_f64());
                    span.attr("cache.hit", Value::Boolean(true));
                    return Ok((output, scope.data));
                }
                metrics.cache_miss.with_label_values(&[workflow, name, tenant]).inc();
                span.attr("cache.hit", Value::Boolean(false));
                let result = self.step(*step, input, scope).await;
                if let Ok((output, _)) = &result {
                    let mut store = store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let evicted = store.insert(key, output.clone());
                    metrics
                        .cache_size_bytes
                        .with_label_values(&[workflow, name])
                        .set(i64::try_from(store.bytes()).unwrap_or(i64::MAX));
                    if evicted > 0 {
                        metrics
                            .cache_evictions
                            .with_label_values(&[workflow, name, tenant])
                            .inc_by(evicted);
                    }
                }
                metrics
                    .cache_operation_duration
                    .with_label_values(&[workflow, name, "miss", tenant])
                    .observe(started.elapsed().as_secs_f64());
                result
            }
            Kind::Breaker {
                step,
                failures,
                window,
                cooldown,
                state,
            } => {
                let (workflow, _) = self.labels();
                let gauge = self
                    .wf
                    .host
                    .telemetry()
                    .metrics()
                    .circuit_breaker_state
                    .with_label_values(&[workflow, name]);
                let trial = {
                    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if s.phase == BreakerPhase::Open && s.opened_at.is_some_and(|at| at.elapsed() >= *cooldown) {
                        transition(span, &mut s.phase, BreakerPhase::HalfOpen);
                        gauge.set(s.phase.gauge());
                    }
                    span.attr("circuit_breaker.state", text(s.phase.name()));
                    match s.phase {
                        BreakerPhase::Closed => false,
                        BreakerPhase::HalfOpen if !s.trial_running => {
                            s.trial_running = true;
                            true
                        }
                        _ => {
                            let left = s
                                .opened_at
                                .map_or(Duration::ZERO, |at| cooldown.saturating_sub(at.elapsed()));
                            return Err(StepError::new(
                                name,
                                StepErrorKind::CircuitOpen,
                                format!(
                                    "circuit breaker `{name}` is open after repeated failures; it lets a trial call through in {} ms",
                                    left.as_millis()
                                ),
                            ));
                        }
                    }
                };
                let result = self.step(*step, input, scope).await;
                let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if trial {
                    s.trial_running = false;
                }
                match (&result, s.phase) {
                    (Ok(_), BreakerPhase::HalfOpen) => {
                        transition(span, &mut s.phase, BreakerPhase::Closed);
                        s.failures.clear();
                        s.opened_at = None;
                    }
                    (Err(_), BreakerPhase::HalfOpen) => {
                        transition(span, &mut s.phase, BreakerPhase::Open);
                        s.opened_at = Some(Instant::now());
                    }
                    (Err(_), BreakerPhase::Closed) => {
                        let now = Instant::now();
                        s.failures.push_back(now);
                        while s.failures.front().is_some_and(|t| now.duration_since(*t) > *window) {
                            s.failures.pop_front();
                        }
                        if s.failures.len() >= *failures as usize {
                            transition(span, &mut s.phase, BreakerPhase::Open);
                            s.opened_at = Some(now);
                            s.failures.clear();
                        }
                    }
                    _ => {}
                }
                gauge.set(s.phase.gauge());
                result
            }
            Kind::Saga { steps, compensate } => {
                let mut done: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
                let mut input = input;
                let mut data = scope.data.clone();
                for (position, step) in steps.iter().enumerate() {
                    let inner = Scope {
                        data: data.clone(),
                        ..scope.clone()
                    };
                    match self.step(*step, input.clone(), inner).await {
                        Ok((output, next_data)) => {
                            done.push((position, input, output.clone()));
                            input = output;
                            data = next_data;
                        }
                        Err(error) => {
                            span.event("saga.compensating", vec![("failed_step".into(), text(&error.step))]);
                            let mut undone = Vec::new();
                            for (position, step_input, step_output) in done.iter().rev() {
                                let Some(plugin) = compensate.get(position) else {
                                    continue;
                                };
                                let step_name = &self.wf.nodes[steps[*position]].name;
                                let mut undo =
                                    StepSpan::new(&format!("{step_name}.compensate"), "compensation", scope.parent);
                                let undo_scope = Scope {
                                    parent: undo.id(),
                                    ..scope.clone()
                                };
                                let payload = json_bytes(&serde_json::json!({
                                    "input": as_json(step_input),
                                    "output": as_json(step_output),
                                }));
                                let result = self
                                    .call(step_name, plugin, &payload, &undo_scope)
                                    .await
                                    .map(|o| (o, Vec::new()));
                                undo.attr("compensation.of", text(step_name));
                                let (workflow, tenant) = self.labels();
                                self.wf
                                    .host
                                    .telemetry()
                                    .metrics()
                                    .compensations
                                    .with_label_values(&[workflow, step_name.as_str(), tenant])
                                    .inc();
                                undone.push(format!(
                                    "{step_name}{}",
                                    if result.is_ok() { "" } else { " (compensation failed)" }
                                ));
                                self.finish(undo, &result);
                            }
                            return Err(StepError {
                                message: format!(
                                    "{}; compensated: {}",
                                    error.message,
                                    if undone.is_empty() {
                                        "nothing".to_owned()
                                    } else {
                                        undone.join(", ")
                                    }
                                ),
                                ..error
                            });
                        }
                    }
                }
                Ok((input, data))
            }
        }
    }

    async fn sequence(&self, steps: &[usize], input: Vec<u8>, scope: Scope) -> StepResult {
        let mut current = (input, scope.data.clone());
        for step in steps {
            let inner = Scope {
                data: current.1,
                ..scope.clone()
            };
            current = self.step(*step, current.0, inner).await?;
        }
        Ok(current)
    }

    async fn parallel(
        &self,
        name: &str,
        branches: &[(Option<String>, usize)],
        fail_fast: bool,
        input: Vec<u8>,
        scope: Scope,
        span: &mut StepSpan,
    ) -> StepResult {
        span.attr("parallel.branches", Value::Int(branches.len() as i64));
        let mut pending: FuturesUnordered<_> = branches
            .iter()
            .enumerate()
            .map(|(i, (_, step))| {
                let future = self.step(*step, input.clone(), scope.clone());
                async move { (i, future.await) }
            })
            .collect();
        let mut results: Vec<Option<StepResult>> = vec![None; branches.len()];
        while let Some((i, result)) = pending.next().await {
            if fail_fast && let Err(e) = &result {
                // Dropping the other branches cancels their calls.
                span.attr("parallel.cancelled", Value::Int(pending.len() as i64));
                return Err(e.clone());
            }
            results[i] = Some(result);
        }
        let mut errors = Vec::new();
        let mut outputs = Vec::new();
        let mut data = scope.data.clone();
        for result in results.into_iter().flatten() {
            match result {
                Ok((output, branch_data)) => {
                    for (k, v) in branch_data {
                        if !data.iter().any(|(dk, dv)| *dk == k && *dv == v) {
                            data.retain(|(dk, _)| *dk != k);
                            data.push((k, v));
                        }
                    }
                    outputs.push(as_json(&output));
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(StepError {
                step: name.to_owned(),
                kind: errors[0].kind,
                message: format!(
                    "{} of {} branches failed: {}",
                    errors.len(),
                    branches.len(),
                    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                ),
                retryable: errors.iter().all(|e| e.retryable),
                trap: errors.iter().any(|e| e.trap),
            });
        }
        let combined = if branches.iter().all(|(n, _)| n.is_some()) {
            Json::Object(
                branches
                    .iter()
                    .zip(outputs)
                    .map(|((n, _), o)| (n.clone().unwrap_or_default(), o))
                    .collect(),
            )
        } else {
            Json::Array(outputs)
        };
        Ok((json_bytes(&combined), data))
    }
}

/// Polls its future on a fresh stack segment when the current one runs low: nested steps
/// poll each other recursively, and a deeply nested workflow would otherwise overflow.
struct GrowStack<F>(std::pin::Pin<Box<F>>);

/// Room left on the stack below which a new segment is taken, and the segment's size.
const STACK_RED_ZONE: usize = 256 * 1024;
const STACK_SEGMENT: usize = 2 * 1024 * 1024;

impl<F: std::future::Future> std::future::Future for GrowStack<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let inner = self.0.as_mut();
        stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, move || inner.poll(cx))
    }
}

/// One HTTP client for every remote step: connections are pooled across runs.
fn remote_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default()
    })
}

fn unreachable_primitive(step: &str) -> StepResult {
    Err(StepError::new(
        step,
        StepErrorKind::Call(ErrorClass::Host),
        "a primitive step reached the combinator path",
    ))
}

fn transition(span: &mut StepSpan, phase: &mut BreakerPhase, to: BreakerPhase) {
    span.event(
        &format!("circuit_breaker.{}", to.name()),
        vec![("from".into(), text(phase.name())), ("to".into(), text(to.name()))],
    );
    *phase = to;
}

/// Copies values of `output` (JSON) at each pointer into `data`.
fn set_data(pointers: &[(String, String)], output: &[u8], mut data: Data) -> Data {
    if pointers.is_empty() {
        return data;
    }
    let Ok(document) = serde_json::from_slice::<Json>(output) else {
        return data;
    };
    for (key, pointer) in pointers {
        if let Some(value) = document.pointer(pointer) {
            let mut value = match value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            if value.len() > MAX_DATA_VALUE {
                let mut cut = MAX_DATA_VALUE;
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value.truncate(cut);
            }
            data.retain(|(k, _)| k != key);
            data.push((key.clone(), value));
        }
    }
    data
}

fn number(v: &Json) -> Option<f64> {
    v.as_f64()
}

/// Whether `found` compares to `expected` by `op`.
fn compare(found: Option<&Json>, op: Comparison, expected: Option<&Json>) -> bool {
    let Some(found) = found else {
        return op == Comparison::Ne;
    };
    let Some(expected) = expected else {
        return op == Comparison::Exists;
    };
    let equal = match (number(found), number(expected)) {
        (Some(a), Some(b)) => a == b,
        _ => found == expected,
    };
    match op {
        Comparison::Exists => true,
        Comparison::Eq => equal,
        Comparison::Ne => !equal,
        Comparison::Gt | Comparison::Ge | Comparison::Lt | Comparison::Le => match (number(found), number(expected)) {
            (Some(a), Some(b)) => match op {
                Comparison::Gt => a > b,
                Comparison::Ge => a >= b,
                Comparison::Lt => a < b,
                _ => a <= b,
            },
            _ => false,
        },
        Comparison::Contains => match (found, expected) {
            (Json::String(s), Json::String(needle)) => s.contains(needle.as_str()),
            (Json::Array(items), needle) => items.contains(needle),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparisons_follow_json_values() {
        let doc = json!({"n": 5, "s": "hello", "a": [1, 2]});
        let at = |p: &str| doc.pointer(p);
        assert!(compare(at("/n"), Comparison::Eq, Some(&json!(5.0))));
        assert!(compare(at("/n"), Comparison::Gt, Some(&json!(4))));
        assert!(!compare(at("/n"), Comparison::Lt, Some(&json!(4))));
        assert!(compare(at("/s"), Comparison::Contains, Some(&json!("ell"))));
        assert!(compare(at("/a"), Comparison::Contains, Some(&json!(2))));
        assert!(compare(at("/s"), Comparison::Exists, None));
        assert!(!compare(at("/missing"), Comparison::Exists, None));
        assert!(compare(at("/missing"), Comparison::Ne, Some(&json!(1))));
    }

    #[test]
    fn set_data_copies_values_by_pointer() {
        let data = set_data(
            &[("category".into(), "/c".into()), ("count".into(), "/n".into())],
            br#"{"c":"billing","n":3}"#,
            vec![("category".into(), "old".into())],
        );
        assert_eq!(
            data,
            vec![("category".into(), "billing".into()), ("count".into(), "3".into())]
        );
    }
}
