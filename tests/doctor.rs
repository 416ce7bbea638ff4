//! `kimi-free-api doctor` through the binary, against the mock Kimi: it finds the server's state
//! directory by the server's own default, it will not rotate a 2026 login it does not hold
//! unless `--rotate` is given (the mock's counters show that no refresh happened, and what
//! happens with it), `--server` asks a running server in both modes (`POST /doctor`, with the
//! caller's token or an API key; 401 without), and every step passes against the mock of
//! `make demo` while the bare mock still fails the search and thinking checks. Every run is
//! bounded in time.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::pool::PoolServer;
use support::process::{Finished, ServerProcess, at_mock, binary, run_within};
use support::{Harness, Kind, MockKimi, Script, post_json};

/// Every step's name, from the doctor's own list (a step added there is checked here too).
fn steps() -> Vec<&'static str> {
    let names: Vec<&str> = kimi_free_api::doctor::STEPS.iter().map(|step| step.name).collect();
    for known in
        ["token", "login", "models", "credits", "chat", "stream", "search", "thinking", "k3", "deletion"]
    {
        assert!(names.contains(&known), "{known}: {names:?}");
    }
    names
}
const KEY: &str = "key-doctor-5e0b2c91";

/// The mock of `make demo`, unpaced (the pacing is for eyes, not tests).
fn demo_mock() -> MockKimi {
    let mock = MockKimi::start();
    mock.script(Script { delay_ms: 0, ..Script::demo() });
    mock
}

/// `kimi-free-api doctor ARGS...` against `mock`, in `dir` when given, at most a minute.
fn doctor(mock: &MockKimi, args: &[&str], dir: Option<&Path>) -> Finished {
    let mut command = Command::new(binary());
    command.arg("doctor").args(args);
    at_mock(&mut command, mock);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    run_within(command, Duration::from_secs(60))
}

/// `kimi-free-api doctor --server BASE ARGS...`: no Kimi host is given, none is needed.
fn doctor_at(base: &str, args: &[&str]) -> Finished {
    let mut command = Command::new(binary());
    command.args(["doctor", "--server", base]).args(args);
    run_within(command, Duration::from_secs(60))
}

fn line<'a>(out: &'a Finished, step: &str) -> &'a str {
    let prefix = format!("{step:<10} ");
    out.stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {step} line: {}", out.stdout))
}

/// Every step has its line, each a pass (`ok`) or, where `notes` allows, a note.
fn assert_all_pass(out: &Finished, notes: &[&str]) {
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    for step in steps() {
        let line = line(out, step);
        let allowed = line.contains(" ok   ") || (notes.contains(&step) && line.contains(" note "));
        assert!(allowed && line.ends_with(" ms)"), "{line}\n{}", out.stdout);
    }
    assert!(out.stdout.contains("doctor: every step passed"), "{}", out.stdout);
}

fn ask() -> serde_json::Value {
    json!({"model": "kimi", "messages": [{"role": "user", "content": "hi"}]})
}

