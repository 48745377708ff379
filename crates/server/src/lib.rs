//! `tta-host serve`: the HTTP API that runs tenants' primitives and workflows.
//!
//! One listener (hyper HTTP/1 with a header-read timeout and a cap on open connections,
//! so slow clients cannot hold workers or descriptors: `listener`), an axum router
//! ([`api`]), the directories watched for plugins and workflows ([`reload`]), and graceful
//! shutdown: stop accepting, let in-flight requests finish within a bound, flush telemetry.
//! Nothing queues without bound: a tenant over its quota gets 429, a host out of capacity
//! gets 503.

mod admission;
pub mod api;
pub mod mcp;
pub mod metrics;
pub mod problem;
mod pulls;
mod recordings;
pub mod reload;
pub mod request;
mod traces;
mod ui;
pub mod uploads;
mod verify;

use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tta_core::config::ServerConfig;
use tta_core::listener;
use tta_runtime::host::Host;
use tta_runtime::tenant::Tenants;
use tta_workflow::Workflow;

/// A workflow the server can run, with what `GET /v1/workflows` shows of it.
pub struct LoadedWorkflow {
    /// The compiled workflow.
    pub workflow: Arc<Workflow>,
    /// Its file.
    pub path: PathBuf,
}

impl LoadedWorkflow {
    /// What a recording of a run on `input` that ended in `output` keeps of the run itself,
    /// scrubbed of the tenant's secrets.
    pub(crate) fn record(
        &self,
        input: &[u8],
        output: &Result<Vec<u8>, tta_core::error::StepError>,
        config: &tta_core::guest_config::GuestConfig,
    ) -> tta_core::recording::WorkflowRecord {
        use tta_core::recording::{Outcome, Payload, WorkflowRecord};
        let mut record = WorkflowRecord {
            name: self.workflow.name().to_owned(),
            source: self.workflow.source().to_owned(),
            input: Payload(input.to_vec()),
            outcome: match output {
                Ok(output) => Outcome::Ok(Payload(output.clone())),
                Err(e) => Outcome::Err {
                    error_type: e.error_type().to_owned(),
                    message: e.to_string(),
                },
            },
        };
        record.scrub(config.redactor());
        record
    }
}

/// Everything the handlers share.
pub struct App {
    pub(crate) host: Host,
    pub(crate) tenants: Tenants,
    pub(crate) config: ServerConfig,
    pub(crate) workflows: ArcSwap<BTreeMap<String, Arc<LoadedWorkflow>>>,
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) max_in_flight: u32,
    pub(crate) compile: Arc<Semaphore>,
    /// Bytes of request bodies held in memory now (inputs; uploads go to disk).
    pub(crate) buffered: Arc<AtomicUsize>,
    /// The server's own instruments.
    pub(crate) metrics: Arc<metrics::ServerMetrics>,
    /// Who may read `/metrics` on the API listener.
    pub(crate) scrape: tta_telemetry::scrape::ScrapeAuth,
    pub(crate) ready: AtomicBool,
    pub(crate) reloader: tokio::sync::Mutex<reload::Watcher>,
    /// The OCI references of `server.plugins`, when there are any.
    pub(crate) pulls: Option<tokio::sync::Mutex<pulls::Pulls>>,
    /// The MCP endpoint's instruments and the calls a client may cancel.
    pub(crate) mcp: mcp::Shared,
    /// The state shared with the other replicas (`[cluster]`), when there is one.
    pub(crate) cluster: Option<Arc<tta_cluster::Cluster>>,
    /// The calls recorded for replay (`[recording]`).
    pub(crate) recordings: Arc<recordings::Recordings>,
}

