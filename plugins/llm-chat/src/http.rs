//! One HTTP request over `wasi:http/outgoing-handler`, blocking, with the request options
//! (connect, first-byte and between-bytes timeouts) the host caps by the tenant's own.
//! The host decides where the request may go and counts and traces it; this module only
//! speaks the interface and turns its error codes into ones the primitive can classify.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, InputStream, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// Where a request goes: `https://host:port` and a path under it.
pub struct Url {
    pub https: bool,
    pub authority: String,
    pub path: String,
}

impl Url {
    /// Parses `http(s)://authority[/path]`; anything else is refused with the reason.
    pub fn parse(url: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(Url {
            https,
            authority: authority.to_owned(),
            path: format!("/{}", path.trim_end_matches('/')),
        })
    }

    /// The host name alone, without the port.
    pub fn host(&self) -> &str {
        self.authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(self.authority.as_str(), |(host, _)| host)
    }

    /// The port, explicit or the scheme's.
    pub fn port(&self) -> u16 {
        self.authority
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(if self.https { 443 } else { 80 })
    }
}

/// How long to wait, in milliseconds, for each phase of a request.
pub struct Timeouts {
    pub connect_ms: u64,
    pub first_byte_ms: u64,
    pub between_bytes_ms: u64,
}

/// Why a request failed, classified.
pub enum Failure {
    /// A timeout of one phase (`wasi:http`'s `connection-timeout`, `connection-read-timeout`,
    /// `http-response-timeout`).
    Timeout(String),
    /// The host refused the destination (`HTTP-request-denied`): not in the tenant's allowlist.
    Denied(String),
    /// The server's certificate could not be verified.
    Tls(String),
    /// Anything else on the way: DNS, refused connection, reset, a body cut short.
    Transport(String),
}

impl Failure {
    fn from_code(code: &ErrorCode) -> Failure {
        let text = format!("{code:?}");
        match code {
            ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
                Failure::Timeout(text)
            }
            ErrorCode::HttpRequestDenied => Failure::Denied(text),
            ErrorCode::TlsCertificateError | ErrorCode::TlsAlertReceived(_) | ErrorCode::TlsProtocolError => {
                Failure::Tls(text)
            }
            _ => Failure::Transport(text),
        }
    }
}

/// A response whose body is read as it arrives.
pub struct Response {
    pub status: u16,
    headers: Vec<(String, Vec<u8>)>,
    // Declared before `body`: a stream is dropped before the body it belongs to.
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
}

impl Response {
    /// The first value of header `name` (lower case), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The next piece of the body, `None` at its end.
    pub fn chunk(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        match self.stream.blocking_read(64 * 1024) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StreamError::Closed) => Ok(None),
            Err(StreamError::LastOperationFailed(e)) => Err(match wasip2::http::types::http_error_code(&e) {
                Some(code) => Failure::from_code(&code),
                None => Failure::Transport(e.to_debug_string()),
            }),
        }
    }

    /// The rest of the body.
    pub fn text(&mut self) -> Result<Vec<u8>, Failure> {
        let mut all = Vec::new();
        while let Some(bytes) = self.chunk()? {
            all.extend_from_slice(&bytes);
        }
        Ok(all)
    }
}

fn send_body(outgoing: &OutgoingBody, body: &[u8]) -> Result<(), Failure> {
    let stream = outgoing
        .write()
        .map_err(|()| Failure::Transport("the request body was refused".into()))?;
    // `blocking-write-and-flush` takes at most 4096 bytes at a time.
    for piece in body.chunks(4096) {
        stream
            .blocking_write_and_flush(piece)
            .map_err(|e| Failure::Transport(format!("sending the body failed: {e:?}")))?;
    }
    Ok(())
}

/// POSTs `body` to `url` with `headers`, and waits for the response's head.
pub fn post(url: &Url, headers: &[(&str, &[u8])], body: &[u8], timeouts: &Timeouts) -> Result<Response, Failure> {
    let entries: Vec<(String, Vec<u8>)> = headers.iter().map(|(n, v)| ((*n).to_owned(), v.to_vec())).collect();
    let fields = Fields::from_list(&entries).map_err(|e| Failure::Transport(format!("a header is invalid: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let refused = |what: &str| Failure::Transport(format!("the request's {what} was refused"));
    request.set_method(&Method::Post).map_err(|()| refused("method"))?;
    request
        .set_scheme(Some(if url.https { &Scheme::Https } else { &Scheme::Http }))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| refused("authority"))?;
    request
        .set_path_with_query(Some(&url.path))
        .map_err(|()| refused("path"))?;
    let options = RequestOptions::new();
    let ns = |ms: u64| ms.saturating_mul(1_000_000);
    // The host may not support an option; it caps them by the tenant's anyway.
    let _ = options.set_connect_timeout(Some(ns(timeouts.connect_ms)));
    let _ = options.set_first_byte_timeout(Some(ns(timeouts.first_byte_ms)));
    let _ = options.set_between_bytes_timeout(Some(ns(timeouts.between_bytes_ms)));
    let outgoing = request.body().map_err(|()| refused("body"))?;
    let pending = outgoing_handler::handle(request, Some(options)).map_err(|e| Failure::from_code(&e))?;
    // A request the host refuses fails its future, and the body stream closes first: the
    // future's error code is the one that says why, so it is looked at before the body's.
    let sent = send_body(&outgoing, body);
    let finished = OutgoingBody::finish(outgoing, None);
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| Failure::Transport("no response".into()))?
        .map_err(|()| Failure::Transport("the response was taken twice".into()))?
        .map_err(|e| Failure::from_code(&e))?;
    sent?;
    finished.map_err(|e| Failure::from_code(&e))?;
    let status = response.status();
    let headers = response.headers().entries();
    let body = response
        .consume()
        .map_err(|()| Failure::Transport("the response has no body".into()))?;
    let stream = body
        .stream()
        .map_err(|()| Failure::Transport("the body has no stream".into()))?;
    Ok(Response {
        status,
        headers,
        stream,
        _body: body,
        _response: response,
    })
}
