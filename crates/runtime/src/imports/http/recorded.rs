//! Outgoing requests of a recorded or replayed call.
//!
//! Recording, a request is sent as usual and its event is written as it goes: the digest
//! of the body the guest sent (none when the body held a secret), the response head, and
//! the body bytes as the guest reads them. Replaying, nothing is sent: the request must be
//! the recorded one (method, URL, body digest), and the recorded response is given back,
//! with the same client span.

use super::{SendFuture, SpanSink, error_type, text};
use crate::recording::Tape;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use sha2::Digest as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tta_core::bindings::Value;
use tta_core::guest_config::GuestConfig;
use tta_core::recording::{HttpOutcome, Payload};
use tta_core::report::GuestSpanRecord;
use wasmtime_wasi_http::{Error, WasiBody};

/// What a body passing through [`Tee`] is shown to.
trait Watch: Send + Unpin + 'static {
    fn data(&mut self, data: &Bytes);
    fn end(&mut self) {}
}

/// A body that shows each part to its watcher on the way through.
struct Tee<W> {
    inner: WasiBody,
    watch: W,
    ended: bool,
}

impl<W: Watch> Body for Tee<W> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.watch.data(data);
                }
            }
            None if !this.ended => {
                this.ended = true;
                this.watch.end();
            }
            _ => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn tee(inner: WasiBody, watch: impl Watch) -> WasiBody {
    Tee {
        inner,
        watch,
        ended: false,
    }
    .boxed_unsync()
}

/// The digest of a request body as it is sent, and whether a secret passed in it (looked
/// for across part boundaries through the tail of the previous part).
struct RequestDigest {
    tape: Arc<Tape>,
    index: usize,
    sha: sha2::Sha256,
    config: Arc<GuestConfig>,
    tail: Vec<u8>,
    secret: bool,
}

impl Watch for RequestDigest {
    fn data(&mut self, data: &Bytes) {
        self.sha.update(data);
        let redactor = self.config.redactor();
        if redactor.is_empty() || self.secret {
            return;
        }
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(data);
        self.secret = redactor.finds(&window);
        let keep = redactor.longest().saturating_sub(1).min(window.len());
        self.tail = window.split_off(window.len() - keep);
    }

    fn end(&mut self) {
        let digest = (!self.secret).then(|| hex::encode(std::mem::take(&mut self.sha).finalize()));
        self.tape.update_http(self.index, 72, |body, _| *body = digest);
    }
}

/// The response body as the guest reads it, appended to the event.
struct ResponseBody {
    tape: Arc<Tape>,
    index: usize,
    full: bool,
}

impl Watch for ResponseBody {
    fn data(&mut self, data: &Bytes) {
        if self.full {
            return;
        }
        self.full = !self.tape.update_http(self.index, data.len() * 2 + 8, |_, response| {
            if let HttpOutcome::Response { body, parts, .. } = response {
                body.0.extend_from_slice(data);
                parts.push(u32::try_from(data.len()).unwrap_or(u32::MAX));
            }
        });
    }
}

/// The request `index` of `tape`, sent by `send` (which gets the request with its body
/// watched) and its response recorded as it comes.
pub(super) fn record(
    tape: Arc<Tape>,
    index: usize,
    request: hyper::Request<WasiBody>,
    config: Arc<GuestConfig>,
    send: impl FnOnce(hyper::Request<WasiBody>) -> SendFuture,
) -> SendFuture {
    let watch = RequestDigest {
        tape: Arc::clone(&tape),
        index,
        sha: sha2::Sha256::new(),
        config,
        tail: Vec::new(),
        secret: false,
    };
    let sent = Box::into_pin(send(request.map(|body| tee(body, watch))));
    Box::new(async move {
        match sent.await {
            Ok((response, io)) => {
                let headers: Vec<(String, String)> = response
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let size = headers.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
                let status = response.status().as_u16();
                let kept = tape.update_http(index, size, |_, outcome| {
                    *outcome = HttpOutcome::Response {
                        status,
                        headers,
                        body: Payload::default(),
                        parts: Vec::new(),
                    };
                });
                let response = if kept {
                    response.map(|body| {
                        tee(
                            body,
                            ResponseBody {
                                tape,
                                index,
                                full: false,
                            },
                        )
                    })
                } else {
                    response
                };
                Ok((response, io))
            }
            Err(error) => {
                let code = error_type(&error).to_owned();
                tape.update_http(index, code.len(), |_, outcome| *outcome = HttpOutcome::Error(code));
                Err(error)
            }
        }
    })
}

