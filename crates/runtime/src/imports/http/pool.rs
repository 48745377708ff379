//! Connections of guests' requests, pooled per tenant and destination across calls, so the
//! hundredth call to the same API does not pay a new TCP and TLS handshake.
//!
//! Each tenant has at most `http.max_connections` connections open, idle or busy: every
//! connection holds one of the tenant's slots until it closes. An idle connection is kept
//! `http.idle_timeout_ms` and then closed. A request that finds no idle connection and no
//! free slot closes the tenant's oldest idle one, or waits for a slot within its connect
//! timeout. One tenant's requests never take another's slots or connections.

use super::tls;
use hyper::client::conn::http1::SendRequest;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tta_core::config::HttpPolicy;
use tta_core::config::http::Scheme;
use wasmtime_wasi_http::{Error, WasiBody};

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// The pools of every tenant of a host, built at a tenant's first request.
#[derive(Default)]
pub struct HttpClients {
    tenants: Mutex<HashMap<String, Arc<TenantClient>>>,
}

impl HttpClients {
    /// The tenant's client; a new one (and its connections closed) when its policy changed.
    pub(crate) fn tenant(&self, tenant: &str, policy: &HttpPolicy) -> Arc<TenantClient> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        match tenants.get(tenant) {
            Some(client) if client.policy == *policy => Arc::clone(client),
            _ => {
                let client = Arc::new(TenantClient {
                    policy: policy.clone(),
                    tls: OnceLock::new(),
                    slots: Arc::new(Semaphore::new(policy.max_connections)),
                    idle: Mutex::new(Vec::new()),
                    sweeping: AtomicBool::new(false),
                });
                tenants.insert(tenant.to_owned(), Arc::clone(&client));
                client
            }
        }
    }
}

/// One tenant's TLS configuration and connections.
pub(crate) struct TenantClient {
    policy: HttpPolicy,
    tls: OnceLock<Result<Arc<ClientConfig>, String>>,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    /// Whether a task closes expired idle connections (one per tenant, while any is idle).
    sweeping: AtomicBool,
}

struct Idle {
    key: Key,
    since: Instant,
    connection: Connection,
}

/// An open HTTP/1.1 connection and the tenant slot it holds.
pub(crate) struct Connection {
    pub(crate) sender: SendRequest<WasiBody>,
    /// `tls.protocol.version`, for https.
    pub(crate) tls_version: Option<&'static str>,
    /// Whether it served an earlier request.
    pub(crate) reused: bool,
    _slot: OwnedSemaphorePermit,
}

impl TenantClient {
    /// A connection to `key`: an idle one, or a new one within `connect_timeout`.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        key: &Key,
        connect_timeout: Duration,
    ) -> Result<Connection, (Error, String)> {
        let began = Instant::now();
        while let Some(mut connection) = self.take_idle(key) {
            // The response before was read to its end; the connection is ready at once
            // unless the server closed it meanwhile.
            if let Ok(Ok(())) = tokio::time::timeout(connect_timeout, connection.sender.ready()).await {
                return Ok(connection);
            }
        }
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                self.close_oldest_idle();
                match tokio::time::timeout(connect_timeout, Arc::clone(&self.slots).acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => {
                        return Err((
                            Error::ConnectionLimitReached,
                            format!(
                                "the tenant's {} connections (http.max_connections) are all busy",
                                self.policy.max_connections
                            ),
                        ));
                    }
                }
            }
        };
        let left = connect_timeout.saturating_sub(began.elapsed());
        match tokio::time::timeout(left, self.open(key)).await {
            Ok(Ok((sender, tls_version))) => Ok(Connection {
                sender,
                tls_version,
                reused: false,
                _slot: slot,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err((
                Error::ConnectionTimeout,
                format!(
                    "no connection to {}:{} within {} ms (TCP and TLS handshake)",
                    key.host,
                    key.port,
                    connect_timeout.as_millis()
                ),
            )),
        }
    }

    /// Keeps `connection`, whose last response was read to its end, for the next request
    /// to `key`; it is closed after the idle timeout (by one sweeping task per tenant).
    pub(crate) fn keep(self: &Arc<Self>, key: Key, mut connection: Connection) {
        connection.reused = true;
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(Idle {
            key,
            since: Instant::now(),
            connection,
        });
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = Arc::clone(self);
        let idle_timeout = Duration::from_millis(self.policy.idle_timeout_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(idle_timeout / 2).await;
                if client.close_expired() {
                    break;
                }
            }
        });
    }

    fn take_idle(&self, key: &Key) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let idle_timeout = Duration::from_millis(self.policy.idle_timeout_ms);
        idle.retain(|i| i.since.elapsed() < idle_timeout && !i.connection.sender.is_closed());
        let at = idle
            .iter()
            .rposition(|i| i.key == *key && i.connection.sender.is_ready())?;
        Some(idle.swap_remove(at).connection)
    }

    fn close_oldest_idle(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(oldest) = (0..idle.len()).min_by_key(|&i| idle[i].since) {
            idle.swap_remove(oldest);
        }
    }

    /// Closes the idle connections past the idle timeout; `true` (and the sweep ends) when
    /// none is left idle.
    fn close_expired(&self) -> bool {
        let idle_timeout = Duration::from_millis(self.policy.idle_timeout_ms);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|i| i.since.elapsed() < idle_timeout);
        let done = idle.is_empty();
        if done {
            self.sweeping.store(false, Ordering::Release);
        }
        done
    }

    /// A new connection: TCP, then TLS for https, then the HTTP/1.1 handshake.
    async fn open(&self, key: &Key) -> Result<(SendRequest<WasiBody>, Option<&'static str>), (Error, String)> {
        let tcp = tokio::net::TcpStream::connect((key.host.as_str(), key.port))
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => (
                    Error::ConnectionRefused,
                    format!("{}:{} refused the connection", key.host, key.port),
                ),
                _ => (
                    Error::Connect(std::io::Error::new(e.kind(), e.to_string())),
                    e.to_string(),
                ),
            })?;
        let _ = tcp.set_nodelay(true);
        match key.scheme {
            Scheme::Http => handshake(tcp).await.map(|s| (s, None)),
            Scheme::Https => {
                let config = self
                    .tls
                    .get_or_init(|| tls::client_config(&self.policy))
                    .clone()
                    .map_err(|e| (Error::ConfigurationError, e))?;
                let name = ServerName::try_from(key.host.clone()).map_err(|e| {
                    (
                        Error::HttpRequestUriInvalid,
                        format!("`{}` is not a TLS server name: {e}", key.host),
                    )
                })?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls::classify(&e))?;
                let version = tls::version(stream.get_ref().1.protocol_version());
                handshake(stream).await.map(|s| (s, version))
            }
        }
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<WasiBody>, (Error, String)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| (Error::HttpProtocolError, format!("HTTP/1.1 handshake failed: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
