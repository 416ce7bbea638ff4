//! No request waits behind another, silent and half-sent connections are dropped, a client that
//! stops reading is dropped with its chat, and a drain lets streams finish, then ends them with
//! the dialect's error and deletes every chat. In-process server, loopback only, every loop
//! bounded; timing bounds are generous (machines are small and noisy).

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::process::ServerProcess;
use support::{Harness, Kind, MockKimi, Script, Streamed, stream_with};

both_backends!(
    silent_and_half_sent_connections_are_closed_and_never_delay_others,
    a_body_that_does_not_arrive_is_408,
    a_client_that_stops_reading_is_dropped_and_its_chat_deleted,
    a_burst_behind_idle_keep_alive_connections_waits_for_no_stream,
    a_drain_lets_streams_finish_in_every_dialect,
    at_the_drain_deadline_streams_end_with_the_dialect_error,
    a_second_signal_ends_the_drain_at_once,
    attachment_redirects_past_three_are_a_400_in_every_dialect,
    a_document_parse_that_says_nothing_is_an_upstream_error,
    concurrent_answers_have_distinct_ids,
);

/// The three dialects' streaming requests.
#[derive(Debug, Clone, Copy)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

const DIALECTS: [Dialect; 3] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini];

impl Dialect {
    /// Path, headers and body of a streamed chat.
    fn request(self, token: &str) -> (&'static str, Vec<(&'static str, String)>, Value) {
        let hi = json!([{"role": "user", "content": "hi"}]);
        match self {
            Dialect::OpenAi => (
                "/v1/chat/completions",
                vec![("Authorization", format!("Bearer {token}"))],
                json!({"model": "kimi", "stream": true, "messages": hi}),
            ),
            Dialect::Anthropic => (
                "/v1/messages",
                vec![("x-api-key", token.to_string()), ("anthropic-version", "2023-06-01".into())],
                json!({"model": "kimi", "max_tokens": 100, "stream": true, "messages": hi}),
            ),
            Dialect::Gemini => (
                "/v1beta/models/kimi:streamGenerateContent?alt=sse",
                vec![("x-goog-api-key", token.to_string())],
                json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            ),
        }
    }

    /// Streams one chat from `base`.
    fn stream(self, base: &str, token: &str) -> Streamed {
        let (path, headers, body) = self.request(token);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        stream_with(&format!("{base}{path}"), &headers, &body)
    }

    /// Whether the stream ended as a finished answer of this dialect.
    fn finished(self, answer: &Streamed) -> bool {
        let last = answer.frames.last();
        answer.complete
            && match self {
                Dialect::OpenAi => last.is_some_and(|f| f.data == "[DONE]"),
                Dialect::Anthropic => last.is_some_and(|f| f.event.as_deref() == Some("message_stop")),
                Dialect::Gemini => last.is_some_and(|f| f.json()["candidates"][0]["finishReason"] == "STOP"),
            }
    }

    /// Whether the stream ended with this dialect's error frame saying the server stops.
    fn ended_by_shutdown(self, answer: &Streamed) -> bool {
        let error = answer.frames.iter().find(|f| match self {
            Dialect::Anthropic => f.event.as_deref() == Some("error"),
            _ => f.data.contains("\"error\""),
        });
        // Before its first frame a stream still gets a real error response.
        let answered = answer.frames.is_empty() && answer.body_if_error.contains("shutting down");
        answered || answer.complete && error.is_some_and(|f| f.data.contains("shutting down"))
    }
}

/// A request head on a raw connection, with a body of `length` bytes to follow.
fn head(length: usize) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Whether the server closed `socket` within `within` (a read gives EOF or a reset).
fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn timed_ping(base: &str) -> Duration {
    let started = Instant::now();
    assert_eq!(support::get(&format!("{base}/ping")).status, 200);
    started.elapsed()
}

