//! The cluster's shared key-value store (for the workflow `cache` with `store = "redis"`):
//! `GET` and `SET … PX` under the tenant's own prefix, each bounded by `timeout_ms`, skipped
//! while Redis is down. A tenant's entries never share a key with another's: the tenant id
//! is in the key, besides being part of the hashed entry key the cache computes.

use super::Cluster;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tta_core::shared_store::{BreakerEntry, BreakerSettings, BreakerState, SharedStore, StoreError, StoreFuture};

/// `KEYS[1]` the breaker's state, `KEYS[2]` its trial lock; `ARGV[1]` the cooldown (ms).
/// `{0, 0}` closed, `{1, 0}` this call is the trial, `{2, left_ms}` open. By Redis's clock;
/// the trial lock (`SET NX`) makes one replica's call the cluster's only trial.
static ENTER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then
  return {0, 0}
end
local cooldown = tonumber(ARGV[1])
local left = tonumber(redis.call('HGET', KEYS[1], 'opened') or '0') + cooldown - now
if left > 0 then
  return {2, math.ceil(left)}
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', cooldown) then
  return {1, 0}
end
return {2, 0}
",
    )
});

/// `KEYS[1]` state, `KEYS[2]` trial lock, `KEYS[3]` recent failures; `ARGV` = succeeded,
/// trial (`1`/`0`), failures to open, window (ms), the state's TTL (ms), a unique member.
/// Returns 1 when the breaker is open after the call, else 0.
static EXIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stamp = string.format('%.0f', now)
local function open()
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened', stamp)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('DEL', KEYS[3])
  return 1
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[2])
  if ARGV[1] == '1' then
    redis.call('DEL', KEYS[1], KEYS[3])
    return 0
  end
  return open()
end
if ARGV[1] == '1' then
  if redis.call('HGET', KEYS[1], 'state') == 'open' then return 1 end
  return 0
end
if redis.call('HGET', KEYS[1], 'state') == 'open' then return 1 end
redis.call('ZADD', KEYS[3], stamp, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.0f', now - tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then
  return open()
end
return 0
",
    )
});

/// Members of failure sets no other call of the cluster uses.
static NEXT_FAILURE: AtomicU64 = AtomicU64::new(0);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// [`SharedStore`] over a cluster's Redis.
#[derive(Debug)]
pub struct RedisStore(pub Arc<Cluster>);

impl RedisStore {
    fn entry(&self, tenant: &str, key: &[u8]) -> String {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(key.len() * 2);
        for byte in key {
            let _ = write!(hex, "{byte:02x}");
        }
        self.0.key(tenant, &format!("cache:{hex}"))
    }

    async fn bounded<T>(&self, op: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        let cluster = &self.0;
        if cluster.health.skipping() {
            return Err(StoreError::Failed("Redis is down".into()));
        }
        match tokio::time::timeout(Duration::from_millis(cluster.config.timeout_ms), op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                tracing::debug!(error = ?e.kind(), "cluster store: Redis failed");
                cluster.health.failed(&cluster.metrics);
                Err(StoreError::Failed(format!("{:?}", e.kind())))
            }
            Err(_) => {
                tracing::debug!("cluster store: Redis did not answer in time");
                cluster.health.failed(&cluster.metrics);
                Err(StoreError::Timeout)
            }
        }
    }
}

impl SharedStore for RedisStore {
    fn breaker_enter<'a>(
        &'a self,
        tenant: &'a str,
        breaker: &'a str,
        settings: BreakerSettings,
    ) -> StoreFuture<'a, Result<BreakerEntry, StoreError>> {
        Box::pin(async move {
            let mut redis = self.0.redis.clone();
            let mut invocation = ENTER.key(self.0.key(tenant, &format!("breaker:{breaker}")));
            invocation
                .key(self.0.key(tenant, &format!("breaker:{breaker}:trial")))
                .arg(ms(settings.cooldown));
            let (state, left) = self.bounded(invocation.invoke_async::<(u8, u64)>(&mut redis)).await?;
            Ok(match state {
                0 => BreakerEntry::Closed,
                1 => BreakerEntry::Trial,
                _ => BreakerEntry::Open(Duration::from_millis(left)),
            })
        })
    }

    fn breaker_exit<'a>(
        &'a self,
        tenant: &'a str,
        breaker: &'a str,
        settings: BreakerSettings,
        succeeded: bool,
        trial: bool,
    ) -> StoreFuture<'a, Result<BreakerState, StoreError>> {
        Box::pin(async move {
            let mut redis = self.0.redis.clone();
            let ttl = ms(settings.cooldown)
                .saturating_mul(2)
                .saturating_add(ms(settings.window));
            let member = format!("{}-{}", self.0.replica, NEXT_FAILURE.fetch_add(1, Ordering::Relaxed));
            let mut invocation = EXIT.key(self.0.key(tenant, &format!("breaker:{breaker}")));
            invocation
                .key(self.0.key(tenant, &format!("breaker:{breaker}:trial")))
                .key(self.0.key(tenant, &format!("breaker:{breaker}:failures")))
                .arg(u8::from(succeeded))
                .arg(u8::from(trial))
                .arg(settings.failures)
                .arg(ms(settings.window))
                .arg(ttl)
                .arg(member);
            let open = self.bounded(invocation.invoke_async::<u8>(&mut redis)).await?;
            Ok(if open == 1 {
                BreakerState::Open
            } else {
                BreakerState::Closed
            })
        })
    }

    fn get<'a>(&'a self, tenant: &'a str, key: &'a [u8]) -> StoreFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            let mut redis = self.0.redis.clone();
            let mut command = redis::cmd("GET");
            command.arg(self.entry(tenant, key));
            self.bounded(command.query_async::<Option<Vec<u8>>>(&mut redis)).await
        })
    }

    fn put<'a>(
        &'a self,
        tenant: &'a str,
        key: &'a [u8],
        value: &'a [u8],
        ttl: Duration,
    ) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut redis = self.0.redis.clone();
            let mut command = redis::cmd("SET");
            command
                .arg(self.entry(tenant, key))
                .arg(value)
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            self.bounded(command.query_async::<()>(&mut redis)).await
        })
    }
}