/// What the tape has for this request, with its client span as the live request would have
/// made it; nothing is sent.
pub(super) fn replay(
    tape: Arc<Tape>,
    request: hyper::Request<WasiBody>,
    mut record: GuestSpanRecord,
    sink: Arc<SpanSink>,
    host: String,
    url: String,
) -> SendFuture {
    let method = request.method().as_str().to_owned();
    let began = Instant::now();
    let answer = tape.replay_http(&method, &url);
    Box::new(async move {
        let Some((at, digest, outcome)) = answer else {
            record.error = Some("replay: the recording has no such request here".into());
            sink.finish(record, &host, "error", began);
            return Err(Error::InternalError(Some(format!(
                "replay: the recording has no request {method} {url} here"
            ))));
        };
        let mut body = request.into_body();
        let mut sha = sha2::Sha256::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        sha.update(data);
                    }
                }
                Err(_) => break,
            }
        }
        if digest.is_some_and(|d| d != hex::encode(sha.finalize())) {
            tape.diverge_body(at, &method, &url);
        }
        match outcome {
            HttpOutcome::Response {
                status,
                headers,
                body,
                parts,
            } => {
                record
                    .attributes
                    .push(("http.response.status_code".into(), Value::Int(i64::from(status))));
                if status >= 500 {
                    record.error = Some(format!("HTTP {status}"));
                    record.attributes.push(("error.type".into(), text(status.to_string())));
                }
                sink.finish(record, &host, &status.to_string(), began);
                let mut response = hyper::Response::builder().status(status);
                for (name, value) in &headers {
                    response = response.header(name, value);
                }
                let body = in_parts(Bytes::from(body.0), &parts);
                let response = response
                    .body(body)
                    .map_err(|e| Error::InternalError(Some(format!("replay: a recorded response is invalid: {e}"))))?;
                let io: Box<dyn std::future::Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
                Ok((response, io))
            }
            HttpOutcome::Error(code) => {
                let error = error_of(&code);
                record.error = Some(format!("replayed {code}"));
                record.attributes.push(("error.type".into(), text(code)));
                sink.finish(record, &host, "error", began);
                Err(error)
            }
        }
    })
}

/// `body` as the parts it was recorded in (the rest, if the sizes do not cover it, as one
/// more part).
fn in_parts(body: Bytes, parts: &[u32]) -> WasiBody {
    let mut frames = Vec::with_capacity(parts.len() + 1);
    let mut at = 0;
    for &size in parts {
        let end = (at + size as usize).min(body.len());
        frames.push(Ok(Frame::data(body.slice(at..end))));
        at = end;
    }
    if at < body.len() || frames.is_empty() {
        frames.push(Ok(Frame::data(body.slice(at..))));
    }
    http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
}

/// The `wasi:http` error a recorded `error-code` name stands for: the one the live request
/// could have failed with whose name it is.
fn error_of(code: &str) -> Error {
    [
        Error::HttpRequestDenied,
        Error::ConnectionLimitReached,
        Error::ConnectionTimeout,
        Error::ConnectionRefused,
        Error::DestinationUnavailable,
        Error::TlsCertificateError,
        Error::TlsProtocolError,
        Error::ConfigurationError,
        Error::HttpRequestUriInvalid,
        Error::HttpResponseTimeout,
        Error::HttpProtocolError,
    ]
    .into_iter()
    .find(|e| error_type(e) == code)
    .unwrap_or(Error::InternalError(None))
}
