//! W3C trace context: the ids every span carries, minted here and nowhere else, and the
//! `traceparent` header that carries them across a process boundary both ways.
//!
//! Ids are random and never zero (W3C: an all-zero id is invalid); a correlation id is a
//! UUID v4. Everything that starts a trace, a span or a request takes its ids from here.

/// The W3C identity of the host span wrapping one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    /// The trace this call belongs to.
    pub trace_id: u128,
    /// The host span of this call.
    pub span_id: u64,
    /// The span this call's span is a child of, if any.
    pub parent_span_id: Option<u64>,
    /// Whether the trace is sampled (W3C flag `01`).
    pub sampled: bool,
}

impl SpanIds {
    /// A new trace: fresh trace and span ids, no parent, sampled.
    pub fn new_trace() -> Self {
        SpanIds {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            parent_span_id: None,
            sampled: true,
        }
    }

    /// A fresh span in this span's trace, a child of `parent_span_id`.
    pub fn child(&self, parent_span_id: u64) -> Self {
        SpanIds {
            trace_id: self.trace_id,
            span_id: new_span_id(),
            parent_span_id: Some(parent_span_id),
            sampled: self.sampled,
        }
    }

    /// A fresh span continuing a caller's trace: its parent is `parent`'s span.
    pub fn continuing(parent: Parent) -> Self {
        SpanIds {
            trace_id: parent.trace_id,
            span_id: new_span_id(),
            parent_span_id: Some(parent.span_id),
            sampled: parent.sampled,
        }
    }

    /// The W3C `traceparent` header naming this span.
    pub fn traceparent(&self) -> String {
        traceparent(self.trace_id, self.span_id, self.sampled)
    }
}

/// A parent span named by an incoming `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The caller's trace.
    pub trace_id: u128,
    /// The caller's span, the parent of ours.
    pub span_id: u64,
    /// The caller's sampling decision.
    pub sampled: bool,
}

/// The W3C `traceparent` header naming span `span_id` of trace `trace_id`.
pub fn traceparent(trace_id: u128, span_id: u64, sampled: bool) -> String {
    format!("00-{trace_id:032x}-{span_id:016x}-{:02x}", u8::from(sampled))
}

/// Parses a W3C `traceparent` header into the parent span it names.
pub fn parse_traceparent(header: &str) -> Result<Parent, String> {
    // The header is the client's: its error shows no more than a valid one's length.
    let shown = |header: &str| crate::text::bounded(header, 64).into_owned();
    let parts: Vec<&str> = header.trim().split('-').collect();
    let [version, trace, span, flags] = parts.as_slice() else {
        return Err(format!("{:?} is not `00-<32 hex>-<16 hex>-<2 hex>`", shown(header)));
    };
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex(version, 2) || *version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return Err(format!(
            "{:?} is not `00-<32 lowercase hex>-<16 lowercase hex>-<2 hex>`",
            shown(header)
        ));
    }
    let trace_id = u128::from_str_radix(trace, 16).map_err(|e| e.to_string())?;
    let span_id = u64::from_str_radix(span, 16).map_err(|e| e.to_string())?;
    let flags = u8::from_str_radix(flags, 16).map_err(|e| e.to_string())?;
    if trace_id == 0 || span_id == 0 {
        return Err(format!("{:?} has an all-zero trace or span id", shown(header)));
    }
    Ok(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// A fresh, non-zero W3C span id.
pub fn new_span_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// A fresh, non-zero W3C trace id.
pub fn new_trace_id() -> u128 {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// A fresh correlation id (a UUID v4), for a request that brought none.
pub fn new_correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let ids = SpanIds {
            trace_id: 0x0af7651916cd43dd8448eb211c80319c,
            span_id: 0xb7ad6b7169203331,
            parent_span_id: None,
            sampled: true,
        };
        let header = ids.traceparent();
        assert_eq!(header, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        assert_eq!(
            parse_traceparent(&header),
            Ok(Parent {
                trace_id: ids.trace_id,
                span_id: ids.span_id,
                sampled: true
            })
        );
    }

    #[test]
    fn bad_traceparents_are_refused() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(parse_traceparent(bad).is_err(), "{bad:?} accepted");
        }
    }
}
