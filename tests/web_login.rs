//! Kimi's 2026 web login against the mock: a pasted refresh token is renewed at the auth host
//! and rotates on every use; the server keeps the newest one in its state directory, so the
//! caller keeps sending the token it pasted, across access-token expiries and restarts.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kimi_free_api::server;
use serde_json::{Value, json};
use support::{Harness, Kind, MockKimi, Script, config_for, mint_jwt, post_json, post_with, stream};

fn ask(stream: bool) -> Value {
    json!({"model": "kimi", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Asserts that no refresh token reached the auth host twice and no session was revoked.
fn assert_clean_rotation(mock: &MockKimi) {
    let stats = mock.stats();
    let mut seen = stats.web_refresh_tokens.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), stats.web_refresh_tokens.len(), "a rotated refresh token was sent twice");
    assert_eq!(stats.sessions_revoked, 0);
}

#[test]
fn one_pasted_refresh_token_serves_requests_across_several_access_token_expiries() {
    let h = Harness::start();
    h.mock.script(Script { access_lifetime_secs: 2, ..Script::default() });
    let token = Kind::Web.token();
    let url = h.url("/v1/chat/completions");
    let started = Instant::now();
    let anthropic =
        json!({"model": "kimi", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    for i in 0..5 {
        // Both dialect families, streamed and not.
        let reply = match i % 3 {
            0 => post_json(&url, Some(&token), &ask(false)),
            1 => post_with(&h.url("/v1/messages"), &[("x-api-key", &token)], &anthropic),
            _ => post_json(&url, Some(&token), &ask(true)),
        };
        assert_eq!(reply.status, 200, "request {i}: {}", reply.body);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let stats = h.mock.stats();
    assert!(stats.web_refreshes >= 3, "{} refreshes in {:?}", stats.web_refreshes, started.elapsed());
    assert!(stats.web_refreshes <= 6, "no refresh per request: {}", stats.web_refreshes);
    assert_clean_rotation(&h.mock);
    assert_eq!(stats.last_traffic_id.as_deref(), Some("user-1"), "the identity of the refresh token");
    assert_eq!(stats.last_cookie, None, "a web access token is no kimi-auth cookie");
}

#[test]
fn ten_concurrent_first_requests_refresh_exactly_once() {
    let h = Harness::start();
    h.mock.script(Script { delay_ms: 10, ..Script::default() });
    let token = Kind::Web.token_for("burst");
    let url = h.url("/v1/chat/completions");
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            std::thread::spawn(move || post_json(&url, Some(&token), &ask(false)).status)
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 200);
    }
    assert_eq!(h.mock.stats().web_refreshes, 1);
    assert_clean_rotation(&h.mock);
}

#[test]
fn a_restart_with_the_same_state_directory_keeps_working_with_the_pasted_token() {
    let mock = MockKimi::start();
    let config = config_for(&mock);
    let token = Kind::Web.token_for("restarted");
    for round in 0..3 {
        let running = server::start(config.clone()).expect("server starts");
        let url = format!("http://{}/v1/chat/completions", running.addr());
        let reply = post_json(&url, Some(&token), &ask(false));
        assert_eq!(reply.status, 200, "after restart {round}: {}", reply.body);
        drop(running);
    }
    assert_eq!(mock.stats().web_refreshes, 1, "the saved access token is still good after a restart");
    assert_clean_rotation(&mock);

    // A server that lost the login presents the pasted (spent) token again: Kimi ends the session.
    let forgetful = server::start(config_for(&mock)).expect("server starts");
    let url = format!("http://{}/v1/chat/completions", forgetful.addr());
    let reply = post_json(&url, Some(&token), &ask(false));
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(reply.body.contains("log in again"), "{}", reply.body);
    let _ = std::fs::remove_dir_all(&config.state_dir);
}

#[test]
fn the_state_file_is_private_and_named_without_the_token() {
    let h = Harness::start();
    let token = Kind::Web.token_for("private");
    assert_eq!(post_json(&h.url("/v1/chat/completions"), Some(&token), &ask(false)).status, 200);
    assert_eq!(std::fs::metadata(&h.state_dir).unwrap().mode() & 0o777, 0o700);
    let files: Vec<_> = std::fs::read_dir(&h.state_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(!token.contains(name.trim_end_matches(".json")) && !name.contains("private"), "{name}");
    assert_eq!(std::fs::metadata(&files[0]).unwrap().mode() & 0o777, 0o600);
    let saved: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let newest = h.mock.stats().web_refresh_tokens.len();
    assert_eq!(newest, 1);
    assert_ne!(saved["refresh_token"], token, "the rotated token is kept, not the spent one");
}

#[test]
fn a_revoked_login_is_a_clear_401_in_every_dialect() {
    let h = Harness::start();
    h.mock.script(Script { fault: Some(support::Fault::RefreshUnauthorized), ..Script::default() });
    let token = Kind::Web.token_for("revoked");
    let openai = post_json(&h.url("/v1/chat/completions"), Some(&token), &ask(false));
    assert_eq!(openai.status, 401);
    assert_eq!(openai.json()["error"]["type"], "authentication_error");
    assert!(openai.json()["error"]["message"].as_str().unwrap().contains("paste the new refresh_token"));
    let anthropic_body =
        json!({"model": "kimi", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let anthropic = post_with(
        &h.url("/v1/messages"),
        &[("x-api-key", &token), ("anthropic-version", "2023-06-01")],
        &anthropic_body,
    );
    assert_eq!(
        (anthropic.status, anthropic.json()["error"]["type"].clone()),
        (401, json!("authentication_error"))
    );
    let gemini_body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let gemini =
        post_with(&h.url("/v1beta/models/kimi:generateContent"), &[("x-goog-api-key", &token)], &gemini_body);
    assert_eq!((gemini.status, gemini.json()["error"]["status"].clone()), (401, json!("UNAUTHENTICATED")));
    for reply in [&openai, &anthropic, &gemini] {
        assert!(!reply.body.contains(&token[token.len() - 20..]), "the token is never echoed");
    }
}

#[test]
fn a_pasted_access_token_works_until_it_expires_then_says_what_to_give_instead() {
    let h = Harness::start();
    let now = unix_now();
    let access = mint_jwt(&json!({"iss": "account-nt", "typ": "access", "sub": "short", "ssid": "ss-short",
        "iat": now, "exp": now + 2}));
    let url = h.url("/v1/chat/completions");
    assert_eq!(post_json(&url, Some(&access), &ask(false)).status, 200);
    let check = post_json(&h.url("/token/check"), None, &json!({ "token": access })).json();
    assert_eq!(check["tokens"][0]["kind"], "web access_token");
    assert_eq!(check["tokens"][0]["expires"], now + 2);
    assert!(check["tokens"][0]["note"].as_str().unwrap().contains("refresh_token"), "{check}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while unix_now() < now + 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let completions = h.mock.stats().completions;
    let expired = post_json(&url, Some(&access), &ask(true));
    assert_eq!(expired.status, 401, "{}", expired.body);
    let message = expired.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("expired at") && message.contains("refresh_token"), "{message}");
    assert_eq!(h.mock.stats().completions, completions, "an expired access token is not sent to Kimi");
}

#[test]
fn an_overseas_account_uses_the_global_hosts_unless_the_region_is_forced() {
    let global = MockKimi::start();
    let cn = MockKimi::start();
    let token = support::web_refresh_token_in("abroad", "overseas");
    for (forced, expect_global) in [(None, true), (Some(kimi_free_api::kimi::RegionChoice::Cn), false)] {
        let mut config = config_for(&cn);
        config.kimi_global_base_url = global.url().to_string();
        config.kimi_global_auth_base_url = global.url().to_string();
        if let Some(region) = forced {
            config.kimi_region = region;
        }
        let running = server::start(config.clone()).expect("server starts");
        let url = format!("http://{}/v1/chat/completions", running.addr());
        assert_eq!(post_json(&url, Some(&token), &ask(false)).status, 200);
        let (g, c) = (global.stats(), cn.stats());
        let (on, off) = if expect_global { (g, c) } else { (c, g) };
        assert_eq!((on.web_refreshes, on.completions), (1, 1), "forced {forced:?}");
        assert_eq!((off.web_refreshes, off.completions), (0, 0), "forced {forced:?}");
        drop(running);
        let _ = std::fs::remove_dir_all(&config.state_dir);
        global.reset_stats();
        cn.reset_stats();
    }
}

#[test]
fn the_old_kimi_auth_cookie_is_still_sent_as_a_cookie() {
    let h = Harness::start();
    assert_eq!(
        post_json(&h.url("/v1/chat/completions"), Some(&Kind::Connect.token()), &ask(false)).status,
        200
    );
    assert!(h.mock.stats().last_cookie.unwrap().starts_with("kimi-auth="));
    assert_eq!(h.mock.stats().web_refreshes, 0, "a kimi-auth token is not refreshed");
}

/// The headers of the browser a Connect chat presents, as the mock saw them.
fn browser_headers_of_a_chat(h: &Harness) -> Vec<(String, String)> {
    let status = post_json(&h.url("/v1/chat/completions"), Some(&Kind::Connect.token()), &ask(false)).status;
    assert_eq!(status, 200);
    let headers = h.mock.stats().last_headers;
    ["user-agent", "x-msh-version", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform"]
        .iter()
        .filter_map(|name| Some((name.to_string(), headers.get(*name)?.clone())))
        .collect()
}

#[test]
fn connect_calls_present_chrome_146_and_web_version_2_3_0_unless_overridden() {
    let shown =
        |pairs: Vec<(String, String)>| pairs.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>();
    let h = Harness::start();
    let seen = shown(browser_headers_of_a_chat(&h));
    assert!(
        seen[0].starts_with("user-agent: Mozilla/5.0 (Windows NT 10.0")
            && seen[0].contains("Chrome/146.0.0.0")
    );
    assert_eq!(
        seen[1..],
        [
            "x-msh-version: 2.3.0",
            r#"sec-ch-ua: "Chromium";v="146", "Not-A.Brand";v="24", "Google Chrome";v="146""#,
            "sec-ch-ua-mobile: ?0",
            r#"sec-ch-ua-platform: "Windows""#,
        ]
    );
    let h = Harness::start_with(|config| {
        config.kimi_web_version = "2.4.0".into();
        config.user_agent = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0".into();
    });
    let seen = shown(browser_headers_of_a_chat(&h));
    assert_eq!(
        seen,
        [
            "user-agent: Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
            "x-msh-version: 2.4.0"
        ],
        "no client hints without a Chrome version"
    );
}

#[test]
fn an_opaque_legacy_token_is_tried_as_a_web_token_once_then_goes_to_the_legacy_api() {
    let h = Harness::start();
    let url = h.url("/v1/chat/completions");
    for _ in 0..3 {
        assert_eq!(post_json(&url, Some("rt-opaque"), &ask(false)).status, 200);
    }
    let stats = h.mock.stats();
    assert_eq!((stats.web_refreshes, stats.refreshes, stats.completions), (1, 1, 3));
    let answer = stream(&url, Some("rt-opaque"), &ask(true));
    assert_eq!(answer.content(), "Hello from the mock Kimi.");
}

/// Starts the binary with every Kimi host on `mock` and the given state directory.
fn binary(args: &[&str], mock: &MockKimi, state_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kimi-free-api"));
    command.args(args);
    support::process::at_mock(&mut command, mock);
    command.arg("--state-dir").arg(state_dir);
    command
}

#[test]
fn doctor_checks_every_step_and_leaves_nothing_behind() {
    let mock = MockKimi::start();
    mock.script(Script {
        thinking: vec!["Let me see.".into()],
        search: vec![("Rust".into(), "https://rust-lang.org".into())],
        ..Script::default()
    });
    let state = support::temp_state_dir();
    let token = Kind::Web.token_for("doctor");
    // A fresh login nothing else uses: --rotate lets the doctor log in with it.
    let output = binary(&["doctor", &token, "--rotate"], &mock, &state).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    for step in [
        "token", "login", "models", "credits", "chat", "stream", "search", "thinking", "k3", "tools",
        "deletion", "unknown",
    ] {
        let line = stdout.lines().find(|l| l.starts_with(step)).unwrap_or_else(|| panic!("{step}: {stdout}"));
        assert!(line.contains(" ok ") && line.ends_with(" ms)"), "{line}");
    }
    assert!(stdout.contains("web refresh_token") && stdout.contains("every step passed"), "{stdout}");
    assert!(!stdout.contains(&token[30..60]), "the token is never printed");
    let stats = mock.settled();
    assert!(stats.live_chats.is_empty() && stats.chats_created == 7, "{stats:?}: two for the tool probe");
    assert!(
        stdout.contains("k2d6-chat (SCENARIO_CHAT, default)")
            && stdout.contains("75% left, reset 2026-12-31"),
        "{stdout}"
    );
    assert_clean_rotation(&mock);

    // The server finds the doctor's rotation in the state directory.
    let mut config = config_for(&mock);
    config.state_dir = state.clone();
    let running = server::start(config).expect("server starts");
    let reply =
        post_json(&format!("http://{}/v1/chat/completions", running.addr()), Some(&token), &ask(false));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_clean_rotation(&mock);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn doctor_says_when_the_token_is_the_problem() {
    let mock = MockKimi::start();
    let state = support::temp_state_dir();
    let token = Kind::Web.refused_token();
    let output = binary(&["doctor", &token, "--rotate"], &mock, &state).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("login") && l.contains("FAIL")), "{stdout}");
    assert!(stdout.contains("the token does not work"), "{stdout}");
    assert!(!stdout.lines().any(|l| l.starts_with("chat")), "no chat without a login");
    assert_eq!(mock.stats().chats_created, 0);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn an_unwritable_state_directory_still_starts_and_says_a_restart_will_lose_the_login() {
    let mock = MockKimi::start();
    let blocker = support::temp_state_dir();
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let state = blocker.join("state");
    let mut child = binary(&["--host", "127.0.0.1", "--port", "0"], &mock, &state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    let mut line = String::new();
    while lines.len() < 4 && stderr.read_line(&mut line).unwrap() > 0 {
        lines.push(std::mem::take(&mut line));
        if lines.last().unwrap().contains("listening on") {
            break;
        }
    }
    let log = lines.concat();
    let base = log.lines().last().unwrap().rsplit(' ').next().unwrap().to_string();
    let reply = post_json(&format!("{base}/v1/chat/completions"), Some(&Kind::Web.token()), &ask(false));
    let _ = child.kill();
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    let _ = child.wait();
    let _ = std::fs::remove_file(&blocker);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(log.contains("restart will lose"), "{log}");
    assert!(!log.contains(blocker.to_str().unwrap()), "the state directory never shows in a log: {log}");
}
