//! MCP over stdio (`tta-host mcp`): newline-delimited JSON-RPC on stdin and stdout, for an
//! agent that starts the host as its local tool server. One tenant; the plugin and
//! workflow directories are reloaded as files change, as `serve` does.
//!
//! Tool calls run concurrently (each admitted by the tenant's `max_concurrent` and the
//! host's slots, or refused at once), so a `notifications/cancelled` can reach one. Lines
//! are bounded (the tenant's `max_request_bytes` plus the envelope): a longer one is
//! skipped to its end and answered with an error. Stdout carries protocol messages only;
//! logs go to stderr. At the end of stdin, running calls get `server.shutdown_grace_ms`.

use super::jsonrpc::{self, RpcError};
use super::{Answer, Caller, Transport};
use crate::App;
use crate::request::RequestIds;
use axum::http::HeaderMap;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tta_core::config::TenantConfig;
use tta_runtime::host::Host;

/// Room for the JSON-RPC envelope around a tool's arguments on one line.
const ENVELOPE_BYTES: usize = 64 << 10;
/// Messages queued for stdout before a producer waits.
const OUTPUT_QUEUE: usize = 256;

/// Serves MCP for `tenant` on `input` and `output` until `input` ends; loads the host's
/// configured directories first (`server.plugins_dir`, `server.workflows_dir`).
pub async fn serve<R, W>(host: Host, tenant: TenantConfig, input: R, output: W) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let id = tenant.id.clone();
    let app = App::start(host, std::slice::from_ref(&tenant), None).await;
    let reload = crate::reload::spawn(Arc::clone(&app));
    let Some(tenant) = app.tenants.get(&id).cloned() else {
        return Err(std::io::Error::other(format!("tenant `{id}` was not set up")));
    };
    let (tx, rx) = mpsc::channel::<Value>(OUTPUT_QUEUE);
    let writer = tokio::spawn(write_all(rx, output));
    let limit = tenant.max_request_bytes.saturating_add(ENVELOPE_BYTES);
    let mut calls = JoinSet::new();
    let mut session: Option<String> = None;
    let mut input = input;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = read_line(&mut input, &mut line, limit).await?;
        let Some(complete) = read else { break };
        while calls.try_join_next().is_some() {}
        if !complete {
            let error = RpcError::invalid_request(format!(
                "the message is over {limit} bytes (the tenant's max_request_bytes and the envelope); it was skipped"
            ));
            let _ = tx.send(jsonrpc::error(&Value::Null, &error)).await;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message = match jsonrpc::parse(&line) {
            Ok(message) => message,
            Err(error) => {
                let _ = tx.send(jsonrpc::error(&Value::Null, &error)).await;
                continue;
            }
        };
        let initialize = matches!(&message, jsonrpc::Message::Request { method, .. } if method == "initialize");
        let caller = Caller {
            tenant: Arc::clone(&tenant),
            ids: RequestIds::from_headers(&HeaderMap::new()),
            transport: Transport::Stdio,
            held: std::cell::Cell::new(None),
        };
        match super::handle(&app, &caller, message, None, session.as_deref()) {
            Answer::Accepted => {}
            Answer::Reply(body, result) => {
                if initialize && result.is_ok() {
                    session = body["result"]["protocolVersion"].as_str().map(str::to_owned);
                }
                let _ = tx.send(body).await;
            }
            Answer::Call(prepared) => {
                let tx = tx.clone();
                calls.spawn(async move {
                    let (progress, mut notes) = mpsc::channel::<Value>(64);
                    let forward = tx.clone();
                    let relay = tokio::spawn(async move {
                        while let Some(note) = notes.recv().await {
                            let _ = forward.send(note).await;
                        }
                    });
                    let ran = prepared.run(Some(progress)).await;
                    let _ = relay.await;
                    if ran.span.is_some() || ran.response.get("error").is_none() {
                        let _ = tx.send(ran.response).await;
                    }
                });
            }
        }
    }
    let grace = Duration::from_millis(app.config.shutdown_grace_ms);
    if tokio::time::timeout(grace, async { while calls.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = app.config.shutdown_grace_ms,
            "stdin ended; abandoning the calls still running"
        );
        calls.abort_all();
    }
    drop(tx);
    if let Some(reload) = reload {
        reload.abort();
    }
    let _ = writer.await;
    Ok(())
}

/// Writes each message as one line, flushing after each so the client sees it at once.
async fn write_all<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<Value>, mut output: W) {
    while let Some(message) = rx.recv().await {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
            return;
        }
    }
}

/// Reads one line into `line` without its newline, keeping at most `limit` bytes: `None`
/// at the end of input, `Some(false)` when the line was longer (the rest is skipped).
async fn read_line<R: AsyncBufRead + Unpin>(
    input: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<bool>> {
    let mut over = false;
    let mut any = false;
    loop {
        let buffer = input.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(any.then_some(!over));
        }
        any = true;
        let (chunk, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..end], Some(end + 1)),
            None => (buffer, None),
        };
        if !over && line.len() + chunk.len() <= limit {
            line.extend_from_slice(chunk);
        } else {
            over = true;
            line.clear();
        }
        let used = done.unwrap_or(buffer.len());
        input.consume(used);
        if done.is_some() {
            return Ok(Some(!over));
        }
    }
}
