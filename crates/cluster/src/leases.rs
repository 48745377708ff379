//! Concurrency leases: each admitted call holds one in the tenant's sorted set, scored by
//! its expiry. A keeper task renews this replica's live leases every third of the TTL,
//! sends the replica's heartbeat (how many replicas are alive is what the local fallback
//! divides limits by), and removes ended leases. What it holds is bounded by the calls in
//! flight; releases wait in a bounded queue, and one that does not fit is left to expire.

use super::Cluster;
use super::health::Fallback;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// `KEYS[1]` a tenant's leases; `ARGV[1]` the TTL (ms), the rest the members to renew.
/// Only members still there are renewed (`XX`): an expired lease is not brought back.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local expiry = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1]) * 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
",
    )
});

/// `KEYS[1]` the replicas; `ARGV[1]` this replica, `ARGV[2]` the TTL (ms). Returns how
/// many replicas are alive.
static HEARTBEAT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2]) * 1000), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
",
    )
});

/// Releases waiting for the keeper; past this many, a release is left to expire.
const RELEASE_QUEUE: usize = 4096;
/// Releases sent to Redis in one pipeline.
const RELEASE_BATCH: usize = 256;

/// This replica's live leases, by the key of the tenant's set.
pub(crate) struct Leases {
    next: AtomicU64,
    live: Mutex<HashMap<String, HashSet<String>>>,
    release: mpsc::Sender<(String, String)>,
    released: Mutex<Option<mpsc::Receiver<(String, String)>>>,
    heartbeat_key: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Leases {
    pub(crate) fn new(prefix: &str) -> Self {
        let (release, released) = mpsc::channel(RELEASE_QUEUE);
        Leases {
            next: AtomicU64::new(0),
            live: Mutex::default(),
            release,
            released: Mutex::new(Some(released)),
            heartbeat_key: format!("{prefix}:replicas"),
        }
    }

    /// A member name no other lease of the cluster has.
    pub(crate) fn member(&self, replica: &str) -> String {
        format!("{replica}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Records an admitted lease as live, to be renewed until its guard drops.
    pub(crate) fn hold(&self, cluster: &Arc<Cluster>, key: String, member: String) -> Lease {
        lock(&self.live).entry(key.clone()).or_default().insert(member.clone());
        Lease {
            cluster: Arc::clone(cluster),
            key,
            member,
        }
    }

    /// Stops renewing a lease and queues its removal.
    pub(crate) fn release(&self, key: String, member: String) {
        {
            let mut live = lock(&self.live);
            if let Some(members) = live.get_mut(&key) {
                members.remove(&member);
                if members.is_empty() {
                    live.remove(&key);
                }
            }
        }
        // A full queue means Redis is slow or down: the lease is no longer renewed, so it
        // expires within the TTL anyway.
        let _ = self.release.try_send((key, member));
    }

    fn snapshot(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.live)
            .iter()
            .map(|(key, members)| (key.clone(), members.iter().cloned().collect()))
            .collect()
    }
}

/// A call's slot in the shared concurrency quota; dropping it frees the slot.
#[derive(Debug)]
pub struct Lease {
    cluster: Arc<Cluster>,
    key: String,
    member: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.cluster
            .leases
            .release(std::mem::take(&mut self.key), std::mem::take(&mut self.member));
    }
}

/// Starts the keeper of `cluster`'s leases; it ends when the cluster is dropped.
pub(crate) fn spawn_keeper(cluster: &Arc<Cluster>) {
    let Some(mut released) = lock(&cluster.leases.released).take() else {
        return;
    };
    let weak: Weak<Cluster> = Arc::downgrade(cluster);
    let period = Duration::from_millis((cluster.config.lease_ttl_ms / 3).max(50));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let Some(cluster) = weak.upgrade() else { return };
                    keep(&cluster).await;
                }
                first = released.recv() => {
                    let Some(first) = first else { return };
                    let Some(cluster) = weak.upgrade() else { return };
                    let mut batch = vec![first];
                    while batch.len() < RELEASE_BATCH {
                        match released.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    remove(&cluster, &batch).await;
                }
            }
        }
    });
}

/// One tick: the heartbeat, then the renewal of every live lease, each bounded by
/// `timeout_ms`. A failure marks Redis down (the calls fall back) and ends the tick.
async fn keep(cluster: &Cluster) {
    let timeout = Duration::from_millis(cluster.config.timeout_ms);
    let ttl = cluster.config.lease_ttl_ms;
    let mut redis = cluster.redis.clone();
    let mut heartbeat = HEARTBEAT.key(&cluster.leases.heartbeat_key);
    heartbeat.arg(&cluster.replica).arg(ttl);
    match tokio::time::timeout(timeout, heartbeat.invoke_async::<u32>(&mut redis)).await {
        Ok(Ok(alive)) => {
            cluster.replicas.store(alive.max(1), Ordering::Relaxed);
            cluster.metrics.replicas.set(i64::from(alive));
            cluster.health.succeeded(&cluster.metrics);
        }
        outcome => {
            let reason = if outcome.is_err() {
                Fallback::Timeout
            } else {
                Fallback::Error
            };
            tracing::debug!(reason = reason.label(), "cluster state: heartbeat failed");
            cluster.health.failed(&cluster.metrics);
            return;
        }
    }
    for (key, members) in cluster.leases.snapshot() {
        let mut renew = RENEW.key(&key);
        renew.arg(ttl);
        for member in &members {
            renew.arg(member);
        }
        if !matches!(
            tokio::time::timeout(timeout, renew.invoke_async::<i64>(&mut redis)).await,
            Ok(Ok(_))
        ) {
            cluster.health.failed(&cluster.metrics);
            return;
        }
    }
}

async fn remove(cluster: &Cluster, batch: &[(String, String)]) {
    let mut pipe = redis::pipe();
    for (key, member) in batch {
        pipe.zrem(key, member).ignore();
    }
    let mut redis = cluster.redis.clone();
    let timeout = Duration::from_millis(cluster.config.timeout_ms);
    if !matches!(
        tokio::time::timeout(timeout, pipe.query_async::<()>(&mut redis)).await,
        Ok(Ok(()))
    ) {
        // Not removed: each expires within the TTL, as it is no longer renewed.
        tracing::debug!(
            leases = batch.len(),
            "cluster state: releasing leases failed; they will expire"
        );
    }
}
