//! `tools/list` and `tools/call`: what a tenant may call, and one call of it through the
//! path every call takes (quota, host slot, sandbox, spans, metrics).
//!
//! A tool is a primitive the tenant sees (its name) or a workflow it may run (its name,
//! unless a primitive it sees has that name: the primitive is the tool). Another tenant's
//! tools never appear, and calling one is the error an unknown name gets.

use super::jsonrpc::{self, CANCELLED, RpcError};
use super::{Caller, Protocol};
use crate::problem::Problem;
use crate::request::{refusal_problem, slot};
use crate::{App, LoadedWorkflow, admission};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};
use tta_core::bindings::Value as Attr;
use tta_core::schema::{self, Mismatch};
use tta_core::trace_context::{SpanIds, parse_traceparent};
use tta_runtime::host::CallOptions;
use tta_runtime::primitive::Primitive;
use tta_runtime::tenant::{Permit, Tenant};

/// A `tools/list` cursor: the last name of the page before.
const CURSOR_PREFIX: &str = "after:";

enum Tool {
    Primitive(Arc<Primitive>),
    Workflow(Arc<LoadedWorkflow>),
}

impl Tool {
    fn check_input(&self, input: &[u8]) -> Result<(), Mismatch> {
        match self {
            Tool::Primitive(primitive) => primitive.check_input(input),
            Tool::Workflow(loaded) => loaded.workflow.check_input(input),
        }
    }
}

/// Every tool the tenant may call, by name.
fn tools(app: &App, tenant: &Tenant) -> BTreeMap<String, Tool> {
    let mut tools: BTreeMap<String, Tool> = app
        .host
        .registry()
        .visible(Some(&tenant.access))
        .into_iter()
        .map(|p| (p.metadata.name.clone(), Tool::Primitive(p)))
        .collect();
    for (name, workflow) in app.workflows.load().iter() {
        if tenant.access.may_run(name) && !tools.contains_key(name) {
            tools.insert(name.clone(), Tool::Workflow(Arc::clone(workflow)));
        }
    }
    tools
}

/// The tenant's tool `name`, or the error of a name it may not call (the same for a tool
/// that does not exist and another tenant's).
fn find(app: &App, tenant: &Tenant, name: &str) -> Result<Tool, RpcError> {
    if let Some(primitive) = app.host.registry().resolve(Some(&tenant.access), name) {
        return Ok(Tool::Primitive(primitive));
    }
    match app.workflows.load().get(name) {
        Some(workflow) if tenant.access.may_run(name) => Ok(Tool::Workflow(Arc::clone(workflow))),
        _ => Err(RpcError::invalid_params(format!(
            "Unknown tool: `{}`; tools/list shows the tools this key may call",
            tta_core::text::bounded(name, 64)
        ))),
    }
}

fn describe(name: &str, tool: &Tool) -> Value {
    let any_object = json!({ "type": "object" });
    match tool {
        Tool::Primitive(p) => {
            let m = &p.metadata;
            let schema = |text: &Option<String>| text.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
            let mut tool = json!({
                "name": name,
                "title": m.title.as_deref().unwrap_or(name),
                "description": m.description,
                "inputSchema": schema(&m.input_schema).unwrap_or(any_object),
                "_meta": {
                    "dev.tta/kind": "primitive",
                    "dev.tta/version": m.version,
                    "dev.tta/contract": m.contract.as_str(),
                    "dev.tta/digest": p.digest,
                },
            });
            // MCP's `outputSchema` describes `structuredContent`, which is an object: a
            // schema of anything else (a string, any value) is left out.
            if let Some(output) = schema(&m.output_schema).filter(schema::describes_object) {
                tool["outputSchema"] = output;
            }
            let mut annotations = Map::new();
            for (key, hint) in [
                ("readOnlyHint", m.hints.read_only),
                ("destructiveHint", m.hints.destructive),
                ("idempotentHint", m.hints.idempotent),
                ("openWorldHint", m.hints.open_world),
            ] {
                if let Some(hint) = hint {
                    annotations.insert(key.into(), json!(hint));
                }
            }
            if !annotations.is_empty() {
                tool["annotations"] = Value::Object(annotations);
            }
            tool
        }
        Tool::Workflow(w) => json!({
            "name": name,
            "title": name,
            "description": w.workflow.description(),
            "inputSchema": w
                .workflow
                .input_schema()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .unwrap_or(any_object),
            "_meta": { "dev.tta/kind": "workflow" },
        }),
    }
}

