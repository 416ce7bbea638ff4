//! Every upstream fault ends in the right OpenAI error, before or during the stream, over both
//! Kimi backends, and no upstream chat is left behind.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Api, Fault, Harness, Kind, Script, TOKEN, post, post_json, stream};

both_backends!(
    missing_or_refused_token_is_401,
    bad_requests_are_400,
    another_stream_on_the_account_is_429,
    upstream_5xx_is_retried_then_502,
    a_transient_failure_is_retried_invisibly,
    kimi_error_before_output_is_mapped,
    cut_malformed_and_stalled_streams_before_output,
    failures_after_the_stream_began,
    a_client_that_leaves_mid_stream_does_not_leak_the_chat,
);

fn ask(stream: bool) -> Value {
    json!({"model": "kimi", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn error_of(reply: &support::Reply) -> Value {
    let body = reply.json();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    body["error"].clone()
}

/// Asserts the status of both the streamed and the non-streamed request under `fault`.
fn fails_before_output(kind: Kind, fault: Fault, status: u16) -> Harness {
    let h = Harness::start();
    h.mock.script(Script { fault: Some(fault.clone()), ..Script::default() });
    let (url, token) = (h.url("/v1/chat/completions"), kind.token());
    let reply = post_json(&url, Some(&token), &ask(false));
    assert_eq!(reply.status, status, "{kind:?} {fault:?}: {}", reply.body);
    error_of(&reply);
    let answer = stream(&url, Some(&token), &ask(true));
    assert_eq!(answer.status, status, "{kind:?} {fault:?} streamed: {}", answer.body_if_error);
    assert!(answer.content_type.starts_with("application/json"));
    assert!(h.mock.settled().live_chats.is_empty(), "{kind:?} {fault:?} left a chat");
    h
}

fn missing_or_refused_token_is_401(kind: Kind) {
    let h = Harness::start();
    let url = h.url("/v1/chat/completions");
    let reply = post_json(&url, None, &ask(false));
    assert_eq!(reply.status, 401);
    assert_eq!(error_of(&reply)["type"], "authentication_error");
    assert_eq!(post_json(&url, Some(" , "), &ask(false)).status, 401);
    let refused = kind.refused_token();
    let reply = post_json(&url, Some(&refused), &ask(true));
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(!reply.body.contains(&refused), "the token is never echoed");
    match kind.api() {
        Api::Legacy => {
            fails_before_output(kind, Fault::RefreshUnauthorized, 401);
        }
        Api::Connect => {
            // A token shaped like a JWT whose payload is unreadable never reaches Kimi.
            let reply = post_json(&url, Some("eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln"), &ask(false));
            assert_eq!(reply.status, 401);
            assert!(error_of(&reply)["message"].as_str().unwrap().contains("JWT"));
            fails_before_output(kind, Fault::AccessExpired, 401);
        }
    }
}

fn bad_requests_are_400(kind: Kind) {
    let h = Harness::start();
    let url = h.url("/v1/chat/completions");
    for body in ["{", "[]", r#"{"messages":[{"role":"user","content":"x"}]}"#, r#"{"model":"kimi"}"#] {
        let reply = post(&url, Some(&kind.token()), body);
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(error_of(&reply)["type"], "invalid_request_error");
    }
    assert_eq!(h.mock.stats().completions, 0, "nothing reaches Kimi for a bad request");
}

fn another_stream_on_the_account_is_429(kind: Kind) {
    let h = fails_before_output(kind, kind.busy_fault(), 429);
    assert_eq!(h.mock.stats().completions, 2, "a rate limit is not retried");
}

fn upstream_5xx_is_retried_then_502(kind: Kind) {
    let fault = Fault::CompletionStatus { status: 500, error_type: "".into() };
    let h = fails_before_output(kind, fault, 502);
    assert_eq!(h.mock.stats().completions, 6, "three attempts per request");
}

fn a_transient_failure_is_retried_invisibly(kind: Kind) {
    let h = Harness::start();
    let fault = Fault::CompletionStatus { status: 503, error_type: "".into() };
    h.mock.script(Script { fault: Some(fault), fault_times: Some(1), ..Script::default() });
    let reply = post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &ask(false));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stats = h.mock.settled();
    assert_eq!(stats.completions, 2);
    assert_eq!(stats.chats_created, stats.chats_deleted);
}

fn kimi_error_before_output_is_mapped(kind: Kind) {
    let cases: &[(&str, u16)] = match kind.api() {
        Api::Legacy => &[("openai.completion.stream", 503), ("openai.completion.token_length_too_long", 400)],
        Api::Connect => &[
            ("resource_exhausted", 429),
            ("unavailable", 503),
            ("unauthenticated", 401),
            ("invalid_argument", 400),
        ],
    };
    for (error_type, status) in cases {
        let fault =
            Fault::ErrorEvent { error_type: error_type.to_string(), message: "tired".into(), after: 0 };
        let h = fails_before_output(kind, fault, *status);
        let reply = post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &ask(false));
        assert!(
            error_of(&reply)["message"].as_str().unwrap().contains("tired"),
            "{error_type}: {}",
            reply.body
        );
    }
}

fn cut_malformed_and_stalled_streams_before_output(kind: Kind) {
    let h = fails_before_output(kind, Fault::Cut { after: 0 }, 502);
    assert_eq!(h.mock.stats().completions, 6, "a cut is retried while the client saw nothing");
    fails_before_output(kind, Fault::Malformed { after: 0 }, 502);
    let started = Instant::now();
    fails_before_output(kind, Fault::Stall { after: 0, ms: 2500 }, 504);
    assert!(started.elapsed() < Duration::from_secs(15), "a stall ends at the upstream timeout");
}

/// A failure after the stream began ends it with an error chunk and `[DONE]`: no fake stop.
fn fails_mid_stream(kind: Kind, fault: Fault) -> support::Streamed {
    let h = Harness::start();
    h.mock.script(Script { fault: Some(fault.clone()), ..Script::default() });
    let (url, token) = (h.url("/v1/chat/completions"), kind.token());
    let answer = stream(&url, Some(&token), &ask(true));
    assert_eq!(answer.status, 200);
    assert!(answer.complete, "{fault:?}: the body ends properly");
    let expected = if matches!(fault, Fault::ErrorAfterDone { .. }) {
        "Hello from the mock Kimi."
    } else {
        "Hello from"
    };
    assert_eq!(answer.content(), expected, "{fault:?}: what came before the failure is kept");
    let data = answer.data();
    assert_eq!(*data.last().unwrap(), "[DONE]");
    let error: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{fault:?}: {error}");
    assert!(
        !answer.data().iter().any(|d| d.contains("\"finish_reason\":\"stop\"")),
        "{fault:?}: no fake stop"
    );
    assert!(h.mock.settled().live_chats.is_empty(), "{fault:?} left a chat");
    // Non-streamed, the same failure is an error status, not partial text.
    let reply = post_json(&url, Some(&token), &ask(false));
    assert!(reply.status >= 500, "{fault:?}: {}", reply.body);
    answer
}

fn failures_after_the_stream_began(kind: Kind) {
    let error = fails_mid_stream(
        kind,
        Fault::ErrorEvent { error_type: "x.y".into(), message: "boom".into(), after: 2 },
    );
    assert!(error.data().iter().any(|d| d.contains("boom")));
    fails_mid_stream(kind, Fault::Cut { after: 2 });
    fails_mid_stream(kind, Fault::Malformed { after: 2 });
    let stalled = fails_mid_stream(kind, Fault::Stall { after: 2, ms: 2500 });
    assert!(stalled.data().iter().any(|d| d.contains("upstream_timeout")));
    if kind.api() == Api::Connect {
        let late = fails_mid_stream(kind, Fault::ErrorAfterDone { code: "internal".into() });
        assert!(late.data().iter().any(|d| d.contains("failed after done")));
    }
}

fn a_client_that_leaves_mid_stream_does_not_leak_the_chat(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { text: vec!["tick ".into(); 40], delay_ms: 50, ..Script::default() });
    let body = ask(true).to_string();
    let mut socket = TcpStream::connect(h.server.addr()).unwrap();
    write!(
        socket,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        kind.token(),
        body.len()
    )
    .unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 512];
    let n = socket.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(socket);
    let stats = h.mock.settled();
    assert!(stats.live_chats.is_empty(), "the chat is deleted when the client leaves");
    assert_eq!(stats.chats_deleted, 1);
    // The worker is free again.
    let again = json!({"model": "kimi", "messages": [{"role": "user", "content": "again"}]});
    assert_eq!(post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &again).status, 200);
}

