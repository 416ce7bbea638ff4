//! The accounts as a pool, against the mock, through the server binary: the server's own
//! accounts behind API keys, health that is remembered (dead, cooling down, busy, research
//! quota), failover before the first byte and none after, kept conversations that stay on
//! their account, SIGHUP reloads, `/healthz`, `/metrics` (checked by promtool) and the health
//! probe. Every server these tests start checks, when dropped, that no token or key appears in
//! any log line or answer (`support::pool`).

mod support;

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use kimi_free_api::kimi::fingerprint;
use serde_json::{Value, json};
use support::pool::{PoolServer, connect_token_with_fault, promtool};
use support::{Kind, Script, connect_token};

const KEY: &str = "key-pool-3e1f9a7c0d5b";

fn ask(stream: bool) -> Value {
    json!({"model": "kimi", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn keyed() -> [(&'static str, String); 1] {
    [("Authorization", format!("Bearer {KEY}"))]
}

fn headers<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// One chat through the pool with the key; returns the status.
fn chat(server: &PoolServer, stream: bool) -> u16 {
    let key = keyed();
    if stream {
        server.stream("/v1/chat/completions", &headers(&key), &ask(true)).status
    } else {
        server.post("/v1/chat/completions", &headers(&key), &ask(false)).status
    }
}

/// A sample of `/metrics`: the value of the line that starts with `series`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn metrics(server: &PoolServer) -> String {
    let reply = server.get("/metrics", &headers(&keyed()));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn dead_token(kind: Kind) -> String {
    kind.refused_token()
}

#[test]
fn a_dead_account_is_skipped_and_shown_dead() {
    for kind in [Kind::Connect, Kind::Web, Kind::Legacy] {
        let (dead, live) = (dead_token(kind), kind.token_for("pool-live"));
        let server = PoolServer::start(&[dead.clone(), live.clone()], &[KEY], &[]);
        for i in 0..6 {
            assert_eq!(chat(&server, i % 2 == 0), 200, "{kind:?} request {i}");
        }
        let account = server.account(KEY, &fingerprint(&dead));
        assert_eq!(account["state"], "dead", "{kind:?}: {account}");
        assert_eq!(account["requests"], 1, "{kind:?}: tried once, then skipped");
        assert!(account["last_error"].as_str().unwrap().contains("refused"), "{account}");
        assert!(account["last_error_at"].as_u64().is_some());
        let live = server.account(KEY, &fingerprint(&live));
        assert_eq!((live["state"].clone(), live["requests"].clone()), (json!("healthy"), json!(6)));
        let text = metrics(&server);
        assert_eq!(metric(&text, "kimi_free_api_failovers_total"), 1.0);
        assert_eq!(metric(&text, "kimi_free_api_upstream_errors_total{kind=\"unauthorized\"}"), 1.0);
        let series =
            format!("kimi_free_api_account_state{{account=\"{}\",state=\"dead\"}}", fingerprint(&dead));
        assert_eq!(metric(&text, &series), 1.0);
        assert!(server.mock.settled().live_chats.is_empty());
    }
}

#[test]
fn a_rate_limited_account_cools_down_and_comes_back() {
    let limited =
        connect_token_with_fault("pool-limited", json!({"kind": "rate_limited", "retry_after": 2}), Some(1));
    let other = connect_token("pool-other");
    let server = PoolServer::start(&[limited.clone(), other], &[KEY], &[]);
    assert_eq!(chat(&server, true), 200, "the rate limit moved the request to the other account");
    let account = server.account(KEY, &fingerprint(&limited));
    assert_eq!(account["state"], "cooling_down", "{account}");
    assert!(account["last_error"].as_str().unwrap().contains("rate limit"), "{account}");
    for _ in 0..3 {
        assert_eq!(chat(&server, false), 200);
    }
    let by_user = server.mock.stats().completions_by_user;
    assert_eq!((by_user["pool-limited"], by_user["pool-other"]), (1, 4), "skipped while cooling down");
    // Kimi said two seconds; after them the account takes its turn again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.account(KEY, &fingerprint(&limited))["state"] != "healthy" && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..4 {
        assert_eq!(chat(&server, false), 200);
    }
    assert!(server.mock.stats().completions_by_user["pool-limited"] >= 2, "it came back");
    assert!(server.log().contains("cools down for 2 s"), "{}", server.log());
}

#[test]
fn a_lone_rate_limited_account_tells_the_client_how_long_it_cools_down() {
    let limited =
        connect_token_with_fault("pool-alone", json!({"kind": "rate_limited", "retry_after": null}), None);
    let server = PoolServer::start(&[limited], &[KEY], &[]);
    let reply = server.post("/v1/chat/completions", &headers(&keyed()), &ask(false));
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("30"), "the backoff's first step");
}

#[test]
fn failover_happens_before_the_first_byte_and_never_after() {
    let failing = connect_token_with_fault(
        "pool-5xx",
        json!({"kind": "completion_status", "status": 500, "error_type": ""}),
        None,
    );
    let server = PoolServer::start(&[failing, connect_token("pool-fine")], &[KEY], &[]);
    let answer = server.stream("/v1/chat/completions", &headers(&keyed()), &ask(true));
    assert_eq!((answer.status, answer.content()), (200, "Hello from the mock Kimi.".to_string()));
    let by_user = server.mock.stats().completions_by_user;
    assert_eq!((by_user["pool-5xx"], by_user["pool-fine"]), (1, 1), "one attempt each, no retry");
    assert_eq!(metric(&metrics(&server), "kimi_free_api_failovers_total"), 1.0);
    drop(server);

    let cut = connect_token_with_fault("pool-cut", json!({"kind": "cut", "after": 2}), None);
    let server = PoolServer::start(&[cut, connect_token("pool-spare")], &[KEY], &[]);
    let answer = server.stream("/v1/chat/completions", &headers(&keyed()), &ask(true));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content(), "Hello from", "what came before the cut, then the error");
    assert!(answer.data().iter().any(|d| d.contains("\"error\"")), "{:?}", answer.data());
    assert!(!server.mock.stats().completions_by_user.contains_key("pool-spare"), "no silent retry");
    assert_eq!(metric(&metrics(&server), "kimi_free_api_failovers_total"), 0.0);
    assert!(server.mock.settled().live_chats.is_empty());
}

#[test]
fn the_per_account_stream_limit_holds_under_concurrency() {
    let tokens = [connect_token("pool-c1"), connect_token("pool-c2")];
    let server =
        Arc::new(PoolServer::start(&tokens, &[KEY], &["--account-streams", "2", "--account-wait", "30"]));
    server.mock.script(Script { text: vec!["slow ".into(); 6], delay_ms: 40, ..Script::default() });
    let statuses = concurrently(&server, 8, |server, i| chat(server, i % 2 == 0));
    assert!(statuses.iter().all(|s| *s == 200), "every request waited for a slot: {statuses:?}");
    let peaks = server.mock.stats().peak_streams_by_user;
    assert!(peaks.values().all(|peak| *peak <= 2), "{peaks:?}");
    assert_eq!(peaks.values().max(), Some(&2), "{peaks:?}");
    drop(Arc::into_inner(server));

    // A short wait: who finds every account busy past it gets 503 (Anthropic: 529) and Retry-After.
    let tokens = [connect_token("pool-b1")];
    let server =
        Arc::new(PoolServer::start(&tokens, &[KEY], &["--account-streams", "1", "--account-wait", "0.2"]));
    server.mock.script(Script { text: vec!["slow ".into(); 10], delay_ms: 100, ..Script::default() });
    let replies = concurrently(&server, 3, |server, i| {
        if i == 0 {
            return chat(server, true);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.mock.stats().completions == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let anthropic =
            json!({"model": "kimi", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let reply = if i == 1 {
            server.post("/v1/chat/completions", &headers(&keyed()), &ask(false))
        } else {
            server.post(
                "/v1/messages",
                &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
                &anthropic,
            )
        };
        assert!(reply.header("retry-after").is_some(), "{}", reply.body);
        reply.status
    });
    assert_eq!(replies, [200, 503, 529]);
    assert_eq!(server.mock.stats().peak_streams_by_user["pool-b1"], 1);
}

/// Runs `work` on `n` threads started together; the results in thread order.
fn concurrently(server: &Arc<PoolServer>, n: usize, work: fn(&PoolServer, usize) -> u16) -> Vec<u16> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (server, barrier) = (server.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                work(&server, i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_kept_conversation_stays_on_its_account_for_ten_turns() {
    for kind in [Kind::Connect, Kind::Legacy] {
        let tokens: Vec<String> =
            ["k1", "k2", "k3"].iter().map(|u| kind.token_for(&format!("pool-{u}"))).collect();
        let server = PoolServer::start(&tokens, &[KEY], &[]);
        let mut body = ask(false);
        body["conversation_id"] = json!("none");
        let first = server.post("/v1/chat/completions", &headers(&keyed()), &body);
        assert_eq!(first.status, 200, "{}", first.body);
        let id = first.json()["id"].as_str().unwrap().to_string();
        let (_, fp) = id.rsplit_once('@').expect("the id names its account");
        let owner = tokens.iter().find(|t| fingerprint(t) == fp).expect("an account of the pool").clone();
        for turn in 1..10 {
            let mut next = ask(turn % 2 == 0);
            next["conversation_id"] = json!(id);
            if turn % 2 == 0 {
                let answer = server.stream("/v1/chat/completions", &headers(&keyed()), &next);
                assert_eq!(answer.frames[0].json()["id"], id.as_str(), "{kind:?} turn {turn}");
            } else {
                let reply = server.post("/v1/chat/completions", &headers(&keyed()), &next);
                assert_eq!(reply.json()["id"], id.as_str(), "{kind:?} turn {turn}: {}", reply.body);
            }
        }
        let stats = server.mock.stats();
        assert_eq!(stats.chats_created, 1, "{kind:?}");
        assert_eq!(
            stats.completions_by_user.values().copied().collect::<Vec<_>>(),
            [10],
            "{kind:?}: one account"
        );
        assert_eq!(server.account(KEY, fp)["requests"], 10);

        // The account leaves the pool: the conversation cannot go on, and the client is told why.
        let rest: Vec<String> = tokens.iter().filter(|t| **t != owner).cloned().collect();
        server.write_tokens(&rest);
        server.hup();
        let mut next = ask(false);
        next["conversation_id"] = json!(id);
        let reply = server.post("/v1/chat/completions", &headers(&keyed()), &next);
        assert_eq!(reply.status, 404, "{}", reply.body);
        let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(fp) && message.contains("not in this server's pool"), "{message}");
    }
}

#[test]
fn sighup_reloads_the_tokens_file_without_dropping_running_streams() {
    let (old, new) = (connect_token("pool-old"), connect_token("pool-new"));
    let server = Arc::new(PoolServer::start(std::slice::from_ref(&old), &[KEY], &[]));
    server.mock.script(Script { text: vec!["tick ".into(); 25], delay_ms: 80, ..Script::default() });
    let running = {
        let server = server.clone();
        thread::spawn(move || server.stream("/v1/chat/completions", &headers(&keyed()), &ask(true)))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.mock.stats().completions == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    server.write_tokens(&["# the new account".to_string(), new.clone()]);
    server.hup();
    assert!(!running.is_finished(), "the reload came while the stream ran");
    assert!(
        server.log().contains("SIGHUP: the pool has 1 Kimi accounts (1 added, 1 removed)"),
        "{}",
        server.log()
    );
    let answer = running.join().unwrap();
    assert_eq!(answer.content(), "tick ".repeat(25), "the running stream went on to its end");
    assert!(answer.complete && answer.data().last() == Some(&"[DONE]"));
    server.mock.script(Script::default());
    assert_eq!(chat(&server, false), 200);
    let by_user = server.mock.stats().completions_by_user;
    assert_eq!((by_user["pool-old"], by_user["pool-new"]), (1, 1));
    let health = server.health(KEY);
    assert_eq!(health["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(health["accounts"][0]["fingerprint"], fingerprint(&new).as_str());

    // A bad file keeps the pool as it was, and the log says why without quoting the file.
    server.write_tokens(&[format!("{old} {new}")]);
    server.hup();
    assert!(server.log().contains("the pool stays as it was: the tokens file line 1"), "{}", server.log());
    assert_eq!(chat(&server, true), 200);
    assert_eq!(server.health(KEY)["accounts"][0]["fingerprint"], fingerprint(&new).as_str());
}

#[test]
fn api_keys_are_required_in_every_dialect() {
    let token = connect_token("pool-keys");
    let server = PoolServer::start(std::slice::from_ref(&token), &[KEY, "key-second-77aa31"], &[]);
    server.secret("wrong-key-0042");
    let openai = |headers: &[(&str, &str)]| server.post("/v1/chat/completions", headers, &ask(false));
    let anthropic_body =
        json!({"model": "kimi", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let anthropic = |headers: &[(&str, &str)]| server.post("/v1/messages", headers, &anthropic_body);
    let gemini_body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let gemini = |path: &str, headers: &[(&str, &str)]| server.post(path, headers, &gemini_body);
    let bearer_token = format!("Bearer {token}");
    let refusals = [
        openai(&[]),
        openai(&[("Authorization", "Bearer wrong-key-0042")]),
        openai(&[("Authorization", &bearer_token)]),
        anthropic(&[("anthropic-version", "2023-06-01")]),
        anthropic(&[("x-api-key", "wrong-key-0042"), ("anthropic-version", "2023-06-01")]),
        gemini("/v1beta/models/kimi:generateContent", &[]),
        gemini("/v1beta/models/kimi:generateContent?key=wrong-key-0042", &[]),
        gemini("/v1beta/models/kimi:generateContent", &[("x-goog-api-key", &token)]),
    ];
    for (i, reply) in refusals.iter().enumerate() {
        assert_eq!(reply.status, 401, "refusal {i}: {}", reply.body);
        let error = &reply.json()["error"];
        let shape = [error["type"] == "authentication_error", error["status"] == "UNAUTHENTICATED"];
        assert!(shape.contains(&true), "refusal {i} in the dialect's shape: {}", reply.body);
    }
    assert_eq!(refusals[3].json()["type"], "error", "Anthropic's envelope");
    assert_eq!(server.mock.stats().completions, 0, "nothing reached Kimi");

    let second = "Bearer key-second-77aa31";
    assert_eq!(openai(&[("Authorization", second)]).status, 200);
    assert_eq!(anthropic(&[("x-api-key", KEY), ("anthropic-version", "2023-06-01")]).status, 200);
    assert_eq!(gemini("/v1beta/models/kimi:generateContent", &[("x-goog-api-key", KEY)]).status, 200);
    assert_eq!(gemini(&format!("/v1beta/models/kimi:generateContent?key={KEY}"), &[]).status, 200);

    // What the keys guard: /metrics, and the accounts part of /healthz.
    assert_eq!(server.get("/metrics", &[]).status, 401);
    assert_eq!(server.get("/metrics", &[("Authorization", "Bearer wrong-key-0042")]).status, 401);
    let open = server.get("/healthz", &[]);
    assert_eq!(open.status, 200);
    assert!(open.json().get("accounts").is_none(), "{}", open.body);
    assert_eq!(open.json()["status"], "ok");
    assert_eq!(server.health(KEY)["accounts"][0]["fingerprint"], fingerprint(&token).as_str());
}

#[test]
fn healthz_and_metrics_say_what_happened_and_pass_promtool() {
    let (dead, live) = (connect_token("expired-metrics"), connect_token("pool-metrics"));
    let server = PoolServer::start(&[dead.clone(), live.clone()], &[KEY], &["--account-streams", "3"]);
    promtool(&metrics(&server));
    for i in 0..4 {
        assert_eq!(chat(&server, i % 2 == 1), 200);
    }
    let anthropic = json!({"model": "kimi", "max_tokens": 5, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let answer =
        server.stream("/v1/messages", &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")], &anthropic);
    assert_eq!(answer.status, 200);
    assert_eq!(server.post("/v1/chat/completions", &[], &ask(false)).status, 401);

    let health = server.health(KEY);
    assert_eq!(
        (health["status"].clone(), health["mode"].clone(), health["usable"].clone()),
        (json!("ok"), json!("pool"), json!(1))
    );
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_seconds"].is_u64());
    let live_account = server.account(KEY, &fingerprint(&live));
    assert_eq!(live_account["kind"], "kimi-auth");
    assert_eq!(live_account["requests"], 5);
    assert_eq!(live_account["streams"], 0);
    assert_eq!(live_account["expires"], 4_102_444_800u64);
    assert_eq!(live_account["expires_at"], "2100-01-01 00:00:00 UTC");
    assert!(live_account["last_error"].is_null());
    assert_eq!(server.account(KEY, &fingerprint(&dead))["state"], "dead");

    let text = metrics(&server);
    promtool(&text);
    let requests = |route: &str, dialect: &str, status: u16| {
        let series = format!(
            "kimi_free_api_requests_total{{route=\"{route}\",dialect=\"{dialect}\",status=\"{status}\"}}"
        );
        metric(&text, &series)
    };
    assert_eq!(requests("chat_completions", "openai", 200), 4.0);
    assert_eq!(requests("chat_completions", "openai", 401), 1.0);
    assert_eq!(requests("messages", "anthropic", 200), 1.0);
    assert_eq!(metric(&text, "kimi_free_api_failovers_total"), 1.0);
    assert_eq!(metric(&text, "kimi_free_api_upstream_errors_total{kind=\"unauthorized\"}"), 1.0);
    let stats = server.mock.settled();
    assert_eq!(metric(&text, "kimi_free_api_chats_created_total"), f64::from(stats.chats_created));
    assert_eq!(metric(&text, "kimi_free_api_chats_deleted_total"), f64::from(stats.chats_deleted));
    assert_eq!(stats.chats_created, 5);
    assert_eq!(metric(&text, "kimi_free_api_time_to_first_byte_seconds_count"), 5.0);
    assert_eq!(metric(&text, "kimi_free_api_stream_duration_seconds_count"), 3.0);
    assert_eq!(metric(&text, "kimi_free_api_streams_in_flight"), 0.0);
    let fp = fingerprint(&live);
    assert_eq!(
        metric(&text, &format!("kimi_free_api_account_state{{account=\"{fp}\",state=\"healthy\"}}")),
        1.0
    );
    assert_eq!(
        metric(&text, &format!("kimi_free_api_account_state{{account=\"{fp}\",state=\"dead\"}}")),
        0.0
    );
    assert_eq!(metric(&text, &format!("kimi_free_api_account_requests_total{{account=\"{fp}\"}}")), 5.0);
    assert_eq!(metric(&text, "kimi_free_api_info{version=\"0.1.0\",mode=\"pool\"}"), 1.0);
}

#[test]
fn the_health_probe_follows_healthz() {
    let dead = connect_token("expired-probe");
    let server = PoolServer::start(std::slice::from_ref(&dead), &[KEY], &[]);
    let probe = |url: String| {
        let output =
            Command::new(env!("CARGO_BIN_EXE_kimi-free-api")).args(["health", &url]).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).to_string())
    };
    let (code, said) = probe(server.url("/healthz"));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.starts_with("healthy"), "{said}");
    // Its only account dies: the pool cannot serve, /healthz says 503, the probe fails.
    let reply = server.post("/v1/chat/completions", &headers(&keyed()), &ask(false));
    assert_eq!(reply.status, 503, "the key was good: the pool's trouble is no 401: {}", reply.body);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("/healthz"), "{}", reply.body);
    let reply = server.post(
        "/v1/messages",
        &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
        &json!({"model": "kimi", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(
        reply.status, 529,
        "a dead pool is overloaded to Claude Code, not its key refused: {}",
        reply.body
    );
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("1 dead"), "{}", reply.body);
    assert_eq!(server.get("/healthz", &[]).status, 503);
    let (code, said) = probe(format!("{}?key={KEY}", server.url("/healthz")));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("answered 503") && !said.contains(KEY), "{said}");
    let (code, _) = probe("http://127.0.0.1:9/healthz".to_string());
    assert_eq!(code, Some(1));
}

#[test]
fn research_requests_pick_an_account_with_quota_left() {
    let (spent, fresh) = ("rt-pool-no-research".to_string(), "rt-pool-research".to_string());
    let server = PoolServer::start(&[spent.clone(), fresh.clone()], &[KEY], &[]);
    let research = json!({"model": "kimi-research", "messages": [{"role": "user", "content": "dig"}]});
    for _ in 0..3 {
        let reply = server.post("/v1/chat/completions", &headers(&keyed()), &research);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let spent_account = server.account(KEY, &fingerprint(&spent));
    assert_eq!(spent_account["research"], false, "{spent_account}");
    assert_eq!(spent_account["requests"], 1, "asked once, then skipped for research");
    assert_eq!(server.account(KEY, &fingerprint(&fresh))["requests"], 3);
    for _ in 0..4 {
        assert_eq!(chat(&server, false), 200);
    }
    assert!(
        server.account(KEY, &fingerprint(&spent))["requests"].as_u64().unwrap() >= 2,
        "plain chats still use it"
    );
}

#[test]
fn pass_through_lists_remember_their_dead_tokens() {
    let server = PoolServer::pass_through(&[]);
    let credential = format!("{},{}", connect_token("expired-pt"), connect_token("pool-pt"));
    server.secret(&credential);
    let bearer = [("Authorization", format!("Bearer {credential}"))];
    for _ in 0..4 {
        assert_eq!(server.post("/v1/chat/completions", &headers(&bearer), &ask(false)).status, 200);
    }
    let health = server.get("/healthz", &[]).json();
    assert_eq!(health["mode"], "pass-through");
    let dead = server.account(KEY, &fingerprint(&connect_token("expired-pt")));
    assert_eq!((dead["state"].clone(), dead["requests"].clone()), (json!("dead"), json!(1)));
    promtool(&server.get("/metrics", &[]).body);
}

#[test]
fn a_pool_that_would_be_an_open_relay_does_not_start() {
    let dir = support::temp_state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let token = connect_token("pool-relay");
    std::fs::write(dir.join("tokens"), &token).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kimi-free-api"))
            .args(args)
            .arg("--tokens-file")
            .arg(dir.join("tokens"))
            .args(["--port", "0", "--state-dir"])
            .arg(dir.join("state"))
            .output()
            .unwrap()
    };
    let output = run(&["--host", "0.0.0.0"]);
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("without API keys") && said.contains("--api-keys"), "{said}");
    std::fs::write(dir.join("tokens"), format!("# one per line\n{token}\nnot one token\n")).unwrap();
    let output = run(&["--host", "127.0.0.1", "--api-keys", KEY]);
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("line 3: holds more than one token"), "{said}");
    for secret in [token.split('.').nth(1).unwrap(), KEY, "not one token"] {
        assert!(!said.contains(secret), "{said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_answer_is_an_error_in_both_backends() {
    for kind in [Kind::Legacy, Kind::Connect, Kind::Web] {
        let server = PoolServer::start(&[kind.token_for("pool-empty")], &[KEY], &[]);
        server.mock.script(Script { text: Vec::new(), ..Script::default() });
        let reply = server.post("/v1/chat/completions", &headers(&keyed()), &ask(false));
        assert_eq!(reply.status, 502, "{kind:?}: {}", reply.body);
        assert!(
            reply.json()["error"]["message"].as_str().unwrap().contains("empty answer"),
            "{}",
            reply.body
        );
        let answer = server.stream("/v1/chat/completions", &headers(&keyed()), &ask(true));
        assert_eq!(answer.status, 502, "{kind:?}: nothing was streamed, so a real status");
        assert!(server.mock.settled().live_chats.is_empty());
    }
}

#[test]
fn a_pass_through_list_keeps_a_conversation_on_its_token() {
    let server = PoolServer::pass_through(&[]);
    let credential = format!("{},{}", connect_token("pool-pt-a"), connect_token("pool-pt-b"));
    server.secret(&credential);
    let bearer = [("Authorization", format!("Bearer {credential}"))];
    let mut body = ask(false);
    body["conversation_id"] = json!("none");
    let id = server.post("/v1/chat/completions", &headers(&bearer), &body).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.contains('@'), "with two tokens the id names its account: {id}");
    for _ in 0..4 {
        body["conversation_id"] = json!(id);
        let reply = server.post("/v1/chat/completions", &headers(&bearer), &body);
        assert_eq!(reply.json()["id"], id.as_str(), "{}", reply.body);
    }
    assert_eq!(server.mock.stats().completions_by_user.len(), 1, "one token served every turn");
}