impl App {
    /// The shared state of a server for `tenants`, with the directories and uploads loaded
    /// (every file that fails reported): what the HTTP listener and the stdio MCP server serve.
    pub(crate) async fn start(
        host: Host,
        tenants: &[tta_core::config::TenantConfig],
        cluster: Option<Arc<tta_cluster::Cluster>>,
    ) -> Arc<App> {
        let config = host.config().server.clone();
        let max_in_flight = config.max_in_flight.unwrap_or(host.config().max_instances);
        let tenants = Tenants::new(
            tenants,
            &host.config().limits,
            &config.default_quotas,
            fair_share(max_in_flight),
        );
        // Each entry of `server.plugins` is read once, for the reload scan and the pulls;
        // `serve` refused a config with a bad one, so here one is only logged.
        let sources: Vec<tta_catalog::sources::Source> = config
            .plugins
            .iter()
            .filter_map(|entry| {
                tta_catalog::sources::Source::parse(entry)
                    .map_err(|e| tracing::error!("{e}"))
                    .ok()
            })
            .collect();
        let app = Arc::new(App {
            buffered: Arc::default(),
            scrape: tta_telemetry::scrape::ScrapeAuth::new(&host.config().telemetry.metrics),
            metrics: host.telemetry().metrics().instruments::<metrics::ServerMetrics>(),
            mcp: mcp::Shared::new(&host),
            recordings: Arc::new(recordings::Recordings::open(
                &host.config().recording,
                host.config().cache_dir.as_deref(),
                host.telemetry().metrics(),
            )),
            cluster,
            tenants,
            in_flight: Arc::new(Semaphore::new(max_in_flight as usize)),
            max_in_flight,
            compile: Arc::new(Semaphore::new(config.compile_workers as usize)),
            workflows: ArcSwap::default(),
            ready: AtomicBool::new(false),
            pulls: pulls::Pulls::new(host.config(), &sources).map(tokio::sync::Mutex::new),
            reloader: tokio::sync::Mutex::new(reload::Watcher::new(host.config(), sources)),
            config,
            host,
        });
        if let Some(pulls) = &app.pulls {
            pulls.lock().await.poll(&app).await;
        }
        app.reloader.lock().await.scan(&app, true).await;
        app.ready.store(true, Ordering::Release);
        app
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener could not be bound.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    /// The cluster's shared state could not be set up.
    #[error(transparent)]
    Cluster(#[from] tta_cluster::ClusterError),
}

/// A running server.
pub struct Server {
    app: Arc<App>,
    listener: tokio::net::TcpListener,
}

impl Server {
    /// Binds the listener and loads the directories and uploads (reporting every file that
    /// fails); call [`Server::run`] to serve.
    pub async fn bind(host: Host) -> Result<Self, StartError> {
        // The cluster's series exist only on a host that has one (an alert watches them).
        let cluster = match &host.config().cluster {
            config if config.redis_url.is_some() => tta_cluster::Cluster::start(
                config,
                host.telemetry()
                    .metrics()
                    .instruments::<tta_cluster::metrics::ClusterMetrics>(),
            )?,
            _ => None,
        };
        if let Some(cluster) = &cluster {
            // Only `serve` sets it, once per host.
            let _ = host.set_shared_store(Arc::new(tta_cluster::RedisStore(Arc::clone(cluster))));
        }
        let listener = tokio::net::TcpListener::bind(host.config().server.listen).await?;
        let tenants = &host.config().tenants;
        let app = App::start(host.clone(), tenants, cluster).await;
        Ok(Server { app, listener })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Bytes of request bodies the server holds in memory now: at most `max_in_flight` ×
    /// the largest `max_request_bytes` (uploads stream to disk).
    pub fn buffered_bytes(&self) -> usize {
        self.app.buffered.load(Ordering::Acquire)
    }

    /// The tenants the server authenticates, with their effective quotas.
    pub fn tenants(&self) -> &Tenants {
        &self.app.tenants
    }

    /// Serves one connection over any byte stream, as [`Server::run`] serves each accepted
    /// socket: the fuzzer feeds the API raw requests through an in-memory pipe this way.
    pub fn serve_io<I>(&self, io: I) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let router = api::router(Arc::clone(&self.app));
        let connection = listener::connection(router, io, Duration::from_millis(self.app.config.header_timeout_ms));
        async move {
            let _ = connection.await;
        }
    }

    /// Serves until `shutdown` completes, then drains: in-flight requests get
    /// `server.shutdown_grace_ms` to finish. Returns whether they all did.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> bool {
        let Server { app, listener } = self;
        let router = api::router(Arc::clone(&app));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let header_timeout = Duration::from_millis(app.config.header_timeout_ms);
        let slots = listener::ConnectionSlots::new(app.config.max_connections as usize, "the API");
        let reload = reload::spawn(Arc::clone(&app));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                stream = listener::accept(&listener, "the API") => {
                    let Some(slot) = slots.admit(&stream) else {
                        app.metrics.http_rejected
                            .with_label_values(&["too_many_connections", "anonymous"])
                            .inc();
                        continue;
                    };
                    let connection = graceful.watch(listener::connection(router.clone(), stream, header_timeout));
                    tokio::spawn(async move {
                        let _ = connection.await;
                        drop(slot);
                    });
                }
                () = &mut shutdown => break,
            }
        }
        app.ready.store(false, Ordering::Release);
        drop(listener);
        if let Some(reload) = reload {
            reload.abort();
        }
        let grace = Duration::from_millis(app.config.shutdown_grace_ms);
        tracing::info!(
            grace_ms = app.config.shutdown_grace_ms,
            "shutting down: finishing in-flight requests"
        );
        let drained = tokio::time::timeout(grace, graceful.shutdown()).await.is_ok();
        if !drained {
            tracing::warn!(
                grace_ms = app.config.shutdown_grace_ms,
                "in-flight requests did not finish within the grace period; closing them"
            );
        }
        drained
    }
}

/// The in-flight slots a tenant that sets no `max_concurrent` (here or in
/// `[server.default_quotas]`) may hold: half of the host's, so another tenant always has
/// the other half.
pub fn fair_share(max_in_flight: u32) -> u32 {
    (max_in_flight / 2).max(1)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
