//! Record and replay: a call's answers from the host kept on a tape, and fed back.
//!
//! A [`Session`] rides on the invocations of one top-level call or one workflow run (never
//! on a nested `invoke` call, whose result is on its caller's tape). The sandbox opens a
//! [`Tape`] from it for each call it runs and closes it with the call's outcome: recording,
//! the session collects one [`CallRecord`] per call; replaying, it hands each call the
//! recorded tape of the same primitive and input and collects what came out, for
//! [`compare`] to set beside the recording.

pub mod compare;
pub(crate) mod sources;
pub mod tape;

pub use compare::{Difference, compare};
pub use tape::{Divergence, Tape};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tta_core::bindings::Context;
use tta_core::config::Limits;
use tta_core::error::CallError;
use tta_core::recording::{
    CallRecord, Event, HttpOutcome, InvokeResult, Outcome, Payload, RecordedContext, SpanRecord,
};
use tta_core::redact::Redactor;
use tta_core::report::CallReport;
use tta_telemetry::cost::{Costs, NodeKind};

/// The recording or replay of one top-level call or workflow run.
#[derive(Debug)]
pub struct Session {
    replay: bool,
    max_call_bytes: usize,
    secrets: HashMap<String, String>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Recording: one slot per call opened, in order, filled as each ends.
    slots: Vec<Option<CallRecord>>,
    /// Recording: calls that outgrew the bound.
    overflowed: Vec<String>,
    /// Replaying: the recorded calls, and which were handed out.
    recorded: Vec<CallRecord>,
    used: Vec<bool>,
    /// Replaying: what each call came out as.
    replayed: Vec<ReplayedCall>,
}

/// One replayed call beside its recording.
#[derive(Debug, Clone)]
pub struct ReplayedCall {
    /// The recorded call it replays (`None`: the recording has no such call).
    pub recorded: Option<CallRecord>,
    /// What the replay came out as.
    pub replayed: CallRecord,
    /// The first import asked for differently.
    pub divergence: Option<Divergence>,
    /// Secrets the guest read that the replay was not given.
    pub missing_secrets: Vec<String>,
}

/// Why a recording could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A call's answers outgrew the bound.
    #[error(
        "the recording of `{primitive}` outgrew {limit} bytes and was not kept; raise `[recording] max_call_bytes`"
    )]
    TooLarge {
        /// The primitive.
        primitive: String,
        /// The bound.
        limit: usize,
    },
    /// Nothing was called.
    #[error("no call ran, so there is nothing to record")]
    Empty,
}

impl Session {
    /// A session that records, each call's tape bounded by `max_call_bytes`.
    #[must_use]
    pub fn record(max_call_bytes: usize) -> Arc<Self> {
        Arc::new(Session {
            replay: false,
            max_call_bytes,
            secrets: HashMap::new(),
            state: Mutex::default(),
        })
    }

