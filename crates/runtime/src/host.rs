//! The `Host`: one engine, one linker, the loaded primitives, and the entry point for calls.
//!
//! Cheap to clone and share between tasks: everything lives behind one `Arc`, and the
//! registry is swapped atomically, so lookups on the call path take no lock.

use crate::cache::ArtifactCache;
use crate::compile::Compiler;
use crate::engine::{EpochTicker, build_engine};
use crate::imports::invoke::{Invoke, Nested};
use crate::invocation::Invocation;
use crate::primitive::Primitive;
use crate::registry::Registry;
use crate::sandbox::{self, CallEnv, CallState};
use crate::tenant::Access;
use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tta_core::config::{HostConfig, Limits};
use tta_core::error::{CallError, LoadError};
use tta_core::guest_config::GuestConfig;
use tta_core::report::CallReport;
use tta_core::trace_context::{self, parse_traceparent};
use tta_telemetry::Telemetry;
use wasmtime::component::Linker;

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] tta_core::config::ConfigError),
    /// wasmtime refused the engine configuration.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The epoch ticker thread could not start.
    #[error("cannot start the deadline ticker thread: {0}")]
    Ticker(std::io::Error),
}

struct Shared {
    env: Arc<CallEnv>,
    linker: Linker<CallState>,
    config: HostConfig,
    registry: ArcSwap<Registry>,
    /// Serializes changes to the registry; readers never take it.
    registry_writer: std::sync::Mutex<()>,
    cache: Option<Arc<ArtifactCache>>,
    telemetry: Telemetry,
    /// The store replicas share (set once by `serve` with a cluster).
    shared_store: std::sync::OnceLock<Arc<dyn tta_core::shared_store::SharedStore>>,
    _ticker: EpochTicker,
}

impl Shared {
    /// Runs `plugin` once and records its metrics: the one metered path of every call.
    async fn execute(
        &self,
        primitive: &Arc<Primitive>,
        invocation: Invocation,
        input: &[u8],
    ) -> (Result<Vec<u8>, CallError>, CallReport) {
        let (result, mut report) = sandbox::execute(&self.env, primitive.guest(), invocation, input).await;
        tta_telemetry::genai::complete(&mut report, &self.config.llm);
        self.telemetry.metrics().record_call(&primitive.metrics, &report);
        (result, report)
    }

    fn compiler(&self) -> Compiler<'_> {
        Compiler {
            env: &self.env,
            linker: &self.linker,
            cache: self.cache.as_ref(),
            metrics: self.telemetry.metrics(),
            limits: &self.config.limits,
        }
    }
}

/// Runs guests' nested calls: resolves the name for the caller's tenant in the current
/// registry and runs it through the metered path. Holds the host weakly, as the host holds it.
struct Invoker {
    shared: Weak<Shared>,
}

impl Invoke for Invoker {
    fn invoke(&self, invocation: Invocation, primitive: String, input: Vec<u8>) -> BoxFuture<'static, Nested> {
        let shared = self.shared.upgrade();
        Box::pin(async move {
            let Some(shared) = shared else {
                return Err(CallError::Host("the host is shutting down".into()));
            };
            let found = {
                let registry = shared.registry.load();
                registry
                    .resolve(invocation.access.as_deref(), &primitive)
                    .ok_or_else(|| registry.visible_names(invocation.access.as_deref()))
            };
            match found {
                Ok(primitive) => Ok(shared.execute(&primitive, invocation, &input).await),
                Err(available) => Err(CallError::UnknownPrimitive {
                    name: primitive,
                    available,
                }),
            }
        })
    }
}

/// What the caller decides about one call; everything is optional.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// The correlation id; a new UUID when absent.
    pub correlation_id: Option<String>,
    /// The tenant; `default` when absent.
    pub tenant: Option<String>,
    /// A W3C `traceparent` whose span becomes the parent of this call.
    pub traceparent: Option<String>,
    /// The W3C `tracestate` to pass along.
    pub tracestate: Option<String>,
    /// Workflow data for the guest's context.
    pub data: Vec<(String, String)>,
    /// Limits for this call instead of the host's (a tenant's quotas).
    pub limits: Option<Limits>,
    /// What the caller may reach: its own and its allowed shared primitives. `None` is the
    /// operator, who reaches every shared primitive.
    pub access: Option<Arc<Access>>,
    /// What the caller's guests read through `wasi:config`; none when absent.
    pub config: Option<Arc<GuestConfig>>,
    /// Attributes for the call's host span (or a workflow's root span), beside the host's own:
    /// the MCP server's `mcp.method.name`, `gen_ai.tool.name` and the like.
    pub attributes: Vec<(String, tta_core::bindings::Value)>,
    /// Records the call (or the workflow run) on this session, or replays it from it.
    pub recording: Option<Arc<crate::recording::Session>>,
}

/// The result of one call and its report.
#[derive(Debug)]
pub struct CallOutcome {
    /// The guest's output, or why there is none.
    pub output: Result<Vec<u8>, CallError>,
    /// What the call measured and the guest reported; shared with the exporters.
    pub report: Arc<CallReport>,
}

