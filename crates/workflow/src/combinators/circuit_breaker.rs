//! `circuit_breaker = { step = "a", failures = 5, window_ms = 10000, cooldown_ms = 30000 }`:
//! a failing step is not called for a while; then one trial call decides.
//!
//! `shared = true` keeps the state in the store the cluster's replicas share (per tenant):
//! open on one replica is open on all, and of the half-open cluster only one call, on one
//! replica, is the trial. A host outside a cluster, or a store that does not answer in
//! time, uses this host's own breaker for the call.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Kind, StepCall, StepRef, StepResult, StepSpan, required, text};
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tta_core::error::{StepError, StepErrorKind};
use tta_core::shared_store::{BreakerEntry, BreakerSettings, BreakerState as SharedState};

/// `circuit_breaker = { step = "a", failures = 5, window_ms = 10000, cooldown_ms = 30000 }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// The step guarded.
    #[schemars(with = "Option<String>")]
    pub step: Option<StepRef>,
    /// Failures within `window_ms` that open the breaker.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// The window failures are counted in, in milliseconds.
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// How long the breaker stays open before letting one call through, in milliseconds.
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
    /// Keep the state in the cluster's shared store, so every replica sees it.
    #[serde(default)]
    pub shared: bool,
}

fn default_failures() -> u32 {
    5
}

fn default_window_ms() -> u64 {
    10_000
}

fn default_cooldown_ms() -> u64 {
    30_000
}

impl Definition for CircuitBreaker {
    fn key(&self) -> &'static str {
        "circuit_breaker"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        self.step.iter().map(|r| ("circuit_breaker.step".into(), r)).collect()
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        c.need(
            span.clone(),
            format!("{at}.circuit_breaker.step"),
            self.step.is_some(),
            "`step`, the step guarded",
        );
        if self.failures == 0 || self.window_ms == 0 || self.cooldown_ms == 0 {
            c.report(
                span,
                format!("{at}.circuit_breaker"),
                "`failures`, `window_ms` and `cooldown_ms` must be at least 1",
            );
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        cx.combinator(Breaker {
            step: cx.at(required(cx, self.step.as_ref())?),
            failures: self.failures,
            window: Duration::from_millis(self.window_ms),
            cooldown: Duration::from_millis(self.cooldown_ms),
            shared: self.shared,
            state: Mutex::new(BreakerState {
                phase: BreakerPhase::Closed,
                failures: VecDeque::new(),
                opened_at: None,
                trial_running: false,
            }),
        })
    }
}

struct Breaker {
    step: usize,
    failures: u32,
    window: Duration,
    cooldown: Duration,
    shared: bool,
    state: Mutex<BreakerState>,
}

impl Breaker {
    fn settings(&self) -> BreakerSettings {
        BreakerSettings {
            failures: self.failures,
            window: self.window,
            cooldown: self.cooldown,
        }
    }

    fn open_error(name: &str, left: Duration) -> StepError {
        StepError::new(
            name,
            StepErrorKind::CircuitOpen,
            format!(
                "circuit breaker `{name}` is open after repeated failures; it lets a trial call through in {} ms",
                left.as_millis()
            ),
        )
    }
}

impl Combinator for Breaker {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            let (workflow, _) = run.labels();
            let gauge = run.metrics().circuit_breaker_state.with_label_values(&[workflow, name]);
            let breaker = format!("{}:{name}", run.workflow_name());
            if let Some(store) = run.shared_store().filter(|_| self.shared)
                && let Ok(entry) = store.breaker_enter(run.tenant(), &breaker, self.settings()).await
            {
                let trial = match entry {
                    BreakerEntry::Open(left) => {
                        span.attr("circuit_breaker.state", text("open"));
                        gauge.set(BreakerPhase::Open.gauge());
                        return Err(Self::open_error(name, left));
                    }
                    BreakerEntry::Trial => {
                        transition(span, &mut BreakerPhase::Open, BreakerPhase::HalfOpen);
                        true
                    }
                    BreakerEntry::Closed => false,
                };
                span.attr(
                    "circuit_breaker.state",
                    text(if trial { "half_open" } else { "closed" }),
                );
                let result = run.step(self.step, input, scope).await;
                let after = store
                    .breaker_exit(run.tenant(), &breaker, self.settings(), result.is_ok(), trial)
                    .await;
                let phase = match after {
                    Ok(SharedState::Open) => BreakerPhase::Open,
                    Ok(SharedState::Closed) => BreakerPhase::Closed,
                    Err(_) => return result,
                };
                let before = if trial {
                    BreakerPhase::HalfOpen
                } else {
                    BreakerPhase::Closed
                };
                if phase != before {
                    transition(span, &mut before.clone(), phase);
                }
                gauge.set(phase.gauge());
                return result;
            }
            let trial = {
                let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if s.phase == BreakerPhase::Open && s.opened_at.is_some_and(|at| at.elapsed() >= self.cooldown) {
                    transition(span, &mut s.phase, BreakerPhase::HalfOpen);
                    gauge.set(s.phase.gauge());
                }
                span.attr("circuit_breaker.state", text(s.phase.name()));
                match s.phase {
                    BreakerPhase::Closed => false,
                    BreakerPhase::HalfOpen if !s.trial_running => {
                        s.trial_running = true;
                        true
                    }
                    _ => {
                        let left = s
                            .opened_at
                            .map_or(Duration::ZERO, |at| self.cooldown.saturating_sub(at.elapsed()));
                        return Err(Self::open_error(name, left));
                    }
                }
            };
            let result = run.step(self.step, input, scope).await;
            let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if trial {
                s.trial_running = false;
            }
            match (&result, s.phase) {
                (Ok(_), BreakerPhase::HalfOpen) => {
                    transition(span, &mut s.phase, BreakerPhase::Closed);
                    s.failures.clear();
                    s.opened_at = None;
                }
                (Err(_), BreakerPhase::HalfOpen) => {
                    transition(span, &mut s.phase, BreakerPhase::Open);
                    s.opened_at = Some(Instant::now());
                }
                (Err(_), BreakerPhase::Closed) => {
                    let now = Instant::now();
                    s.failures.push_back(now);
                    while s.failures.front().is_some_and(|t| now.duration_since(*t) > self.window) {
                        s.failures.pop_front();
                    }
                    if s.failures.len() >= self.failures as usize {
                        transition(span, &mut s.phase, BreakerPhase::Open);
                        s.opened_at = Some(now);
                        s.failures.clear();
                    }
                }
                _ => {}
            }
            gauge.set(s.phase.gauge());
            result
        })
    }
}

fn transition(span: &mut StepSpan, phase: &mut BreakerPhase, to: BreakerPhase) {
    span.event(
        &format!("circuit_breaker.{}", to.name()),
        vec![("from".into(), text(phase.name())), ("to".into(), text(to.name()))],
    );
    *phase = to;
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerPhase {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail at once until the cooldown ends.
    Open,
    /// One trial call goes through; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerPhase {
    /// The `circuit_breaker_state` gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerPhase::Closed => 0,
            BreakerPhase::Open => 1,
            BreakerPhase::HalfOpen => 2,
        }
    }

    /// Its name in span attributes and events.
    pub fn name(self) -> &'static str {
        match self {
            BreakerPhase::Closed => "closed",
            BreakerPhase::Open => "open",
            BreakerPhase::HalfOpen => "half_open",
        }
    }
}

struct BreakerState {
    phase: BreakerPhase,
    failures: VecDeque<Instant>,
    opened_at: Option<Instant>,
    trial_running: bool,
}
