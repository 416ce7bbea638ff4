//! Upstream proxies through the server binary: `--upstream-proxy` and the tokens file's
//! `proxy=URL` carry every call to Kimi (the mock) and nothing else (attachment fetches from
//! the caller's URLs go straight), each account through its own; an unreachable proxy is an
//! account error in the caller's dialect, never a direct connection; `doctor` and
//! `/token/check` name the proxy; its credentials show nowhere (every `PoolServer` checks its
//! log and answers when dropped, and these tests check `/metrics`, the errors and `doctor`).
//!
//! Which proxy carried a request is read from the peer address the mock saw: a tunnel's
//! connection to the mock is the proxy's own (`support::proxy::Counts::outgoing`).

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};
use support::pool::PoolServer;
use support::proxy::{self, Proxy};
use support::{Kind, MockKimi, Seen, connect_token};

const KEY: &str = "key-proxy-51c0e2a9";
const USER: &str = "proxy-user-7d2f";
const PASSWORD: &str = "hunter2-proxy-9b1e";

fn ask(stream: bool) -> Value {
    json!({"model": "kimi", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The proxy URL with the test's login.
fn with_login(proxy: &Proxy) -> String {
    proxy.url(Some(&format!("{USER}:{PASSWORD}")))
}

fn remember_login(server: &PoolServer) {
    server.secret(USER);
    server.secret(PASSWORD);
}

/// The requests the mock saw, split into those a proxy carried (by its outgoing addresses)
/// and the others.
fn carried(requests: &[Seen], proxy: &Proxy) -> (Vec<Seen>, Vec<Seen>) {
    let outgoing: BTreeSet<String> = proxy.counts().outgoing.into_iter().collect();
    requests.iter().cloned().partition(|seen| outgoing.contains(&seen.peer))
}

fn a_chat_with_an_attachment(server: &PoolServer, token: &str) {
    let image_url = format!("{}/_files/cat.png", server.mock.url());
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": image_url}}]}]});
    let reply = server.post("/v1/chat/completions", &[("Authorization", &bearer(token))], &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = server.stream("/v1/chat/completions", &[("Authorization", &bearer(token))], &ask(true));
    assert_eq!(reply.status, 200, "{}", reply.raw);
}

#[test]
fn the_servers_proxy_carries_all_kimi_traffic_and_no_attachment_fetch() {
    for (proxy_kind, kind) in [
        (proxy::Kind::HttpConnect, Kind::Web),
        (proxy::Kind::Socks5, Kind::Legacy),
        (proxy::Kind::Socks5, Kind::Connect),
        (proxy::Kind::HttpConnect, Kind::Legacy),
    ] {
        let proxy = Proxy::start(proxy_kind, Some((USER, PASSWORD)));
        let url = with_login(&proxy);
        let server = PoolServer::pass_through(&["--upstream-proxy", &url, "--allow-private-urls", "true"]);
        remember_login(&server);
        let token = kind.token();
        server.secret(&token);
        a_chat_with_an_attachment(&server, &token);
        let stats = server.mock.settled();
        assert_eq!((stats.uploads.len(), stats.chats_deleted), (1, 2), "{proxy_kind:?} {kind:?}");
        let (through, direct) = carried(&stats.requests, &proxy);
        let fetches: Vec<&str> = direct.iter().map(|seen| seen.route.as_str()).collect();
        assert_eq!(
            fetches,
            ["GET /_files/cat.png"],
            "only the attachment fetch goes direct: {proxy_kind:?} {kind:?}"
        );
        assert!(through.iter().all(|seen| !seen.route.starts_with("GET /_files/")));
        assert!(through.len() >= 5, "{through:?}");
        let counts = proxy.counts();
        let mock = server.mock.url().trim_start_matches("http://").to_string();
        assert!(counts.tunnels >= 1 && counts.targets.iter().all(|t| *t == mock), "{counts:?}");
        assert!(counts.bytes_up > 0 && counts.bytes_down > 0 && counts.refused == 0, "{counts:?}");
        assert!(server.log().contains(&format!("calls to Kimi go through the proxy {}", proxy.shown())));
    }
}

#[test]
fn each_account_goes_through_its_own_proxy_and_the_rest_through_the_servers() {
    let (own_a, own_b, global) = (
        Proxy::start(proxy::Kind::Socks5, Some((USER, PASSWORD))),
        Proxy::start(proxy::Kind::HttpConnect, None),
        Proxy::start(proxy::Kind::HttpConnect, Some((USER, PASSWORD))),
    );
    let tokens = [connect_token("user-a"), connect_token("user-b"), connect_token("user-c")];
    let lines = [
        format!("{}   proxy={}", tokens[0], with_login(&own_a)),
        format!("{}\tproxy={}", tokens[1], own_b.url(None)),
        tokens[2].clone(),
    ];
    let server = PoolServer::start(&lines, &[KEY], &["--upstream-proxy", &with_login(&global)]);
    remember_login(&server);
    for stream in [false, true, false, true, false, true] {
        let reply = server.post("/v1/chat/completions", &[("Authorization", &bearer(KEY))], &ask(stream));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let stats = server.mock.settled();
    assert_eq!(stats.completions_by_user.len(), 3, "every account served: {:?}", stats.completions_by_user);
    for (token, proxy) in [(&tokens[0], &own_a), (&tokens[1], &own_b), (&tokens[2], &global)] {
        let outgoing: BTreeSet<String> = proxy.counts().outgoing.into_iter().collect();
        let of_account: Vec<&Seen> = stats
            .requests
            .iter()
            .filter(|seen| seen.authorization.as_deref() == Some(&bearer(token)))
            .collect();
        assert!(of_account.len() >= 2, "{of_account:?}");
        for seen in &stats.requests {
            let mine = seen.authorization.as_deref() == Some(&bearer(token));
            assert_eq!(outgoing.contains(&seen.peer), mine, "{} via {}: {seen:?}", proxy.shown(), seen.route);
        }
    }
    let check = server.post("/token/check", &[], &json!({"token": tokens[0]})).json();
    assert_eq!(check["tokens"][0]["proxy"], own_a.shown(), "{check}");
    assert_eq!(check["tokens"][0]["live"], true, "{check}");
    let check = server.post("/token/check", &[], &json!({"token": tokens[2]})).json();
    assert_eq!(check["tokens"][0]["proxy"], global.shown(), "{check}");
}

#[test]
fn an_unreachable_proxy_is_an_account_error_and_never_a_direct_connection() {
    let port = proxy::closed_port();
    let url = format!("socks5h://{USER}:{PASSWORD}@127.0.0.1:{port}");
    let shown = format!("socks5h://127.0.0.1:{port}");
    let server = PoolServer::pass_through(&["--upstream-proxy", &url]);
    remember_login(&server);
    let token = Kind::Web.token();
    server.secret(&token);
    let auth = bearer(&token);

    let reply = server.post("/v1/chat/completions", &[("Authorization", &auth)], &ask(false));
    assert_eq!(reply.status, 502, "{}", reply.body);
    let message = reply.json()["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains(&format!("proxy unreachable: {shown} (")), "{message}");
    let body = json!({"model": "kimi", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let reply =
        server.post("/v1/messages", &[("x-api-key", &token), ("anthropic-version", "2023-06-01")], &body);
    let answer = reply.json();
    assert_eq!((reply.status, answer["type"].as_str()), (502, Some("error")), "{}", reply.body);
    assert!(answer["error"]["message"].as_str().unwrap().contains("proxy unreachable"), "{answer}");

    let health = server.get("/healthz", &[]).json();
    let account = &health["accounts"][0];
    assert!(account["last_error"].as_str().unwrap().contains("proxy unreachable"), "{health}");
    assert_eq!(account["state"], "cooling_down", "{health}");
    let check = server.post("/token/check", &[], &json!({"token": token})).json();
    assert_eq!((check["live"].as_bool(), check["tokens"][0]["proxy"].as_str()), (Some(false), Some(&*shown)));
    assert!(check["tokens"][0]["problem"].as_str().unwrap().contains("proxy unreachable"), "{check}");
    let metrics = server.get("/metrics", &[]).body;
    let series = "kimi_free_api_upstream_errors_total{kind=\"proxy_unreachable\"} ";
    assert!(metrics.lines().any(|l| l.starts_with(series) && !l.ends_with(" 0")), "{metrics}");
    for text in [&metrics, &server.log()] {
        assert!(!text.contains(PASSWORD) && !text.contains(USER), "{text}");
    }
    assert!(server.mock.stats().requests.is_empty(), "nothing reached Kimi directly");
}

#[test]
fn an_account_whose_proxy_is_down_fails_over_to_the_next_and_cools_down() {
    let port = proxy::closed_port();
    let working = Proxy::start(proxy::Kind::Socks5, None);
    let tokens = [connect_token("user-down"), connect_token("user-up")];
    let lines = [
        format!("{} proxy=http://{USER}:{PASSWORD}@127.0.0.1:{port}", tokens[0]),
        format!("{} proxy={}", tokens[1], working.url(None)),
    ];
    let server = PoolServer::start(&lines, &[KEY], &[]);
    remember_login(&server);
    for stream in [false, true, false] {
        let reply = server.post("/v1/chat/completions", &[("Authorization", &bearer(KEY))], &ask(stream));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let stats = server.mock.settled();
    assert_eq!(stats.completions_by_user.keys().collect::<Vec<_>>(), ["user-up"], "{stats:?}");
    let down = bearer(&tokens[0]);
    assert!(stats.requests.iter().all(|seen| seen.authorization.as_deref() != Some(&*down)), "never direct");
    let (through, direct) = carried(&stats.requests, &working);
    assert!(direct.is_empty() && !through.is_empty(), "{direct:?}");
    let account = server.account(KEY, &kimi_free_api::kimi::fingerprint(&tokens[0]));
    assert_eq!(account["state"], "cooling_down", "{account}");
    let why = account["last_error"].as_str().unwrap_or_default();
    assert!(why.starts_with(&format!("proxy unreachable: http://127.0.0.1:{port} (")), "{why}");
    assert!(server.log().contains("cools down for 30 s (proxy unreachable"), "{}", server.log());
}

#[test]
fn a_proxy_that_refuses_the_login_is_unreachable_and_says_so_without_the_password() {
    for kind in [proxy::Kind::HttpConnect, proxy::Kind::Socks5] {
        let proxy = Proxy::start(kind, Some((USER, "the-right-one")));
        let server = PoolServer::pass_through(&["--upstream-proxy", &with_login(&proxy)]);
        remember_login(&server);
        let token = connect_token("user-1");
        let reply = server.post("/v1/chat/completions", &[("Authorization", &bearer(&token))], &ask(false));
        assert_eq!(reply.status, 502, "{}", reply.body);
        assert!(reply.body.contains(&format!("proxy unreachable: {}", proxy.shown())), "{}", reply.body);
        assert!(proxy.counts().refused >= 1 && proxy.counts().tunnels == 0, "{:?}", proxy.counts());
        assert!(server.mock.stats().requests.is_empty());
    }
}

/// Runs `doctor TOKEN` at the mock with the extra flags; returns stdout and stderr.
fn doctor(mock: &MockKimi, token: &str, extra: &[&str]) -> (String, String) {
    let state = std::env::temp_dir().join(format!("kimi-doctor-proxy-{}", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_kimi-free-api"));
    command.args(["doctor", token, "--rotate", "--upstream-timeout", "5"]);
    support::process::at_mock(&mut command, mock);
    let output = command.arg("--state-dir").arg(&state).args(extra).output().expect("doctor runs");
    let _ = std::fs::remove_dir_all(&state);
    (String::from_utf8_lossy(&output.stdout).into(), String::from_utf8_lossy(&output.stderr).into())
}

#[test]
fn doctor_goes_through_the_accounts_proxy_and_names_it() {
    let mock = MockKimi::start();
    let global = Proxy::start(proxy::Kind::Socks5, Some((USER, PASSWORD)));
    let token = Kind::Web.token();
    let (out, err) = doctor(&mock, &token, &["--upstream-proxy", &with_login(&global)]);
    assert!(out.contains(&format!("proxy      ok   through {}", global.shown())), "{out}");
    assert!(out.contains("login      ok"), "{out}");
    let requests = mock.stats().requests;
    let (through, direct) = carried(&requests, &global);
    assert!(direct.is_empty() && through.len() >= 5, "{direct:?}");

    // A tokens file naming this account's own proxy wins over the server's.
    let own = Proxy::start(proxy::Kind::HttpConnect, None);
    let file = std::env::temp_dir().join(format!("kimi-doctor-proxy-tokens-{}", std::process::id()));
    std::fs::write(&file, format!("{token} proxy={}\n", own.url(None))).unwrap();
    mock.reset_stats();
    let path = file.display().to_string();
    let (out_own, err_own) =
        doctor(&mock, &token, &["--upstream-proxy", &with_login(&global), "--tokens-file", &path]);
    let _ = std::fs::remove_file(&file);
    assert!(out_own.contains(&format!("proxy      ok   through {}", own.shown())), "{out_own}");
    let (through, direct) = carried(&mock.stats().requests, &own);
    assert!(direct.is_empty() && !through.is_empty(), "{direct:?}");
    for text in [out, err, out_own, err_own] {
        assert!(!text.contains(PASSWORD) && !text.contains(USER) && !text.contains(&token), "{text}");
    }
}

#[test]
fn a_tokens_file_with_a_bad_proxy_line_is_refused_at_start_with_its_line_number_only() {
    let dir = support::temp_state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let token = connect_token("user-bad-proxy");
    let lines =
        format!("# accounts\n{}\n{token} proxy=ftp://{USER}:{PASSWORD}@127.0.0.1:21\n", connect_token("ok"));
    std::fs::write(dir.join("tokens"), lines).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kimi-free-api"))
        .args(["--host", "127.0.0.1", "--port", "0", "--tokens-file"])
        .arg(dir.join("tokens"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("the tokens file: line 3: proxy=: unsupported proxy scheme"), "{said}");
    for secret in [token.split('.').nth(1).unwrap(), PASSWORD, USER] {
        assert!(!said.contains(secret), "{said}");
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_kimi-free-api"))
        .args(["--upstream-proxy", &format!("socks5://{USER}:{PASSWORD}@127.0.0.1:0")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr).to_string();
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(said.contains("--upstream-proxy: the proxy URL's port") && !said.contains(PASSWORD), "{said}");
}