/// `tools/list`: one page of the tenant's tools, in name order.
pub(crate) fn list(
    app: &App,
    caller: &Caller,
    params: &Map<String, Value>,
    protocol: &Protocol,
) -> Result<Value, RpcError> {
    let after = match params.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => match cursor.strip_prefix(CURSOR_PREFIX) {
            Some(name) if name.len() <= 64 => Some(name.to_owned()),
            _ => {
                return Err(RpcError::invalid_params(
                    "invalid `cursor`; pass the `nextCursor` of the page before, unchanged",
                ));
            }
        },
        Some(_) => return Err(RpcError::invalid_params("`cursor` must be a string")),
    };
    let all = tools(app, &caller.tenant);
    let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let page_size = app.config.mcp.page_size;
    let mut page: Vec<Value> = Vec::new();
    let mut last = None;
    let mut more = false;
    for (name, tool) in all.range::<str, _>((from, Bound::Unbounded)) {
        if page.len() == page_size {
            more = true;
            break;
        }
        page.push(describe(name, tool));
        last = Some(name);
    }
    let mut result = json!({ "tools": page });
    if more && let Some(last) = last {
        result["nextCursor"] = json!(format!("{CURSOR_PREFIX}{last}"));
    }
    if protocol.modern {
        // Uploads and reloads change the list at any time, and it is this key's own.
        result["cacheScope"] = json!("private");
        result["ttlMs"] = json!(0);
    }
    Ok(result)
}

/// A `tools/call` admitted to run: its tenant's quota and a host slot are held until it
/// is dropped, and a `notifications/cancelled` with its id ends it.
pub(crate) struct Prepared {
    app: Arc<App>,
    tenant: Arc<Tenant>,
    tool: Tool,
    name: String,
    input: Vec<u8>,
    options: CallOptions,
    modern: bool,
    id: Value,
    /// The trace the call joins: for a problem met before any span exists.
    trace_id: u128,
    /// The client's `_meta.progressToken`, when it asked for progress.
    pub(crate) progress_token: Option<Value>,
    cancel: Cancel,
    _quota: Permit,
    _slot: OwnedSemaphorePermit,
}

/// The entry of a running call in the cancellation table, removed when the call ends.
struct Cancel {
    app: Arc<App>,
    key: (String, String),
    notify: Arc<Notify>,
}

impl Drop for Cancel {
    fn drop(&mut self) {
        let mut cancels = self.app.mcp.cancels();
        if cancels.get(&self.key).is_some_and(|n| Arc::ptr_eq(n, &self.notify)) {
            cancels.remove(&self.key);
        }
    }
}

/// Checks a `tools/call` and admits it: the tool, its arguments, the tenant's quota, a host
/// slot. Every refusal here costs no guest code.
pub(crate) fn prepare(
    app: &Arc<App>,
    caller: &Caller,
    id: &Value,
    params: &Map<String, Value>,
    protocol: &Protocol,
) -> Result<Prepared, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("`name` (the tool) is required and must be a string"))?;
    let input = match params.get("arguments") {
        None | Some(Value::Null) => b"{}".to_vec(),
        Some(arguments @ Value::Object(_)) => arguments.to_string().into_bytes(),
        Some(_) => return Err(RpcError::invalid_params("`arguments` must be an object")),
    };
    let tool = find(app, &caller.tenant, name)?;
    let tenant = Arc::clone(&caller.tenant);
    let refused = |problem: Problem| {
        app.mcp
            .metrics
            .tool_calls
            .with_label_values(&[name, "refused", &tenant_label(app, &tenant)])
            .inc();
        RpcError::refused(&problem.with_ids(&caller.ids.correlation_id, &format!("{:032x}", caller.ids.trace_id)))
    };
    // With a cluster the rate token is the shared state's, taken when the call runs.
    let quota = match (caller.held.take(), admission::shared(app)) {
        (Some(held), true) => Ok(held),
        (Some(held), false) => tenant.take_rate().map(|()| held),
        (None, true) => tenant.hold(),
        (None, false) => tenant.admit(),
    }
    .map_err(|refusal| refused(refusal_problem(app, &tenant, refusal)))?;
    let slot = slot(app, &tenant).map_err(refused)?;

    let meta = params.get("_meta").and_then(Value::as_object);
    let meta_text = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str);
    let mut options = caller.ids.options(&tenant);
    // The MCP convention carries the caller's trace context in `_meta`; it is the message's
    // own, so it wins over the HTTP request's headers.
    if let Some(traceparent) = meta_text("traceparent").filter(|t| parse_traceparent(t).is_ok()) {
        options.traceparent = Some(traceparent.to_owned());
        options.tracestate = meta_text("tracestate").filter(|t| t.len() <= 512).map(str::to_owned);
    }
    let trace_id = options
        .traceparent
        .as_deref()
        .and_then(|t| parse_traceparent(t).ok())
        .map_or(caller.ids.trace_id, |p| p.trace_id);
    let id_text = jsonrpc::id_text(id);
    options.attributes = vec![
        attr("mcp.method.name", "tools/call"),
        attr("mcp.protocol.version", &protocol.version),
        attr("jsonrpc.request.id", &id_text),
        attr("gen_ai.operation.name", "execute_tool"),
        attr("gen_ai.tool.name", name),
        attr("network.transport", caller.transport.label()),
    ];
    let notify = Arc::new(Notify::new());
    let key = (tenant.id.clone(), id_text);
    app.mcp.cancels().insert(key.clone(), Arc::clone(&notify));
    Ok(Prepared {
        app: Arc::clone(app),
        tenant,
        tool,
        name: name.to_owned(),
        input,
        options,
        modern: protocol.modern,
        id: id.clone(),
        trace_id,
        // A token is a string or an integer; anything else (which every notification would
        // echo) is taken as no request for progress.
        progress_token: meta
            .and_then(|m| m.get("progressToken"))
            .filter(|t| t.as_str().is_some_and(|s| s.len() <= 256) || t.is_i64() || t.is_u64())
            .cloned(),
        cancel: Cancel {
            app: Arc::clone(app),
            key,
            notify,
        },
        _quota: quota,
        _slot: slot,
    })
}

