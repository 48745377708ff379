//! Client- and guest-supplied text cut to size before the host writes it anywhere: a log
//! record, a problem document, an error message. A header, a path or a name sent by a
//! client is otherwise as long as the client likes (a 60 KB `traceparent` made a 60 KB
//! warning), and a log line's size is a resource the client would spend on the host.

use std::borrow::Cow;

/// The most characters of one client- or guest-supplied value the host writes into a log
/// record or an error (documented in SECURITY.md's resource ledger).
pub const MAX_LOGGED_CHARS: usize = 256;

/// `text` cut to `max` characters, the cut marked with `…` and the full length in bytes.
pub fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…({} bytes)", &text[..end], text.len())),
    }
}

/// `text` cut to [`MAX_LOGGED_CHARS`].
pub fn for_log(text: &str) -> Cow<'_, str> {
    bounded(text, MAX_LOGGED_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(bounded("short", 8), "short");
        assert_eq!(bounded("ééééé", 2), "éé…(10 bytes)");
        assert!(for_log(&"x".repeat(60_000)).len() < MAX_LOGGED_CHARS + 32);
    }
}
