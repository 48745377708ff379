//! One admission, one round trip: the script that checks and charges a tenant's shared
//! quotas atomically, by the Redis server's clock (replicas' clocks never meet).
//!
//! Concurrency is a sorted set of leases scored by their expiry; the rate is GCRA (the
//! generic cell rate algorithm: one stored "theoretical arrival time" per tenant, so a
//! token bucket of `burst` refilled at `calls_per_second`, without a timer). A refusal
//! charges nothing; an admission adds the lease and moves the arrival time in the same
//! script, so a call is never charged twice nor admitted without its lease.

use super::{Cluster, Fallback, Lease};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// `KEYS[1]` the tenant's leases, `KEYS[2]` its arrival time; `ARGV` = max concurrent,
/// lease member, lease TTL (ms), emission interval (µs, 0 = no rate), burst tolerance (µs).
/// Returns `{2, 0}` admitted, `{1, wait_µs}` over the rate, `{0, 0}` over the concurrency.
/// Times are µs since the epoch (doubles hold them exactly); `%.0f` keeps them integers
/// when they go back to Redis.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return {0, 0}
end
local interval = tonumber(ARGV[4])
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  local wait = tat - now - tonumber(ARGV[5])
  if wait > 0 then
    return {1, math.ceil(wait)}
  end
  local next_tat = tat + interval
  redis.call('SET', KEYS[2], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl * 1000), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return {2, 0}
";

/// The script with its SHA-1, computed once: it is sent by `EVALSHA`, and loaded again by
/// the client when a restarted Redis has forgotten it.
static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADMIT));

/// A tenant's quotas as the shared state enforces them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Calls in flight at once across the cluster.
    pub max_concurrent: u32,
    /// Sustained calls per second and the burst, if the tenant has a rate.
    pub rate: Option<(f64, u32)>,
}

/// The shared state's answer to one admission.
#[derive(Debug)]
pub enum Admission {
    /// Admitted: the lease holds the slot until it is dropped.
    Admitted(Lease),
    /// Over the rate: a token comes after this long.
    RateLimited(Duration),
    /// Over the concurrency: every slot is leased.
    TooManyInFlight,
    /// Redis did not answer in time, failed, or is being skipped since it did.
    Unavailable(Fallback),
}

impl Cluster {
    /// Admits one call of `tenant` under `quota` across the cluster, waiting on Redis for
    /// at most `timeout_ms`.
    pub async fn admit(self: &Arc<Self>, tenant: &str, quota: Quota) -> Admission {
        if self.health.skipping() {
            return Admission::Unavailable(Fallback::Down);
        }
        let (interval_us, tolerance_us) = match quota.rate {
            Some((rate, burst)) if rate > 0.0 => {
                let interval = 1_000_000.0 / rate;
                (
                    interval.round() as u64,
                    (f64::from(burst.max(1) - 1) * interval).round() as u64,
                )
            }
            _ => (0, 0),
        };
        let leases_key = self.key(tenant, "leases");
        let member = self.leases.member(&self.replica);
        let mut invocation = SCRIPT.key(&leases_key);
        invocation
            .key(self.key(tenant, "rate"))
            .arg(quota.max_concurrent)
            .arg(&member)
            .arg(self.config.lease_ttl_ms)
            .arg(interval_us)
            .arg(tolerance_us);
        let mut redis = self.redis.clone();
        let answer = tokio::time::timeout(
            Duration::from_millis(self.config.timeout_ms),
            invocation.invoke_async::<(u8, u64)>(&mut redis),
        )
        .await;
        match answer {
            Ok(Ok((2, _))) => {
                self.health.succeeded(&self.metrics);
                Admission::Admitted(self.leases.hold(self, leases_key, member))
            }
            Ok(Ok((1, wait_us))) => {
                self.health.succeeded(&self.metrics);
                Admission::RateLimited(Duration::from_micros(wait_us.max(1000)))
            }
            Ok(Ok(_)) => {
                self.health.succeeded(&self.metrics);
                Admission::TooManyInFlight
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e.kind_label(), "cluster state: Redis refused an admission; falling back");
                self.health.failed(&self.metrics);
                // The script may have run before the answer was lost: remove the lease it
                // may have added, so the slot is not held until the TTL.
                self.leases.release(leases_key, member);
                Admission::Unavailable(Fallback::Error)
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.config.timeout_ms,
                    "cluster state: Redis did not answer an admission in time; falling back"
                );
                self.health.failed(&self.metrics);
                self.leases.release(leases_key, member);
                Admission::Unavailable(Fallback::Timeout)
            }
        }
    }
}

/// A Redis error's kind for a log line: never its text, which may quote a URL.
trait KindLabel {
    fn kind_label(&self) -> String;
}

impl KindLabel for redis::RedisError {
    fn kind_label(&self) -> String {
        format!("{:?}", self.kind())
    }
}