fn silent_and_half_sent_connections_are_closed_and_never_delay_others(kind: Kind) {
    let h = Harness::start_with(|c| c.idle_timeout = Duration::from_secs(1));
    let addr = h.server.addr();
    let mut silent: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut half: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut socket = TcpStream::connect(addr).unwrap();
            socket.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
            socket
        })
        .collect();
    // Meanwhile the server answers as if they were not there.
    let ping = timed_ping(&h.base);
    assert!(ping < Duration::from_secs(2), "/ping took {ping:?} beside 100 stuck connections");
    let answer = Dialect::OpenAi.stream(&h.base, &kind.token());
    assert!(Dialect::OpenAi.finished(&answer), "{}", answer.raw);
    for socket in silent.iter_mut().chain(half.iter_mut()) {
        assert!(closed_within(socket, Duration::from_secs(10)), "a stuck connection was left open");
    }
    // A keep-alive connection that goes quiet after a request is closed as well.
    let mut keep_alive = TcpStream::connect(addr).unwrap();
    keep_alive.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut pong = [0u8; 12];
    keep_alive.read_exact(&mut pong).unwrap();
    assert!(closed_within(&mut keep_alive, Duration::from_secs(10)));
    assert!(h.mock.settled().live_chats.is_empty());
}

fn a_body_that_does_not_arrive_is_408(kind: Kind) {
    let h = Harness::start_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.request_timeout = Duration::from_secs(1);
    });
    // Over 1 KiB: tiny_http reads smaller bodies itself, with the head, and closes the
    // connection when they do not arrive (that case is the last below).
    let long = "x".repeat(2000);
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": long}]}).to_string();
    // A body that stops half-way, and one that trickles in slower than the request timeout.
    let mut silent = TcpStream::connect(h.server.addr()).unwrap();
    silent.write_all(head(body.len()).as_bytes()).unwrap();
    silent.write_all(&body.as_bytes()[..10]).unwrap();
    let mut trickle = TcpStream::connect(h.server.addr()).unwrap();
    trickle.write_all(head(body.len()).as_bytes()).unwrap();
    let started = Instant::now();
    let mut sent = 0;
    while sent < 8 && started.elapsed() < Duration::from_secs(3) {
        if trickle.write_all(&body.as_bytes()[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        thread::sleep(Duration::from_millis(300));
    }
    for socket in [&mut silent, &mut trickle] {
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout") && answer.contains("did not arrive"), "{answer}");
    }
    let mut small = TcpStream::connect(h.server.addr()).unwrap();
    small.write_all(head(100).as_bytes()).unwrap();
    small.write_all(b"{\"model\"").unwrap();
    assert!(closed_within(&mut small, Duration::from_secs(10)), "a small body that stops is closed");
    assert_eq!(h.mock.stats().chats_created, 0, "nothing reached Kimi ({kind:?})");
}

fn a_client_that_stops_reading_is_dropped_and_its_chat_deleted(kind: Kind) {
    let h = Harness::start_with(|c| {
        c.write_timeout = Duration::from_secs(1);
        c.upstream_timeout = Duration::from_secs(5);
    });
    // About 40 MB of answer: far more than the socket buffers between us hold.
    h.mock.script(Script { stamp: true, events: 4000, pad: 10_000, ..Script::default() });
    let (path, headers, body) = Dialect::OpenAi.request(&kind.token());
    let body = body.to_string();
    let mut client = TcpStream::connect(h.server.addr()).unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n");
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    client.write_all(request.as_bytes()).unwrap();
    // The client reads nothing. The server gives up on it and deletes the chat.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = h.mock.stats();
        if stats.chats_created == 1 && stats.live_chats.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the chat of a client that stopped reading was not deleted");
        thread::sleep(Duration::from_millis(50));
    }
    // Its worker is free again (it logs the request after the deletion).
    while h.server.in_flight() > 0 {
        assert!(Instant::now() < deadline, "the worker of a client that stopped reading is still busy");
        thread::sleep(Duration::from_millis(20));
    }
    drop(client);
}

