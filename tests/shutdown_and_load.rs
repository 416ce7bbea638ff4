//! The real binary as systemd and a busy VPS see it: SIGTERM with live streams in all three
//! dialects (exit 0, streams finished or ended with the dialect's error, no chat left), a second
//! signal, and a bounded load of hundreds of streams with faults, slow and idle clients at once
//! (nothing lost, memory back near idle). Loopback only; every loop bounded in count and time.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::process::ServerProcess;
use support::{Fault, Kind, MockKimi, Script, Streamed, stream_with};

#[derive(Debug, Clone, Copy)]
enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

const DIALECTS: [Dialect; 3] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini];

impl Dialect {
    fn stream(self, base: &str, token: &str) -> Streamed {
        let hi = json!([{"role": "user", "content": "hi"}]);
        let (path, headers, body): (&str, Vec<(&str, String)>, Value) = match self {
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
        };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        stream_with(&format!("{base}{path}"), &headers, &body)
    }

    fn finished(self, answer: &Streamed) -> bool {
        let last = answer.frames.last();
        answer.complete
            && match self {
                Dialect::OpenAi => last.is_some_and(|f| f.data == "[DONE]"),
                Dialect::Anthropic => last.is_some_and(|f| f.event.as_deref() == Some("message_stop")),
                Dialect::Gemini => last.is_some_and(|f| f.json()["candidates"][0]["finishReason"] == "STOP"),
            }
    }

    /// Ended properly with this dialect's error (a frame, or a real error answer before any).
    fn ended_with_error(self, answer: &Streamed, saying: &str) -> bool {
        if answer.frames.is_empty() {
            return answer.status >= 400 && answer.body_if_error.contains(saying);
        }
        let error = answer.frames.iter().find(|f| match self {
            Dialect::Anthropic => f.event.as_deref() == Some("error"),
            _ => f.data.contains("\"error\""),
        });
        answer.complete && error.is_some_and(|f| f.data.contains(saying))
    }
}

/// Starts one stream per dialect and waits until each is under way.
fn live_streams(
    server: &ServerProcess,
    mock: &MockKimi,
    kind: Kind,
) -> Vec<thread::JoinHandle<(Dialect, Streamed)>> {
    let before = mock.stats().chats_created as usize;
    let handles = DIALECTS
        .iter()
        .map(|&dialect| {
            let (base, token) = (server.base.clone(), kind.token());
            thread::spawn(move || (dialect, dialect.stream(&base, &token)))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (mock.stats().chats_created as usize) < before + DIALECTS.len() {
        assert!(Instant::now() < deadline, "the streams started");
        thread::sleep(Duration::from_millis(10));
    }
    // Time for the server to learn each chat id and for events to reach the clients.
    thread::sleep(Duration::from_millis(700));
    handles
}

fn port_closes(server: &ServerProcess) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&server.addr).is_ok() {
        assert!(Instant::now() < deadline, "the port stays open after the signal");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_lets_live_streams_finish_in_every_dialect_then_exits_0() {
    for kind in [Kind::Legacy, Kind::Connect] {
        let mock = MockKimi::start();
        mock.script(Script { events: 12, delay_ms: 150, stamp: true, ..Script::default() });
        let mut server = ServerProcess::start(&mock, &["--drain-timeout", "30"]);
        let streams = live_streams(&server, &mock, kind);
        server.signal("TERM");
        port_closes(&server);
        for stream in streams {
            let (dialect, answer) = stream.join().unwrap();
            assert!(dialect.finished(&answer), "{kind:?} {dialect:?}: {}", answer.raw);
        }
        let status = server.wait_exit(Duration::from_secs(30)).expect("the server exits");
        assert_eq!(status.code(), Some(0), "{}", server.log());
        let stats = mock.settled();
        assert!(stats.live_chats.is_empty(), "{kind:?}: chats left {:?}", stats.live_chats);
        assert!(server.log().contains("3 requests finished, 0 ended"), "{}", server.log());
    }
}

#[test]
fn at_the_drain_deadline_streams_end_with_the_dialect_error_and_every_chat_is_deleted() {
    for kind in [Kind::Legacy, Kind::Connect] {
        let mock = MockKimi::start();
        mock.script(Script { events: 300, delay_ms: 200, stamp: true, ..Script::default() });
        let mut server = ServerProcess::start(&mock, &["--drain-timeout", "1", "--upstream-timeout", "60"]);
        let streams = live_streams(&server, &mock, kind);
        let started = Instant::now();
        server.signal("TERM");
        port_closes(&server);
        let status = server.wait_exit(Duration::from_secs(30)).expect("the server exits");
        assert_eq!(status.code(), Some(0), "{}", server.log());
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        for stream in streams {
            let (dialect, answer) = stream.join().unwrap();
            assert!(
                dialect.ended_with_error(&answer, "shutting down"),
                "{kind:?} {dialect:?}: {}",
                answer.raw
            );
        }
        let stats = mock.settled();
        assert!(stats.live_chats.is_empty(), "{kind:?}: chats left {:?}", stats.live_chats);
        assert!(server.log().contains("0 requests finished, 3 ended"), "{}", server.log());
    }
}

#[test]
fn a_second_signal_ends_the_drain_at_once_and_still_deletes_every_chat() {
    let mock = MockKimi::start();
    mock.script(Script { events: 300, delay_ms: 200, stamp: true, ..Script::default() });
    let mut server = ServerProcess::start(&mock, &["--drain-timeout", "600", "--upstream-timeout", "60"]);
    let streams = live_streams(&server, &mock, Kind::Legacy);
    let started = Instant::now();
    server.signal("INT");
    port_closes(&server);
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(30)).expect("the server exits");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    for stream in streams {
        let (dialect, answer) = stream.join().unwrap();
        assert!(dialect.ended_with_error(&answer, "shutting down"), "{dialect:?}: {}", answer.raw);
    }
    assert!(mock.settled().live_chats.is_empty());
}

/// What one client of the load saw.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Outcome {
    Finished,
    /// Ended with the dialect's error (the injected faults).
    Error,
    /// Anything else: a lost answer.
    Lost,
}