/// A host of primitives. Clone it freely; clones share everything.
#[derive(Clone)]
pub struct Host {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("primitives", &self.shared.registry.load().names())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Starts a host: engine, linker, cache and deadline ticker. Needs a tokio runtime for
    /// calls. Calls are metered in memory but nothing is exported: use [`Host::with_telemetry`]
    /// with [`tta_telemetry::initialize_observability`] for that.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let telemetry = Telemetry::disabled(&config.telemetry);
        Self::with_telemetry(config, telemetry)
    }

    /// Starts a host whose calls are traced, metered and logged through `telemetry`.
    pub fn with_telemetry(config: HostConfig, telemetry: Telemetry) -> Result<Self, HostError> {
        config.validate()?;
        tta_core::tls::install_default_provider();
        let engine = build_engine(&config).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<CallState>::new(&engine);
        crate::imports::add_to_linker(&mut linker).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let cache = config.cache_dir.as_deref().and_then(|dir| match ArtifactCache::open(dir, &engine, config.cache_max_bytes) {
            Ok(cache) => {
                if let Err(e) = telemetry.metrics().registry().register(Box::new(cache.gauges())) {
                    tracing::debug!(error = %e, "compile cache gauges already registered");
                }
                Some(Arc::new(cache))
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "compiled-component cache is off: cannot open its directory");
                None
            }
        });
        let ticker = EpochTicker::start(engine.clone(), Duration::from_millis(config.epoch_tick_ms))
            .map_err(HostError::Ticker)?;
        let shared = Arc::new_cyclic(|weak| Shared {
            env: Arc::new(CallEnv {
                engine,
                metrics: Arc::clone(telemetry.metrics()),
                http: telemetry.metrics().instruments(),
                http_clients: Arc::default(),
                invoker: Arc::new(Invoker { shared: weak.clone() }),
                epoch_tick: Duration::from_millis(config.epoch_tick_ms),
            }),
            linker,
            config,
            registry: ArcSwap::from_pointee(Registry::default()),
            registry_writer: std::sync::Mutex::new(()),
            cache,
            telemetry,
            shared_store: std::sync::OnceLock::new(),
            _ticker: ticker,
        });
        Ok(Host { shared })
    }

    /// The configuration the host runs with.
    pub fn config(&self) -> &HostConfig {
        &self.shared.config
    }

    /// The host's telemetry: metrics, exporters, sampler.
    pub fn telemetry(&self) -> &Telemetry {
        &self.shared.telemetry
    }

    /// Gives the host the store its cluster's replicas share (once; a second store is
    /// refused and returned).
    pub fn set_shared_store(
        &self,
        store: Arc<dyn tta_core::shared_store::SharedStore>,
    ) -> Result<(), Arc<dyn tta_core::shared_store::SharedStore>> {
        self.shared.shared_store.set(store)
    }

    /// The store the cluster's replicas share, if the host is in one.
    pub fn shared_store(&self) -> Option<&Arc<dyn tta_core::shared_store::SharedStore>> {
        self.shared.shared_store.get()
    }

    /// Loads, validates and registers the component at `path`, so calls and `invoke` find it.
    pub async fn load(&self, path: &Path) -> Result<Arc<Primitive>, LoadError> {
        let primitive = self.inspect(path).await?;
        self.register(Arc::clone(&primitive))?;
        Ok(primitive)
    }

    /// Loads and validates the component at `path` without registering it.
    pub async fn inspect(&self, path: &Path) -> Result<Arc<Primitive>, LoadError> {
        self.shared.compiler().load(path).await.map(Arc::new)
    }

    /// Validates and compiles `bytes` as if they were the file at `path`, without registering
    /// them: how uploads are checked before they are written.
    pub async fn inspect_bytes(&self, path: &Path, bytes: Vec<u8>) -> Result<Arc<Primitive>, LoadError> {
        self.shared.compiler().from_bytes(path, bytes, None).await.map(Arc::new)
    }

    /// Validates and compiles a tenant's upload: its `describe()` runs under the tenant's
    /// `limits`, and its metrics are its own, removed when it is deleted.
    pub async fn inspect_upload(
        &self,
        path: &Path,
        bytes: Vec<u8>,
        limits: &Limits,
    ) -> Result<Arc<Primitive>, LoadError> {
        self.shared
            .compiler()
            .from_bytes(path, bytes, Some(limits))
            .await
            .map(Arc::new)
    }

    /// Cleans up after a tenant's upload that left the registry, deleted or (`replaced`)
    /// replaced: a deleted one's calls still in flight record nothing and its series go
    /// (unless the tenant still sees a shared primitive of that name, whose series they
    /// are too); its compiled artifact goes unless another loaded primitive has its bytes.
    pub fn retire_upload(&self, access: &crate::tenant::Access, old: &Primitive, replaced: bool) {
        let registry = self.registry();
        if !replaced {
            old.metrics.retire();
            if registry.resolve(Some(access), &old.metadata.name).is_none() {
                self.telemetry().metrics().forget(&old.metadata.name, &access.tenant);
            }
        }
        if let Some(cache) = &self.shared.cache
            && !registry.uses_digest(&old.digest)
        {
            cache.remove(&old.digest);
        }
    }

    /// Bytes the compiled-component cache holds on disk (0 without a cache).
    pub fn cache_size_bytes(&self) -> u64 {
        self.shared.cache.as_ref().map_or(0, |c| c.size_bytes())
    }

    /// Registers a loaded plugin under its name.
    pub fn register(&self, primitive: Arc<Primitive>) -> Result<(), LoadError> {
        self.update_registry(|registry| registry.insert(primitive))
    }

    /// Changes the registry: `change` edits a copy, which replaces it atomically unless
    /// `change` fails. Calls in flight keep the plugins they started with.
    pub fn update_registry<R, E>(&self, change: impl FnOnce(&mut Registry) -> Result<R, E>) -> Result<R, E> {
        let _writer = self
            .shared
            .registry_writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut registry = Registry::clone(&self.shared.registry.load());
        let result = change(&mut registry)?;
        self.shared.registry.store(Arc::new(registry));
        Ok(result)
    }

    /// A snapshot of the loaded primitives.
    pub fn registry(&self) -> Arc<Registry> {
        self.shared.registry.load_full()
    }

    /// Calls the loaded primitive `name` once on `input`.
    pub async fn call(&self, name: &str, input: &[u8], options: CallOptions) -> CallOutcome {
        // The lookup takes no lock and keeps no guard across the call.
        let found = {
            let registry = self.shared.registry.load();
            registry
                .resolve(options.access.as_deref(), name)
                .ok_or_else(|| registry.visible_names(options.access.as_deref()))
        };
        match found {
            Ok(primitive) => self.call_primitive(&primitive, input, options).await,
            Err(available) => {
                let error = CallError::UnknownPrimitive {
                    name: name.to_owned(),
                    available,
                };
                let invocation = self.invocation(options);
                let mut report = invocation.report(name, "");
                report.error = Some(error.clone());
                CallOutcome {
                    output: Err(error),
                    report: Arc::new(report),
                }
            }
        }
    }

    /// Calls `plugin` once on `input`.
    pub async fn call_primitive(&self, primitive: &Arc<Primitive>, input: &[u8], options: CallOptions) -> CallOutcome {
        let invocation = self.invocation(options);
        let (output, report) = self.execute(primitive, invocation, input).await;
        let report = Arc::new(report);
        self.shared.telemetry.export(&report);
        CallOutcome { output, report }
    }

    /// Calls `plugin` with no metrics and no export: the uninstrumented baseline the
    /// overhead benchmark compares against, and the replays `serve` makes to verify a new
    /// version (which are not the tenant's calls).
    pub async fn call_primitive_unobserved(
        &self,
        primitive: &Arc<Primitive>,
        input: &[u8],
        options: CallOptions,
    ) -> CallOutcome {
        let invocation = self.invocation(options);
        let (output, report) = sandbox::execute(&self.shared.env, primitive.guest(), invocation, input).await;
        CallOutcome {
            output,
            report: Arc::new(report),
        }
    }

    /// Runs `plugin` once under `invocation` and records its metrics; the report is returned,
    /// not exported (a top-level call exports it alone, a workflow with its run). The one
    /// metered entry of every call: `run`, the server, `invoke` and workflow leaves alike.
    pub async fn execute(
        &self,
        primitive: &Arc<Primitive>,
        invocation: Invocation,
        input: &[u8],
    ) -> (Result<Vec<u8>, CallError>, CallReport) {
        self.shared.execute(primitive, invocation, input).await
    }

    /// The invocation of a top-level call. An invalid `traceparent` is ignored, as W3C asks,
    /// and the call starts a new trace.
    pub fn invocation(&self, options: CallOptions) -> Invocation {
        let correlation_id = options.correlation_id.unwrap_or_else(trace_context::new_correlation_id);
        let tenant = options.tenant.unwrap_or_else(|| "default".to_owned());
        let parent = options
            .traceparent
            .as_deref()
            .and_then(|header| match parse_traceparent(header) {
                Ok(parent) => Some(parent),
                Err(reason) => {
                    tracing::warn!(%reason, "ignoring invalid traceparent; starting a new trace");
                    None
                }
            });
        let limits = options.limits.as_ref().unwrap_or(&self.shared.config.limits);
        let mut invocation = Invocation::root(limits, correlation_id, tenant, parent);
        invocation.access = options.access;
        if let Some(config) = options.config {
            invocation.config = config;
        }
        invocation.ids.sampled = self
            .shared
            .telemetry
            .sampler()
            .sample(invocation.ids.trace_id, parent.map(|p| p.sampled));
        invocation.tracestate = options.tracestate.unwrap_or_default();
        invocation.data = options.data;
        invocation.attributes = options.attributes;
        invocation.session = options.recording;
        invocation
    }
}
