//! `.ttarec`, version 1: what one call (or one workflow run) needs to be run again exactly.
//!
//! A guest is deterministic except where it asks the host: the clocks, random numbers,
//! `wasi:config` values, nested `invoke` calls and `wasi:http` responses. A recording keeps the
//! call's component digest, input, context and limits, and the answer to every such question
//! in the order the guest asked (the tape), so a replay can feed the same answers back and
//! compare what comes out: the output, the error, the span tree and the fuel.
//!
//! Secrets are never stored: a `wasi:config` read of a secret is kept as a marker, and every
//! payload (input, output, bodies, values) is scrubbed of the call's secret values before it
//! is written. The file is a gzip stream of one JSON document ([`file`]); `docs/recording.md`
//! describes every field.

pub mod file;
mod payload;

pub use file::RecordingError;
pub use payload::Payload;

use crate::config::Limits;
use serde::{Deserialize, Serialize};

/// The value of [`Recording::format`].
pub const FORMAT: &str = "ttarec";
/// The version this host writes and reads.
pub const VERSION: u32 = 1;

/// One recorded call, or one recorded workflow run and its calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Always `ttarec`.
    pub format: String,
    /// The format's version: `1`.
    pub version: u32,
    /// The tta-host version that recorded it.
    pub host_version: String,
    /// When the call started, in milliseconds since the Unix epoch.
    pub recorded_at_ms: u64,
    /// The workflow run, when the recording is of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowRecord>,
    /// The calls: one for a primitive call; each leaf call in the order it started for a
    /// workflow. A nested `invoke` call is part of its caller's tape, not a call here.
    pub calls: Vec<CallRecord>,
}

/// A recorded workflow run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRecord {
    /// The workflow's name.
    pub name: String,
    /// The workflow file's text as it was run.
    pub source: String,
    /// The run's input.
    pub input: Payload,
    /// How the run ended.
    pub outcome: Outcome,
}

/// One recorded call: what it was given, what it asked the host, how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CallRecord {
    /// The primitive's name.
    pub primitive: String,
    /// Its version, as it described itself.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// The component file it was loaded from, when it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The context the guest was given.
    pub context: RecordedContext,
    /// The limits it ran under (every field, so a replay runs under the same).
    pub limits: Limits,
    /// Its input.
    pub input: Payload,
    /// What `wasi:random/insecure-seed` answered.
    pub insecure_seed: String,
    /// Every answer of the host the guest asked for, in order.
    pub tape: Vec<Event>,
    /// How it ended.
    pub outcome: Outcome,
    /// Fuel burned, nested calls included.
    pub fuel: u64,
    /// The call's spans in depth-first order, with their fuel (a nested call's own spans are
    /// its, and not listed).
    pub spans: Vec<SpanRecord>,
}

/// The guest-visible context of a call and the ids of its span.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordedContext {
    /// The correlation id.
    pub correlation_id: String,
    /// The tenant.
    pub tenant: String,
    /// The call span's W3C `traceparent`.
    pub traceparent: String,
    /// The W3C `tracestate`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tracestate: String,
    /// Workflow data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<(String, String)>,
    /// The milliseconds left until the deadline, as the guest was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// One answer of the host, as the guest got it. Consecutive reads of one clock or one
