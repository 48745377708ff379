//! Who may read `/metrics`. The exposition names every tenant and every primitive a tenant
//! uploaded, so an operator whose metrics port is reachable by others sets a scrape
//! credential: a bearer token stored as its SHA-256, as tenants' API keys are, which
//! Prometheus sends with its `authorization` scrape setting. Without one the endpoint is
//! open, as Prometheus exporters are on a private network.

use crate::metrics::Metrics;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tta_core::config::telemetry::MetricsConfig;
use tta_core::credentials::{self, KeyHash};

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

/// Connections the metrics endpoint serves at once; more get 503 and are closed. A Prometheus
/// holds one per target, so this only binds a peer that opens and stalls connections,
/// which would otherwise take the host's file descriptors (and with them the API's).
pub const MAX_SCRAPE_CONNECTIONS: usize = 64;

/// How long a scraper may take to send its request headers.
pub const SCRAPE_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn serve(listener: std::net::TcpListener, metrics: Arc<Metrics>, auth: ScrapeAuth) {
    use axum::routing::get;
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        tracing::warn!("metrics endpoint is off: cannot hand its socket to the runtime");
        return;
    };
    let app = axum::Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let (metrics, auth) = (Arc::clone(&metrics), auth.clone());
            async move { auth.respond(&metrics, &headers) }
        }),
    );
    let slots = tta_core::listener::ConnectionSlots::new(MAX_SCRAPE_CONNECTIONS, "the metrics endpoint");
    loop {
        let stream = tta_core::listener::accept(&listener, "the metrics endpoint").await;
        let Some(slot) = slots.admit(&stream) else {
            continue;
        };
        let connection = tta_core::listener::connection(app.clone(), stream, SCRAPE_HEADER_TIMEOUT);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
}
