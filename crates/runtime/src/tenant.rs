//! Tenants: who may call, with which key, what they may reach, and the quotas that fence
//! them in.
//!
//! Keys are never stored: the config holds the SHA-256 of each key, a request's bearer key
//! is hashed and compared with every stored hash in constant time. What a tenant may reach
//! is an [`Access`], carried by each of its calls down to nested `invoke`s, so a guest can
//! never reach past its tenant. Quotas are checked before any work starts: a token bucket
//! for calls per second and a counter of calls in flight, neither of which queues.
//!
//! Uploads are a tenant's work too: each holds one of its in-flight slots, takes a token of
//! its own upload rate, reserves its place under `max_uploads` before its body is read (so
//! concurrent uploads cannot pass the quota), and compiles one at a time per tenant.

use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tta_core::config::{GuestValues, HttpPolicy, Limits, Quotas, TenantConfig};
use tta_core::credentials;
use tta_core::guest_config::GuestConfig;

/// A name pattern of an allowlist: a name, `prefix*`, or `*`.
#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    Any,
    Prefix(String),
    Exact(String),
}

impl Pattern {
    fn parse(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some("") => Pattern::Any,
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(text.to_owned()),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Pattern::Exact(exact) => name == exact,
        }
    }
}

/// What a tenant may reach. Carried by every call it makes, down to nested `invoke`s.
#[derive(Debug)]
pub struct Access {
    /// The tenant.
    pub tenant: String,
    primitives: Vec<Pattern>,
    workflows: Vec<Pattern>,
    /// Outgoing HTTP its guests may make.
    pub http: HttpPolicy,
}

impl Access {
    /// Access to the listed shared primitives and workflows.
    pub fn new(tenant: &str, primitives: &[String], workflows: &[String], http: HttpPolicy) -> Self {
        Access {
            tenant: tenant.to_owned(),
            primitives: primitives.iter().map(|p| Pattern::parse(p)).collect(),
            workflows: workflows.iter().map(|p| Pattern::parse(p)).collect(),
            http,
        }
    }

    /// Whether the tenant may call the shared primitive `name`.
    pub fn may_call(&self, name: &str) -> bool {
        self.primitives.iter().any(|p| p.matches(name))
    }

    /// Whether the tenant may run the workflow `name`.
    pub fn may_run(&self, name: &str) -> bool {
        self.workflows.iter().any(|p| p.matches(name))
    }
}

/// Why a tenant may not start a call now.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// Its calls-per-second budget is spent.
    #[error("rate limit of {rate} calls per second reached")]
    RateLimited {
        /// The sustained rate.
        rate: f64,
        /// When a call will be accepted again.
        retry_after: Duration,
    },
    /// It has as many calls in flight as it may.
    #[error("concurrency limit of {limit} calls in flight reached")]
    TooManyInFlight {
        /// The limit.
        limit: u32,
    },
    /// Its uploads-per-minute budget is spent.
    #[error("upload rate limit of {per_minute} uploads per minute reached")]
    UploadRateLimited {
        /// The sustained rate.
        per_minute: u32,
        /// When an upload will be accepted again.
        retry_after: Duration,
    },
}

/// Why a tenant may not start an upload of a name now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    /// Keeping one more primitive would pass `max_uploads`.
    #[error(
        "this tenant keeps (or is uploading) {limit} primitives of its own, its maximum; delete one first, or ask for a higher `max_uploads`"
    )]
    QuotaExceeded {
        /// The limit.
        limit: usize,
    },
}

/// A tenant at run time: its identity, access, effective limits and quota state.
#[derive(Debug)]
pub struct Tenant {
    /// The tenant id.
    pub id: String,
    /// What it may reach.
    pub access: Arc<Access>,
    /// The limits its calls run under: the host's, with its quotas applied.
    pub limits: Limits,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Largest response body.
    pub max_response_bytes: usize,
    /// Whether it may upload and delete its own primitives.
    pub uploads: bool,
    /// How many primitives of its own it may keep.
    pub max_uploads: usize,
    /// Calls and uploads it may have in flight at once.
    pub max_concurrent: u32,
    /// Whether its inputs are checked against the input schema before a guest runs.
    pub validate_input: bool,
    key_hashes: Vec<credentials::KeyHash>,
    in_flight: AtomicU32,
    bucket: Option<Mutex<Bucket>>,
    upload_bucket: Mutex<Bucket>,
    uploads_per_minute: u32,
    /// Names being uploaded now, with how many uploads of each: a name holds one place
    /// under `max_uploads` however many uploads of it are in flight.
    uploading: Mutex<std::collections::HashMap<String, usize>>,
    /// One compile at a time per tenant: the shared compile workers are taken in turn
    /// (first come, first served), so a tenant waits for at most one compile of each other.
    compiling: Arc<tokio::sync::Semaphore>,
    /// What its guests read through `wasi:config`, swapped when a secret's file changes.
    config: ArcSwap<GuestConfig>,
    /// The values as the config file gives them, to resolve them again.
    values: (GuestValues, BTreeMap<String, GuestValues>),
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    size: f64,
    tokens: f64,
    last: Instant,
}

