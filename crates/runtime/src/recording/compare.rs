//! What a replay came out as beside its recording: identical, or the first difference of
//! each kind, most telling first (the import asked for differently explains the rest).

use super::ReplayedCall;
use super::tape::Divergence;
use tta_core::recording::{Outcome, SpanRecord};

/// One way a replayed call differs from its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The guest asked the host for something the recording does not have there.
    Import(Divergence),
    /// Both succeeded, with other output.
    Output {
        /// The first byte that differs.
        at: usize,
        /// The recorded output, as text (cut short).
        recorded: String,
        /// The replayed output, as text (cut short).
        replayed: String,
    },
    /// One failed and the other did not, or they failed differently.
    Error {
        /// The recorded outcome, in words.
        recorded: String,
        /// The replayed outcome, in words.
        replayed: String,
    },
    /// The span trees differ in shape: a span's name or nesting.
    Spans {
        /// The first span (depth first) that differs, counting from 0.
        at: usize,
        /// The recorded span there.
        recorded: Option<SpanRecord>,
        /// The replayed span there.
        replayed: Option<SpanRecord>,
    },
    /// The call burned other fuel.
    Fuel {
        /// The deepest span whose fuel differs (the most, among those as deep): where the
        /// difference is; empty when only the total does.
        span: String,
        /// Recorded.
        recorded: u64,
        /// Replayed.
        replayed: u64,
    },
}

impl Difference {
    /// A short name of the kind: `import`, `output`, `error`, `spans`, `fuel`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::Import(_) => "import",
            Difference::Output { .. } => "output",
            Difference::Error { .. } => "error",
            Difference::Spans { .. } => "spans",
            Difference::Fuel { .. } => "fuel",
        }
    }
}

fn span_text(span: Option<&SpanRecord>) -> String {
    span.map_or_else(
        || "nothing".to_owned(),
        |s| format!("`{}` at depth {} with fuel {}", s.name, s.depth, s.fuel),
    )
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Import(d) => write!(f, "{d}"),
            Difference::Output { at, recorded, replayed } => {
                write!(
                    f,
                    "output differs at byte {at}: recorded {recorded:?}, replayed {replayed:?}"
                )
            }
            Difference::Error { recorded, replayed } => write!(f, "recorded {recorded}, replayed {replayed}"),
            Difference::Spans { at, recorded, replayed } => write!(
                f,
                "span #{at} differs: recorded {}, replayed {}",
                span_text(recorded.as_ref()),
                span_text(replayed.as_ref())
            ),
            Difference::Fuel {
                span,
                recorded,
                replayed,
            } => {
                let place = if span.is_empty() {
                    String::new()
                } else {
                    format!(" in `{span}`")
                };
                write!(
                    f,
                    "fuel differs{place}: recorded {recorded}, replayed {replayed} ({:+})",
                    i128::from(*replayed) - i128::from(*recorded)
                )
            }
        }
    }
}

/// How much of an output a difference shows.
const SHOWN: usize = 120;

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok(output) => format!("success ({} bytes)", output.0.len()),
        Outcome::Err { error_type, message } => format!("error {error_type}: {message}"),
    }
}

/// The differences of one replayed call from its recording, most telling first.
#[must_use]
pub fn compare(call: &ReplayedCall) -> Vec<Difference> {
    let mut out = Vec::new();
    if let Some(d) = &call.divergence {
        out.push(Difference::Import(d.clone()));
    }
    let Some(recorded) = &call.recorded else {
        return out;
    };
    let replayed = &call.replayed;
    match (&recorded.outcome, &replayed.outcome) {
        (Outcome::Ok(a), Outcome::Ok(b)) if a != b => {
            let at = a.0.iter().zip(&b.0).take_while(|(x, y)| x == y).count();
            out.push(Difference::Output {
                at,
                recorded: shown(&a.0),
                replayed: shown(&b.0),
            });
        }
        (a, b) if a != b => out.push(Difference::Error {
            recorded: outcome_text(a),
            replayed: outcome_text(b),
        }),
        _ => {}
    }
    let shape = |s: &SpanRecord| (s.depth, s.name.clone());
    let spans = (0..recorded.spans.len().max(replayed.spans.len()))
        .find(|&i| recorded.spans.get(i).map(shape) != replayed.spans.get(i).map(shape));
    if let Some(at) = spans {
        out.push(Difference::Spans {
            at,
            recorded: recorded.spans.get(at).cloned(),
            replayed: replayed.spans.get(at).cloned(),
        });
    } else if let Some(at) = (0..recorded.spans.len())
        .filter(|&i| recorded.spans[i].fuel != replayed.spans[i].fuel)
        .max_by_key(|&i| {
            (
                recorded.spans[i].depth,
                recorded.spans[i].fuel.abs_diff(replayed.spans[i].fuel),
            )
        })
    {
        out.push(Difference::Fuel {
            span: recorded.spans[at].name.clone(),
            recorded: recorded.spans[at].fuel,
            replayed: replayed.spans[at].fuel,
        });
    } else if recorded.fuel != replayed.fuel {
        out.push(Difference::Fuel {
            span: String::new(),
            recorded: recorded.fuel,
            replayed: replayed.fuel,
        });
    }
    out
}
