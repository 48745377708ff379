//! State that replicas of `tta-host serve` share through Redis (or Valkey), so that a
//! tenant's quotas hold across the cluster and not per replica.
//!
//! One admission is one round trip: a Lua script ([`admission`]) that, atomically on the
//! Redis server and by its clock, drops expired leases, checks the tenant's concurrency,
//! takes a rate token (GCRA) and adds the call's lease. The lease is renewed while the call
//! runs and removed when it ends ([`leases`]); a replica that dies stops renewing, and its
//! leases expire within `lease_ttl_ms`. Redis is never waited on for more than
//! `timeout_ms`; when it cannot answer, the caller falls back by policy and the
//! [`health`] state sends the next calls straight to the fallback for `retry_ms`, so a
//! Redis outage costs each call nothing more than that first bound. Uploads are announced
//! over pub/sub ([`changes`]) so every replica rescans at once.

pub mod admission;
pub mod changes;
pub mod health;
pub mod leases;
pub mod metrics;
pub mod store;

pub use admission::{Admission, Quota};
pub use health::Fallback;
pub use leases::Lease;
pub use store::RedisStore;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tta_core::config::{ClusterConfig, OnUnavailable};

/// Why the cluster state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `redis_url` could not be resolved (an `env:` or `file:` reference).
    #[error("cluster.redis_url: {0}")]
    Url(String),
    /// The URL is not one the Redis client takes.
    #[error("cluster.redis_url is not a usable Redis URL ({0}); write redis://host:port[/db]")]
    Client(String),
}

/// The shared state of one replica's view of the cluster.
pub struct Cluster {
    client: redis::Client,
    redis: redis::aio::ConnectionManager,
    config: ClusterConfig,
    /// This replica's id in lease and heartbeat members.
    replica: String,
    health: health::Health,
    leases: Arc<leases::Leases>,
    /// Replicas seen alive at the last heartbeat (at least 1).
    replicas: Arc<AtomicU32>,
    metrics: Arc<metrics::ClusterMetrics>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("replica", &self.replica)
            .field("replicas", &self.replicas.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster state of `config`, or `None` when `redis_url` is unset. Nothing is
    /// awaited: the connection is made on first use, so a replica starts (and serves, by
    /// the fallback policy) while Redis is down. Must be called inside a Tokio runtime: it
    /// starts the task that renews leases, sends the heartbeat and releases ended leases.
    pub fn start(
        config: &ClusterConfig,
        metrics: Arc<metrics::ClusterMetrics>,
    ) -> Result<Option<Arc<Cluster>>, ClusterError> {
        let Some(url) = &config.redis_url else {
            return Ok(None);
        };
        let url = url
            .resolve(&|name| std::env::var(name).ok())
            .map_err(ClusterError::Url)?;
        let client = redis::Client::open(url.as_str()).map_err(|e| ClusterError::Client(format!("{:?}", e.kind())))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(config.retry_ms));
        let redis = redis::aio::ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| ClusterError::Client(format!("{:?}", e.kind())))?;
        let replica = format!("{:016x}", rand::random::<u64>());
        let leases = Arc::new(leases::Leases::new(&config.key_prefix));
        let cluster = Arc::new(Cluster {
            client,
            redis,
            health: health::Health::new(Duration::from_millis(config.retry_ms)),
            config: config.clone(),
            replica,
            leases,
            replicas: Arc::new(AtomicU32::new(1)),
            metrics,
        });
        cluster.metrics.up.set(0);
        leases::spawn_keeper(&cluster);
        Ok(Some(cluster))
    }

    /// What a replica does with a call while Redis cannot answer.
    #[must_use]
    pub fn on_unavailable(&self) -> OnUnavailable {
        self.config.on_unavailable
    }

    /// How long a refused-for-unavailability caller should wait before it tries again.
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        Duration::from_millis(self.config.retry_ms)
    }

    /// Replicas seen alive at the last heartbeat (at least 1): what the local fallback
    /// divides a tenant's limits by.
    #[must_use]
    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// Counts a call that went to the fallback, under its reason.
    pub fn count_fallback(&self, reason: Fallback) {
        self.metrics.fallback.with_label_values(&[reason.label()]).inc();
    }

    fn key(&self, tenant: &str, what: &str) -> String {
        // The braces are a Redis Cluster hash tag: a tenant's keys share a slot, so one
        // script may touch them all.
        format!("{}:{{{tenant}}}:{what}", self.config.key_prefix)
    }
}
