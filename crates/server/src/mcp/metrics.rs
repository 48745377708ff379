//! The MCP endpoint's instruments: requests by method, tool calls by tool and outcome.
//! Methods come from a closed set; tools are primitives (the operator's files, a tenant's
//! bounded uploads, forgotten with the upload) and the operator's workflows.

use prometheus::{IntCounterVec, Registry};
use tta_telemetry::instruments::{Instruments, OVERFLOW, counter, remove_matching};

/// Every metric of the MCP server; `tenant` is the bounded tenant label.
pub(crate) struct McpMetrics {
    /// `mcp_server_requests_total{method,tenant}`.
    pub(crate) requests: IntCounterVec,
    /// `mcp_tool_calls_total{tool,outcome,tenant}`.
    pub(crate) tool_calls: IntCounterVec,
}

impl Instruments for McpMetrics {
    fn register(r: &Registry) -> Self {
        McpMetrics {
            requests: counter(
                r,
                "mcp_server_requests_total",
                "MCP requests by method (initialize, server/discover, ping, tools/list, tools/call, or other) and tenant.",
                &["method", "tenant"],
            ),
            tool_calls: counter(
                r,
                "mcp_tool_calls_total",
                "MCP tool calls by tool, outcome (success, tool_error: the call failed and said why in the result, refused: a quota or a full host, cancelled) and tenant.",
                &["tool", "outcome", "tenant"],
            ),
        }
    }

    fn forget(&self, labels: &[(&str, &str)]) {
        let renamed: Vec<(&str, &str)> = labels
            .iter()
            .map(|&(k, v)| (if k == "primitive_name" { "tool" } else { k }, v))
            .collect();
        remove_matching(&self.tool_calls, &renamed);
    }
}

/// The label of a method: the ones this server serves, anything else `other`.
pub(crate) fn method_label(method: &str) -> &'static str {
    const SERVED: [&str; 5] = ["initialize", "server/discover", "ping", "tools/list", "tools/call"];
    SERVED.iter().find(|m| **m == method).copied().unwrap_or(OVERFLOW)
}
