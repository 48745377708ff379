//! Bytes in a recording: as text when they are UTF-8 (most inputs, outputs and bodies are
//! JSON, and a recording should be readable), as base64 otherwise.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Bytes as stored: `{"text": "…"}` or `{"b64": "…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Repr", into = "Repr")]
pub struct Payload(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Repr {
    Text(String),
    B64(String),
}

impl TryFrom<Repr> for Payload {
    type Error = String;

    fn try_from(repr: Repr) -> Result<Self, String> {
        match repr {
            Repr::Text(text) => Ok(Payload(text.into_bytes())),
            Repr::B64(b64) => STANDARD
                .decode(b64)
                .map(Payload)
                .map_err(|e| format!("a `b64` payload is not base64: {e}")),
        }
    }
}

impl From<Payload> for Repr {
    fn from(payload: Payload) -> Self {
        match String::from_utf8(payload.0) {
            Ok(text) => Repr::Text(text),
            Err(bytes) => Repr::B64(STANDARD.encode(bytes.into_bytes())),
        }
    }
}

impl From<&[u8]> for Payload {
    fn from(bytes: &[u8]) -> Self {
        Payload(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::Payload;

    #[test]
    fn text_stays_text_and_bytes_go_base64() {
        let text = serde_json::to_string(&Payload(b"{\"a\":1}".to_vec())).expect("as expected");
        assert_eq!(text, r#"{"text":"{\"a\":1}"}"#);
        let bytes = serde_json::to_string(&Payload(vec![0xff, 0, 1])).expect("as expected");
        assert_eq!(bytes, r#"{"b64":"/wAB"}"#);
        let back: Payload = serde_json::from_str(&bytes).expect("as expected");
        assert_eq!(back.0, vec![0xff, 0, 1]);
        assert!(serde_json::from_str::<Payload>(r#"{"b64":"!!"}"#).is_err());
    }
}
