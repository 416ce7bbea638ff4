//! The failover decisions, without accounts or sockets.

use super::*;
use crate::chat::Ended;

fn every_kind() -> Vec<Error> {
    vec![
        Error::Unauthorized("u".into()),
        Error::RateLimited("r".into(), None),
        Error::QuotaUsedUp("q".into()),
        Error::PlanRequired("p".into()),
        Error::ChatInProgress("c".into()),
        Error::Overloaded("o".into(), None),
        Error::Rejected("x".into()),
        Error::TooLong("t".into()),
        Error::NotFound("n".into()),
        Error::Upstream("up".into()),
        Error::Transport("tr".into()),
        Error::Refused("r".into()),
        Error::NotAToken("n".into()),
        Error::ProxyUnreachable("p".into()),
        Error::Timeout,
    ]
}

#[test]
fn nothing_is_repeated_once_the_client_saw_something() {
    for error in every_kind() {
        for (others, retries) in [(true, 0), (false, 0), (false, 1)] {
            assert_eq!(after_failure(&error, true, others, retries), Step::Return, "{error:?}");
        }
    }
}

#[test]
fn the_accounts_trouble_moves_to_the_next_account() {
    for error in every_kind() {
        let step = after_failure(&error, false, true, 0);
        let expected = match error {
            Error::Unauthorized(_)
            | Error::NotAToken(_)
            | Error::RateLimited(..)
            | Error::QuotaUsedUp(_)
            | Error::PlanRequired(_)
            | Error::ChatInProgress(_)
            | Error::Overloaded(..)
            | Error::Upstream(_)
            | Error::Refused(_)
            | Error::Transport(_)
            | Error::ProxyUnreachable(_) => Step::Failover,
            _ => Step::Return,
        };
        assert_eq!(step, expected, "{error:?}");
    }
}

#[test]
fn the_requests_own_trouble_is_returned_at_once() {
    for error in
        [Error::Rejected("bad".into()), Error::TooLong("long".into()), Error::NotFound("gone".into())]
    {
        assert_eq!(after_failure(&error, false, true, 0), Step::Return, "{error:?}");
        assert_eq!(after_failure(&error, false, false, 0), Step::Return, "{error:?}");
    }
    assert_eq!(
        after_failure(&Error::Refused("no".into()), false, false, 0),
        Step::Return,
        "not retried alone"
    );
    assert_eq!(after_failure(&Error::Refused("no".into()), false, true, 0), Step::Failover);
    assert_eq!(after_failure(&Error::Timeout, false, true, 0), Step::Return, "a silent Kimi is not retried");
    let proxy = Error::ProxyUnreachable("socks5://127.0.0.1:9 (connection refused)".into());
    assert_eq!(
        after_failure(&proxy, false, false, 0),
        Step::Return,
        "an unreachable proxy is not retried alone"
    );
}

#[test]
fn a_lone_account_retries_transient_failures_twice() {
    for error in
        [Error::Upstream("502".into()), Error::Transport("cut".into()), Error::Overloaded("o".into(), None)]
    {
        assert_eq!(after_failure(&error, false, false, 0), Step::Retry, "{error:?}");
        assert_eq!(after_failure(&error, false, false, 1), Step::Retry, "{error:?}");
        assert_eq!(after_failure(&error, false, false, RETRIES), Step::Return, "{error:?}");
    }
    for error in [
        Error::Unauthorized("u".into()),
        Error::RateLimited("r".into(), None),
        Error::PlanRequired("p".into()),
    ] {
        assert_eq!(after_failure(&error, false, false, 0), Step::Return, "{error:?}");
    }
}

#[test]
fn retry_pauses_double() {
    assert_eq!(retry_pause(0), Duration::from_millis(200));
    assert_eq!(retry_pause(1), Duration::from_millis(400));
    assert_eq!(RETRIES, 2);
}

#[test]
fn a_busy_account_is_asked_again_after_three_then_seven_seconds() {
    let busy: Result<Ended, Error> = Err(Error::ChatInProgress("busy".into()));
    let none_idle = || false;
    assert_eq!(busy_pause(&busy, false, 0, none_idle), Some(Duration::from_secs(3)));
    assert_eq!(busy_pause(&busy, false, 1, none_idle), Some(Duration::from_secs(7)));
    assert_eq!(busy_pause(&busy, false, 2, none_idle), None, "three tries in all");
}

#[test]
fn no_busy_pause_when_another_account_is_idle_or_the_client_saw_something() {
    let busy: Result<Ended, Error> = Err(Error::ChatInProgress("busy".into()));
    assert_eq!(busy_pause(&busy, false, 0, || true), None);
    assert_eq!(busy_pause(&busy, true, 0, || false), None);
    let asked = std::cell::Cell::new(false);
    let other: Result<Ended, Error> = Err(Error::RateLimited("r".into(), None));
    let pause = busy_pause(&other, false, 0, || {
        asked.set(true);
        false
    });
    assert_eq!((pause, asked.get()), (None, false), "the pool is asked only about a busy account");
    assert_eq!(busy_pause(&Ok(Ended::Complete), false, 0, || false), None);
}

#[test]
fn a_rate_limit_says_how_long_the_account_cools_down_unless_kimi_did() {
    assert_eq!(
        with_wait(Error::RateLimited("r".into(), None), Some(30)),
        Error::RateLimited("r".into(), Some(30))
    );
    assert_eq!(
        with_wait(Error::RateLimited("r".into(), Some(5)), Some(30)),
        Error::RateLimited("r".into(), Some(5))
    );
    assert_eq!(with_wait(Error::Overloaded("o".into(), None), Some(30)), Error::Overloaded("o".into(), None));
    assert_eq!(with_wait(Error::RateLimited("r".into(), None), None), Error::RateLimited("r".into(), None));
}

#[test]
fn a_refused_model_names_the_model_and_the_free_one() {
    let message = plan_refused("kimi-k2-thinking");
    assert!(message.contains("`kimi-k2-thinking`") && message.contains("model `kimi`"), "{message}");
}
