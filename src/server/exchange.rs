//! One HTTP exchange: reading the request body and credential, answering with JSON or an
//! error, and streaming SSE with a flush after every event.
//!
//! Streams are written through `Request::into_writer()` with chunked framing of our own:
//! `Request::respond` with a body of unknown length buffers 8 KiB before sending anything,
//! which would turn a token-by-token stream into lumps.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use tiny_http::{Header, Request, Response};

use crate::chat::{self, ErrorKind, Event, Flow, Sink, Stop};
use crate::dialect::{Dialect, StreamRenderer};

/// The CORS headers every answer carries, so browser chat UIs can call the server.
pub const CORS: &[(&str, &str)] = &[
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "*"),
    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
];

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Answers with a complete body.
pub fn respond(request: Request, status: u16, content_type: &str, body: Vec<u8>, extra: &[(&str, &str)]) {
    let mut response = Response::from_data(body).with_status_code(status);
    for (name, value) in CORS.iter().chain(extra).chain(&[("Content-Type", content_type)]) {
        if let Some(h) = header(name, value) {
            response.add_header(h);
        }
    }
    // The client may have gone; there is no one left to tell.
    let _ = request.respond(response);
}

pub fn respond_json(request: Request, status: u16, body: Vec<u8>) {
    respond(request, status, "application/json", body, &[]);
}

/// Answers with an error in the dialect's shape; rate limits and overload say when to retry.
pub fn respond_error(request: Request, dialect: Dialect, error: &chat::Error, extra: &[(&str, &str)]) {
    let (status, body) = dialect.error_response(error);
    let seconds = error.retry_after.unwrap_or(1).to_string();
    let retry = [("Retry-After", seconds.as_str())];
    // The OpenAI and Anthropic SDKs honour `x-should-retry`: a retry that cannot help costs a
    // Kimi chat each time.
    let final_answer = [("x-should-retry", "false")];
    let retry: &[(&str, &str)] = match error.kind {
        _ if !error.retryable => &final_answer,
        ErrorKind::RateLimited | ErrorKind::Overloaded => &retry,
        _ => &[],
    };
    // A body that did not arrive leaves the connection mid-request: it cannot carry another.
    let close: &[(&str, &str)] =
        if error.kind == ErrorKind::RequestTimeout { &[("Connection", "close")] } else { &[] };
    let headers: Vec<(&str, &str)> = extra.iter().chain(retry).chain(close).copied().collect();
    respond(request, status, "application/json", body, &headers);
}

/// Reads the whole body, refusing more than `limit` bytes and a body that has not arrived
/// within `timeout` (checked as it arrives; a client that goes silent is cut by the socket's
/// read timeout, `--idle-timeout`).
pub fn read_body(request: &mut Request, limit: usize, timeout: Duration) -> Result<Vec<u8>, chat::Error> {
    let too_large =
        || chat::Error::new(ErrorKind::PayloadTooLarge, format!("the request body exceeds {limit} bytes"));
    let too_slow = || {
        let secs = timeout.as_secs_f64();
        chat::Error::new(
            ErrorKind::RequestTimeout,
            format!("the request body did not arrive within {secs} s"),
        )
    };
    if request.body_length().is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    // The request timeout runs from the head's first byte: what the head took is spent.
    let timeout = timeout.saturating_sub(request.head_time());
    let started = Instant::now();
    // Read straight into the body, as much as has come each time (a long agent history arrives
    // in a few reads, not one per 16 KB), and no further than its announced length.
    let expected = request.body_length();
    let mut body = Vec::with_capacity(expected.unwrap_or(0));
    let mut reader = request.as_reader().take(limit as u64 + 1);
    while expected != Some(body.len()) {
        let len = body.len();
        body.resize(len + (body.capacity() - len).max(16 * 1024), 0);
        let read = reader.read(&mut body[len..]);
        body.truncate(len + read.as_ref().map_or(0, |n| *n));
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(too_slow());
            }
            Err(e) => return Err(chat::Error::invalid(format!("could not read the request body: {e}"))),
        }
        if started.elapsed() > timeout {
            return Err(too_slow());
        }
    }
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