/// A slot of a tenant's concurrency quota; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    tenant: Arc<Tenant>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.tenant.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place under a tenant's `max_uploads`, held by an upload from before its body is read
/// until it is registered or has failed; dropping it frees the place.
#[derive(Debug)]
pub struct UploadReservation {
    tenant: Arc<Tenant>,
    name: String,
}

impl Drop for UploadReservation {
    fn drop(&mut self) {
        let mut uploading = lock(&self.tenant.uploading);
        if let Some(n) = uploading.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                uploading.remove(&self.name);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Bucket {
    fn new(rate: f64, size: f64) -> Self {
        Bucket {
            rate,
            size,
            tokens: size,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self) -> Result<(), Duration> {
        self.take_share(1)
    }

    /// Takes a token from the bucket's `1/share` part: `rate / share` per second, at most
    /// `size / share` (and at least one) at once. What one of `share` replicas may admit
    /// alone while the state they share cannot answer.
    fn take_share(&mut self, share: u32) -> Result<(), Duration> {
        let share = f64::from(share.max(1));
        let (rate, size) = (self.rate / share, (self.size / share).max(1.0));
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(size);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = (1.0 - self.tokens) / rate;
            return Err(Duration::from_secs_f64(wait.max(0.001)));
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

impl Tenant {
    /// The tenant `config` declares, under the host's `host_limits`, its unset quotas taken
    /// from `defaults` and, for `max_concurrent`, then `fair_share`. The config must have
    /// passed [`check_tenants`].
    pub fn new(config: &TenantConfig, host_limits: &Limits, defaults: &Quotas, fair_share: u32) -> Self {
        let q = &config.quotas.or(defaults);
        let mut limits = *host_limits;
        if let Some(fuel) = q.fuel {
            limits.fuel = fuel;
        }
        if let Some(timeout) = q.timeout_ms {
            limits.timeout_ms = timeout;
        }
        if let Some(memory) = q.max_memory_bytes {
            limits.max_memory_bytes = memory;
        }
        let max_request_bytes = q.max_request_bytes.unwrap_or(host_limits.max_input_bytes);
        let max_response_bytes = q.max_response_bytes.unwrap_or(host_limits.max_output_bytes);
        limits.max_input_bytes = limits.max_input_bytes.min(max_request_bytes);
        limits.max_output_bytes = limits.max_output_bytes.min(max_response_bytes);
        let bucket = q.calls_per_second.map(|rate| {
            let size = f64::from(q.burst.unwrap_or_else(|| rate.ceil().max(1.0) as u32));
            Mutex::new(Bucket::new(rate, size))
        });
        let per_minute = config.uploads_per_minute.max(1);
        let values = (config.guest_values(), config.overlay.clone());
        Tenant {
            id: config.id.clone(),
            access: Arc::new(Access::new(
                &config.id,
                &config.primitives,
                &config.workflows,
                config.http.clone(),
            )),
            limits,
            max_request_bytes,
            max_response_bytes,
            validate_input: config.validate_input,
            uploads: config.uploads,
            max_uploads: config.max_uploads,
            key_hashes: config
                .api_key_sha256
                .iter()
                .filter_map(|h| credentials::parse_hash(h))
                .collect(),
            max_concurrent: q.max_concurrent.unwrap_or(fair_share.max(1)),
            in_flight: AtomicU32::new(0),
            bucket,
            upload_bucket: Mutex::new(Bucket::new(f64::from(per_minute) / 60.0, f64::from(per_minute))),
            uploads_per_minute: per_minute,
            uploading: Mutex::default(),
            compiling: Arc::new(tokio::sync::Semaphore::new(1)),
            config: ArcSwap::from_pointee(resolve_config(&config.id, &values)),
            values,
        }
    }

    /// What the tenant's guests read through `wasi:config` now.
    pub fn config(&self) -> Arc<GuestConfig> {
        self.config.load_full()
    }

    /// Reads the tenant's secrets again if a file one came from has changed, and swaps them
    /// in; on an error the values in use are kept. `true` when new values were swapped in.
    pub fn refresh_config(&self) -> Result<bool, Vec<String>> {
        if !self.config.load().files_changed() {
            return Ok(false);
        }
        let (base, overlay) = &self.values;
        let fresh = GuestConfig::resolve(base, overlay, &|name| std::env::var(name).ok())?;
        self.config.store(Arc::new(fresh));
        Ok(true)
    }

    /// Takes a call slot and a rate token, or says why not. Nothing waits.
    pub fn admit(self: &Arc<Self>) -> Result<Permit, Refusal> {
        let permit = self.slot()?;
        self.take_rate()?;
        Ok(permit)
    }

    /// Takes a call slot only: for a message whose body is read before it is known to be a
    /// call, so its bytes are charged to the tenant's slots; the call then takes its rate
    /// token with [`Tenant::take_rate`] under the same slot.
    pub fn hold(self: &Arc<Self>) -> Result<Permit, Refusal> {
        self.slot()
    }

    /// Takes a rate token, or says when the next one comes. Nothing waits.
    pub fn take_rate(&self) -> Result<(), Refusal> {
        if let Some(bucket) = &self.bucket {
            let mut b = lock(bucket);
            let rate = b.rate;
            b.take()
                .map_err(|retry_after| Refusal::RateLimited { rate, retry_after })?;
        }
        Ok(())
    }

    /// The sustained rate and the burst, if the tenant has a rate quota.
    pub fn rate(&self) -> Option<(f64, u32)> {
        self.bucket.as_ref().map(|b| {
            let b = lock(b);
            (b.rate, b.size as u32)
        })
    }

    /// [`Tenant::take_rate`] of this replica's `1/share` of the rate: while replicas that
    /// share the tenant's quota cannot reach their shared state, each admits its share.
    pub fn take_rate_share(&self, share: u32) -> Result<(), Refusal> {
        if let Some(bucket) = &self.bucket {
            let mut b = lock(bucket);
            let rate = b.rate / f64::from(share.max(1));
            b.take_share(share)
                .map_err(|retry_after| Refusal::RateLimited { rate, retry_after })?;
        }
        Ok(())
    }

    /// Whether the calls in flight here (the caller's own slot included) fit this replica's
    /// `1/share` of `max_concurrent` (rounded up): the concurrency share of the fallback.
    pub fn check_concurrency_share(&self, share: u32) -> Result<(), Refusal> {
        let limit = self.max_concurrent.div_ceil(share.max(1));
        if self.in_flight() > limit {
            return Err(Refusal::TooManyInFlight { limit });
        }
        Ok(())
    }

    /// Takes an upload slot (one of the in-flight slots calls use) and an upload-rate
    /// token, or says why not. Nothing waits.
    pub fn admit_upload(self: &Arc<Self>) -> Result<Permit, Refusal> {
        let permit = self.slot()?;
        lock(&self.upload_bucket)
            .take()
            .map_err(|retry_after| Refusal::UploadRateLimited {
                per_minute: self.uploads_per_minute,
                retry_after,
            })?;
        Ok(permit)
    }

    fn slot(self: &Arc<Self>) -> Result<Permit, Refusal> {
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit {
            tenant: Arc::clone(self),
        };
        if previous >= self.max_concurrent {
            return Err(Refusal::TooManyInFlight {
                limit: self.max_concurrent,
            });
        }
        Ok(permit)
    }

    /// Reserves a place under `max_uploads` for an upload of `name`, given whether the
    /// tenant keeps `name` already (a replacement takes no new place, nor does a second
    /// upload of a name in flight) and how many primitives it keeps. Checked and taken under one lock, so concurrent uploads of new
    /// names cannot together pass the quota.
    pub fn reserve_upload(
        self: &Arc<Self>,
        name: &str,
        kept: impl Fn(&str) -> bool,
        kept_count: usize,
    ) -> Result<UploadReservation, UploadRefusal> {
        let mut uploading = lock(&self.uploading);
        if !uploading.contains_key(name) && !kept(name) {
            let pending_new = uploading.keys().filter(|n| !kept(n)).count();
            if kept_count + pending_new >= self.max_uploads {
                return Err(UploadRefusal::QuotaExceeded {
                    limit: self.max_uploads,
                });
            }
        }
        *uploading.entry(name.to_owned()).or_default() += 1;
        Ok(UploadReservation {
            tenant: Arc::clone(self),
            name: name.to_owned(),
        })
    }

    /// The tenant's turn to compile: one upload at a time per tenant.
    pub fn compile_turn(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.compiling)
    }

    /// Calls of this tenant in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// The tenants of a host, found by API key.
#[derive(Debug, Default)]
pub struct Tenants {
    tenants: Vec<Arc<Tenant>>,
}

impl Tenants {
    /// The tenants `configs` declare, unset quotas taken from `defaults` (`max_concurrent`
    /// then from `fair_share`). The configs must have passed [`check_tenants`].
    pub fn new(configs: &[TenantConfig], host_limits: &Limits, defaults: &Quotas, fair_share: u32) -> Self {
        Tenants {
            tenants: configs
                .iter()
                .map(|c| Arc::new(Tenant::new(c, host_limits, defaults, fair_share)))
                .collect(),
        }
    }

    /// The tenant whose key this is. Every stored hash is compared, in constant time, so
    /// the time taken says nothing about which key (if any) matched.
    pub fn authenticate(&self, key: &str) -> Option<Arc<Tenant>> {
        let hash = credentials::hash(key);
        let mut found = None;
        for tenant in &self.tenants {
            if credentials::matches(&tenant.key_hashes, &hash) {
                found = Some(Arc::clone(tenant));
            }
        }
        found
    }

    /// The tenant with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.tenants.iter().find(|t| t.id == id)
    }

    /// Reads again the secrets of every tenant whose secret files changed; a tenant whose
    /// files cannot be read keeps the values it has, and the problem is logged by name.
    pub fn refresh_config(&self) {
        for tenant in &self.tenants {
            match tenant.refresh_config() {
                Ok(true) => {
                    tracing::info!(tenant = %tenant.id, "the tenant's secrets changed on disk; its calls read the new values")
                }
                Ok(false) => {}
                Err(problems) => tracing::warn!(
                    tenant = %tenant.id,
                    problems = %problems.join("; "),
                    "the tenant's secret files changed but cannot be read; keeping the values in use"
                ),
            }
        }
    }

    /// All tenants, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.iter()
    }
}

/// The tenant's values resolved; the config has passed [`check_tenants`], so a reference
/// that fails now (its variable unset or file removed since) leaves the tenant without
/// values, and says so.
fn resolve_config(tenant: &str, (base, overlay): &(GuestValues, BTreeMap<String, GuestValues>)) -> GuestConfig {
    GuestConfig::resolve(base, overlay, &|name| std::env::var(name).ok()).unwrap_or_else(|problems| {
        tracing::error!(tenant, problems = %problems.join("; "), "the tenant's secrets cannot be read; its guests see no config values");
        GuestConfig::default()
    })
}

/// The SHA-256 of an API key, hex: what the config stores.
pub fn hash_key(key: &str) -> String {
    hex::encode(credentials::hash(key))
}

/// A new random API key: 32 bytes, hex, prefixed so it is recognisable in a leak scan.
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("tta_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(toml_text: &str) -> Arc<Tenant> {
        let config: TenantConfig = toml::from_str(toml_text).expect("valid tenant");
        Arc::new(Tenant::new(&config, &Limits::default(), &Quotas::default(), u32::MAX))
    }

    #[test]
    fn keys_match_by_hash_only() {
        let key = generate_key();
        let config: TenantConfig =
            toml::from_str(&format!("id = \"a\"\napi_key_sha256 = [\"{}\"]", hash_key(&key))).expect("valid");
        let tenants = Tenants::new(&[config], &Limits::default(), &Quotas::default(), u32::MAX);
        assert_eq!(tenants.authenticate(&key).map(|t| t.id.clone()), Some("a".to_owned()));
        assert!(tenants.authenticate("wrong").is_none());
        assert!(tenants.authenticate(&hash_key(&key)).is_none(), "the hash is not a key");
    }

    #[test]
    fn concurrency_quota_refuses_and_frees() {
        let t = tenant("id = \"a\"\n[quotas]\nmax_concurrent = 1\n");
        let first = t.admit().expect("first call");
        assert_eq!(t.admit().expect_err("second"), Refusal::TooManyInFlight { limit: 1 });
        drop(first);
        assert!(t.admit().is_ok());
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn rate_quota_refuses_with_retry_after() {
        let t = tenant("id = \"a\"\n[quotas]\ncalls_per_second = 1.0\nburst = 2\n");
        assert!(t.admit().is_ok());
        assert!(t.admit().is_ok());
        match t.admit() {
            Err(Refusal::RateLimited { retry_after, .. }) => assert!(retry_after <= Duration::from_secs(1)),
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    #[test]
    fn a_share_of_the_quota_is_its_part_of_rate_burst_and_concurrency() {
        let t = tenant("id = \"a\"\n[quotas]\ncalls_per_second = 10.0\nburst = 9\nmax_concurrent = 5\n");
        assert_eq!(t.rate(), Some((10.0, 9)));
        // A third of a burst of 9 is 3 at once.
        for _ in 0..3 {
            assert!(t.take_rate_share(3).is_ok());
        }
        match t.take_rate_share(3) {
            Err(Refusal::RateLimited { rate, retry_after }) => {
                assert!((rate - 10.0 / 3.0).abs() < 1e-9);
                assert!(retry_after <= Duration::from_millis(300), "{retry_after:?}");
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // A third of 5 in flight, rounded up, is 2.
        let first = t.hold().expect("a slot");
        assert!(t.check_concurrency_share(3).is_ok());
        let second = t.hold().expect("a slot");
        assert!(t.check_concurrency_share(3).is_ok());
        let _third = t.hold().expect("a slot");
        assert_eq!(t.check_concurrency_share(3), Err(Refusal::TooManyInFlight { limit: 2 }));
        drop((first, second));
        assert!(t.check_concurrency_share(3).is_ok());
    }

    #[test]
    fn upload_places_are_reserved_under_one_lock() {
        let t = tenant("id = \"a\"\nuploads = true\nmax_uploads = 3\n");
        let kept = |name: &str| name == "kept";
        let first = t.reserve_upload("new-1", kept, 1).expect("a place");
        let second = t.reserve_upload("new-2", kept, 1).expect("the last place");
        assert_eq!(
            t.reserve_upload("new-3", kept, 1).expect_err("full"),
            UploadRefusal::QuotaExceeded { limit: 3 }
        );
        let again = t
            .reserve_upload("new-1", kept, 1)
            .expect("a name in flight holds one place");
        assert!(
            t.reserve_upload("kept", kept, 1).is_ok(),
            "a replacement takes no new place"
        );
        drop((first, second));
        let third = t.reserve_upload("new-3", kept, 1).expect("new-2's place came back");
        assert_eq!(
            t.reserve_upload("new-4", kept, 1)
                .expect_err("new-1 is still in flight"),
            UploadRefusal::QuotaExceeded { limit: 3 }
        );
        drop((again, third));
        assert!(
            t.reserve_upload("new-4", kept, 1).is_ok(),
            "places come back when uploads end"
        );
    }

    #[test]
    fn unset_quotas_take_the_defaults_and_then_the_fair_share() {
        let config: TenantConfig = toml::from_str("id = \"a\"\n").expect("valid");
        let defaults = Quotas {
            fuel: Some(7),
            ..Quotas::default()
        };
        let t = Tenant::new(&config, &Limits::default(), &defaults, 16);
        assert_eq!(t.limits.fuel, 7);
        assert_eq!(t.max_concurrent, 16);
        let own: TenantConfig = toml::from_str("id = \"b\"\n[quotas]\nmax_concurrent = 2\nfuel = 9\n").expect("valid");
        let t = Tenant::new(&own, &Limits::default(), &defaults, 16);
        assert_eq!((t.limits.fuel, t.max_concurrent), (9, 2));
    }

    #[test]
    fn patterns() {
        let access = Access::new("a", &["echo".into(), "text-*".into()], &[], HttpPolicy::default());
        assert!(access.may_call("echo") && access.may_call("text-upper"));
        assert!(!access.may_call("echo2") && !access.may_run("anything"));
    }
}
