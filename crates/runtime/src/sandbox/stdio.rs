//! Guest stdout and stderr, captured into a bounded buffer.
//!
//! A guest that prints too much is not failed (Rust's `println!` panics on a write
//! error): writes always succeed, the first `capacity` bytes are kept, and the rest are
//! counted as dropped. After the call the text becomes the call's log records.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: u64,
}

/// A bounded, shareable capture of one output stream of one call.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    capacity: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl CapturedOutput {
    /// A capture that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        CapturedOutput {
            capacity,
            buffer: Arc::new(Mutex::new(Buffer::default())),
        }
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.capacity.saturating_sub(buffer.kept.len());
        let kept = bytes.len().min(room);
        buffer.kept.extend_from_slice(&bytes[..kept]);
        buffer.dropped += (bytes.len() - kept) as u64;
    }

    /// Takes what was captured (lossily decoded as UTF-8) and how many bytes were dropped.
    pub fn take(&self) -> (String, u64) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::take(&mut *buffer);
        (String::from_utf8_lossy(&taken.kept).into_owned(), taken.dropped)
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_capacity_and_counts_the_rest() {
        let capture = CapturedOutput::new(4);
        capture.append(b"abc");
        capture.append(b"defg");
        let (text, dropped) = capture.take();
        assert_eq!(text, "abcd");
        assert_eq!(dropped, 3);
        assert_eq!(capture.take(), (String::new(), 0));
    }
}
