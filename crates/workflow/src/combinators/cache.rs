//! `cache = { step = "a", ttl_ms = 60000, … }`: a step's outputs remembered by input (and
//! tenant, and chosen context keys), least recently used first out, bounded by entries and bytes.
//!
//! `store = "redis"` keeps the entries in the store the cluster's replicas share instead,
//! so an output cached through one replica is a hit on the others: under the tenant's own
//! key prefix, with the TTL, each entry at most `max_entry_bytes`. A host outside a
//! cluster, or a store that does not answer in time, uses no entry: a miss, never an error.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Driver, Kind, Scope, StepCall, StepRef, StepResult, required};
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tta_core::bindings::Value;

/// `cache = { step = "a", ttl_ms = 60000, … }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// The step whose outputs are cached.
    #[schemars(with = "Option<String>")]
    pub step: Option<StepRef>,
    /// How long an entry stays valid, in milliseconds.
    pub ttl_ms: Option<u64>,
    /// Entries kept at most (least recently used go first).
    #[serde(default = "default_entries")]
    pub max_entries: usize,
    /// Bytes of outputs kept at most.
    #[serde(default = "default_bytes")]
    pub max_bytes: usize,
    /// Context `data` keys that are part of the key besides the input (the tenant always is).
    #[serde(default)]
    pub key_data: Vec<String>,
    /// Where entries are kept: `local` (this host's memory) or `redis` (the store the
    /// cluster's replicas share, `[cluster]`).
    #[serde(default)]
    pub store: Store,
    /// With `store = "redis"`, the largest output kept; larger ones are not cached.
    #[serde(default = "default_entry_bytes")]
    pub max_entry_bytes: usize,
}

/// Where a cache keeps its entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Store {
    /// This host's memory, least recently used first out.
    #[default]
    Local,
    /// The cluster's shared store (Redis), with the TTL; this host's memory when it has none.
    Redis,
}

fn default_entry_bytes() -> usize {
    1 << 20
}

fn default_entries() -> usize {
    1_000
}

fn default_bytes() -> usize {
    16 << 20
}

impl Definition for Cache {
    fn key(&self) -> &'static str {
        "cache"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        self.step.iter().map(|r| ("cache.step".into(), r)).collect()
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        c.need(
            span.clone(),
            format!("{at}.cache.step"),
            self.step.is_some(),
            "`step`, the step whose outputs are cached",
        );
        match self.ttl_ms {
            None => c.need(
                span.clone(),
                format!("{at}.cache.ttl_ms"),
                false,
                "`ttl_ms`, how long an entry stays valid",
            ),
            Some(0) => c.report(span.clone(), format!("{at}.cache.ttl_ms"), "must be at least 1"),
            Some(_) => {}
        }
        if self.max_entries == 0 || self.max_bytes == 0 || self.max_entry_bytes == 0 {
            c.report(
                span,
                format!("{at}.cache"),
                "`max_entries`, `max_bytes` and `max_entry_bytes` must be at least 1",
            );
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        cx.combinator(Remembered {
            step: cx.at(required(cx, self.step.as_ref())?),
            ttl: Duration::from_millis(self.ttl_ms.unwrap_or(1)),
            key_data: self.key_data.clone(),
            store: Mutex::new(LruStore::new(self.max_entries, self.max_bytes)),
            shared: self.store == Store::Redis,
            max_entry_bytes: self.max_entry_bytes,
        })
    }
}

struct Remembered {
    step: usize,
    ttl: Duration,
    key_data: Vec<String>,
    store: Mutex<LruStore>,
    /// Entries in the cluster's shared store, when the host has one.
    shared: bool,
    max_entry_bytes: usize,
}