fn a_burst_behind_idle_keep_alive_connections_waits_for_no_stream(kind: Kind) {
    let h = Harness::start_with(|c| {
        c.workers = 128;
        c.queue_depth = 128;
        c.upstream_timeout = Duration::from_secs(10);
    });
    // Streams that last about 4 s: a request queued behind one would wait that long (and one
    // queued behind an idle keep-alive connection, for ever).
    h.mock.script(Script { events: 40, delay_ms: 100, ..Script::default() });
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut socket = TcpStream::connect(h.server.addr()).unwrap();
        socket.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let mut pong = Vec::new();
        let mut buf = [0u8; 512];
        while !pong.ends_with(b"pong") {
            let n = socket.read(&mut buf).unwrap();
            assert!(n > 0, "the server answers /ping");
            pong.extend_from_slice(&buf[..n]);
        }
        idle.push(socket);
    }
    let (path, headers, body) = Dialect::OpenAi.request(&kind.token());
    let body = body.to_string();
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n");
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    // Two rounds: the unpatched pool lost a connection in most bursts, not in every one.
    for _ in 0..2 {
        // Connections that just ended leave their threads waiting in tiny_http's pool: the state
        // in which its unpatched pool queued a burst behind them.
        let pings: Vec<TcpStream> = (0..20)
            .map(|_| {
                let mut socket = TcpStream::connect(h.server.addr()).unwrap();
                socket.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
                socket
            })
            .collect();
        for mut socket in pings {
            let _ = socket.read_to_end(&mut Vec::new());
        }
        thread::sleep(Duration::from_millis(200));
        // A tight burst: every connection opened and its request sent in one loop, so the server
        // accepts them back to back.
        let started = Instant::now();
        let mut burst: Vec<TcpStream> = (0..50)
            .map(|_| {
                let mut socket = TcpStream::connect(h.server.addr()).unwrap();
                socket.write_all(request.as_bytes()).unwrap();
                socket
            })
            .collect();
        let mut worst = Duration::ZERO;
        for socket in &mut burst {
            socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut first = [0u8; 12];
            socket
                .read_exact(&mut first)
                .unwrap_or_else(|e| panic!("an answer did not begin within 5 s: {e}"));
            assert_eq!(&first, b"HTTP/1.1 200");
            worst = worst.max(started.elapsed());
        }
        assert!(worst < Duration::from_secs(2), "a new stream waited {worst:?} for its answer to begin");
        drop(burst);
    }
    drop(idle);
    assert!(h.mock.settled().live_chats.is_empty());
}

