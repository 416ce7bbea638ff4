//! The autumn-2026 behaviour of the account pool (`docs/kimi-protocol.md` §7.11), through the
//! server against the mock: K3 on a free account fails over to a paid one and is remembered,
//! "chat in progress" is waited out on a lone account and avoided with a pool, one stream per
//! account by default, the system prompt falls back to the text, deep research shows its steps
//! and gives Kimi's question back, unknown frames show in `/metrics` and the log once, doctor on
//! a free account, and failed uploads name the attachment. Every wait is bounded.

mod support;

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::pool::{PoolServer, connect_token_with_fault, promtool};
use support::{
    Fault, Harness, MockKimi, Script, connect_token, connect_token_with, post_json, web_refresh_token_with,
};

const KEY: &str = "key-autumn-7c41d09e2b5a";
const BEARER: &str = "Bearer key-autumn-7c41d09e2b5a";
const ANSWER: &str = "Hello from the mock Kimi.";

fn keyed() -> Vec<(&'static str, &'static str)> {
    vec![("Authorization", BEARER)]
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// The chat turns the mock saw of `user` (refused ones included).
fn turns(mock: &MockKimi, user: &str) -> u32 {
    mock.stats().completions_by_user.get(user).copied().unwrap_or(0)
}

/// The error message of an OpenAI error answer.
fn message(reply: &support::Reply) -> String {
    reply.json()["error"]["message"].as_str().unwrap_or_default().to_string()
}

/// A free account (`mock.plan = "free"`) reached with a kimi-auth JWT.
fn free_token(sub: &str) -> String {
    connect_token_with(sub, json!({"plan": "free"}))
}

#[test]
fn k3_fails_over_from_a_free_account_to_a_paid_one_and_the_free_one_is_not_asked_again() {
    let server = PoolServer::start(&[free_token("k3-free"), connect_token("k3-paid")], &[KEY], &[]);
    // Round robin starts with the first account; a second request makes sure either way.
    for i in 0..2 {
        let answer = server.stream("/v1/chat/completions", &keyed(), &ask("kimi-k3", true));
        assert_eq!((answer.status, answer.content()), (200, ANSWER.to_string()), "K3 request {i}");
        if turns(&server.mock, "k3-free") > 0 {
            break;
        }
    }
    assert_eq!(turns(&server.mock, "k3-free"), 1, "the free account was tried once");
    assert_eq!(server.mock.stats().last_completion.unwrap()["options"]["model"], "k3-agent");
    let paid = turns(&server.mock, "k3-paid");
    for i in 0..3 {
        let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi-k3", false));
        assert_eq!(reply.status, 200, "K3 request {i}: {}", reply.body);
        assert_eq!(reply.json()["choices"][0]["message"]["content"], ANSWER);
    }
    assert_eq!(turns(&server.mock, "k3-free"), 1, "Kimi's refusal is remembered for the account");
    assert_eq!(turns(&server.mock, "k3-paid"), paid + 3, "K3 goes straight to the paid account");
    for i in 0..4 {
        let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi", false));
        assert_eq!(reply.status, 200, "Instant request {i}: {}", reply.body);
    }
    assert!(turns(&server.mock, "k3-free") >= 2, "Instant still uses the free account");
    assert!(turns(&server.mock, "k3-paid") >= paid + 4, "and the paid one");
    assert!(server.mock.settled().live_chats.is_empty());
}

#[test]
fn k3_on_a_pool_of_free_accounts_is_a_429_naming_the_paid_plan() {
    let server = PoolServer::start(&[free_token("all-free-1"), free_token("all-free-2")], &[KEY], &[]);
    for round in 0..2 {
        let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi-k3", false));
        assert_eq!(reply.status, 429, "round {round}: {}", reply.body);
        let message = message(&reply);
        assert!(message.contains("paid") && message.contains("`kimi`"), "round {round}: {message}");
    }
    let stats = server.mock.stats();
    let tried = (stats.completions_by_user["all-free-1"], stats.completions_by_user["all-free-2"]);
    assert_eq!(tried, (1, 1), "each free account asked once, then remembered");
    let anthropic =
        json!({"model": "kimi-k3", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let reply =
        server.post("/v1/messages", &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")], &anthropic);
    assert_eq!(reply.status, 429, "Anthropic too (§7.11): {}", reply.body);
    assert_eq!(reply.json()["error"]["type"], "rate_limit_error", "{}", reply.body);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("paid"), "{}", reply.body);
    let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi", false));
    assert_eq!(reply.status, 200, "Instant works on free accounts: {}", reply.body);
}

#[test]
fn chat_in_progress_on_a_lone_account_is_tried_again_after_a_pause() {
    let busy = connect_token_with_fault("busy-once", json!({"kind": "chat_in_progress"}), Some(1));
    let server = PoolServer::start(&[busy], &[KEY], &[]);
    let started = Instant::now();
    let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi", false));
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(turns(&server.mock, "busy-once"), 2, "refused once, then answered");
    assert!(took >= Duration::from_secs(3), "the first pause is 3 s: {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn chat_in_progress_with_an_idle_account_moves_there_without_waiting() {
    let server = PoolServer::pass_through(&[]);
    // The first chat to reach Kimi is refused, whichever account the request lands on first.
    server.mock.script(Script {
        fault: Some(Fault::ChatInProgress),
        fault_times: Some(1),
        ..Script::default()
    });
    let credential = format!("{},{}", connect_token("pt-busy-a"), connect_token("pt-busy-b"));
    server.secret(&credential);
    let bearer = format!("Bearer {credential}");
    let started = Instant::now();
    let reply = server.post("/v1/chat/completions", &[("Authorization", &bearer)], &ask("kimi", false));
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["choices"][0]["message"]["content"], ANSWER);
    let by_user = server.mock.stats().completions_by_user;
    assert_eq!((by_user["pt-busy-a"], by_user["pt-busy-b"]), (1, 1), "one try on each account");
    assert!(took < Duration::from_millis(1500), "no pause before the idle account: {took:?}");
}

#[test]
fn chat_in_progress_that_lasts_is_a_429_after_three_tries_in_about_ten_seconds() {
    let busy = connect_token_with_fault("busy-always", json!({"kind": "chat_in_progress"}), None);
    let server = PoolServer::start(&[busy], &[KEY], &[]);
    let started = Instant::now();
    let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi", false));
    let took = started.elapsed();
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
    assert!(message(&reply).contains("Chat session in progress"), "{}", reply.body);
    assert_eq!(turns(&server.mock, "busy-always"), 3, "three tries, no more");
    assert!(took >= Duration::from_millis(9500), "pauses of 3 s and 7 s: {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn by_default_one_stream_per_account_so_kimi_never_sees_two_at_once() {
    let server = Arc::new(PoolServer::start(&[connect_token("one-stream")], &[KEY], &[]));
    server.mock.script(Script {
        one_chat_per_user: true,
        text: vec!["slow ".into(); 6],
        delay_ms: 50,
        ..Script::default()
    });
    let barrier = Arc::new(Barrier::new(2));
    let started = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (server, barrier) = (server.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi", false));
                (reply.status, reply.body)
            })
        })
        .collect();
    for handle in handles {
        let (status, body) = handle.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("slow slow"), "{body}");
    }
    let stats = server.mock.stats();
    assert_eq!(stats.peak_streams_by_user["one-stream"], 1, "the second waited for the first");
    assert_eq!(stats.completions_by_user["one-stream"], 2, "and Kimi refused neither");
    assert!(started.elapsed() < Duration::from_secs(3), "no chat-in-progress pause: {:?}", started.elapsed());
}

