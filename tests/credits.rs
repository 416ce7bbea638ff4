//! Each account's monthly Kimi credits (`docs/kimi-protocol.md` §7.7), against the mock,
//! through the server binary: `/token/check` shows them (read with the probe's login, never a
//! second refresh), the pool reads them after a chat, skips an account whose credits are used
//! up and tells a lone one's caller until when, and `/healthz` and `/metrics` show them.
//!
//! The mock answers `GetSubscriptionStats` with `{"subscriptionBalance":{"feature":
//! "FEATURE_OMNI",…,"amountUsedRatio":R,"expireTime":"2026-12-31T00:00:00Z"}}`, R from the
//! token's `mock.credits_used` claim (0.25 by default).

mod support;

use kimi_free_api::kimi::fingerprint;
use serde_json::{Value, json};
use support::pool::PoolServer;
use support::{Kind, connect_token, mint_jwt};

const KEY: &str = "key-credits-5d2c8e1a9b7f";
/// 2026-12-31T00:00:00Z, the mock's reset time.
const RESET: u64 = 1_798_675_200;

/// A kimi-auth JWT for `sub` whose account has used `used` of its credits.
fn token_with_credits(sub: &str, used: f64) -> String {
    mint_jwt(&json!({"iss": "user-center", "exp": 4_102_444_800u64, "typ": "access", "app_id": "kimi",
        "sub": sub, "ssid": "1731086499958639802", "device_id": "7651804114103329291", "region": "cn",
        "mock": {"credits_used": used}}))
}

fn ask() -> Value {
    json!({"model": "kimi", "messages": [{"role": "user", "content": "hi"}]})
}

fn chat(server: &PoolServer) -> support::Reply {
    server.post("/v1/chat/completions", &[("Authorization", &format!("Bearer {KEY}"))], &ask())
}

fn check(server: &PoolServer, token: &str) -> Value {
    let reply = server.post("/token/check", &[], &json!({ "token": token }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[test]
fn token_check_shows_the_credits_of_connect_tokens_only() {
    let server = PoolServer::pass_through(&[]);
    let expected = json!({"used_ratio": 0.25, "remaining_ratio": 0.75, "resets_at": "2026-12-31T00:00:00Z"});
    let web = Kind::Web.token_for("credits-web");
    for _ in 0..2 {
        let report = check(&server, &web);
        assert_eq!(report["tokens"][0]["credits"], expected, "{report}");
    }
    assert_eq!(server.mock.stats().web_refreshes, 1, "the credits used the probe's login");
    // A kimi-auth cookie has credits; a legacy token neither credits nor a problem with them.
    let report = check(&server, &format!("{},rt-credits-l", connect_token("credits-c")));
    let tokens = report["tokens"].as_array().unwrap();
    assert_eq!(
        (tokens[0]["live"].clone(), tokens[0]["credits"].clone()),
        (json!(true), expected),
        "{report}"
    );
    assert!(tokens[0].get("credits_problem").is_none(), "{report}");
    assert_eq!(tokens[1]["live"], true, "{report}");
    assert!(tokens[1].get("credits").is_none() && tokens[1].get("credits_problem").is_none(), "{report}");
    assert_eq!(report["live"], true);
}

#[test]
fn an_account_whose_credits_are_used_up_is_skipped_and_shown() {
    let (spent, fine) = (token_with_credits("credits-spent", 1.0), token_with_credits("credits-fine", 0.5));
    let server = PoolServer::start(&[spent.clone(), fine.clone()], &[KEY], &[]);
    for i in 0..6 {
        assert_eq!(chat(&server).status, 200, "request {i}");
    }
    let by_user = server.mock.stats().completions_by_user;
    assert_eq!(
        (by_user["credits-spent"], by_user["credits-fine"]),
        (1, 5),
        "skipped once its credits were read"
    );
    let account = server.account(KEY, &fingerprint(&spent));
    assert_eq!(account["credits"]["used_ratio"], 1.0, "{account}");
    assert_eq!(account["credits"]["remaining_ratio"], 0.0, "{account}");
    assert_eq!(account["credits"]["resets_at"], "2026-12-31T00:00:00Z", "{account}");
    assert!(account["credits"]["read_at"].as_u64().is_some(), "{account}");
    let metrics = server.get("/metrics", &[("Authorization", &format!("Bearer {KEY}"))]).body;
    for (fp, used) in [(fingerprint(&spent), "1"), (fingerprint(&fine), "0.5")] {
        let line = format!("kimi_free_api_account_credits_used_ratio{{account=\"{fp}\"}} {used}\n");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
        let reset = format!("kimi_free_api_account_credits_reset_seconds{{account=\"{fp}\"}} {RESET}\n");
        assert!(metrics.contains(&reset), "{reset} in\n{metrics}");
    }
    assert!(server.log().contains("has used up its monthly credits"), "{}", server.log());
}

#[test]
fn a_lone_account_without_credits_says_until_when() {
    let spent = token_with_credits("credits-alone", 1.0);
    let server = PoolServer::start(std::slice::from_ref(&spent), &[KEY], &[]);
    assert_eq!(chat(&server).status, 200, "the first chat reads the credits");
    let reply = chat(&server);
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(
        reply.body.contains("monthly credits are used up on 1 Kimi account(s) until 20"),
        "{}",
        reply.body
    );
    let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Until the mock's reset; once that date is past, an hour (Kimi said no usable time).
    let expected = if RESET > now + 5 { RESET - now } else { 3600 };
    assert!(wait.abs_diff(expected) <= 5, "Retry-After {wait}, expected about {expected}");
    assert_eq!(server.mock.stats().completions_by_user["credits-alone"], 1);
}
