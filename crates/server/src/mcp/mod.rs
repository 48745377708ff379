//! The Model Context Protocol server: a tenant's primitives and workflows as an agent's tools.
//!
//! An agent reaches tools through MCP; behind each tool call here is the same call `/v1`
//! makes — the tenant's key, quotas, limits, sandbox, spans and metrics — so an operator
//! can give agents sandboxed, metered tools with nothing new to trust. The server speaks
//! the latest revision the official SDKs speak (2026-07-28: each request carries its
//! protocol version and client capabilities in `_meta`, discovered with `server/discover`,
//! no session) and the handshake revisions before it (`initialize`; 2025-11-25 and older).
//! It keeps no session in either: each message is answered on its own, so nothing a client
//! opens outlives its request. Over HTTP (`/mcp`, [`http`]) a tenant is its bearer key;
//! over stdio (`tta-host mcp`, [`stdio`]) the one local tenant.
//!
//! A guest's error, a limit or a trap is a tool result with `isError` and the problem
//! `type` (the model can read it and correct itself); a refusal before anything ran (a bad
//! key, a quota, a full host) is a JSON-RPC error with the status `/v1` would answer.

pub mod http;
pub mod jsonrpc;
mod metrics;
pub mod stdio;
mod tools;

use super::App;
use super::request::RequestIds;
use axum::http::{HeaderMap, StatusCode};
use jsonrpc::{HEADER_MISMATCH, Message, RpcError, UNSUPPORTED_PROTOCOL_VERSION};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tta_runtime::host::Host;
use tta_runtime::tenant::{Permit, Tenant};

pub(crate) use tools::Prepared;

/// The revisions served with the per-request envelope, newest first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// The revisions reached through `initialize`, newest first: the first is offered to a
/// client asking for one not in the list.
pub const HANDSHAKE_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// The revision of a handshake-era HTTP request without `MCP-Protocol-Version` (the
/// transport's rule for clients older than the header).
const HEADERLESS_VERSION: &str = "2025-03-26";

const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// What the MCP server keeps across messages: its instruments, and the calls running now
/// that a client may cancel by id (at most one per in-flight slot).
pub(crate) struct Shared {
    metrics: Arc<metrics::McpMetrics>,
    cancels: Mutex<HashMap<(String, String), Arc<Notify>>>,
}

impl Shared {
    pub(crate) fn new(host: &Host) -> Self {
        Shared {
            metrics: host.telemetry().metrics().instruments::<metrics::McpMetrics>(),
            cancels: Mutex::default(),
        }
    }

    fn cancels(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Notify>>> {
        self.cancels.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cancels the tenant's running request `id`, if there is one.
    fn cancel(&self, tenant: &str, id: &str) {
        if let Some(notify) = self.cancels().get(&(tenant.to_owned(), id.to_owned())) {
            notify.notify_one();
        }
    }
}

/// How a client reached the server, as `network.transport` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Streamable HTTP at `/mcp`.
    Http,
    /// Newline-delimited JSON-RPC on stdin and stdout.
    Stdio,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Http => "tcp",
            Transport::Stdio => "pipe",
        }
    }
}

/// The protocol one message speaks.
#[derive(Debug, Clone)]
pub(crate) struct Protocol {
    /// The revision.
    pub(crate) version: String,
    /// Whether it is a per-request-envelope revision (results carry `resultType`).
    pub(crate) modern: bool,
}

/// Who sent a message: the authenticated tenant, its request's ids, its transport, and the
/// tenant's slot its message was read under (HTTP), which a `tools/call` keeps.
pub(crate) struct Caller {
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) ids: RequestIds,
    pub(crate) transport: Transport,
    pub(crate) held: std::cell::Cell<Option<Permit>>,
}

/// What to answer to one message.
pub(crate) enum Answer {
    /// A JSON-RPC response: a result, or an error with its HTTP status.
    Reply(Value, Result<(), RpcError>),
    /// An admitted `tools/call`, holding its tenant's quota and a host slot; the transport
    /// runs it, streaming its progress or not.
    Call(Box<Prepared>),
    /// A notification or a client's response: nothing to answer.
    Accepted,
}

/// Handles one message. `headers` are the HTTP request's (a 2026-07-28 request's must
/// agree with its body); `session` is the revision a stdio client's `initialize` agreed on.
pub(crate) fn handle(
    app: &Arc<App>,
    caller: &Caller,
    message: Message,
    headers: Option<&HeaderMap>,
    session: Option<&str>,
) -> Answer {
    let (id, method, params) = match message {
        Message::Request { id, method, params } => (id, method, params),
        Message::Notification { method, params } => {
            notification(app, caller, &method, &params);
            return Answer::Accepted;
        }
        Message::Response => return Answer::Accepted,
    };
    app.mcp
        .metrics
        .requests
        .with_label_values(&[
            metrics::method_label(&method),
            &app.host.telemetry().metrics().tenant_label(&caller.tenant.id),
        ])
        .inc();
    let reply = |result: Result<Value, RpcError>, protocol: Option<&Protocol>| match result {
        Ok(mut result) => {
            if protocol.is_some_and(|p| p.modern)
                && let Some(object) = result.as_object_mut()
            {
                object.insert("resultType".into(), json!("complete"));
            }
            Answer::Reply(jsonrpc::result(&id, result), Ok(()))
        }
        Err(error) => Answer::Reply(jsonrpc::error(&id, &error), Err(error)),
    };
    let protocol = match protocol(&method, &params, headers, session) {
        Ok(protocol) => protocol,
        Err(error) => return reply(Err(error), None),
    };
    let result = match method.as_str() {
        "initialize" if !protocol.modern => Ok(initialize(&params)),
        "initialize" => Err(RpcError::method_not_found(&method).with_data(json!({
            "hint": "2026-07-28 has no initialize; send server/discover, or every request with its _meta envelope"
        }))),
        "server/discover" => Ok(discover()),
        "ping" => Ok(json!({})),
        "tools/list" => tools::list(app, caller, &params, &protocol),
        "tools/call" => match tools::prepare(app, caller, &id, &params, &protocol) {
            Ok(prepared) => return Answer::Call(Box::new(prepared)),
            Err(error) => Err(error),
        },
        _ => Err(RpcError::method_not_found(&method)),
    };
    reply(result, Some(&protocol))
}

