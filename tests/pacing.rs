//! Pacing (`--account-min-interval`), measured on the mock through the server binary: chat
//! starts on one account come at least 0.8 × the interval apart, concurrent requests included;
//! a slot past the request's `--account-wait` is a busy answer; with the flag at 0 nothing
//! waits; `/metrics` counts the time waited (checked by promtool).

mod support;

use std::thread;

use serde_json::{Value, json};
use support::connect_token;
use support::pool::{PoolServer, promtool};

const KEY: &str = "key-pace-5d2b7e0a9c1f";
/// The interval these tests pace at, in seconds.
const INTERVAL: f64 = 0.3;
/// Scheduling noise tolerated between the server's paced start and the chat reaching the mock
/// (a busy machine), in seconds.
const NOISE: f64 = 0.02;

fn chat(server: &PoolServer) -> u16 {
    let key = format!("Bearer {KEY}");
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": "hi"}]});
    server.post("/v1/chat/completions", &[("Authorization", key.as_str())], &body).status
}

/// `n` chats at once; their statuses.
fn chats_at_once(server: &PoolServer, n: usize) -> Vec<u16> {
    thread::scope(|scope| {
        let handles: Vec<_> = (0..n).map(|_| scope.spawn(|| chat(server))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The gaps between the user's chat starts at the mock, in seconds.
fn gaps(server: &PoolServer, user: &str) -> Vec<f64> {
    let starts = server.mock.stats().starts_by_user[user].clone();
    starts.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e6).collect()
}

fn metrics(server: &PoolServer) -> String {
    let key = format!("Bearer {KEY}");
    let reply = server.get("/metrics", &[("Authorization", key.as_str())]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn waited(text: &str) -> f64 {
    let line = text.lines().find_map(|l| l.strip_prefix("kimi_free_api_pacing_wait_seconds_total "));
    line.unwrap_or_else(|| panic!("no pacing counter in\n{text}")).parse().unwrap()
}

#[test]
fn starts_on_one_account_are_paced_concurrent_ones_included() {
    let interval = INTERVAL.to_string();
    let flags = ["--account-min-interval", interval.as_str(), "--account-streams", "4"];
    let server = PoolServer::start(&[connect_token("pace-one")], &[KEY], &flags);
    // A first chat logs in; the next ones start at once, then wait for their slots.
    assert_eq!(chat(&server), 200);
    assert_eq!(chats_at_once(&server, 3), [200; 3]);
    let gaps = gaps(&server, "pace-one");
    assert_eq!(gaps.len(), 3);
    for gap in &gaps {
        assert!(*gap >= 0.8 * INTERVAL - NOISE, "starts {gap} s apart, under 0.8 × {INTERVAL}: {gaps:?}");
    }
    // The three concurrent ones were queued one slot after another, not left to drift.
    let span: f64 = gaps[1..].iter().sum();
    assert!(span <= 2.0 * 1.2 * INTERVAL + 0.25, "{gaps:?}");
    let text = metrics(&server);
    assert!(waited(&text) >= 0.8 * INTERVAL, "{text}");
    promtool(&text);
}

#[test]
fn a_slot_past_the_account_wait_is_a_busy_answer() {
    let flags = ["--account-min-interval", "30", "--account-wait", "0.2"];
    let server = PoolServer::start(&[connect_token("pace-late")], &[KEY], &flags);
    assert_eq!(chat(&server), 200, "the first request is not delayed");
    let started = std::time::Instant::now();
    let key = format!("Bearer {KEY}");
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": "hi"}]});
    let reply = server.post("/v1/chat/completions", &[("Authorization", key.as_str())], &body);
    assert_eq!(reply.status, 503, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    assert!(answer["error"]["message"].as_str().unwrap().contains("busy"), "{answer}");
    assert!(started.elapsed().as_secs_f64() < 5.0, "it did not wait for the slot");
    assert_eq!(server.mock.stats().completions_by_user["pace-late"], 1);
}

#[test]
fn without_the_flag_nothing_waits() {
    let server = PoolServer::start(&[connect_token("pace-off")], &[KEY], &["--account-streams", "4"]);
    assert_eq!(chat(&server), 200);
    assert_eq!(chats_at_once(&server, 3), [200; 3]);
    let gaps = gaps(&server, "pace-off");
    let span: f64 = gaps[1..].iter().sum();
    assert!(span < 0.8 * INTERVAL, "the concurrent chats were not spaced out: {gaps:?}");
    assert_eq!(waited(&metrics(&server)), 0.0);
}
