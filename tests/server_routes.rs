//! The server around the chat route: fixed endpoints, routing errors, the worker pool's
//! back-pressure, and the binary's command line and logs.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use support::{Harness, MockKimi, Script, TOKEN, get, post, post_json, request};

#[test]
fn ping_welcome_and_models() {
    let h = Harness::start();
    let ping = get(&h.url("/ping"));
    assert_eq!((ping.status, ping.body.as_str()), (200, "pong"));
    let page = get(&h.url("/"));
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.body.contains("/v1/chat/completions") && page.body.contains("curl"));
    let models = get(&h.url("/v1/models")).json();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> =
        models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for id in [
        "kimi",
        "kimi-k3",
        "kimi-k3-thinking",
        "kimi-k2",
        "kimi-k2-thinking",
        "kimi-latest",
        "kimi-search",
        "kimi-research",
        "kimi-k1",
        "kimi-math",
        "kimi-silent",
    ] {
        assert!(ids.contains(&id), "{id} listed");
    }
    assert!(models["data"].as_array().unwrap().iter().all(|m| m["object"] == "model"));
    assert_eq!(get(&h.url("/v1/models/kimi-search")).json()["id"], "kimi-search");
}

#[test]
fn welcome_page_shows_the_address_the_server_was_reached_at_not_host_8000() {
    let h = Harness::start();
    let page = get(&h.url("/")).body;
    assert!(!page.contains("HOST:8000"), "placeholder left in the page");
    assert!(page.contains(&format!("{}/v1", h.base)), "examples use {}", h.base);
    let named = support::get_with(&h.url("/"), &[("Host", "kimi.example:9000")]).body;
    assert!(named.contains("http://kimi.example:9000/v1"));
    let odd = support::get_with(&h.url("/"), &[("Host", "<script>")]).body;
    assert!(!odd.contains("<script>") && odd.contains(&format!("{}/v1", h.base)));
}

#[test]
fn unknown_routes_and_methods_in_the_openai_shape() {
    let h = Harness::start();
    let missing = get(&h.url("/v2/nothing"));
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]["message"].as_str().unwrap().contains("/v2/nothing"));
    let wrong = get(&h.url("/v1/chat/completions"));
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
    assert!(wrong.json()["error"]["type"].is_string());
    let preflight = request("OPTIONS", &h.url("/v1/chat/completions"));
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn token_check_says_live_or_not() {
    let h = Harness::start();
    let url = h.url("/token/check");
    let check = |token: &str| post_json(&url, None, &json!({ "token": token })).json();
    let live = check(TOKEN);
    assert_eq!(live["live"], true);
    assert_eq!(live["tokens"][0]["kind"], "legacy refresh_token");
    assert_eq!(live["tokens"][0]["fingerprint"].as_str().unwrap().len(), 8);
    assert_eq!(check("bad-one")["live"], false);
    let pool = check("rt-a,bad-b");
    assert_eq!((pool["live"].clone(), pool["tokens"][0]["live"].clone()), (json!(false), json!(true)));
    assert!(pool["tokens"][1]["problem"].as_str().unwrap().contains("neither"), "{pool}");
    assert_eq!(post(&url, None, "{}").status, 400);
    let connect = check(&support::connect_token("user-9"));
    assert_eq!(
        (connect["live"].clone(), connect["tokens"][0]["kind"].clone()),
        (json!(true), json!("kimi-auth"))
    );
    assert_eq!(check(&support::connect_token("expired-user"))["live"], false);
    let web = check(&support::web_refresh_token("user-9"));
    assert_eq!(
        (web["live"].clone(), web["tokens"][0]["kind"].clone()),
        (json!(true), json!("web refresh_token"))
    );
    let body = serde_json::to_string(&web).unwrap();
    assert!(!body.contains(&support::web_refresh_token("user-9")[40..]), "no token in the answer");
}