impl Remembered {
    /// The entry's key: the workflow, the step, the tenant, the chosen data and the input,
    /// each length-prefixed so no two different tuples hash alike.
    fn key(&self, run: &dyn Driver, name: &str, scope: &Scope, input: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [run.workflow_name().as_bytes(), name.as_bytes(), run.tenant().as_bytes()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        for key in &self.key_data {
            let value = scope
                .data
                .iter()
                .find(|(k, _)| k == key)
                .map_or("", |(_, v)| v.as_str());
            hasher.update((value.len() as u64).to_le_bytes());
            hasher.update(value.as_bytes());
        }
        hasher.update(input);
        hasher.finalize().into()
    }
}

impl Combinator for Remembered {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            let started = Instant::now();
            let key = self.key(run, name, &scope, &input);
            let (workflow, tenant) = run.labels();
            let metrics = run.metrics();
            let shared = run.shared_store().filter(|_| self.shared);
            let hit = match shared {
                // A store that cannot answer is a miss (the store logs why).
                Some(shared) => shared.get(run.tenant(), &key).await.unwrap_or(None),
                None => self
                    .store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&key, self.ttl),
            };
            if let Some(output) = hit {
                metrics.cache_hit.with_label_values(&[workflow, name, tenant]).inc();
                metrics
                    .cache_operation_duration
                    .with_label_values(&[workflow, name, "hit", tenant])
                    .observe(started.elapsed().as_secs_f64());
                span.attr("cache.hit", Value::Boolean(true));
                return Ok((output, scope.data));
            }
            metrics.cache_miss.with_label_values(&[workflow, name, tenant]).inc();
            span.attr("cache.hit", Value::Boolean(false));
            let result = run.step(self.step, input, scope).await;
            if let (Some(shared), Ok((output, _))) = (shared, &result) {
                if output.len() <= self.max_entry_bytes {
                    // An entry the store could not keep is only a later miss.
                    let _ = shared.put(run.tenant(), &key, output, self.ttl).await;
                }
            } else if let Ok((output, _)) = &result {
                let mut store = self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let evicted = store.insert(key, output.clone());
                metrics
                    .cache_size_bytes
                    .with_label_values(&[workflow, name])
                    .set(i64::try_from(store.bytes()).unwrap_or(i64::MAX));
                if evicted > 0 {
                    metrics
                        .cache_evictions
                        .with_label_values(&[workflow, name, tenant])
                        .inc_by(evicted);
                }
            }
            metrics
                .cache_operation_duration
                .with_label_values(&[workflow, name, "miss", tenant])
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// Cached outputs by key, least recently used first, bounded by entries and bytes.
struct LruStore {
    entries: HashMap<[u8; 32], (Vec<u8>, Instant)>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl LruStore {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        LruStore {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// The entry for `key` if it is younger than `ttl`; an expired one is removed.
    fn get(&mut self, key: &[u8; 32], ttl: Duration) -> Option<Vec<u8>> {
        let (value, at) = self.entries.get(key)?;
        if at.elapsed() > ttl {
            self.remove(key);
            return None;
        }
        let value = value.clone();
        self.order.retain(|k| k != key);
        self.order.push_back(*key);
        Some(value)
    }

    /// Stores `value`; returns how many entries were evicted to make room.
    fn insert(&mut self, key: [u8; 32], value: Vec<u8>) -> u64 {
        if value.len() > self.max_bytes {
            return 0;
        }
        self.remove(&key);
        let mut evicted = 0;
        while self.entries.len() >= self.max_entries || self.bytes + value.len() > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((old, _)) = self.entries.remove(&oldest) {
                self.bytes -= old.len();
                evicted += 1;
            }
        }
        self.bytes += value.len();
        self.entries.insert(key, (value, Instant::now()));
        self.order.push_back(key);
        evicted
    }

    fn remove(&mut self, key: &[u8; 32]) {
        if let Some((old, _)) = self.entries.remove(key) {
            self.bytes -= old.len();
            self.order.retain(|k| k != key);
        }
    }

    /// Bytes of outputs held.
    fn bytes(&self) -> usize {
        self.bytes
    }
}
