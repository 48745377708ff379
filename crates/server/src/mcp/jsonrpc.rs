//! JSON-RPC 2.0 as MCP uses it: one message per HTTP request or stdio line (batches left
//! the protocol in 2025-06-18), ids that are strings or integers, params that are objects.
//! Everything a client sends is checked here before any method sees it.

use super::super::problem::Problem;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method is not served.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The params are wrong (an unknown tool, a bad cursor).
pub const INVALID_PARAMS: i64 = -32602;
/// The HTTP headers disagree with the message (2026-07-28).
pub const HEADER_MISMATCH: i64 = -32020;
/// The requested protocol version is not served (2026-07-28).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// The host refused the request before running anything: `data` is the problem document
/// (`type` `unauthorized`, `rate_limited`, `concurrency_limited`, `overloaded`,
/// `payload_too_large`, `request_timeout`), as `/v1` would have answered it.
pub const REFUSED: i64 = -32050;
/// The client cancelled the request (`notifications/cancelled`).
pub const CANCELLED: i64 = -32800;

/// The longest request id kept (a string id; integers are always short).
const MAX_ID: usize = 256;
/// The longest method name looked at.
const MAX_METHOD: usize = 128;

/// One message from a client.
#[derive(Debug)]
pub enum Message {
    /// A request: answered with a result or an error.
    Request {
        /// Its id, a string or an integer.
        id: Value,
        /// The method.
        method: String,
        /// Its params (an empty object when it sent none).
        params: Map<String, Value>,
    },
    /// A notification: never answered.
    Notification {
        /// The method.
        method: String,
        /// Its params.
        params: Map<String, Value>,
    },
    /// A response to a request of ours; this server sends none, so it is dropped.
    Response,
}

/// A JSON-RPC error, with the HTTP status it goes out with on the Streamable HTTP transport.
#[derive(Debug, Clone)]
pub struct RpcError {
    /// The JSON-RPC code.
    pub code: i64,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Structured detail.
    pub data: Option<Value>,
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// For a refusal: when to try again (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl RpcError {
    /// An error of `code`, answered with `status`.
    pub fn new(code: i64, status: StatusCode, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
            status,
            retry_after: None,
        }
    }

    /// A malformed message (400).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        RpcError::new(INVALID_REQUEST, StatusCode::BAD_REQUEST, message)
    }

    /// Wrong params (400 on the modern transport, as the official SDKs answer them).
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(INVALID_PARAMS, StatusCode::BAD_REQUEST, message)
    }

    /// A method this server does not serve (404).
    pub fn method_not_found(method: &str) -> Self {
        RpcError::new(
            METHOD_NOT_FOUND,
            StatusCode::NOT_FOUND,
            format!(
                "method `{}` is not served; this server offers tools: tools/list, tools/call (and initialize, server/discover, ping)",
                tta_core::text::bounded(method, 64)
            ),
        )
    }

    /// The refusal `problem` (its ids set) as a JSON-RPC error with its HTTP status.
    pub fn refused(problem: &Problem) -> Self {
        RpcError {
            code: REFUSED,
            message: format!("{}: {}", problem.kind, problem.detail),
            data: Some(problem.body()),
            status: problem.status,
            retry_after: problem.retry_after,
        }
    }

    /// With structured detail.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// Parses one message, checking what every method relies on.
pub fn parse(bytes: &[u8]) -> Result<Message, RpcError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        RpcError::new(
            PARSE_ERROR,
            StatusCode::BAD_REQUEST,
            format!("the message is not JSON ({e}); send one JSON-RPC 2.0 object"),
        )
    })?;
    let mut object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return Err(RpcError::invalid_request(
                "JSON-RPC batches are not part of MCP (removed in 2025-06-18); send one message per request",
            ));
        }
        _ => return Err(RpcError::invalid_request("a JSON-RPC message is a JSON object")),
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::invalid_request("`jsonrpc` must be \"2.0\""));
    }
    let Some(method) = object.remove("method") else {
        if object.contains_key("result") || object.contains_key("error") {
            return Ok(Message::Response);
        }
        return Err(RpcError::invalid_request("the message has no `method`"));
    };
    let Value::String(method) = method else {
        return Err(RpcError::invalid_request("`method` must be a string"));
    };
    if method.len() > MAX_METHOD {
        return Err(RpcError::invalid_request(format!(
            "`method` is {} bytes, over {MAX_METHOD}",
            method.len()
        )));
    }
    let params = match object.remove("params") {
        None => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => return Err(RpcError::invalid_request("`params` must be an object")),
    };
    match object.remove("id") {
        None => Ok(Message::Notification { method, params }),
        Some(id) => {
            check_id(&id)?;
            Ok(Message::Request { id, method, params })
        }
    }
}

fn check_id(id: &Value) -> Result<(), RpcError> {
    match id {
        Value::String(s) if s.len() <= MAX_ID => Ok(()),
        Value::String(_) => Err(RpcError::invalid_request(format!(
            "the request `id` is longer than {MAX_ID} bytes"
        ))),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
        _ => Err(RpcError::invalid_request(
            "the request `id` must be a string or an integer (MCP allows no null id)",
        )),
    }
}

/// A request's id as text, for span attributes and the cancellation table.
pub fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The response carrying `result`.
pub fn result(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// The response carrying `error` (`id` null when the request's could not be read).
pub fn error(id: &Value, error: &RpcError) -> Value {
    let mut body = json!({ "code": error.code, "message": error.message });
    if let Some(data) = &error.data {
        body["data"] = data.clone();
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_null_ids_and_non_object_params_are_refused_by_type() {
        let code = |text: &str| parse(text.as_bytes()).err().map(|e| e.code);
        assert_eq!(code("{"), Some(PARSE_ERROR));
        assert_eq!(
            code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            Some(INVALID_REQUEST)
        );
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Message::Notification { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#),
            Ok(Message::Request { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            Ok(Message::Response)
        ));
    }
}
