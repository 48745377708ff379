//! One call's tape: the host's answers to the guest, in the order the guest asked.
//!
//! Recording, each import appends what it answered (consecutive reads of one clock or one
//! random source extend one event). Replaying, each import takes the next event instead of
//! asking the world; the first question that does not match the tape is the divergence,
//! kept, and every later question is answered live (clocks, random) or refused (config,
//! `invoke`, HTTP), since the tape no longer says what the world answered.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tta_core::recording::{ConfigValue, Event, HttpOutcome, InvokeResult, Payload, RecordedContext};

/// Whether the tape is being written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers come from the world and are appended.
    Record,
    /// Answers come from the tape.
    Replay,
}

/// The first question of a replay that the tape did not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Which question it was, counting from 1.
    pub index: usize,
    /// What the guest asked.
    pub asked: String,
    /// What the tape had there (`None`: the tape had ended).
    pub recorded: Option<String>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.recorded {
            Some(recorded) => write!(
                f,
                "import #{}: the guest asked for {} where the recording has {}",
                self.index, self.asked, recorded
            ),
            None => write!(
                f,
                "import #{}: the guest asked for {} after the recording's last import",
                self.index, self.asked
            ),
        }
    }
}

/// Which clock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    Wall,
    Monotonic,
}

/// One call's tape.
#[derive(Debug)]
pub struct Tape {
    mode: Mode,
    /// Where the call's record goes in its session.
    pub(crate) slot: usize,
    /// The context a replay gives the guest: the recorded one.
    pub(crate) context: Option<RecordedContext>,
    /// What `wasi:random/insecure-seed` answers.
    pub(crate) insecure_seed: u128,
    /// A replay's secrets, by key.
    secrets: HashMap<String, String>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<Event>,
    /// Replaying: the next event, and how much of it was used.
    next: usize,
    offset: usize,
    asked: usize,
    divergence: Option<Divergence>,
    /// Recording: bytes appended so far (roughly as written), and the bound.
    bytes: usize,
    limit: usize,
    overflowed: bool,
    /// Replaying: secrets the guest read that the replay was not given.
    missing_secrets: Vec<String>,
}

impl Tape {
    /// An empty tape to record on, of at most `limit` bytes.
    pub(crate) fn recording(slot: usize, limit: usize) -> Self {
        Tape {
            mode: Mode::Record,
            slot,
            context: None,
            insecure_seed: rand::random(),
            secrets: HashMap::new(),
            inner: Mutex::new(Inner {
                limit,
                ..Inner::default()
            }),
        }
    }