/// The caller's Kimi credential: `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or
/// `?key=`, whichever is present and not empty.
pub fn credential(request: &Request) -> Option<String> {
    let from_header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let bearer = from_header("Authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    bearer
        .or_else(|| from_header("x-api-key"))
        .or_else(|| from_header("x-goog-api-key"))
        .or_else(|| query_param(request.url(), "key"))
        .filter(|token| !token.is_empty())
}

/// A query parameter's raw value.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

/// A live SSE response. Headers are sent with the first bytes an event produces, so a
/// failure before then can still be answered with a real status code.
pub struct EventStream<R> {
    state: State,
    dialect: Dialect,
    renderer: R,
    chunked: bool,
    /// Rendered bytes not yet written.
    buf: Vec<u8>,
    pub conversation_id: Option<String>,
    /// When the response head went out (the answer's first byte), if it did.
    pub opened: Option<std::time::Instant>,
}

enum State {
    Pending(Request),
    Open(Box<dyn Write + Send>),
    Gone,
}

impl<R: StreamRenderer> EventStream<R> {
    pub fn new(request: Request, dialect: Dialect, renderer: R) -> Self {
        // HTTP/1.0 has no chunked encoding: the body then ends when the connection closes.
        let chunked = request.http_version() >= &tiny_http::HTTPVersion(1, 1);
        EventStream {
            state: State::Pending(request),
            dialect,
            renderer,
            chunked,
            buf: Vec::new(),
            conversation_id: None,
            opened: None,
        }
    }

    /// Ends a finished stream.
    pub fn finish(mut self) {
        let _ = Sink::flush(&mut self);
        if let State::Open(writer) = &mut self.state
            && self.chunked
        {
            let _ = writer.write_all(b"0\r\n\r\n").and_then(|()| writer.flush());
        }
    }

    /// Ends the stream after a failure: a real error response if nothing was sent yet,
    /// otherwise the dialect's error frames and a proper end of the body.
    pub fn fail(mut self, error: &chat::Error) -> u16 {
        match std::mem::replace(&mut self.state, State::Gone) {
            State::Pending(request) if self.buf.is_empty() => {
                respond_error(request, self.dialect, error, &[]);
                self.dialect.error_response(error).0
            }
            state => {
                // What was decoded before the failure still reaches the client, then the error.
                self.state = state;
                let mut out = std::mem::take(&mut self.buf);
                self.renderer.error(error, &mut out);
                self.buf = out;
                self.finish();
                200
            }
        }
    }

    fn open(request: Request, content_type: &str, chunked: bool) -> io::Result<Box<dyn Write + Send>> {
        let mut head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n");
        head.push_str("Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
        for (name, value) in CORS {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(if chunked {
            "Transfer-Encoding: chunked\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        let mut writer = request.into_writer();
        writer.write_all(head.as_bytes())?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let State::Pending(_) = self.state {
            let State::Pending(request) = std::mem::replace(&mut self.state, State::Gone) else {
                unreachable!()
            };
            self.state = State::Open(Self::open(request, self.renderer.content_type(), self.chunked)?);
            self.opened = Some(std::time::Instant::now());
        }
        let State::Open(writer) = &mut self.state else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        let result = if self.chunked {
            write!(writer, "{:x}\r\n", bytes.len())
                .and_then(|()| writer.write_all(bytes))
                .and_then(|()| writer.write_all(b"\r\n"))
        } else {
            writer.write_all(bytes)
        };
        result.and_then(|()| writer.flush()).inspect_err(|_| self.state = State::Gone)
    }
}

impl<R: StreamRenderer> Sink for EventStream<R> {
    /// Renders the event; its bytes leave at the next [`Sink::flush`].
    fn send(&mut self, event: Event) -> Flow {
        if let Event::ConversationId(id) = &event {
            self.conversation_id = Some(id.clone());
        }
        if matches!(self.state, State::Gone) {
            return Flow::Stop(Stop::ClientGone);
        }
        self.renderer.event(event, &mut self.buf);
        Flow::Go
    }

    /// Writes what the events since the last flush rendered, as one chunk.
    fn flush(&mut self) -> Flow {
        let out = std::mem::take(&mut self.buf);
        let flow = match self.write(&out) {
            Ok(()) => Flow::Go,
            Err(_) => Flow::Stop(Stop::ClientGone),
        };
        self.buf = out;
        self.buf.clear();
        flow
    }
}