#[test]
fn a_full_queue_answers_503_at_once() {
    let h = Harness::start_with(|c| {
        c.workers = 1;
        c.queue_depth = 1;
    });
    h.mock.script(Script { text: vec!["slow ".into(); 8], delay_ms: 100, ..Script::default() });
    let (done, results) = mpsc::channel();
    for _ in 0..4 {
        let (url, done) = (h.url("/v1/chat/completions"), done.clone());
        std::thread::spawn(move || {
            let reply = post_json(
                &url,
                Some(TOKEN),
                &json!({"model": "kimi", "messages": [{"role": "user", "content": "x"}]}),
            );
            done.send((reply.status, reply.header("retry-after").map(str::to_string))).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut statuses: Vec<_> =
        (0..4).map(|_| results.recv_timeout(Duration::from_secs(20)).unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses[0], (200, None));
    assert_eq!(statuses[1], (200, None));
    assert_eq!(statuses[3], (503, Some("1".to_string())), "{statuses:?}");
    assert!(h.mock.settled().live_chats.is_empty());
}

#[test]
fn binary_help_lists_the_knobs() {
    let output = Command::new(env!("CARGO_BIN_EXE_kimi-free-api")).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for name in [
        "--host",
        "HOST",
        "--port",
        "PORT",
        "--kimi-base-url",
        "KIMI_BASE_URL",
        "--kimi-connect-base-url",
        "--workers",
        "WORKERS",
        "--queue",
        "QUEUE_DEPTH",
    ] {
        assert!(help.contains(name), "{name} in --help");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_kimi-free-api")).args(["--port", "x"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--port"));
}

#[test]
fn the_binary_logs_one_line_per_request_and_no_secret() {
    let mock = MockKimi::start();
    let state_dir = support::temp_state_dir();
    let child = Command::new(env!("CARGO_BIN_EXE_kimi-free-api"))
        .args(["--host", "127.0.0.1", "--port", "0", "--kimi-base-url", mock.url(), "--workers", "2"])
        .args(["--kimi-connect-base-url", mock.url(), "--kimi-auth-base-url", mock.url()])
        .args(["--state-dir".as_ref(), state_dir.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let base = first.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");

    let secret = "rt-very-secret-token";
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(post_json(&format!("{base}/v1/chat/completions"), Some(secret), &body).status, 200);
    let with_query = post_json(&format!("{base}/v1/chat/completions?key={secret}"), None, &body);
    assert_eq!(with_query.status, 200, "?key= is a credential too");
    assert_eq!(post_json(&format!("{base}/v1/chat/completions"), Some("bad-secret"), &body).status, 401);
    let jwt = support::connect_token("secret-user");
    assert_eq!(post_json(&format!("{base}/v1/chat/completions"), Some(&jwt), &body).status, 200);
    std::thread::sleep(Duration::from_millis(200));
    drop(child);
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("POST ")).collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(
        lines[0].contains("/v1/chat/completions openai legacy 200") && lines[0].contains("chat=cm"),
        "{}",
        lines[0]
    );
    assert!(lines[2].contains(" 401 "), "{}", lines[2]);
    assert!(lines[3].contains("openai connect 200"), "{}", lines[3]);
    assert!(
        !log.contains(&jwt[..20]) && !log.contains(jwt.split('.').nth(1).unwrap()),
        "a JWT reached the log"
    );
    assert!(!log.contains("secret"), "a token reached the log:\n{log}");
    assert!(!log.contains("access-"), "an access token reached the log:\n{log}");
}

/// Ends the child process however the test ends, so no server outlives it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn jwt_shaped_non_jwt_gets_401_not_a_kimi_token_without_calling_kimi() {
    let h = Harness::start();
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": "hi"}]});
    let reply = post_json(&h.url("/v1/chat/completions"), Some("eyJabc.def.ghi"), &body);
    assert_eq!(reply.status, 401, "{}", reply.body);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("not a Kimi token (not a valid JWT)"), "{message}");
    assert!(!message.contains("Kimi refused"), "{message}");
    let stats = h.mock.stats();
    assert_eq!((stats.refreshes, stats.web_refreshes, stats.user_calls, stats.chats_created), (0, 0, 0, 0));
}

#[test]
fn missing_credential_401_names_each_dialects_own_header() {
    let h = Harness::start();
    let chat = json!({"model": "kimi", "messages": [{"role": "user", "content": "hi"}]});
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let responses = json!({"model": "kimi", "input": "hi"});
    let cases = [
        ("/v1/chat/completions", &chat, "`Authorization: Bearer TOKEN`"),
        ("/v1/responses", &responses, "`Authorization: Bearer TOKEN`"),
        ("/v1/messages", &chat, "`x-api-key: TOKEN`"),
        ("/v1beta/models/kimi:generateContent", &gemini, "`x-goog-api-key: TOKEN` (or `?key=TOKEN`)"),
    ];
    for (path, body, header) in cases {
        let reply = post_json(&h.url(path), None, body);
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
        assert!(reply.body.contains(header), "{path} should name {header}: {}", reply.body);
        if !path.starts_with("/v1/chat") && !path.starts_with("/v1/responses") {
            assert!(!reply.body.contains("Bearer"), "{path}: {}", reply.body);
        }
    }
}