fn attr(key: &str, value: &str) -> (String, Attr) {
    (key.to_owned(), Attr::Str(value.to_owned()))
}

fn tenant_label(app: &App, tenant: &Tenant) -> String {
    app.host.telemetry().metrics().tenant_label(&tenant.id)
}

/// A finished call: the JSON-RPC response, and the run's span (none when it was cancelled).
pub(crate) struct Ran {
    pub(crate) response: Value,
    pub(crate) span: Option<SpanIds>,
}

impl Prepared {
    /// Whether the call has progress to report: a workflow, asked for it.
    pub(crate) fn streams(&self) -> bool {
        self.progress_token.is_some() && matches!(self.tool, Tool::Workflow(_))
    }

    /// Runs the call; with `progress`, a workflow sends a `notifications/progress` there as
    /// each step ends (dropped, never waited for, when the client reads slower).
    pub(crate) async fn run(self, progress: Option<mpsc::Sender<Value>>) -> Ran {
        let cancelled = Arc::clone(&self.cancel.notify);
        let (app, tenant, name, id) = (
            Arc::clone(&self.app),
            Arc::clone(&self.tenant),
            self.name.clone(),
            self.id.clone(),
        );
        tokio::select! {
            ran = self.execute(progress) => ran,
            () = cancelled.notified() => {
                app.mcp
                    .metrics
                    .tool_calls
                    .with_label_values(&[&name, "cancelled", &tenant_label(&app, &tenant)])
                    .inc();
                let error = RpcError::new(CANCELLED, StatusCode::OK, "the client cancelled the call");
                Ran { response: jsonrpc::error(&id, &error), span: None }
            }
        }
    }

