//! Scrubbing secret values out of what a call leaves behind, before any signal is made of it.
//!
//! A guest that reads a secret may try to log it, put it in a span, a metric attribute or an
//! error, or print it; every one of those reaches the host as a string in the call's report
//! or error, and each is scrubbed here, in the sandbox, before the report is metered,
//! exported, logged or answered with. The output the guest returns is the one exception: what
//! a primitive returns is its business (documented in SECURITY.md). Matching is on the exact
//! bytes of each value; a guest that encodes a secret before reporting it is not caught.

use crate::bindings::Value;
use crate::error::CallError;
use crate::report::CallReport;

/// What a secret value becomes.
pub const MARK: &str = "[redacted]";

/// The secret values to scrub, longest first so one that contains another goes whole.
#[derive(Default)]
pub struct Redactor {
    values: Vec<Box<str>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

impl Redactor {
    /// A redactor of `values` (empty ones are ignored).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<Box<str>> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(String::into_boxed_str)
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Redactor { values }
    }

    /// Whether there is nothing to scrub.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Replaces every secret value in `text` with [`MARK`].
    pub fn text(&self, text: &mut String) {
        for value in &self.values {
            if text.contains(&**value) {
                *text = text.replace(&**value, MARK);
            }
        }
    }

    /// Whether `value` is one of the secret values itself.
    #[must_use]
    pub fn is_secret(&self, value: &str) -> bool {
        self.values.iter().any(|v| &**v == value)
    }

    /// Whether `bytes` hold a secret value anywhere.
    #[must_use]
    pub fn finds(&self, bytes: &[u8]) -> bool {
        self.values
            .iter()
            .any(|v| bytes.windows(v.len()).any(|w| w == v.as_bytes()))
    }

    /// The length of the longest secret value (0 when there is none).
    #[must_use]
    pub fn longest(&self) -> usize {
        self.values.first().map_or(0, |v| v.len())
    }

    /// Replaces every secret value in `bytes` with [`MARK`], whatever the bytes are.
    pub fn bytes(&self, bytes: &mut Vec<u8>) {
        for value in &self.values {
            let needle = value.as_bytes();
            if !bytes.windows(needle.len()).any(|w| w == needle) {
                continue;
            }
            let mut out = Vec::with_capacity(bytes.len());
            let mut rest = &bytes[..];
            while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(MARK.as_bytes());
                rest = &rest[at + needle.len()..];
            }
            out.extend_from_slice(rest);
            *bytes = out;
        }
    }

    fn attributes(&self, attributes: &mut [(String, Value)]) {
        for (key, value) in attributes {
            self.text(key);
            if let Value::Str(s) = value {
                self.text(s);
            }
        }
    }

    /// Scrubs every string of `report` and of its nested reports.
    pub fn report(&self, report: &mut CallReport) {
        if self.is_empty() {
            return;
        }
        for log in &mut report.logs {
            self.text(&mut log.message);
            self.attributes(&mut log.fields);
        }
        for span in &mut report.spans {
            self.text(&mut span.name);
            self.attributes(&mut span.attributes);
            for event in &mut span.events {
                self.text(&mut event.name);
                self.attributes(&mut event.attributes);
            }
            if let Some(error) = &mut span.error {
                self.text(error);
            }
        }
        for metric in &mut report.metrics {
            self.text(&mut metric.name);
            self.attributes(&mut metric.attributes);
        }
        if let Some(error) = &mut report.error {
            self.error(error);
        }
        for nested in &mut report.nested {
            self.report(nested);
        }
    }

    /// Scrubs the strings of `error` a guest (or its input) may have put there.
    pub fn error(&self, error: &mut CallError) {
        if self.is_empty() {
            return;
        }
        match error {
            CallError::Guest(e) => self.text(&mut e.message),
            CallError::Trap {
                kind,
                detail,
                backtrace,
            } => {
                self.text(kind);
                self.text(detail);
                self.text(backtrace);
            }
            CallError::StackExhausted { backtrace, .. } => self.text(backtrace),
            CallError::UnknownPrimitive { name, .. } => self.text(name),
            CallError::Instantiate(text) | CallError::Host(text) => self.text(text),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_scrubbed_like_text() {
        let r = Redactor::new(["s3cret".to_owned()]);
        let mut bytes = b"\xffs3cret and s3cret".to_vec();
        assert!(r.finds(&bytes));
        r.bytes(&mut bytes);
        assert_eq!(bytes, b"\xff[redacted] and [redacted]".to_vec());
        assert!(!r.finds(&bytes));
        assert!(r.is_secret("s3cret") && !r.is_secret("s3cre"));
    }

    #[test]
    fn the_longest_value_goes_first_and_whole() {
        let r = Redactor::new(["abc".to_owned(), "abcdef".to_owned(), String::new()]);
        let mut text = "x abcdef y abc z".to_owned();
        r.text(&mut text);
        assert_eq!(text, "x [redacted] y [redacted] z");
    }
}
