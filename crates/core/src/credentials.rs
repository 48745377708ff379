//! Bearer credentials stored as their SHA-256: tenants' API keys and scrape tokens alike.
//!
//! The config never holds a secret, only its hash; a request's token is hashed and compared
//! with every stored hash in constant time, so the time taken says nothing about which one
//! (if any) matched. A request must carry exactly one `Authorization` header: with two, a
//! proxy and the host could each believe a different one.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 of a key or token.
pub type KeyHash = [u8; 32];

/// The SHA-256 of `key`.
pub fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// A stored hash (64 hex digits), or `None` if it is not one.
pub fn parse_hash(text: &str) -> Option<KeyHash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Whether `hash` is one of `stored`, comparing with every one in constant time.
pub fn matches(stored: &[KeyHash], hash: &KeyHash) -> bool {
    let mut found = false;
    for candidate in stored {
        found |= bool::from(candidate.ct_eq(hash));
    }
    found
}

/// Why a request carries no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header.
    Missing,
    /// More than one `Authorization` header.
    Several,
    /// The header is not `Bearer <token>`.
    NotBearer,
}

/// The token of the request's one `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(BearerError::Missing)?;
    if values.next().is_some() {
        return Err(BearerError::Several);
    }
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(BearerError::NotBearer)
}