    async fn execute(self, progress: Option<mpsc::Sender<Value>>) -> Ran {
        let app = &self.app;
        let _lease = match admission::admit(app, &self.tenant).await {
            Ok(lease) => lease,
            Err(problem) => {
                app.mcp
                    .metrics
                    .tool_calls
                    .with_label_values(&[&self.name, "refused", &tenant_label(app, &self.tenant)])
                    .inc();
                let problem = problem.with_ids(
                    &self.options.correlation_id.clone().unwrap_or_default(),
                    &format!("{:032x}", self.trace_id),
                );
                return Ran {
                    response: jsonrpc::error(&self.id, &RpcError::refused(&problem)),
                    span: None,
                };
            }
        };
        let checked = if self.tenant.validate_input {
            self.tool.check_input(&self.input)
        } else {
            Ok(())
        };
        let (result, span) = match (&self.tool, checked) {
            // A refused input is a tool error the model can correct, as MCP asks of input
            // validation; no guest ran, so there is no span.
            (_, Err(mismatch)) => (Err(Problem::input_mismatch(mismatch, &self.name)), None),
            (Tool::Primitive(primitive), Ok(())) => {
                let taken = app.recordings.session();
                let mut options = self.options.clone();
                options.recording = taken.as_ref().map(|t| Arc::clone(&t.session));
                let outcome = app.host.call_primitive(primitive, &self.input, options).await;
                let report = &outcome.report;
                if let Some(taken) = &taken {
                    let failed = outcome.output.is_err();
                    app.recordings
                        .keep(&self.tenant.id, taken, report.ids.trace_id, failed, None);
                }
                let result = outcome
                    .output
                    .map(|output| (output, report.stats.fuel_consumed))
                    .map_err(|e| Problem::from_call(&e).waiting(report.retry_after()));
                (result, Some(report.ids))
            }
            (Tool::Workflow(loaded), Ok(())) => {
                let token = self.progress_token.clone();
                let steps = AtomicU64::new(0);
                let on_step = |step: &str, ok: bool| {
                    let (Some(tx), Some(token)) = (&progress, &token) else {
                        return;
                    };
                    let n = steps.fetch_add(1, Ordering::Relaxed) + 1;
                    let message = format!("step `{step}` {}", if ok { "finished" } else { "failed" });
                    let _ = tx.try_send(json!({
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": { "progressToken": token, "progress": n, "message": message },
                    }));
                };
                let taken = app.recordings.session();
                let mut options = self.options.clone();
                options.recording = taken.as_ref().map(|t| Arc::clone(&t.session));
                let outcome = loaded.workflow.run_observed(&self.input, options, &on_step).await;
                if let Some(taken) = &taken {
                    let record = loaded.record(&self.input, &outcome.output, &self.tenant.config());
                    let failed = outcome.output.is_err();
                    app.recordings.keep(
                        &self.tenant.id,
                        taken,
                        outcome.report.ids.trace_id,
                        failed,
                        Some(record),
                    );
                }
                let fuel = outcome.report.calls.iter().map(|c| c.stats.fuel_consumed).sum();
                let limit = self.tenant.max_response_bytes;
                let result = match outcome.output {
                    Ok(output) if output.len() > limit => Err(Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "payload_too_large",
                        format!(
                            "the workflow's output is {} bytes, over this tenant's limit of {limit}",
                            output.len()
                        ),
                    )),
                    Ok(output) => Ok((output, fuel)),
                    Err(error) => Err(Problem::from_step(&error)),
                };
                (result, Some(outcome.report.ids))
            }
        };
        let correlation_id = self.options.correlation_id.clone().unwrap_or_default();
        let trace_id = format!("{:032x}", span.map_or(self.trace_id, |s| s.trace_id));
        let outcome = if result.is_ok() { "success" } else { "tool_error" };
        app.mcp
            .metrics
            .tool_calls
            .with_label_values(&[&self.name, outcome, &tenant_label(app, &self.tenant)])
            .inc();
        let mut fuel_consumed = None;
        let mut body = match result {
            Ok((output, fuel)) => {
                fuel_consumed = Some(fuel);
                success(output)
            }
            Err(problem) => {
                let problem = problem.with_ids(&correlation_id, &trace_id);
                json!({
                    "content": [{ "type": "text", "text": format!("{}: {}", problem.kind, problem.detail) }],
                    "structuredContent": problem.body(),
                    "isError": true,
                })
            }
        };
        body["_meta"] = json!({
            "dev.tta/correlation_id": correlation_id,
            "dev.tta/trace_id": trace_id,
        });
        if let Some(span) = &span {
            body["_meta"]["dev.tta/traceparent"] = json!(span.traceparent());
        }
        if let Some(fuel) = fuel_consumed {
            body["_meta"]["dev.tta/fuel_consumed"] = json!(fuel);
        }
        if self.modern {
            body["resultType"] = json!("complete");
        }
        Ran {
            response: jsonrpc::result(&self.id, body),
            span,
        }
    }
}

/// A call's output as a tool result: its text, and its JSON when it is an object (the
/// shape `structuredContent` has); bytes that are not text as a blob.
fn success(output: Vec<u8>) -> Value {
    match String::from_utf8(output) {
        Ok(text) => {
            let structured = serde_json::from_str::<Value>(&text).ok().filter(Value::is_object);
            let mut body = json!({ "content": [{ "type": "text", "text": text }], "isError": false });
            if let Some(structured) = structured {
                body["structuredContent"] = structured;
            }
            body
        }
        Err(e) => {
            use base64::Engine as _;
            let blob = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
            json!({
                "content": [{
                    "type": "resource",
                    "resource": { "uri": "tta:output", "mimeType": "application/octet-stream", "blob": blob },
                }],
                "isError": false,
            })
        }
    }
}