#[test]
fn a_refused_system_prompt_field_falls_back_to_the_text_and_is_remembered() {
    let server = PoolServer::start(&[connect_token("sys-field")], &[KEY], &[]);
    server.mock.script(Script { refuse_system_prompt: true, ..Script::default() });
    let body = json!({"model": "kimi", "messages": [{"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"}]});
    let reply = server.post("/v1/chat/completions", &keyed(), &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["choices"][0]["message"]["content"], ANSWER);
    let stats = server.mock.stats();
    assert_eq!(stats.completions_by_user["sys-field"], 2, "refused with the field, then sent as text");
    let sent = stats.last_completion.unwrap();
    assert!(sent["options"].get("systemPrompt").is_none(), "{sent}");
    let prompt = stats.last_prompt.unwrap();
    assert!(prompt.starts_with("system:be brief"), "{prompt:?}");
    let reply = server.post("/v1/chat/completions", &keyed(), &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stats = server.mock.stats();
    assert_eq!(stats.completions_by_user["sys-field"], 3, "straight to the text form: no refused try");
    assert!(stats.last_prompt.unwrap().starts_with("system:be brief"));
    assert_eq!(server.log().matches("refused the system prompt field").count(), 1, "{}", server.log());
}

/// Whether an OpenAI chunk carries this `delta` field, not empty.
fn has_delta(frame: &support::Frame, name: &str) -> bool {
    frame.data != "[DONE]"
        && frame.json()["choices"][0]["delta"][name].as_str().is_some_and(|s| !s.is_empty())
}

#[test]
fn deep_research_streams_its_searches_as_reasoning_then_the_answer() {
    let server = PoolServer::start(&[connect_token("research-paid")], &[KEY], &[]);
    let answer = server.stream("/v1/chat/completions", &keyed(), &ask("kimi-research", true));
    assert_eq!(answer.status, 200, "{}", answer.body_if_error);
    let reasoning = answer.reasoning();
    assert!(
        reasoning.contains("[web_search] mock research 1")
            && reasoning.contains("[web_search] mock research 2"),
        "{reasoning:?}"
    );
    assert_eq!(answer.content(), ANSWER);
    let last_step = answer.frames.iter().rposition(|f| has_delta(f, "reasoning_content")).unwrap();
    let first_text = answer.frames.iter().position(|f| has_delta(f, "content")).unwrap();
    assert!(last_step < first_text, "the steps come before the answer: {:#?}", answer.data());
    let sent = server.mock.stats().last_completion.unwrap();
    assert_eq!(sent["kimiplus_id"], "deep-researcher", "{sent}");
}

#[test]
fn deep_research_that_asks_the_user_answers_with_the_question_and_hangs_up() {
    let server = PoolServer::start(&[connect_token("research-ask")], &[KEY], &[]);
    server.mock.script(Script { research_question: Some("Which continent?".into()), ..Script::default() });
    let started = Instant::now();
    let answer = server.stream("/v1/chat/completions", &keyed(), &ask("kimi-research", true));
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.body_if_error);
    assert!(answer.complete, "the answer ended");
    assert_eq!(answer.content(), "Which continent?\n- Europe (recommended)\n- Asia");
    assert!(answer.reasoning().contains("[web_search] mock research 1"), "{:?}", answer.reasoning());
    assert!(took < Duration::from_secs(5), "the server did not wait out the park: {took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.mock.stats().research_hangups == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let stats = server.mock.stats();
    assert_eq!((stats.research_parked, stats.research_hangups), (1, 1), "the server hung up");
    assert!(started.elapsed() < Duration::from_secs(9), "before the mock's 10 s park limit");

    // Not streamed, in the Anthropic dialect: the same question, as text after the steps.
    let started = Instant::now();
    let body =
        json!({"model": "kimi-research", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let reply =
        server.post("/v1/messages", &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")], &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let content = reply.json()["content"].clone();
    assert_eq!(content[0]["type"], "thinking", "{content}");
    assert_eq!(content[1]["text"], "Which continent?\n- Europe (recommended)\n- Asia", "{content}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.mock.stats().research_hangups < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let stats = server.mock.stats();
    assert_eq!((stats.research_parked, stats.research_hangups), (2, 2), "the server hung up again");
    assert!(started.elapsed() < Duration::from_secs(9), "before the mock's 10 s park limit");
}

#[test]
fn deep_research_on_a_free_account_is_a_429_that_says_so() {
    let server = PoolServer::start(&[free_token("research-free")], &[KEY], &[]);
    let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi-research", false));
    assert_eq!(reply.status, 429, "{}", reply.body);
    let message = message(&reply);
    assert!(message.contains("paid"), "{message}");
    assert_eq!(turns(&server.mock, "research-free"), 1);
}

#[test]
fn unknown_frames_are_counted_in_metrics_and_logged_once_by_name() {
    let drift = connect_token_with_fault("drift", json!({"kind": "unknown_frames"}), None);
    let server = PoolServer::start(&[drift], &[KEY], &[]);
    for i in 0..2 {
        let reply = server.post("/v1/chat/completions", &keyed(), &ask("kimi", false));
        assert_eq!(reply.status, 200, "request {i}: {}", reply.body);
        assert_eq!(reply.json()["choices"][0]["message"]["content"], ANSWER);
    }
    let metrics = server.get("/metrics", &keyed());
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    for series in [
        "kimi_unknown_total{what=\"block\",name=\"hologram\"} 2",
        "kimi_unknown_total{what=\"event\",name=\"weather\"} 2",
    ] {
        assert!(metrics.body.lines().any(|line| line == series), "no `{series}` in\n{}", metrics.body);
    }
    promtool(&metrics.body);
    let lines = [("block", "hologram"), ("event", "weather")];
    for (what, name) in lines {
        let needle = format!("this server does not know: {what} `{name}`");
        assert!(server.wait_for(&needle, 1), "{needle}: {}", server.log());
        assert_eq!(server.log().matches(&needle).count(), 1, "logged once: {}", server.log());
    }
}

#[test]
fn doctor_on_a_free_account_notes_that_k3_needs_a_paid_plan() {
    let mock = MockKimi::start();
    mock.script(Script {
        thinking: vec!["Let me see.".into()],
        search: vec![("Rust".into(), "https://rust-lang.org".into())],
        ..Script::default()
    });
    let state = support::temp_state_dir();
    let token = web_refresh_token_with("doctor-free", json!({"plan": "free"}));
    let mut command = Command::new(env!("CARGO_BIN_EXE_kimi-free-api"));
    command.args(["doctor", &token, "--rotate"]);
    // The web token is of a global (kimi.ai) account: every host is the mock.
    support::process::at_mock(&mut command, &mock);
    let output = command.arg("--state-dir").arg(&state).output().unwrap();
    let _ = std::fs::remove_dir_all(&state);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    let line = |step: &str| {
        stdout.lines().find(|l| l.starts_with(step)).unwrap_or_else(|| panic!("no {step} line: {stdout}"))
    };
    let k3 = line("k3");
    assert!(k3.contains(" note ") && k3.contains("needs a paid plan"), "{k3}");
    assert!(line("models").contains("k2d6-chat"), "{stdout}");
    assert!(line("credits").contains("left"), "{stdout}");
    let payload = token.split('.').nth(1).unwrap();
    assert!(!stdout.contains(payload) && !stdout.contains(&token[..40]), "the token is never printed");
}

#[test]
fn an_upload_kimi_fails_to_process_is_a_400_naming_the_attachment() {
    for (status, name) in
        [("PROCESS_STATUS_FAILED", "failed-report.pdf"), ("PROCESS_STATUS_FAIL", "fail-notes.pdf")]
    {
        let h = Harness::start();
        h.mock.script(Script { upload_status: Some(status.into()), ..Script::default() });
        let data = "YSByZXBvcnQ="; // "a report"
        let document = format!("data:application/pdf;name={name};base64,{data}");
        let body = json!({"model": "kimi", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "summarise"}, {"type": "file", "file": {"file_data": document}}]}]});
        let reply = post_json(&h.url("/v1/chat/completions"), Some(&connect_token("uploader")), &body);
        assert_eq!(reply.status, 400, "{status}: {}", reply.body);
        let message = message(&reply);
        assert!(message.contains(name), "{status}: {message}");
        let stats = h.mock.settled();
        assert_eq!((stats.uploads.len(), stats.completions), (1, 0), "{status}: no chat after the failure");
    }
}
