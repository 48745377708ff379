//! `[cluster]`: state that replicas of `tta-host serve` share through Redis (or Valkey).
//!
//! Without `redis_url` every replica keeps its tenants' quotas to itself, so N replicas
//! admit N times a tenant's rate. With it, admission is one atomic script on the shared
//! server: a tenant's `calls_per_second`/`burst` and `max_concurrent` hold across all of
//! them. Redis is never waited on for more than `timeout_ms`; when it cannot answer, the
//! `on_unavailable` policy decides, and the replica asks again after `retry_ms`.

use super::secret::Secret;
use serde::Deserialize;

/// What a replica does with a call while Redis cannot answer.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Admit under this replica's share of the tenant's limits (the limits divided by the
    /// number of replicas last seen alive), so the cluster stays near the tenant's quota.
    #[default]
    Local,
    /// Refuse with `503 cluster_unavailable` and `Retry-After`.
    Reject,
}

/// The `[cluster]` section of the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS) of the shared
    /// state; an `env:NAME` or `file:PATH` reference keeps a password out of the file.
    /// Unset: nothing is shared.
    pub redis_url: Option<Secret>,
    /// What to do with a call while Redis cannot answer.
    pub on_unavailable: OnUnavailable,
    /// Longest a call waits on Redis for its admission, in milliseconds.
    pub timeout_ms: u64,
    /// After Redis failed to answer, how long calls go straight to the fallback before
    /// Redis is asked again, in milliseconds.
    pub retry_ms: u64,
    /// How long a call's concurrency lease lives without renewal, in milliseconds: a
    /// replica that dies frees its calls' slots within it. Leases are renewed every third
    /// of it while the calls run.
    pub lease_ttl_ms: u64,
    /// Prefix of every key the host writes, so hosts of several clusters can share one
    /// Redis.
    pub key_prefix: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            on_unavailable: OnUnavailable::Local,
            timeout_ms: 50,
            retry_ms: 1000,
            lease_ttl_ms: 5000,
            key_prefix: "tta".to_owned(),
        }
    }
}

impl ClusterConfig {
    /// Every problem with the section, each naming its key.
    #[must_use]
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("cluster.timeout_ms", self.timeout_ms),
            ("cluster.retry_ms", self.retry_ms),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be greater than 0"));
            }
        }
        if self.lease_ttl_ms < 300 {
            problems.push(format!(
                "cluster.lease_ttl_ms is {}: use 300 or more, so leases are renewed (every third of it) before they expire",
                self.lease_ttl_ms
            ));
        }
        let prefix_ok = !self.key_prefix.is_empty()
            && self.key_prefix.len() <= 64
            && self
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !prefix_ok {
            problems.push(format!(
                "cluster.key_prefix {:?} must be 1 to 64 characters of a-z, A-Z, 0-9, '-', '_', '.', ':'",
                self.key_prefix
            ));
        }
        if let Some(url) = &self.redis_url {
            match url.resolve(&|name| std::env::var(name).ok()) {
                Ok(url) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
                    problems.push(
                        "cluster.redis_url must start with redis:// or rediss:// (TLS), e.g. redis://127.0.0.1:6379"
                            .to_owned(),
                    );
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("cluster.redis_url: {e}")),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_key_is_named() {
        assert!(ClusterConfig::default().check().is_empty());
        let bad = ClusterConfig {
            redis_url: Some(Secret("http://redis:6379".into())),
            timeout_ms: 0,
            retry_ms: 0,
            lease_ttl_ms: 100,
            key_prefix: "has space".into(),
            ..ClusterConfig::default()
        };
        let problems = bad.check().join("\n");
        for key in [
            "cluster.redis_url must start with redis://",
            "cluster.timeout_ms",
            "cluster.retry_ms",
            "cluster.lease_ttl_ms",
            "cluster.key_prefix",
        ] {
            assert!(problems.contains(key), "{key} missing from:\n{problems}");
        }
        let unset = ClusterConfig {
            redis_url: Some(Secret("env:TTA_TEST_SURELY_UNSET_REDIS_URL".into())),
            ..ClusterConfig::default()
        };
        let problems = unset.check().join("\n");
        assert!(problems.contains("TTA_TEST_SURELY_UNSET_REDIS_URL"), "{problems}");
        let parsed: ClusterConfig =
            toml::from_str("redis_url = \"redis://127.0.0.1:6379\"\non_unavailable = \"reject\"\n")
                .expect("a cluster section");
        assert_eq!(parsed.on_unavailable, OnUnavailable::Reject);
        assert!(toml::from_str::<ClusterConfig>("on_unavailable = \"maybe\"\n").is_err());
    }
}
