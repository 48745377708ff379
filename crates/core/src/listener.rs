//! Accepting HTTP/1 connections without letting clients take the host's resources: the
//! API's listener and the metrics port share it.
//!
//! A client that opens connections and sends nothing, or sends its headers a byte at a
//! time, costs a task and a file descriptor until the header-read timeout closes it. The
//! timeout bounds how long; [`ConnectionSlots`] bounds how many, so a flood of such clients
//! cannot take the descriptors the host needs for its plugins, uploads and other listeners.
//! Past the cap a new connection gets a `503` and is closed at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The answer to a connection past the cap, written without reading its request.
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 155\r\n\r\n\
{\"type\":\"too_many_connections\",\"title\":\"Service Unavailable\",\"status\":503,\
\"detail\":\"the server has all its connections open; retry later\",\"retryable\":true}";

/// At most `cap` open connections of one listener.
pub struct ConnectionSlots {
    slots: Arc<Semaphore>,
    cap: usize,
    listener: &'static str,
    full: AtomicBool,
}

impl ConnectionSlots {
    /// Slots for `cap` connections of `listener` (named in the warning when they run out).
    pub fn new(cap: usize, listener: &'static str) -> Self {
        ConnectionSlots {
            slots: Arc::new(Semaphore::new(cap)),
            cap,
            listener,
            full: AtomicBool::new(false),
        }
    }

    /// A slot for `stream`, held until the connection ends; `None` when every slot is
    /// taken, after telling the client so (best effort: one write that never waits).
    pub fn admit(&self, stream: &TcpStream) -> Option<OwnedSemaphorePermit> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => {
                self.full.store(false, Ordering::Relaxed);
                Some(slot)
            }
            Err(_) => {
                let _ = stream.try_write(FULL);
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "{}: {} connections open; answering new ones 503 until some end",
                        self.listener,
                        self.cap
                    );
                }
                None
            }
        }
    }
}

/// The next connection of `listener`. When accepting fails (out of file descriptors, say)
/// it backs off instead of spinning.
pub async fn accept(listener: &TcpListener, name: &str) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                tracing::warn!(error = %e, "{name} cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One HTTP/1 connection served by `router`, with the header-read timeout that keeps a
/// slow client from holding it open (hyper starts it when the connection opens and again
/// when a keep-alive connection waits for its next request).
pub fn connection<I>(
    router: axum::Router,
    io: I,
    header_timeout: Duration,
) -> hyper::server::conn::http1::Connection<
    hyper_util::rt::TokioIo<I>,
    hyper_util::service::TowerToHyperService<axum::Router>,
>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(
            hyper_util::rt::TokioIo::new(io),
            hyper_util::service::TowerToHyperService::new(router),
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_full_answer_declares_its_body_length() {
        let text = std::str::from_utf8(super::FULL).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let declared = format!("content-length: {}", body.len());
        assert!(head.lines().any(|line| line == declared), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(body["status"], 503);
    }
}
