//! Reading and writing `.ttarec` files: one JSON document, gzip-compressed.
//!
//! Gzip's trailer carries a CRC and the length, so a file cut short or changed in transit
//! is refused as such rather than read as a different call.

use super::{FORMAT, Recording, VERSION};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::Path;

/// The largest recording read back, uncompressed: far above what a call's bounds let one
/// grow to, and a bound on what a crafted file can make a replay allocate.
pub const MAX_UNCOMPRESSED_BYTES: u64 = 256 << 20;

/// Why a recording could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not gzip at all.
    #[error("{path} is not a .ttarec recording: it does not start with the gzip header a recording starts with")]
    NotARecording {
        /// The file.
        path: String,
    },
    /// The gzip stream ends early or fails its check.
    #[error("{path} is truncated or corrupt ({reason}); record the call again")]
    Corrupt {
        /// The file.
        path: String,
        /// What gzip said.
        reason: String,
    },
    /// It uncompresses to more than [`MAX_UNCOMPRESSED_BYTES`].
    #[error("{path} uncompresses to more than {limit} bytes; it is not a recording this host wrote")]
    TooLarge {
        /// The file.
        path: String,
        /// The bound.
        limit: u64,
    },
    /// The JSON inside does not describe a recording.
    #[error("{path}: not a valid recording at line {line}, column {column}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
        /// What serde said.
        reason: String,
    },
    /// A recording of another format version.
    #[error("{path} is a `{format}` recording of version {version}; this host reads `ttarec` version {VERSION}")]
    Version {
        /// The file.
        path: String,
        /// Its format field.
        format: String,
        /// Its version.
        version: u32,
    },
}

impl Recording {
    /// The recording as the bytes of a `.ttarec` file.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Every field serializes, and writing to a Vec cannot fail. The JSON is made whole
        // first: the encoder costs microseconds per write, and serde writes token by token.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4 + 64), Compression::fast());
        let _ = encoder.write_all(&json);
        encoder.finish().unwrap_or_default()
    }

    /// Writes the recording to `path` (through a temporary file, so a reader never sees half).
    pub fn write(&self, path: &Path) -> Result<(), RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        file.write_all(&self.to_bytes()).map_err(io)?;
        file.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Reads the recording at `path`.
    pub fn read(path: &Path) -> Result<Recording, RecordingError> {
        let bytes = std::fs::read(path).map_err(|source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Reads a recording from the bytes of a `.ttarec` file; `name` is what errors call it.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Recording, RecordingError> {
        let path = name.to_owned();
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(RecordingError::NotARecording { path });
        }
        let mut json = Vec::new();
        GzDecoder::new(bytes)
            .take(MAX_UNCOMPRESSED_BYTES + 1)
            .read_to_end(&mut json)
            .map_err(|e| RecordingError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if json.len() as u64 > MAX_UNCOMPRESSED_BYTES {
            return Err(RecordingError::TooLarge {
                path,
                limit: MAX_UNCOMPRESSED_BYTES,
            });
        }
        let head: Head = serde_json::from_slice(&json).map_err(|e| invalid(&path, &e))?;
        if head.format != FORMAT || head.version != VERSION {
            return Err(RecordingError::Version {
                path,
                format: head.format,
                version: head.version,
            });
        }
        serde_json::from_slice(&json).map_err(|e| invalid(&path, &e))
    }
}

/// The two fields read first, so a newer version is named as such rather than as invalid.
#[derive(serde::Deserialize)]
struct Head {
    format: String,
    version: u32,
}

fn invalid(path: &str, e: &serde_json::Error) -> RecordingError {
    RecordingError::Invalid {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Recording {
        let mut r = Recording::new(1);
        r.workflow = None;
        r
    }

    #[test]
    fn round_trips_and_refuses_damage_by_name() {
        let bytes = sample().to_bytes();
        assert_eq!(Recording::from_bytes(&bytes, "a").expect("as expected"), sample());
        let truncated = &bytes[..bytes.len() - 6];
        assert!(matches!(
            Recording::from_bytes(truncated, "a"),
            Err(RecordingError::Corrupt { .. })
        ));
        assert!(matches!(
            Recording::from_bytes(b"{}", "a"),
            Err(RecordingError::NotARecording { .. })
        ));
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x55;
        assert!(Recording::from_bytes(&flipped, "a").is_err());
    }

    #[test]
    fn another_version_is_named() {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder
            .write_all(br#"{"format":"ttarec","version":2}"#)
            .expect("as expected");
        let bytes = encoder.finish().expect("as expected");
        let err = Recording::from_bytes(&bytes, "x.ttarec").expect_err("refused");
        assert!(err.to_string().contains("version 2"), "{err}");
    }
}
