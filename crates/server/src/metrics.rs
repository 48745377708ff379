//! The server's instruments: requests by route, what was refused before any work, and the
//! reloads of its directories.

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};
use tta_telemetry::buckets::DURATION_BUCKETS;
use tta_telemetry::instruments::OVERFLOW;
use tta_telemetry::instruments::{Instruments, counter, gauge, histogram};

/// Every metric of `serve`; `tenant` is the bounded tenant label, `anonymous` before authentication.
pub struct ServerMetrics {
    /// `http_server_requests_total{route,method,status,tenant}`.
    pub http_requests: IntCounterVec,
    /// `http_server_request_duration_seconds{route,method,tenant}`.
    pub http_duration: HistogramVec,
    /// `http_server_active_requests`.
    pub http_active: IntGaugeVec,
    /// `http_server_rejected_total{reason,tenant}`: refused before any work (auth, quota, overload).
    pub http_rejected: IntCounterVec,
    /// `plugin_reloads_total{kind,result}`: hot reloads and uploads of primitives and
    /// workflows, and pulls of OCI references.
    pub plugin_reloads: IntCounterVec,
    /// `reload_verifications_total{kind,result}`: new versions replayed on recorded calls
    /// before a swap (`reload.verify = "replay"`): identical, different, no_recordings.
    pub reload_verifications: IntCounterVec,
}

impl Instruments for ServerMetrics {
    fn register(r: &Registry) -> Self {
        ServerMetrics {
            http_requests: counter(
                r,
                "http_server_requests_total",
                "HTTP API requests by route template, method, status code and tenant (`anonymous` before authentication).",
                &["route", "method", "status", "tenant"],
            ),
            http_duration: histogram(
                r,
                "http_server_request_duration_seconds",
                "Wall time of HTTP API requests, body read and response included.",
                &["route", "method", "tenant"],
                DURATION_BUCKETS,
            ),
            http_active: gauge(
                r,
                "http_server_active_requests",
                "HTTP API requests being served now.",
                &[],
            ),
            http_rejected: counter(
                r,
                "http_server_rejected_total",
                "HTTP API requests refused before any work: unauthorized, rate_limited, upload_rate_limited, concurrency_limited, overloaded, payload_too_large, too_many_connections (a connection refused whole).",
                &["reason", "tenant"],
            ),
            plugin_reloads: counter(
                r,
                "plugin_reloads_total",
                "Primitives and workflows (re)loaded from their directories or uploaded, and OCI references pulled (kind=oci), by result.",
                &["kind", "result"],
            ),
            reload_verifications: counter(
                r,
                "reload_verifications_total",
                "New versions of primitives replayed on their recent recorded calls before a swap (reload.verify = \"replay\"), by kind (upload: a tenant's; reload: the plugin directory's) and result: identical, different, no_recordings.",
                &["kind", "result"],
            ),
        }
    }
}

impl ServerMetrics {
    /// The label of an HTTP method: the standard ones as they are, anything else `other`.
    pub fn method_label(method: &axum::http::Method) -> &'static str {
        use axum::http::Method;
        const STANDARD: [(Method, &str); 9] = [
            (Method::GET, "GET"),
            (Method::HEAD, "HEAD"),
            (Method::POST, "POST"),
            (Method::PUT, "PUT"),
            (Method::DELETE, "DELETE"),
            (Method::CONNECT, "CONNECT"),
            (Method::OPTIONS, "OPTIONS"),
            (Method::TRACE, "TRACE"),
            (Method::PATCH, "PATCH"),
        ];
        STANDARD
            .iter()
            .find(|(m, _)| m == method)
            .map_or(OVERFLOW, |(_, label)| label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        use axum::http::Method;
        assert_eq!(ServerMetrics::method_label(&Method::GET), "GET");
        assert_eq!(ServerMetrics::method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"M1X").expect("a token");
        assert_eq!(ServerMetrics::method_label(&made_up), OVERFLOW);
    }
}