/// random source are kept as one event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// `wasi:clocks/wall-clock.now`, in nanoseconds since the Unix epoch.
    WallClock {
        /// The readings.
        ns: Vec<u64>,
    },
    /// `wasi:clocks/monotonic-clock.now`, in nanoseconds.
    MonotonicClock {
        /// The readings.
        ns: Vec<u64>,
    },
    /// `wasi:random/random` bytes (every `get-random-*` call draws from them).
    Random {
        /// The bytes drawn.
        bytes: Payload,
    },
    /// `wasi:random/insecure` bytes.
    InsecureRandom {
        /// The bytes drawn.
        bytes: Payload,
    },
    /// `wasi:config/store.get`.
    Config {
        /// The key asked for.
        key: String,
        /// What the guest got.
        value: ConfigValue,
    },
    /// `wasi:config/store.get-all`.
    ConfigAll {
        /// Every key and what the guest got for it.
        entries: Vec<(String, ConfigValue)>,
    },
    /// A nested call through `tta:primitives/invoke`.
    Invoke {
        /// The primitive asked for.
        primitive: String,
        /// SHA-256 of the input, hex.
        input_sha256: String,
        /// What the guest got back.
        result: InvokeResult,
        /// The fuel the nested call burned (taken from the caller).
        fuel: u64,
        /// The nested primitive's version, when it ran.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        version: String,
        /// Whether the host refused the call before any guest ran (no such primitive).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        refused: bool,
    },
    /// An outgoing `wasi:http` request and its response.
    Http {
        /// The request's method.
        method: String,
        /// Its URL, scrubbed of secret values.
        url: String,
        /// SHA-256 of the request body, hex; `None` when the body held a secret (a digest of a
        /// guessable secret would give it away).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_sha256: Option<String>,
        /// What came back.
        response: HttpOutcome,
    },
}

impl Event {
    /// What the event is, for messages: `a wall-clock read`, ``invoke `b` ``.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Event::WallClock { .. } => "a wall-clock read".into(),
            Event::MonotonicClock { .. } => "a monotonic-clock read".into(),
            Event::Random { .. } => "secure random bytes".into(),
            Event::InsecureRandom { .. } => "insecure random bytes".into(),
            Event::Config { key, .. } => format!("wasi:config get `{key}`"),
            Event::ConfigAll { .. } => "wasi:config get-all".into(),
            Event::Invoke { primitive, .. } => format!("invoke `{primitive}`"),
            Event::Http { method, url, .. } => format!("HTTP {method} {url}"),
        }
    }
}

/// A `wasi:config` value as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfigValue {
    /// The key had no value.
    Missing,
    /// A plain value.
    Value(String),
    /// A secret: its value is not in the recording, and a replay takes it from `--secret`.
    Secret,
}

/// What a nested call gave back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum InvokeResult {
    /// Its output.
    Ok(Payload),
    /// The error the guest got.
    Err(RecordedError),
}

/// A guest-facing error: the WIT `error` record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordedError {
    /// Its kind, e.g. `invalid-input`.
    pub kind: String,
    /// Its message.
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
}

/// What an outgoing request got.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpOutcome {
    /// A response: its head, and the body as far as the guest read it.
    Response {
        /// The status code.
        status: u16,
        /// The headers, in order.
        headers: Vec<(String, String)>,
        /// The body bytes the guest read.
        body: Payload,
        /// The sizes of the parts the body came in, in order (a guest reading a stream reads
        /// part by part, so a replay hands it the same parts); absent: one part.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        parts: Vec<u32>,
    },
    /// The `wasi:http` error code the guest got, e.g. `HTTP-request-denied`.
    Error(String),
}

/// How a call or a run ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Its output.
    Ok(Payload),
    /// Its error: the class (`error.type`) and the message.
    Err {
        /// The error class, as on the span's `error.type`.
        error_type: String,
        /// The message.
        message: String,
    },
}

/// One span of a recorded call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpanRecord {
    /// How deep under the call span (which is 0).
    pub depth: u32,
    /// Its name.
    pub name: String,
    /// Fuel burned under it, everything below included.
    pub fuel: u64,
}

/// SHA-256 of `bytes`, hex: how a recording names a component, an input or a body.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl WorkflowRecord {
    /// Scrubs the run's input and outcome of the secret values of `redactor`.
    pub fn scrub(&mut self, redactor: &crate::redact::Redactor) {
        redactor.bytes(&mut self.input.0);
        match &mut self.outcome {
            Outcome::Ok(output) => redactor.bytes(&mut output.0),
            Outcome::Err { message, .. } => redactor.text(message),
        }
    }
}

impl Recording {
    /// A new, empty recording of this host version.
    #[must_use]
    pub fn new(recorded_at_ms: u64) -> Self {
        Recording {
            format: FORMAT.to_owned(),
            version: VERSION,
            host_version: env!("CARGO_PKG_VERSION").to_owned(),
            recorded_at_ms,
            workflow: None,
            calls: Vec::new(),
        }
    }
}