/// Starts one stream per dialect on threads; returns once each has its first frame pending.
fn streams_in_every_dialect(h: &Harness, kind: Kind) -> Vec<thread::JoinHandle<(Dialect, Streamed)>> {
    let handles: Vec<_> = DIALECTS
        .iter()
        .map(|&dialect| {
            let (base, token) = (h.base.clone(), kind.token());
            thread::spawn(move || (dialect, dialect.stream(&base, &token)))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.mock.stats().live_chats.len() < DIALECTS.len() {
        assert!(Instant::now() < deadline, "the streams started");
        thread::sleep(Duration::from_millis(10));
    }
    // Time for the server to read each chat's id (Connect sends it in the stream's first
    // frame) and for a few events to reach the clients.
    thread::sleep(Duration::from_millis(700));
    handles
}

fn a_drain_lets_streams_finish_in_every_dialect(kind: Kind) {
    let h = Harness::start_with(|c| c.upstream_timeout = Duration::from_secs(5));
    h.mock.script(Script { events: 10, delay_ms: 100, stamp: true, ..Script::default() });
    let streams = streams_in_every_dialect(&h, kind);
    let (_never, hurry) = crossbeam_channel::bounded::<()>(1);
    let drained = h.server.drain(Duration::from_secs(20), &hurry);
    assert_eq!((drained.finished, drained.ended, drained.abandoned), (3, 0, 0), "{drained:?}");
    assert!(TcpStream::connect(h.server.addr()).is_err(), "the port is closed");
    for stream in streams {
        let (dialect, answer) = stream.join().unwrap();
        assert!(dialect.finished(&answer), "{dialect:?}: {}", answer.raw);
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

fn at_the_drain_deadline_streams_end_with_the_dialect_error(kind: Kind) {
    let h = Harness::start_with(|c| c.upstream_timeout = Duration::from_secs(30));
    // Streams of a minute, and one request waiting on an open keep-alive connection.
    h.mock.script(Script { events: 300, delay_ms: 200, stamp: true, ..Script::default() });
    let mut keep_alive = TcpStream::connect(h.server.addr()).unwrap();
    keep_alive.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut pong = [0u8; 12];
    keep_alive.read_exact(&mut pong).unwrap();
    let streams = streams_in_every_dialect(&h, kind);
    let (_never, hurry) = crossbeam_channel::bounded::<()>(1);
    let started = Instant::now();
    let drainer = thread::scope(|scope| {
        let drainer = scope.spawn(|| h.server.drain(Duration::from_secs(1), &hurry));
        // During the drain a new request on the open connection is refused at once.
        thread::sleep(Duration::from_millis(300));
        keep_alive.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        keep_alive.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut refused = String::new();
        let _ = keep_alive.read_to_string(&mut refused);
        assert!(refused.contains("HTTP/1.1 503") && refused.contains("shutting down"), "{refused}");
        drainer.join().unwrap()
    });
    assert_eq!((drainer.finished, drainer.ended, drainer.abandoned), (0, 3, 0), "{drainer:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "the drain took {:?}", started.elapsed());
    for stream in streams {
        let (dialect, answer) = stream.join().unwrap();
        assert!(!answer.frames.is_empty(), "{dialect:?} streamed before the deadline");
        assert!(dialect.ended_by_shutdown(&answer), "{dialect:?}: {}", answer.raw);
    }
    let stats = h.mock.settled();
    assert!(stats.live_chats.is_empty(), "every chat deleted: {:?}", stats.live_chats);
    assert_eq!(stats.chats_created, 3);
    let _ = keep_alive.shutdown(Shutdown::Both);
}

fn a_second_signal_ends_the_drain_at_once(kind: Kind) {
    let h = Harness::start_with(|c| c.upstream_timeout = Duration::from_secs(30));
    h.mock.script(Script { events: 300, delay_ms: 200, stamp: true, ..Script::default() });
    let streams = streams_in_every_dialect(&h, kind);
    let (signal, hurry) = crossbeam_channel::bounded::<()>(1);
    signal.send(()).unwrap();
    let started = Instant::now();
    let drained = h.server.drain(Duration::from_secs(60), &hurry);
    assert!(started.elapsed() < Duration::from_secs(15), "the drain took {:?}", started.elapsed());
    assert_eq!(drained.ended, 3, "{drained:?}");
    for stream in streams {
        let (dialect, answer) = stream.join().unwrap();
        assert!(dialect.ended_by_shutdown(&answer), "{dialect:?}: {}", answer.raw);
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

/// A loopback server whose `/r/N` redirects N more times before `/file` (a PNG).
fn redirecting_site() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let own = base.clone();
    thread::spawn(move || {
        for mut stream in listener.incoming().take(100).flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                if stream.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let path = head.split(' ').nth(1).unwrap_or("/");
            let answer = match path.strip_prefix("/r/").and_then(|n| n.parse::<u32>().ok()) {
                Some(0) => format!("HTTP/1.1 302 Found\r\nLocation: {own}/file\r\nContent-Length: 0\r\n\r\n"),
                Some(n) => {
                    format!("HTTP/1.1 302 Found\r\nLocation: {own}/r/{}\r\nContent-Length: 0\r\n\r\n", n - 1)
                }
                None => "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\nxPNG".into(),
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    base
}

fn attachment_redirects_past_three_are_a_400_in_every_dialect(kind: Kind) {
    let h = Harness::start_with(|c| c.allow_private_urls = true);
    let site = redirecting_site();
    let token = kind.token();
    let ask = |url: &str| -> Vec<support::Reply> {
        let openai = json!({"model": "kimi", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": url}}]}]});
        let anthropic = json!({"model": "kimi", "max_tokens": 100, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": url}}, {"type": "text", "text": "look"}]}]});
        let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "look"},
            {"file_data": {"mime_type": "image/png", "file_uri": url}}]}]});
        let bearer = format!("Bearer {token}");
        vec![
            support::post_with(&h.url("/v1/chat/completions"), &[("Authorization", &bearer)], &openai),
            support::post_with(&h.url("/v1/messages"), &[("x-api-key", &token)], &anthropic),
            support::post_with(
                &h.url("/v1beta/models/kimi:generateContent"),
                &[("x-goog-api-key", &token)],
                &gemini,
            ),
        ]
    };
    for reply in ask(&format!("{site}/r/3")) {
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert!(reply.body.contains("redirects more than 3 times"), "{}", reply.body);
    }
    assert_eq!(h.mock.stats().chats_created, 0, "refused before any chat");
    for reply in ask(&format!("{site}/r/2")) {
        assert_eq!(reply.status, 200, "three redirects are followed: {}", reply.body);
    }
    assert_eq!(h.mock.settled().uploads.len(), 3);
}

fn a_document_parse_that_says_nothing_is_an_upstream_error(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { fault: Some(support::Fault::ParseSaysNothing), ..Script::default() });
    let document = "data:text/plain;base64,Y2hhcHRlciBvbmU=";
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "summarise"}, {"type": "file", "file": {"file_data": document}}]}]});
    let reply = support::post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &body);
    assert_eq!(reply.status, 502, "not an answer made without the document: {}", reply.body);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("ended without a result") || message.contains("not JSON"), "{message}");
    assert!(h.mock.settled().live_chats.is_empty());
}