    /// A recorded tape to replay.
    pub(crate) fn replaying(
        slot: usize,
        events: Vec<Event>,
        context: Option<RecordedContext>,
        insecure_seed: u128,
        secrets: HashMap<String, String>,
        divergence: Option<Divergence>,
    ) -> Self {
        Tape {
            mode: Mode::Replay,
            slot,
            context,
            insecure_seed,
            secrets,
            inner: Mutex::new(Inner {
                events,
                divergence,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the tape is read rather than written.
    pub fn replays(&self) -> bool {
        self.mode == Mode::Replay
    }

    /// The first divergence of a replay.
    pub fn divergence(&self) -> Option<Divergence> {
        self.lock().divergence.clone()
    }

    /// Whether a recording outgrew its bound (and stopped).
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Secrets a replay's guest read that the replay was not given.
    pub fn missing_secrets(&self) -> Vec<String> {
        self.lock().missing_secrets.clone()
    }

    /// The recorded events (a recording's; a replay's are the ones it read).
    pub(crate) fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }

    /// A clock reading: `live` recorded, or the tape's.
    pub(crate) fn clock(&self, clock: Clock, live: impl FnOnce() -> u64) -> u64 {
        let mut inner = self.lock();
        match self.mode {
            Mode::Record => {
                let now = live();
                if inner.room(12) {
                    match (clock, inner.events.last_mut()) {
                        (Clock::Wall, Some(Event::WallClock { ns }))
                        | (Clock::Monotonic, Some(Event::MonotonicClock { ns })) => ns.push(now),
                        (Clock::Wall, _) => inner.events.push(Event::WallClock { ns: vec![now] }),
                        (Clock::Monotonic, _) => inner.events.push(Event::MonotonicClock { ns: vec![now] }),
                    }
                }
                now
            }
            Mode::Replay => {
                let asked = match clock {
                    Clock::Wall => "a wall-clock read",
                    Clock::Monotonic => "a monotonic-clock read",
                };
                let at = inner.question();
                let (next, offset) = (inner.next, inner.offset);
                let found = match (clock, inner.events.get(next)) {
                    (Clock::Wall, Some(Event::WallClock { ns }))
                    | (Clock::Monotonic, Some(Event::MonotonicClock { ns })) => ns.get(offset).map(|n| (*n, ns.len())),
                    _ => None,
                };
                match found {
                    Some((now, len)) if inner.divergence.is_none() => {
                        inner.advance(offset + 1 >= len);
                        now
                    }
                    _ => {
                        inner.diverge(at, asked.into());
                        live()
                    }
                }
            }
        }
    }

    /// Random bytes into `dst`: drawn by `live` and recorded, or the tape's.
    pub(crate) fn random(&self, secure: bool, dst: &mut [u8], live: impl FnOnce(&mut [u8])) {
        let mut inner = self.lock();
        match self.mode {
            Mode::Record => {
                live(dst);
                if inner.room(dst.len() * 2) {
                    match (secure, inner.events.last_mut()) {
                        (true, Some(Event::Random { bytes })) | (false, Some(Event::InsecureRandom { bytes })) => {
                            bytes.0.extend_from_slice(dst);
                        }
                        (true, _) => inner.events.push(Event::Random {
                            bytes: Payload(dst.to_vec()),
                        }),
                        (false, _) => inner.events.push(Event::InsecureRandom {
                            bytes: Payload(dst.to_vec()),
                        }),
                    }
                }
            }
            Mode::Replay => {
                let at = inner.question();
                let (next, offset) = (inner.next, inner.offset);
                let stored = match (secure, inner.events.get(next)) {
                    (true, Some(Event::Random { bytes })) | (false, Some(Event::InsecureRandom { bytes })) => bytes
                        .0
                        .get(offset..offset + dst.len())
                        .map(|b| (b.to_vec(), bytes.0.len())),
                    _ => None,
                };
                match stored {
                    Some((bytes, len)) if inner.divergence.is_none() => {
                        dst.copy_from_slice(&bytes);
                        inner.offset += dst.len();
                        if inner.offset >= len {
                            inner.advance(true);
                        }
                    }
                    _ => {
                        let what = if secure { "secure" } else { "insecure" };
                        inner.diverge(at, format!("{} {what} random bytes", dst.len()));
                        live(dst);
                    }
                }
            }
        }
    }

    /// A `wasi:config` read of `key`: `live` recorded (a secret as a marker), or the tape's.
    pub(crate) fn config(&self, key: &str, live: Option<&str>, is_secret: impl Fn(&str) -> bool) -> Option<String> {
        let mut inner = self.lock();
        match self.mode {
            Mode::Record => {
                let value = recorded_value(live, &is_secret);
                if inner.room(key.len() + live.map_or(8, str::len) + 32) {
                    inner.events.push(Event::Config {
                        key: key.to_owned(),
                        value,
                    });
                }
                live.map(str::to_owned)
            }
            Mode::Replay => {
                let at = inner.question();
                let found = match inner.events.get(inner.next) {
                    Some(Event::Config { key: k, value }) if k == key => Some(value.clone()),
                    _ => None,
                };
                match found {
                    Some(value) if inner.divergence.is_none() => {
                        inner.advance(true);
                        self.answer(&mut inner, key, value)
                    }
                    _ => {
                        inner.diverge(at, format!("wasi:config get `{key}`"));
                        None
                    }
                }
            }
        }
    }

    /// A `wasi:config` read of every key: `live` recorded, or the tape's.
    pub(crate) fn config_all(
        &self,
        live: Vec<(String, String)>,
        is_secret: impl Fn(&str) -> bool,
    ) -> Vec<(String, String)> {
        let mut inner = self.lock();
        match self.mode {
            Mode::Record => {
                let size = live.iter().map(|(k, v)| k.len() + v.len() + 16).sum::<usize>();
                if inner.room(size + 32) {
                    let entries = live
                        .iter()
                        .map(|(k, v)| (k.clone(), recorded_value(Some(v), &is_secret)))
                        .collect();
                    inner.events.push(Event::ConfigAll { entries });
                }
                live
            }
            Mode::Replay => {
                let at = inner.question();
                let found = match inner.events.get(inner.next) {
                    Some(Event::ConfigAll { entries }) => Some(entries.clone()),
                    _ => None,
                };
                match found {
                    Some(entries) if inner.divergence.is_none() => {
                        inner.advance(true);
                        entries
                            .into_iter()
                            .filter_map(|(k, v)| self.answer(&mut inner, &k, v).map(|v| (k, v)))
                            .collect()
                    }
                    _ => {
                        inner.diverge(at, "wasi:config get-all".into());
                        Vec::new()
                    }
                }
            }
        }
    }

    fn answer(&self, inner: &mut Inner, key: &str, value: ConfigValue) -> Option<String> {
        match value {
            ConfigValue::Missing => None,
            ConfigValue::Value(v) => Some(v),
            ConfigValue::Secret => Some(self.secrets.get(key).cloned().unwrap_or_else(|| {
                if !inner.missing_secrets.iter().any(|k| k == key) {
                    inner.missing_secrets.push(key.to_owned());
                }
                String::new()
            })),
        }
    }

    /// Records a nested call and what it gave back (`version` is `None` when the host refused
    /// it before any guest ran).
    pub(crate) fn record_invoke(
        &self,
        primitive: &str,
        input: &[u8],
        result: InvokeResult,
        fuel: u64,
        version: Option<&str>,
    ) {
        let mut inner = self.lock();
        let size = match &result {
            InvokeResult::Ok(p) => p.0.len() * 2,
            InvokeResult::Err(e) => e.message.len(),
        };
        if inner.room(size + primitive.len() + 128) {
            inner.events.push(Event::Invoke {
                primitive: primitive.to_owned(),
                input_sha256: sha256(input),
                result,
                fuel,
                version: version.unwrap_or_default().to_owned(),
                refused: version.is_none(),
            });
        }
    }

    /// A replayed nested call: what it gave back, its fuel and version (`None`: refused before
    /// any guest ran); `None` (and the divergence kept) when the tape does not have this call
    /// next.
    pub(crate) fn replay_invoke(&self, primitive: &str, input: &[u8]) -> Option<(InvokeResult, u64, Option<String>)> {
        let mut inner = self.lock();
        let at = inner.question();
        let digest = sha256(input);
        let found = match inner.events.get(inner.next) {
            Some(Event::Invoke {
                primitive: p,
                input_sha256,
                result,
                fuel,
                version,
                refused,
            }) if p == primitive && *input_sha256 == digest => {
                Some((result.clone(), *fuel, (!refused).then(|| version.clone())))
            }
            Some(Event::Invoke { primitive: p, .. }) if p == primitive => {
                inner.diverge(at, format!("invoke `{primitive}` with another input"));
                return None;
            }
            _ => None,
        };
        match found {
            Some(answer) if inner.divergence.is_none() => {
                inner.advance(true);
                Some(answer)
            }
            _ => {
                inner.diverge(at, format!("invoke `{primitive}`"));
                None
            }
        }
    }

    /// Starts recording an outgoing request; the event's index, to complete it with
    /// [`Tape::update_http`] as its body and response arrive.
    pub(crate) fn begin_http(&self, method: &str, url: &str) -> Option<usize> {
        let mut inner = self.lock();
        if !inner.room(url.len() + 128) {
            return None;
        }
        inner.events.push(Event::Http {
            method: method.to_owned(),
            url: url.to_owned(),
            body_sha256: None,
            response: HttpOutcome::Error("pending".into()),
        });
        Some(inner.events.len() - 1)
    }

    /// Changes the recorded request `index`: `grow` bytes more of it, within the bound.
    pub(crate) fn update_http(
        &self,
        index: usize,
        grow: usize,
        change: impl FnOnce(&mut Option<String>, &mut HttpOutcome),
    ) -> bool {
        let mut inner = self.lock();
        if !inner.room(grow) {
            return false;
        }
        if let Some(Event::Http {
            body_sha256, response, ..
        }) = inner.events.get_mut(index)
        {
            change(body_sha256, response);
        }
        true
    }

    /// A replayed request: the recorded body digest and response; `None` (and the
    /// divergence kept) when the tape does not have this request next.
    pub(crate) fn replay_http(&self, method: &str, url: &str) -> Option<(usize, Option<String>, HttpOutcome)> {
        let mut inner = self.lock();
        let at = inner.question();
        let found = match inner.events.get(inner.next) {
            Some(Event::Http {
                method: m,
                url: u,
                body_sha256,
                response,
            }) if m == method && u == url => Some((body_sha256.clone(), response.clone())),
            _ => None,
        };
        match found {
            Some((digest, response)) if inner.divergence.is_none() => {
                inner.advance(true);
                Some((at, digest, response))
            }
            _ => {
                inner.diverge(at, format!("HTTP {method} {url}"));
                None
            }
        }
    }

    /// Notes that replayed request `at` sent another body than recorded.
    pub(crate) fn diverge_body(&self, at: usize, method: &str, url: &str) {
        self.lock()
            .diverge_with(at, format!("HTTP {method} {url} with another body"), None);
    }
}

impl Inner {
    /// Counts a question and returns its number.
    fn question(&mut self) -> usize {
        self.asked += 1;
        self.asked
    }

    fn advance(&mut self, whole: bool) {
        if whole {
            self.next += 1;
            self.offset = 0;
        } else {
            self.offset += 1;
        }
    }

    fn diverge(&mut self, at: usize, asked: String) {
        let recorded = self.events.get(self.next).map(Event::describe);
        self.diverge_with(at, asked, recorded);
    }

    fn diverge_with(&mut self, index: usize, asked: String, recorded: Option<String>) {
        if self.divergence.is_none() {
            self.divergence = Some(Divergence { index, asked, recorded });
        }
    }

    /// Whether `bytes` more fit the bound; once one does not, nothing more is recorded.
    fn room(&mut self, bytes: usize) -> bool {
        if self.overflowed || self.bytes.saturating_add(bytes) > self.limit {
            self.overflowed = true;
            return false;
        }
        self.bytes += bytes;
        true
    }
}

fn recorded_value(live: Option<&str>, is_secret: &impl Fn(&str) -> bool) -> ConfigValue {
    match live {
        None => ConfigValue::Missing,
        Some(v) if is_secret(v) => ConfigValue::Secret,
        Some(v) => ConfigValue::Value(v.to_owned()),
    }
}

pub(crate) use tta_core::recording::sha256_hex as sha256;

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(events: Vec<Event>) -> Tape {
        let context = RecordedContext {
            correlation_id: String::new(),
            tenant: String::new(),
            traceparent: String::new(),
            tracestate: String::new(),
            data: Vec::new(),
            deadline_ms: None,
        };
        Tape::replaying(0, events, Some(context), 7, HashMap::new(), None)
    }

    #[test]
    fn reads_coalesce_and_replay_in_order() {
        let tape = Tape::recording(0, 1 << 20);
        assert_eq!(tape.clock(Clock::Wall, || 5), 5);
        assert_eq!(tape.clock(Clock::Wall, || 6), 6);
        let mut buf = [0u8; 4];
        tape.random(true, &mut buf, |b| b.copy_from_slice(&[1, 2, 3, 4]));
        tape.random(true, &mut buf, |b| b.copy_from_slice(&[5, 6, 7, 8]));
        assert_eq!(tape.clock(Clock::Monotonic, || 9), 9);
        let events = tape.take_events();
        assert_eq!(events.len(), 3, "{events:?}");
        let tape = replay(events);
        assert_eq!(tape.clock(Clock::Wall, || 0), 5);
        assert_eq!(tape.clock(Clock::Wall, || 0), 6);
        tape.random(true, &mut buf, |_| unreachable!());
        assert_eq!(buf, [1, 2, 3, 4]);
        tape.random(true, &mut buf, |_| unreachable!());
        assert_eq!(buf, [5, 6, 7, 8]);
        assert_eq!(tape.clock(Clock::Monotonic, || 0), 9);
        assert_eq!(tape.divergence(), None);
        assert_eq!(tape.clock(Clock::Monotonic, || 42), 42);
        let divergence = tape.divergence().expect("as expected");
        assert_eq!(divergence.index, 6);
        assert_eq!(divergence.recorded, None);
    }

    #[test]
    fn the_first_other_question_is_the_divergence() {
        let tape = replay(vec![
            Event::WallClock { ns: vec![1] },
            Event::Config {
                key: "k".into(),
                value: ConfigValue::Secret,
            },
        ]);
        let mut buf = [0u8; 2];
        tape.random(false, &mut buf, |b| b.fill(3));
        assert_eq!(buf, [3, 3]);
        let d = tape.divergence().expect("as expected");
        assert_eq!((d.index, d.recorded.as_deref()), (1, Some("a wall-clock read")));
        assert!(d.to_string().contains("2 insecure random bytes"), "{d}");
    }

    #[test]
    fn secrets_are_markers_and_come_from_the_replay() {
        let tape = Tape::recording(0, 1 << 20);
        assert_eq!(
            tape.config("k", Some("s3cret"), |v| v == "s3cret").as_deref(),
            Some("s3cret")
        );
        let events = tape.take_events();
        assert!(!format!("{events:?}").contains("s3cret"));
        let tape = replay(events);
        assert_eq!(tape.config("k", None, |_| false).as_deref(), Some(""));
        assert_eq!(tape.missing_secrets(), vec!["k".to_owned()]);
    }

    #[test]
    fn a_recording_stops_at_its_bound() {
        let tape = Tape::recording(0, 40);
        for n in 0..10 {
            tape.clock(Clock::Wall, || n);
        }
        assert!(tape.overflowed());
    }
}