fn notification(app: &App, caller: &Caller, method: &str, params: &Map<String, Value>) {
    if method == "notifications/cancelled"
        && let Some(id) = params.get("requestId")
    {
        app.mcp.cancel(&caller.tenant.id, &jsonrpc::id_text(id));
    }
}

/// The revision a request speaks: its `_meta` envelope's (2026-07-28, checked against the
/// HTTP headers), or a handshake revision (the `MCP-Protocol-Version` header, the stdio
/// session's, or what `initialize` asks for).
fn protocol(
    method: &str,
    params: &Map<String, Value>,
    headers: Option<&HeaderMap>,
    session: Option<&str>,
) -> Result<Protocol, RpcError> {
    let header = |name: &str| headers.and_then(|h| h.get(name)).and_then(|v| v.to_str().ok());
    let meta = params.get("_meta").and_then(Value::as_object);
    let Some(requested) = meta.and_then(|m| m.get(PROTOCOL_VERSION_META)) else {
        let version = match (headers, header("mcp-protocol-version")) {
            (_, Some(v)) if HANDSHAKE_VERSIONS.contains(&v) => v.to_owned(),
            (_, Some(v)) => {
                return Err(RpcError::new(
                    jsonrpc::INVALID_REQUEST,
                    StatusCode::BAD_REQUEST,
                    format!(
                        "MCP-Protocol-Version `{}` is not served; this server speaks {} (and {} with the _meta envelope)",
                        tta_core::text::bounded(v, 32),
                        HANDSHAKE_VERSIONS.join(", "),
                        MODERN_VERSIONS.join(", ")
                    ),
                ));
            }
            (Some(_), None) => HEADERLESS_VERSION.to_owned(),
            (None, None) => session.unwrap_or(HANDSHAKE_VERSIONS[0]).to_owned(),
        };
        if method == "server/discover" {
            return Ok(Protocol {
                version: MODERN_VERSIONS[0].to_owned(),
                modern: true,
            });
        }
        return Ok(Protocol { version, modern: false });
    };
    if !meta.is_some_and(|m| m.contains_key(CLIENT_CAPABILITIES_META)) {
        return Err(RpcError::invalid_params(format!(
            "params._meta is missing the required envelope key {CLIENT_CAPABILITIES_META}"
        )));
    }
    if headers.is_some() {
        let mismatch = |what: &str| {
            RpcError::new(
                HEADER_MISMATCH,
                StatusCode::BAD_REQUEST,
                format!("the {what} header does not match the request body"),
            )
        };
        if header("mcp-protocol-version").map(Value::from).as_ref() != Some(requested) {
            return Err(mismatch("MCP-Protocol-Version"));
        }
        if header("mcp-method") != Some(method) {
            return Err(mismatch("Mcp-Method"));
        }
        if method == "tools/call"
            && let Some(name) = params.get("name").and_then(Value::as_str)
            && header("mcp-name").is_some_and(|v| decode_header(v).as_deref() != Some(name))
        {
            return Err(mismatch("Mcp-Name"));
        }
    }
    let Some(version) = requested.as_str() else {
        return Err(RpcError::invalid_params(
            "the protocol-version envelope value must be a string",
        ));
    };
    if !MODERN_VERSIONS.contains(&version) {
        return Err(RpcError::new(
            UNSUPPORTED_PROTOCOL_VERSION,
            StatusCode::BAD_REQUEST,
            "Unsupported protocol version",
        )
        .with_data(json!({ "supported": MODERN_VERSIONS, "requested": version })));
    }
    Ok(Protocol {
        version: version.to_owned(),
        modern: true,
    })
}

/// A header value as the 2026-07-28 transport writes one: as is, or `=?base64?…?=` for
/// values that are not plain visible ASCII.
fn decode_header(value: &str) -> Option<String> {
    use base64::Engine as _;
    match value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?=")) {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

fn server_info() -> Value {
    json!({ "name": "tta-host", "title": "tta-host", "version": env!("CARGO_PKG_VERSION") })
}

const INSTRUCTIONS: &str = "Each tool is a sandboxed WebAssembly primitive or a workflow of them, run with this key's \
quotas and limits. Arguments are the tool's JSON input; the result's structuredContent is its JSON output. A failed \
call is a result with isError, whose structuredContent.type says why (invalid_input, fuel_exhausted, \
deadline_exceeded, unavailable, ...) and whether retrying may help.";

fn capabilities() -> Value {
    json!({ "tools": { "listChanged": false } })
}

/// `initialize`: the client's revision when it is one of ours, else our newest.
fn initialize(params: &Map<String, Value>) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .filter(|v| HANDSHAKE_VERSIONS.contains(v))
        .unwrap_or(HANDSHAKE_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

/// `server/discover`: the same for every client, so shared caches may keep it.
fn discover() -> Value {
    let supported: Vec<&str> = MODERN_VERSIONS.iter().chain(HANDSHAKE_VERSIONS).copied().collect();
    json!({
        "supportedVersions": supported,
        "capabilities": capabilities(),
        "instructions": INSTRUCTIONS,
        "cacheScope": "public",
        "ttlMs": 60_000,
        "_meta": { SERVER_INFO_META: server_info() },
    })
}