#[test]
fn legacy_body_too_large_is_413() {
    let h = Harness::start_with(|c| c.max_body_bytes = 1024);
    let big = json!({"model": "kimi", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let reply = post_json(&h.url("/v1/chat/completions"), Some(TOKEN), &big);
    assert_eq!(reply.status, 413);
    error_of(&reply);
}

#[test]
fn legacy_expired_access_token_is_refreshed_once() {
    let h = Harness::start();
    assert_eq!(post_json(&h.url("/v1/chat/completions"), Some(TOKEN), &ask(false)).status, 200);
    h.mock.script(Script { fault: Some(Fault::AccessExpired), fault_times: Some(1), ..Script::default() });
    let reply = post_json(&h.url("/v1/chat/completions"), Some(TOKEN), &ask(false));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(h.mock.stats().refreshes, 2);
    assert!(h.mock.settled().live_chats.is_empty());
}

#[test]
fn legacy_chat_creation_failure_is_an_error() {
    fails_before_output(Kind::Legacy, Fault::CreateStatus { status: 401 }, 401);
}

#[test]
fn legacy_research_quota_used_up_is_429() {
    let h = Harness::start();
    h.mock.script(Script { research_used_up: true, ..Script::default() });
    let body = json!({"model": "kimi-research", "messages": [{"role": "user", "content": "dig"}]});
    let reply = post_json(&h.url("/v1/chat/completions"), Some(TOKEN), &body);
    assert_eq!(reply.status, 429);
    assert!(error_of(&reply)["message"].as_str().unwrap().contains("research"));
    assert_eq!(h.mock.stats().chats_created, 0);
}