    /// A session that replays `calls`, giving the guests `secrets` where they read one. The
    /// calls' options should carry the same secrets in their config, so what a replay comes
    /// out as is scrubbed as the recording was.
    #[must_use]
    pub fn replay(calls: Vec<CallRecord>, secrets: HashMap<String, String>) -> Arc<Self> {
        let used = vec![false; calls.len()];
        Arc::new(Session {
            replay: true,
            max_call_bytes: 0,
            secrets,
            state: Mutex::new(State {
                recorded: calls,
                used,
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tape of a call of `primitive` on `input` that starts now.
    pub(crate) fn open(&self, primitive: &str, input: &[u8]) -> Arc<Tape> {
        let mut state = self.lock();
        if !self.replay {
            state.slots.push(None);
            return Arc::new(Tape::recording(state.slots.len() - 1, self.max_call_bytes));
        }
        let digest = tape::sha256(input);
        let State { recorded, used, .. } = &mut *state;
        let found = recorded
            .iter()
            .enumerate()
            .position(|(i, call)| !used[i] && call.primitive == primitive && tape::sha256(&call.input.0) == digest);
        let Some(index) = found else {
            let divergence = Divergence {
                index: 0,
                asked: format!("a call of `{primitive}` on an input the recording does not have"),
                recorded: None,
            };
            return Arc::new(Tape::replaying(
                usize::MAX,
                Vec::new(),
                None,
                0,
                HashMap::new(),
                Some(divergence),
            ));
        };
        used[index] = true;
        let call = &recorded[index];
        let seed = u128::from_str_radix(&call.insecure_seed, 16).unwrap_or(0);
        Arc::new(Tape::replaying(
            index,
            call.tape.clone(),
            Some(call.context.clone()),
            seed,
            self.secrets.clone(),
            None,
        ))
    }

    /// Closes `tape` with what its call came out as.
    pub(crate) fn close(&self, tape: &Tape, call: Ended<'_>) {
        let events = if tape.replays() { Vec::new() } else { tape.take_events() };
        let record = call.record(tape, events);
        let mut state = self.lock();
        if tape.replays() {
            let recorded = state.recorded.get(tape.slot).cloned();
            state.replayed.push(ReplayedCall {
                recorded,
                replayed: record,
                divergence: tape.divergence(),
                missing_secrets: tape.missing_secrets(),
            });
        } else if tape.overflowed() {
            state.overflowed.push(record.primitive);
        } else if let Some(slot) = state.slots.get_mut(tape.slot) {
            *slot = Some(record);
        }
    }

    /// The recorded calls, in the order they started.
    pub fn recorded(&self) -> Result<Vec<CallRecord>, RecordError> {
        let state = self.lock();
        if let Some(primitive) = state.overflowed.first() {
            return Err(RecordError::TooLarge {
                primitive: primitive.clone(),
                limit: self.max_call_bytes,
            });
        }
        let calls: Vec<CallRecord> = state.slots.iter().flatten().cloned().collect();
        if calls.is_empty() {
            return Err(RecordError::Empty);
        }
        Ok(calls)
    }

    /// What each replayed call came out as, in the order they ended; and the recorded
    /// calls no replayed call asked for.
    pub fn replayed(&self) -> (Vec<ReplayedCall>, Vec<CallRecord>) {
        let state = self.lock();
        let unused = state
            .recorded
            .iter()
            .zip(&state.used)
            .filter(|(_, used)| !**used)
            .map(|(call, _)| call.clone())
            .collect();
        (state.replayed.clone(), unused)
    }
}

/// What the sandbox knows of a call when it ends.
pub(crate) struct Ended<'a> {
    pub primitive: &'a str,
    pub version: &'a str,
    pub digest: &'a str,
    pub path: &'a std::path::Path,
    pub input: &'a [u8],
    pub context: &'a Context,
    pub limits: Limits,
    pub result: &'a Result<Vec<u8>, CallError>,
    pub report: &'a CallReport,
    pub redactor: &'a Redactor,
}

impl Ended<'_> {
    fn record(&self, tape: &Tape, tape_events: Vec<Event>) -> CallRecord {
        let outcome = match self.result {
            Ok(output) => Outcome::Ok(Payload(output.clone())),
            Err(e) => Outcome::Err {
                error_type: e.error_type().to_owned(),
                message: e.to_string(),
            },
        };
        let c = self.context;
        let mut record = CallRecord {
            primitive: self.primitive.to_owned(),
            version: self.version.to_owned(),
            digest: self.digest.to_owned(),
            path: Some(self.path.display().to_string()).filter(|p| !p.is_empty()),
            context: RecordedContext {
                correlation_id: c.correlation_id.clone(),
                tenant: c.tenant.clone(),
                traceparent: c.traceparent.clone(),
                tracestate: c.tracestate.clone(),
                data: c.data.clone(),
                deadline_ms: c.deadline_ms,
            },
            limits: self.limits,
            input: Payload(self.input.to_vec()),
            insecure_seed: format!("{:x}", tape.insecure_seed),
            tape: tape_events,
            outcome,
            fuel: self.report.stats.fuel_consumed,
            spans: span_records(self.report),
        };
        scrub(&mut record, self.redactor);
        record
    }
}

/// The call's spans, depth first, each with its fuel; a nested call is one span (its own
/// are its recording's business, and a replay does not run it).
pub fn span_records(report: &CallReport) -> Vec<SpanRecord> {
    let costs = Costs::of_call(report);
    let mut out = Vec::new();
    let nodes = costs.nodes();
    let mut stack = vec![(0usize, 0u32)];
    while let Some((index, depth)) = stack.pop() {
        let Some(node) = nodes.get(index) else { continue };
        out.push(SpanRecord {
            depth,
            name: node.name.clone(),
            fuel: node.fuel,
        });
        if index == 0 || node.kind != NodeKind::Call {
            stack.extend(node.children.iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    out
}

/// Scrubs every secret value out of what the record keeps.
fn scrub(record: &mut CallRecord, redactor: &Redactor) {
    if redactor.is_empty() {
        return;
    }
    redactor.bytes(&mut record.input.0);
    if let Outcome::Ok(output) = &mut record.outcome {
        redactor.bytes(&mut output.0);
    }
    if let Outcome::Err { message, .. } = &mut record.outcome {
        redactor.text(message);
    }
    for (_, value) in &mut record.context.data {
        redactor.text(value);
    }
    for span in &mut record.spans {
        redactor.text(&mut span.name);
    }
    for event in &mut record.tape {
        match event {
            Event::Config {
                value: tta_core::recording::ConfigValue::Value(v),
                ..
            } => redactor.text(v),
            Event::ConfigAll { entries } => {
                for (_, value) in entries {
                    if let tta_core::recording::ConfigValue::Value(v) = value {
                        redactor.text(v);
                    }
                }
            }
            Event::Invoke { primitive, result, .. } => {
                redactor.text(primitive);
                match result {
                    InvokeResult::Ok(output) => redactor.bytes(&mut output.0),
                    InvokeResult::Err(e) => redactor.text(&mut e.message),
                }
            }
            Event::Http { url, response, .. } => {
                redactor.text(url);
                if let HttpOutcome::Response { headers, body, .. } = response {
                    for (_, value) in headers {
                        redactor.text(value);
                    }
                    redactor.bytes(&mut body.0);
                }
            }
            Event::WallClock { .. }
            | Event::MonotonicClock { .. }
            | Event::Random { .. }
            | Event::InsecureRandom { .. }
            | Event::Config { .. } => {}
        }
    }
}