fn temp_dir() -> std::path::PathBuf {
    let dir = support::temp_state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn doctor_finds_the_rotation_a_server_saved_in_the_default_state_directory() {
    let mock = demo_mock();
    let dir = temp_dir();
    let server = ServerProcess::start_in(&dir, &mock, &[]);
    let token = Kind::Web.token_for("doctor-default-dir");
    assert_eq!(post_json(&server.url("/v1/chat/completions"), Some(&token), &ask()).status, 200);
    assert!(dir.join("kimi-state").is_dir(), "the server's default state directory");
    let refreshes = mock.stats().web_refreshes;

    // No --state-dir, no --rotate: the doctor resolves the same ./kimi-state and finds the login.
    let out = doctor(&mock, &[&token], Some(&dir));
    assert_all_pass(&out, &[]);
    let stats = mock.settled();
    assert_eq!((stats.web_refreshes, stats.sessions_revoked), (refreshes, 0), "{stats:?}");
    assert_eq!(post_json(&server.url("/v1/chat/completions"), Some(&token), &ask()).status, 200);
    assert_eq!(mock.stats().sessions_revoked, 0, "the server is still logged in");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn doctor_will_not_rotate_a_login_another_state_directory_holds_unless_told_to() {
    let mock = demo_mock();
    let server = ServerProcess::start(&mock, &[]);
    let token = Kind::Web.token_for("doctor-elsewhere");
    assert_eq!(post_json(&server.url("/v1/chat/completions"), Some(&token), &ask()).status, 200);
    let before = mock.stats();
    let elsewhere = support::temp_state_dir();
    let state_dir = elsewhere.to_str().unwrap();

    let out = doctor(&mock, &[&token, "--state-dir", state_dir], None);
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(line(&out, "login").contains("FAIL not tried"), "{}", out.stdout);
    assert!(!out.stdout.lines().any(|l| l.starts_with("chat ")), "no step after the login: {}", out.stdout);
    for words in ["stopped before logging in", "--server", "--rotate", state_dir, "logged out"] {
        assert!(out.stdout.contains(words), "{words}: {}", out.stdout);
    }
    let after = mock.stats();
    assert_eq!(
        (after.web_refreshes, after.sessions_revoked, after.chats_created),
        (before.web_refreshes, 0, before.chats_created),
        "nothing reached Kimi: {after:?}"
    );
    assert_eq!(post_json(&server.url("/v1/chat/completions"), Some(&token), &ask()).status, 200);

    // What --rotate allows: the token the server rotated away goes to Kimi, which ends the session.
    let out = doctor(&mock, &[&token, "--state-dir", state_dir, "--rotate"], None);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(line(&out, "login").contains("FAIL"), "{}", out.stdout);
    let after = mock.stats();
    assert_eq!((after.web_refreshes, after.sessions_revoked), (before.web_refreshes + 1, 1), "{after:?}");
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[test]
fn every_step_passes_against_the_demo_mock_and_the_bare_mock_still_fails_two() {
    let mock = demo_mock();
    for kind in [Kind::Web, Kind::Connect, Kind::Legacy] {
        let state = support::temp_state_dir();
        let token = kind.token_for("doctor-demo");
        let out = doctor(&mock, &[&token, "--rotate", "--state-dir", state.to_str().unwrap()], None);
        // A legacy token has no catalogue and no credits to read: notes, not failures.
        let notes: &[&str] = if kind == Kind::Legacy { &["models", "credits"] } else { &[] };
        assert_all_pass(&out, notes);
        assert!(!out.stdout.contains(&token), "{kind:?}: the token is never printed");
        let _ = std::fs::remove_dir_all(&state);
    }
    let stats = mock.settled();
    assert!(stats.live_chats.is_empty() && stats.chats_created == 20, "{stats:?}");

    let bare = MockKimi::start();
    let state = support::temp_state_dir();
    let out = doctor(&bare, &[&Kind::Connect.token(), "--state-dir", state.to_str().unwrap()], None);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(line(&out, "search").contains("FAIL answered, but without citations"), "{}", out.stdout);
    assert!(line(&out, "thinking").contains("FAIL answered, but no reasoning came"), "{}", out.stdout);
    let _ = std::fs::remove_dir_all(&state);
}

/// The `tools` line in its three outcomes: both modes give the call (auto stays native), only
/// the prompt does (Kimi refuses device tools: auto is taught the prompt, and a server on the
/// same state directory uses it), none does (a FAIL that says what to tune).
#[test]
fn the_tools_step_finds_the_mode_that_gives_a_call_and_teaches_auto() {
    let mock = demo_mock();
    let state = support::temp_state_dir();
    let dir = state.to_str().unwrap();
    let token = Kind::Web.token_for("doctor-tools");
    let out = doctor(&mock, &[&token, "--rotate", "--state-dir", dir], None);
    let tools = line(&out, "tools");
    assert!(
        tools.contains("ok   native: call in function_calls form (")
            && tools.contains("; prompt: call in function_calls form (")
            && tools.contains("; auto uses native"),
        "{tools}"
    );
    mock.script(Script { delay_ms: 0, refuse_device_tools: true, ..Script::demo() });
    let out = doctor(&mock, &[&token, "--state-dir", dir], None);
    let tools = line(&out, "tools");
    assert!(tools.contains("native: failed (") && tools.contains("auto uses prompt"), "{tools}");
    let server = ServerProcess::start(&mock, &["--state-dir", dir]);
    let check = post_json(&server.url("/token/check"), None, &json!({ "token": token })).json();
    let mode = check["tokens"][0]["tool_mode"].as_str().unwrap_or_default().to_string();
    assert!(mode.starts_with("prompt (auto, since ") && mode.contains("the doctor's probe"), "{check}");
    mock.script(Script { delay_ms: 0, ignore_probe: true, ..Script::demo() });
    let out = doctor(&mock, &[&token, "--state-dir", dir], None);
    let tools = line(&out, "tools");
    assert!(
        tools.contains("FAIL native: no call, answered") && tools.contains("tune the templates"),
        "{tools}"
    );
    assert_eq!(out.code, Some(1));
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn doctor_asks_a_pass_through_server_to_run_the_steps_with_the_callers_token() {
    let mock = demo_mock();
    let server = ServerProcess::start(&mock, &[]);
    let token = Kind::Web.token_for("doctor-through");
    let out = doctor_at(&server.base, &[&token]);
    assert_all_pass(&out, &[]);
    assert!(line(&out, "deletion").contains("7 of 7 chats deleted"), "{}", out.stdout);
    assert!(!out.stdout.contains(&token[40..80]), "the token is never printed");
    let stats = mock.settled();
    assert_eq!((stats.web_refreshes, stats.sessions_revoked), (1, 0), "the server's one login: {stats:?}");
    assert!(stats.live_chats.is_empty() && stats.chats_created == 7, "{stats:?}");
    // The login the doctor checked is the one the server chats with.
    assert_eq!(post_json(&server.url("/v1/chat/completions"), Some(&token), &ask()).status, 200);
    assert_eq!(mock.stats().web_refreshes, 1);

    // --api-key is the same key; a legacy token has notes where it has nothing to read.
    let out = doctor_at(&server.base, &["--api-key", &Kind::Legacy.token_for("doctor-through")]);
    assert_all_pass(&out, &["models", "credits"]);
    assert!(server.log().contains("POST /doctor - - 200"), "{}", server.log());
}

#[test]
fn doctor_asks_a_pool_server_with_an_api_key_to_check_each_of_its_accounts() {
    let tokens = [Kind::Web.token_for("doctor-pool"), Kind::Connect.token_for("doctor-pool-2")];
    let mock = demo_mock();
    let server = PoolServer::start_on(mock.clone(), Some(&tokens[..]), &[KEY], &[]);
    let out = doctor_at(&server.base, &["--api-key", KEY]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    let accounts: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("account ")).collect();
    assert_eq!(accounts.len(), 2, "{}", out.stdout);
    assert_eq!(out.stdout.matches("doctor: every step passed").count(), 2, "{}", out.stdout);
    assert_eq!(out.stdout.lines().filter(|l| l.starts_with("search     ok ")).count(), 2, "{}", out.stdout);
    let deletions = out.stdout.lines().filter(|l| l.contains("ok   7 of 7 chats deleted")).count();
    assert_eq!(deletions, 2, "each account's own chats: {}", out.stdout);
    assert!(!out.stdout.contains(KEY) && tokens.iter().all(|t| !out.stdout.contains(t.as_str())));
    let stats = mock.settled();
    assert!(
        stats.live_chats.is_empty() && stats.chats_created == 14 && stats.sessions_revoked == 0,
        "{stats:?}"
    );

    let wrong = doctor_at(&server.base, &["--api-key", "not-a-key"]);
    assert_eq!(wrong.code, Some(1), "{}", wrong.stdout);
    assert!(
        wrong.stdout.contains("answered 401: this API key is not one of the server's"),
        "{}",
        wrong.stdout
    );
    let keyless = doctor_at(&server.base, &[]);
    assert_eq!(keyless.code, Some(2));
    assert!(keyless.stderr.contains("--server needs a key"), "{}", keyless.stderr);
}

#[test]
fn post_doctor_without_a_key_is_a_401_in_the_openai_shape_that_says_what_to_send() {
    let pool = Harness::start_with(|config| {
        config.tokens.0 = vec![Kind::Connect.token()];
        config.api_keys.0 = vec![KEY.into()];
    });
    let through = Harness::start();
    for (harness, says) in [(&pool, "no API key: send one of the server's keys"), (&through, "no Kimi token")]
    {
        let reply = post_json(&harness.url("/doctor"), None, &json!({}));
        assert_eq!(reply.status, 401, "{}", reply.body);
        let error = &reply.json()["error"];
        assert_eq!(error["type"], "authentication_error", "{}", reply.body);
        assert!(error["message"].as_str().unwrap().contains(says), "{}", reply.body);
        assert_eq!(harness.mock.stats().chats_created, 0);
    }
    let reply = post_json(&pool.url("/doctor"), Some(KEY), &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let accounts = reply.json()["accounts"].as_array().cloned().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["lines"][0]["step"], "token");
    assert!(!reply.body.contains(&Kind::Connect.token()), "no token in the answer");
}