#[test]
fn hundreds_of_streams_with_faults_slow_and_idle_clients_lose_nothing_and_memory_returns() {
    const STREAMS: usize = 300;
    const IDLE: usize = 150;
    const HALF_SENT: usize = 50;
    const SLOW: usize = 20;
    let mock = MockKimi::start();
    let mut server = ServerProcess::start(&mock, &["--idle-timeout", "2", "--write-timeout", "5"]);
    // Warm up (first TLS-free requests, logins), then the idle figure.
    for kind in [Kind::Legacy, Kind::Connect] {
        assert!(Dialect::OpenAi.finished(&Dialect::OpenAi.stream(&server.base, &kind.token())));
    }
    thread::sleep(Duration::from_millis(500));
    let (idle_rss, idle_threads) = (server.rss_kb(), server.threads());
    // The first 60 completions are cut after two events; the rest answer in full.
    mock.script(Script {
        events: 8,
        delay_ms: 60,
        stamp: true,
        fault: Some(Fault::Cut { after: 2 }),
        fault_times: Some(60),
        ..Script::default()
    });
    let addr = server.addr.clone();
    let mut stuck: Vec<TcpStream> = (0..IDLE).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
    for _ in 0..HALF_SENT {
        if let Ok(mut socket) = TcpStream::connect(&addr) {
            let _ = socket.write_all(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-");
            stuck.push(socket);
        }
    }
    let started = Instant::now();
    let (outcomes, slow_ok): (Vec<Outcome>, usize) = thread::scope(|scope| {
        let streams: Vec<_> = (0..STREAMS)
            .map(|i| {
                let base = server.base.clone();
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        let kind = if i % 2 == 0 { Kind::Legacy } else { Kind::Connect };
                        let dialect = DIALECTS[i % 3];
                        let answer = dialect.stream(&base, &kind.token());
                        if dialect.finished(&answer) {
                            Outcome::Finished
                        } else if dialect.ended_with_error(&answer, "") {
                            Outcome::Error
                        } else {
                            Outcome::Lost
                        }
                    })
                    .unwrap()
            })
            .collect();
        // Slow readers: a few bytes at a time, pausing between reads.
        let slow: Vec<_> = (0..SLOW)
            .map(|_| {
                let addr = addr.clone();
                scope.spawn(move || slow_reader(&addr, &Kind::Legacy.token()))
            })
            .collect();
        let outcomes = streams.into_iter().map(|h| h.join().unwrap()).collect();
        let slow_ok = slow.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count();
        (outcomes, slow_ok)
    });
    let took = started.elapsed();
    let finished = outcomes.iter().filter(|o| **o == Outcome::Finished).count();
    let errors = outcomes.iter().filter(|o| **o == Outcome::Error).count();
    let lost = outcomes.iter().filter(|o| **o == Outcome::Lost).count();
    eprintln!(
        "load: {finished} finished, {errors} errors, {lost} lost, {slow_ok}/{SLOW} slow ok in {took:?}"
    );
    assert_eq!(lost, 0, "every stream finished or ended with its dialect's error");
    assert!(errors <= 60 && finished >= STREAMS - 60, "{finished} finished, {errors} errors");
    assert_eq!(slow_ok, SLOW, "slow readers get their whole answer");
    let stats = mock.settled();
    assert!(stats.live_chats.is_empty(), "chats left: {:?}", stats.live_chats);
    assert_eq!(stats.chats_created, stats.chats_deleted);
    // Every stuck socket was closed by the idle timeout.
    for socket in &mut stuck {
        let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 64];
        assert!(!matches!(socket.read(&mut buf), Ok(n) if n > 0), "a stuck socket got an answer");
    }
    // Memory: once the idle workers exited (after a minute) and the connection threads (after
    // 5 s), RSS is back near idle: at most half of what the load added. (glibc, under `cargo
    // test`, keeps more of what was freed than the musl release binary: see the README.)
    let peak = server.rss_kb();
    let deadline = Instant::now() + Duration::from_secs(100);
    while server.threads() > idle_threads + 4 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(500));
    }
    thread::sleep(Duration::from_secs(1));
    let (rss, threads) = (server.rss_kb(), server.threads());
    eprintln!("load: RSS idle {idle_rss} kB, after the load {peak} kB, settled {rss} kB ({threads} threads)");
    assert!(threads <= idle_threads + 4, "{threads} threads, {idle_threads} when idle");
    assert!(
        rss <= idle_rss + peak.saturating_sub(idle_rss) / 2,
        "RSS {rss} kB, idle {idle_rss} kB, peak {peak} kB"
    );
    drop(stuck);
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(30)).and_then(|s| s.code()), Some(0));
}

/// A client that reads its stream 64 bytes at a time with pauses; true when it ends properly.
fn slow_reader(addr: &str, token: &str) -> bool {
    let Ok(mut socket) = TcpStream::connect(addr) else { return false };
    let body = json!({"model": "kimi", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let body = body.to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if socket.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let _ = socket.set_read_timeout(Some(Duration::from_secs(20)));
    let mut answer = Vec::new();
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
        thread::sleep(Duration::from_millis(20));
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.1 200") && (answer.contains("[DONE]") || answer.contains("\"error\""))
}
