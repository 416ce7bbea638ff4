//! The pool's unit tests (kept beside `pool.rs`, which they test through `super`).

use super::credits::{CREDITS_RECHECK, CREDITS_STALE};
use super::*;

fn pool(limit: usize, tokens: &[&str]) -> (Pool, Vec<Arc<Account>>) {
    let pool = Pool::new(limit);
    let tokens: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    pool.set_server(&tokens);
    let accounts = pool.accounts(Credential::Pool);
    (pool, accounts)
}

fn soon() -> Instant {
    Instant::now() + Duration::from_millis(50)
}

#[test]
fn round_robin_over_the_accounts() {
    let (pool, accounts) = pool(2, &["a", "b", "c"]);
    let picked: Vec<String> =
        (0..6).map(|_| pool.acquire(&accounts, false, &[], soon()).unwrap().token().to_string()).collect();
    assert_eq!(picked, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn the_stream_limit_holds_and_a_full_pool_is_busy_after_the_wait() {
    let (pool, accounts) = pool(2, &["a", "b"]);
    let held: Vec<Lease> = (0..4).map(|_| pool.acquire(&accounts, false, &[], soon()).unwrap()).collect();
    assert_eq!(held.iter().filter(|l| l.token() == "a").count(), 2);
    let started = Instant::now();
    assert_eq!(pool.acquire(&accounts, false, &[], soon()).err(), Some(Refusal::Busy));
    assert!(started.elapsed() >= Duration::from_millis(40), "it waited");
    drop(held);
    assert!(pool.acquire(&accounts, false, &[], soon()).is_ok());
}

#[test]
fn a_waiting_request_gets_the_slot_given_back() {
    let (pool, accounts) = pool(1, &["a"]);
    let held = pool.acquire(&accounts, false, &[], soon()).unwrap();
    std::thread::scope(|scope| {
        let waiter = scope
            .spawn(|| pool.acquire(&accounts, false, &[], Instant::now() + Duration::from_secs(5)).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert!(waiter.join().unwrap());
    });
}

#[test]
fn a_dead_account_is_skipped_then_asked_again_by_one_request() {
    let (pool, accounts) = pool(2, &["a", "b"]);
    let lease = pool.acquire(&accounts, false, &[], soon()).unwrap();
    let now = Instant::now();
    lease.record_at(&Err(Error::Unauthorized("gone".into())), now - DEAD_RECHECK);
    drop(lease);
    // Its ten minutes are over: one request asks Kimi again, the others skip it meanwhile.
    let mut leases: Vec<Lease> =
        (0..2).map(|_| pool.acquire(&accounts, false, &[], soon()).unwrap()).collect();
    leases.sort_by(|x, y| x.token().cmp(y.token()));
    let recheck = leases.remove(0);
    assert_eq!(recheck.token(), "a");
    drop(leases);
    for _ in 0..3 {
        assert_eq!(pool.acquire(&accounts, false, &[], soon()).unwrap().token(), "b");
    }
    recheck.record_at(&Err(Error::Unauthorized("gone".into())), now);
    drop(recheck);
    for _ in 0..3 {
        assert_eq!(pool.acquire(&accounts, false, &[], soon()).unwrap().token(), "b");
    }
    let reports = pool.reports(|_, _| None);
    assert_eq!(reports[0].state, AccountState::Dead);
    assert!(reports[0].last_error.as_ref().unwrap().0.contains("gone"));
    // Only the dead: their refusal, without asking Kimi.
    let only_a = &accounts[..1];
    assert!(matches!(pool.refusal_of_the_dead(only_a), Some(Error::Unauthorized(_))));
    assert_eq!(
        pool.acquire(only_a, false, &[], soon()).err(),
        Some(Refusal::Unusable { dead: 1, cooling: 0, research: 0, credits: 0 })
    );
    // A reload brings it back.
    pool.set_server(&["a".to_string(), "b".to_string()]);
    assert_eq!(pool.reports(|_, _| None)[0].state, AccountState::Healthy);
}

#[test]
fn rate_limits_cool_an_account_down_with_a_doubling_backoff() {
    let (pool, accounts) = pool(2, &["a", "b"]);
    let lease = pool.acquire(&accounts, false, &[], soon()).unwrap();
    let limited = Err(Error::RateLimited("slow down".into(), None));
    let waits: Vec<Option<u64>> = (0..8).map(|_| lease.record_at(&limited, Instant::now())).collect();
    let expected = [30, 60, 120, 240, 480, 960, 1800, 1800].map(Some);
    assert_eq!(waits, expected);
    assert_eq!(lease.record_at(&Err(Error::RateLimited("x".into(), Some(7))), Instant::now()), Some(7));
    drop(lease);
    assert_eq!(pool.acquire(&accounts, false, &[], soon()).unwrap().token(), "b");
    assert_eq!(pool.reports(|_, _| None)[0].state, AccountState::CoolingDown);
    // A success ends the cool-down and the backoff starts over.
    let a = pool.acquire(&accounts[..1], false, &[], soon()).unwrap();
    a.record_at(&Ok(Ended::Complete), Instant::now());
    assert_eq!(a.record_at(&limited, Instant::now()), Some(30));
}

#[test]
fn a_tool_call_answer_used_to_count_as_a_disconnect_and_kept_the_cool_down() {
    let (pool, accounts) = pool(1, &["a"]);
    let lease = pool.acquire(&accounts, false, &[], soon()).unwrap();
    let limited = Err(Error::RateLimited("slow down".into(), None));
    assert_eq!(lease.record_at(&limited, Instant::now()), Some(30));
    lease.record_at(&Ok(Ended::Stopped(Stop::ToolCalls)), Instant::now());
    assert_eq!(pool.reports(|_, _| None)[0].state, AccountState::Busy, "no longer cooling down");
    assert_eq!(lease.record_at(&limited, Instant::now()), Some(30), "the backoff starts over");
    // A client that left says nothing of the account: the cool-down stays.
    lease.record_at(&Ok(Ended::Stopped(Stop::ClientGone)), Instant::now());
    assert_eq!(pool.reports(|_, _| None)[0].state, AccountState::CoolingDown);
}

#[test]
fn when_every_account_cools_down_the_first_attempt_takes_the_soonest_back() {
    let (pool, accounts) = pool(2, &["a", "b"]);
    for (i, account) in accounts.iter().enumerate() {
        let lease = pool.reserve(account).unwrap();
        lease.record_at(&Err(Error::RateLimited("x".into(), Some(100 - i as u64))), Instant::now());
    }
    let lease = pool.acquire(&accounts, false, &[], soon()).unwrap();
    assert_eq!(lease.token(), "b");
    let tried = [Arc::clone(lease.account())];
    let refusal = pool.acquire(&accounts, false, &tried, soon()).err();
    assert_eq!(
        refusal,
        Some(Refusal::Unusable { dead: 0, cooling: 1, research: 0, credits: 0 }),
        "no second one"
    );
}

#[test]
fn research_skips_accounts_without_quota() {
    let (pool, accounts) = pool(2, &["a", "b"]);
    let lease = pool.acquire(&accounts, true, &[], soon()).unwrap();
    lease.record_at(&Err(Error::QuotaUsedUp("used up".into())), Instant::now());
    drop(lease);
    for _ in 0..3 {
        assert_eq!(pool.acquire(&accounts, true, &[], soon()).unwrap().token(), "b");
    }
    let plain: Vec<String> =
        (0..2).map(|_| pool.acquire(&accounts, false, &[], soon()).unwrap().token().to_string()).collect();
    assert!(plain.contains(&"a".to_string()), "other requests still use it");
    assert!(!pool.reports(|_, _| None)[0].research);
}

fn credits(used_ratio: f64, resets_at: Option<u64>) -> Result<Credits, Error> {
    Ok(Credits { used_ratio, resets_at, source: "GetSubscriptionStats" })
}

#[test]
fn an_account_without_credits_is_skipped_until_they_reset() {
    let (pool, accounts) = pool(2, &["a", "b"]);
    let (now, unix) = (Instant::now(), unix_now());
    accounts[0].note_credits_at(&credits(1.0, Some(unix + 600)), now, unix);
    for _ in 0..3 {
        assert_eq!(pool.acquire(&accounts, false, &[], soon()).unwrap().token(), "b");
    }
    let refusal = pool.pick(&accounts[..1], false, &[], true, now).err();
    assert_eq!(refusal, Some(Refusal::Unusable { dead: 0, cooling: 0, research: 0, credits: 1 }));
    assert_eq!(pool.credits_back(&accounts), Some(unix + 600));
    // At the reset time it serves again.
    let later = now + Duration::from_secs(600);
    assert_eq!(pool.pick(&accounts[..1], false, &[], true, later).unwrap().token(), "a");
    let report = &pool.reports(|_, _| None)[0];
    assert_eq!(report.credits.as_ref().map(|c| c.used_ratio), Some(1.0));
    assert_eq!(report.credits_read_at, Some(unix));
}

#[test]
fn used_up_credits_without_a_reset_time_skip_the_account_for_an_hour() {
    let (pool, accounts) = pool(2, &["a"]);
    let (now, unix) = (Instant::now(), unix_now());
    // No reset time, and one already past, are both "unknown".
    for resets_at in [None, Some(unix - 5)] {
        accounts[0].note_credits_at(&credits(1.0, resets_at), now, unix);
        assert!(pool.pick(&accounts, false, &[], true, now + CREDITS_RECHECK / 2).is_err());
        assert_eq!(pool.credits_back(&accounts), Some(unix + 3600));
        assert!(pool.pick(&accounts, false, &[], true, now + CREDITS_RECHECK).is_ok());
    }
    // Credits read again and not used up: served at once; a failed read changes nothing.
    accounts[0].note_credits_at(&credits(1.0, None), now, unix);
    accounts[0].note_credits_at(&credits(0.4, None), now, unix);
    accounts[0].note_credits_at(&Err(Error::Upstream("no balance".into())), now, unix);
    assert!(pool.pick(&accounts, false, &[], true, now).is_ok());
    assert_eq!(pool.reports(|_, _| None)[0].credits.as_ref().unwrap().used_ratio, 0.4);
    // A reload is how an operator says "try again" (credits bought).
    accounts[0].note_credits_at(&credits(1.0, Some(unix + 86_400)), now, unix);
    pool.set_server(&["a".to_string()]);
    assert!(pool.pick(&accounts, false, &[], true, now).is_ok());
}

#[test]
fn credits_are_read_when_unknown_or_ten_minutes_old_once_per_turn() {
    let (_pool, accounts) = pool(2, &["a"]);
    let account = &accounts[0];
    let now = Instant::now();
    assert!(account.credits_due_at(now), "unknown");
    assert!(!account.credits_due_at(now), "another request is reading them");
    assert!(!account.credits_due_at(now + CREDITS_STALE / 2));
    assert!(account.credits_due_at(now + CREDITS_STALE), "ten minutes old");
}

#[test]
fn token_checks_teach_known_accounts_only() {
    let pool = Pool::new(2);
    let known = pool.accounts(Credential::Tokens("x"));
    pool.learn_credits("x", &credits(0.25, None));
    pool.learn_credits("stranger", &credits(0.5, None));
    let reports = pool.reports(|_, _| None);
    assert_eq!(reports.len(), 1, "no account added");
    assert_eq!(reports[0].credits.as_ref().map(Credits::remaining_ratio), Some(0.75));
    drop(known);
}

#[test]
fn reports_say_busy_and_expiring() {
    let (pool, accounts) = pool(1, &["a", "b"]);
    let held = pool.reserve(&accounts[0]).unwrap();
    let in_two_days = unix_now() + 2 * 86_400;
    let reports = pool.reports(|token, _| (token == "b").then_some(in_two_days));
    assert_eq!((reports[0].state, reports[0].streams), (AccountState::Busy, 1));
    assert_eq!((reports[1].state, reports[1].expires), (AccountState::Expiring, Some(in_two_days)));
    drop(held);
    let later = pool.reports(|_, _| Some(unix_now() + 30 * 86_400));
    assert!(later.iter().all(|r| r.state == AccountState::Healthy));
}

#[test]
fn failovers_are_counted_and_tried_accounts_skipped() {
    let (pool, accounts) = pool(2, &["a", "b"]);
    let first = pool.acquire(&accounts, false, &[], soon()).unwrap();
    let tried = [Arc::clone(first.account())];
    let next = pool.acquire(&accounts, false, &tried, soon()).unwrap();
    assert_eq!(next.token(), "b");
    assert_eq!(pool.failovers(), 1);
    let both = [Arc::clone(first.account()), Arc::clone(next.account())];
    assert!(matches!(pool.acquire(&accounts, false, &both, soon()), Err(Refusal::Unusable { .. })));
}

#[test]
fn a_model_refused_on_an_account_is_remembered_by_name() {
    let (pool, accounts) = pool(1, &["a"]);
    let lease = pool.acquire(&accounts, false, &[], soon()).unwrap();
    assert!(!lease.refused_model("kimi-k3"));
    lease.refuse_model("Kimi-K3 ");
    assert!(lease.refused_model("kimi-k3") && !lease.refused_model("kimi"));
}

#[test]
fn an_idle_account_is_one_with_nothing_in_flight_that_can_serve() {
    let (pool, accounts) = pool(2, &["a", "b", "c"]);
    let a = pool.acquire(&accounts, false, &[], soon()).unwrap();
    let current = a.account().clone();
    assert!(pool.has_idle(&accounts, &[], &current));
    let others: Vec<_> = accounts.iter().filter(|x| !Arc::ptr_eq(x, &current)).cloned().collect();
    assert!(!pool.has_idle(&accounts, &others, &current), "the others were tried");
    let _b = pool.acquire(&others[..1], false, &[], soon()).unwrap();
    assert!(pool.has_idle(&accounts, &[], &current), "one of the others is still idle");
    let _c = pool.acquire(&others[1..], false, &[], soon()).unwrap();
    assert!(!pool.has_idle(&accounts, &[], &current), "every other one has a request in flight");
}

#[test]
fn pass_through_accounts_are_remembered_by_token() {
    let pool = Pool::new(2);
    let first = pool.accounts(Credential::Tokens("x, y, x"));
    assert_eq!(first.len(), 2);
    let again = pool.accounts(Credential::Tokens("y"));
    assert!(Arc::ptr_eq(&first[1], &again[0]));
    assert!(!pool.is_server_pool() && pool.accounts(Credential::Pool).is_empty());
    assert_eq!(pool.reports(|_, _| None).len(), 2);
}

#[test]
fn conversation_ids_carry_the_fingerprint() {
    let id = marked_conversation("cm0123", "0a1b2c3d");
    assert_eq!(id, "cm0123@0a1b2c3d");
    assert_eq!(split_conversation(&id), Some(("cm0123", "0a1b2c3d")));
    for plain in ["cm0123", "cm@short", "@0a1b2c3d", "19be5aab-32f2-8b55-8000-000000000001"] {
        assert_eq!(split_conversation(plain), None, "{plain}");
    }
}

#[test]
fn leases_on_one_account_wait_for_their_paced_starts_and_the_wait_is_counted() {
    let (pool, accounts) = pool(2, &["a"]);
    let interval = Duration::from_millis(100);
    let deadline = Instant::now() + Duration::from_secs(5);
    let started = Instant::now();
    let first = pool.acquire(&accounts, false, &[], deadline).unwrap();
    assert!(first.pace(interval, deadline));
    assert!(started.elapsed() < Duration::from_millis(50), "the first start is not delayed");
    assert_eq!(pool.pacing_wait(), Duration::ZERO);
    let second = pool.acquire(&accounts, false, &[], deadline).unwrap();
    assert!(second.pace(interval, deadline));
    assert!(started.elapsed() >= Duration::from_millis(80), "{:?}", started.elapsed());
    assert!(pool.pacing_wait() >= Duration::from_millis(70), "{:?}", pool.pacing_wait());
    drop((first, second));
    let third = pool.acquire(&accounts, false, &[], deadline).unwrap();
    assert!(!third.pace(interval, Instant::now()), "its slot is past a deadline of now");
}

#[test]
fn pass_through_dead_account_log_says_until_it_works_again_not_until_tokens_are_reloaded() {
    let error = Error::Unauthorized("gone".into());
    let passing = Pool::new(1);
    let callers = passing.accounts(Credential::Tokens("caller-token"));
    let lease = passing.acquire(&callers, false, &[], soon()).unwrap();
    assert!(!lease.is_server_account());
    let line = dead_log_line(lease.fingerprint(), &error, lease.is_server_account());
    assert!(line.contains("skipped until it works again") && !line.contains("reloaded"), "{line}");
    let (server, accounts) = pool(1, &["a"]);
    let lease = server.acquire(&accounts, false, &[], soon()).unwrap();
    assert!(lease.is_server_account());
    let line = dead_log_line(lease.fingerprint(), &error, lease.is_server_account());
    assert!(line.contains("skipped until the tokens are reloaded"), "{line}");
}
