//! A response body with the request's bounds: a cap on its size, a longest wait between
//! two parts, and an end by the request's deadline, so neither an endless body nor one
//! sent a byte at a time can hold a call's guest or connection past its limits. A body
//! read to its end gives its connection back to the pool; one dropped early closes it.

use super::pool::{Connection, Key, TenantClient};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::Error;

/// `Incoming`, bounded.
pub(crate) struct Bounded {
    inner: Incoming,
    left: u64,
    max: u64,
    between: Duration,
    gap: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
    /// The connection the body comes on, kept for the next request at the body's end.
    connection: Option<(Arc<TenantClient>, Key, Connection)>,
}

impl Bounded {
    pub(crate) fn new(
        inner: Incoming,
        max: usize,
        between: Duration,
        deadline: Instant,
        connection: (Arc<TenantClient>, Key, Connection),
    ) -> Self {
        Bounded {
            inner,
            left: max as u64,
            max: max as u64,
            between,
            gap: Box::pin(tokio::time::sleep(between)),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            connection: Some(connection),
        }
    }
}

impl Bounded {
    fn give_back(&mut self) {
        if let Some((client, key, connection)) = self.connection.take() {
            client.keep(key, connection);
        }
    }
}

impl Body for Bounded {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.left {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.max)))));
                    }
                    this.left -= len;
                }
                let next = Instant::now() + this.between;
                this.gap.as_mut().reset(next);
                if this.inner.is_end_stream() {
                    this.give_back();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.connection = None;
                Poll::Ready(Some(Err(Error::Hyper(e))))
            }
            Poll::Ready(None) => {
                this.give_back();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.gap.as_mut().poll(cx).is_ready() || this.deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
