//! Who may read `/metrics`. The exposition names every tenant and every primitive a tenant
//! uploaded, so an operator whose metrics port is reachable by others sets a scrape
//! credential: a bearer token stored as its SHA-256, as tenants' API keys are, which
//! Prometheus sends with its `authorization` scrape setting. Without one the endpoint is
//! open, as Prometheus exporters are on a private network.

use crate::config::telemetry::MetricsConfig;
use crate::credentials::{self, KeyHash};
use crate::telemetry::Metrics;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The scrape credentials of a host: none (open) or the SHA-256 of each accepted token.
#[derive(Debug, Clone, Default)]
pub struct ScrapeAuth {
    hashes: Vec<KeyHash>,
}

impl ScrapeAuth {
    /// The credentials `telemetry.metrics.bearer_sha256` lists (validated by the config).
    pub fn new(config: &MetricsConfig) -> Self {
        let hashes = config
            .bearer_sha256
            .iter()
            .filter_map(|h| credentials::parse_hash(h))
            .collect();
        ScrapeAuth { hashes }
    }

    /// Whether a scrape with these headers may read the metrics: always when no credential
    /// is set, otherwise only with exactly one `Authorization: Bearer <token>` whose hash is
    /// listed (compared in constant time with every listed hash).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if self.hashes.is_empty() {
            return true;
        }
        credentials::bearer(headers).is_ok_and(|token| credentials::matches(&self.hashes, &credentials::hash(token)))
    }

    /// The answer to a scrape: the exposition, or 401 without a valid credential.
    pub fn respond(&self, metrics: &Metrics, headers: &HeaderMap) -> Response {
        if !self.allows(headers) {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "401 unauthorized: /metrics needs `Authorization: Bearer <token>` (telemetry.metrics.bearer_sha256)\n",
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            metrics.render(),
        )
            .into_response()
    }
}