fn concurrent_answers_have_distinct_ids(kind: Kind) {
    let h = Harness::start_with(|c| {
        c.workers = 32;
        c.queue_depth = 32;
    });
    let ids: Vec<String> = thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let h = &h;
                // One account each: Kimi streams one answer per account at a time.
                let token = kind.token_for(&format!("ids-{i}"));
                scope.spawn(move || {
                    let token = token.as_str();
                    let hi = json!([{"role": "user", "content": "hi"}]);
                    if i % 2 == 0 {
                        let body = json!({"model": "kimi", "max_tokens": 100, "messages": hi});
                        let reply =
                            support::post_with(&h.url("/v1/messages"), &[("x-api-key", token)], &body);
                        reply.json()["id"].as_str().unwrap_or_else(|| panic!("{}", reply.body)).to_string()
                    } else {
                        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
                        let url = h.url("/v1beta/models/kimi:generateContent");
                        let reply = support::post_with(&url, &[("x-goog-api-key", token)], &body);
                        reply.json()["responseId"]
                            .as_str()
                            .unwrap_or_else(|| panic!("{}", reply.body))
                            .to_string()
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids collide: {ids:?}");
}

/// Sends `bytes` on a clone of `socket` from another thread, `gap` apart in `chunk`s, until
/// the server stops taking them or `within` has passed; joined by the caller.
fn send_in_thread(
    socket: &TcpStream,
    bytes: Vec<u8>,
    chunk: usize,
    gap: Duration,
) -> thread::JoinHandle<usize> {
    let mut writer = socket.try_clone().unwrap();
    thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0;
        for part in bytes.chunks(chunk) {
            if started.elapsed() > Duration::from_secs(6) || writer.write_all(part).is_err() {
                break;
            }
            sent += part.len();
            thread::sleep(gap);
        }
        sent
    })
}

/// Everything the server sends until it closes (a reset ends it too), at most 10 s.
fn read_until_closed(socket: &mut TcpStream) -> String {
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A GET /ping whose head (request line, headers, final CRLF) is exactly `size` bytes.
fn head_of(size: usize) -> String {
    let start = "GET /ping HTTP/1.1\r\nHost: x\r\n";
    let filler = |n: usize| format!("X-Fill: {}\r\n", "f".repeat(n));
    let mut head = start.to_string();
    let mut left = size - start.len() - 2;
    while left > 0 {
        // Header lines of at most 8 KiB, the last one taking what is left (at least 11 bytes).
        let line = if left > 8192 + 11 { 8192 } else { left };
        head.push_str(&filler(line - 10));
        left -= line;
    }
    head.push_str("\r\n");
    assert_eq!(head.len(), size);
    head
}

#[test]
fn a_head_that_trickles_in_is_cut_at_the_request_timeout() {
    // Each byte comes well within the idle timeout; the head as a whole does not come within
    // the request timeout, which runs from its first byte.
    let h = Harness::start_with(|c| {
        c.idle_timeout = Duration::from_secs(5);
        c.request_timeout = Duration::from_secs(1);
    });
    let mut socket = TcpStream::connect(h.server.addr()).unwrap();
    let head = format!("GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n", "s".repeat(100));
    let started = Instant::now();
    let writer = send_in_thread(&socket, head.into_bytes(), 1, Duration::from_millis(200));
    let answer = read_until_closed(&mut socket);
    let cut = started.elapsed();
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(!answer.contains("pong"), "{answer}");
    assert!(cut >= Duration::from_millis(900), "cut after {cut:?}, before the request timeout");
    assert!(cut < Duration::from_millis(2500), "cut after {cut:?}, well past the 1 s request timeout");
    let sent = writer.join().unwrap();
    assert!(sent < 30, "{sent} bytes of the head were taken");
    // Meanwhile, and after, the server answers others at once.
    assert!(timed_ping(&h.base) < Duration::from_secs(2));
}

#[test]
fn a_head_at_the_limit_is_served_and_one_byte_more_is_431() {
    let h = Harness::start_with(|c| c.idle_timeout = Duration::from_secs(5));
    let mut socket = TcpStream::connect(h.server.addr()).unwrap();
    socket.write_all(head_of(65536).as_bytes()).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = [0u8; 12];
    socket.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200", "a head of exactly 64 KiB is served");
    let mut socket = TcpStream::connect(h.server.addr()).unwrap();
    socket.write_all(head_of(65537).as_bytes()).unwrap();
    let answer = read_until_closed(&mut socket);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[test]
fn a_megabyte_header_line_is_431_and_memory_stays_bounded() {
    let mock = MockKimi::start();
    let server = ServerProcess::start(&mock, &["--idle-timeout", "5"]);
    let before = server.rss_kb();
    // Eight connections at once, each sending a 1 MB header line: unbounded, they would hold
    // 8 MB or more while their lines are read.
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr.clone();
            thread::spawn(move || {
                let mut socket = TcpStream::connect(addr).unwrap();
                let mut head = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
                head.resize(head.len() + 1024 * 1024, b'l');
                let writer = send_in_thread(&socket, head, 16 * 1024, Duration::ZERO);
                let answer = read_until_closed(&mut socket);
                let sent = writer.join().unwrap();
                (answer, sent)
            })
        })
        .collect();
    for client in clients {
        let (answer, _) = client.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    let after = server.rss_kb();
    assert!(before > 0 && after < before + 4096, "RSS grew from {before} kB to {after} kB");
    assert!(support::process::ping(&server.addr), "the server still answers");
}
