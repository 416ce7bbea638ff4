//! An account's monthly Kimi credits (`docs/kimi-protocol.md` §7.7): every account, free ones
//! too, has a monthly credit pool. Kimi says only how much of it is used (`amountUsedRatio`,
//! 0 to 1) and when it resets (`expireTime`); what is left is `1 − amountUsedRatio`.
//!
//! `GetSubscriptionStats` answers `{"subscriptionBalance":{…}}`; one source saw it answer 404
//! and read `SubscriptionService/GetSubscription`'s `balances[]` instead, so that is the
//! fallback. The parsers are pure; [`fetch`] makes the calls.

use serde_json::{Value, json};

use super::{Context, call};
use crate::kimi::Error;
use crate::kimi::token::{ConnectIdentity, utc};

/// The stats call (`docs/kimi-protocol.md` §7.7).
const STATS: &str = "apiv2/kimi.gateway.membership.v2.MembershipService/GetSubscriptionStats";
/// The fallback (`docs/kimi-protocol.md` §7.7, source N5).
const SUBSCRIPTION: &str = "apiv2/kimi.gateway.order.v1.SubscriptionService/GetSubscription";
/// The balance of the monthly credits among several (`feature`, §7.7).
const OMNI: &str = "FEATURE_OMNI";

/// How much of an account's monthly credits is used, and when they reset.
#[derive(Debug, Clone, PartialEq)]
pub struct Credits {
    /// Share used, from 0 (as Kimi says it; never below 0, possibly above 1).
    pub used_ratio: f64,
    /// When the credits reset (Unix seconds), when Kimi says.
    pub resets_at: Option<u64>,
    /// Which call answered (`GetSubscriptionStats` or `GetSubscription`).
    pub source: &'static str,
}

impl Credits {
    /// The share left, between 0 and 1.
    pub fn remaining_ratio(&self) -> f64 {
        (1.0 - self.used_ratio).clamp(0.0, 1.0)
    }

    /// Whether nothing is left.
    pub fn used_up(&self) -> bool {
        self.used_ratio >= 1.0
    }
}

/// Reads the account's credits: `GetSubscriptionStats`, else (404, unimplemented, no balance)
/// `GetSubscription`'s balances. A refused login or an unreachable Kimi is not retried.
pub fn fetch(ctx: Context<'_>, token: &str, who: &ConnectIdentity) -> Result<Credits, Error> {
    let stats = call::unary(ctx, token, who, STATS, &json!({}));
    let problem = match stats {
        Ok(answer) => match parse_stats(&answer) {
            Some(credits) => return Ok(credits),
            None => "GetSubscriptionStats has no credit balance".to_string(),
        },
        Err(error @ (Error::NotFound(_) | Error::Rejected(_) | Error::Upstream(_))) => error.to_string(),
        Err(other) => return Err(other),
    };
    let answer = call::unary(ctx, token, who, SUBSCRIPTION, &json!({}))?;
    parse_subscription(&answer)
        .ok_or_else(|| Error::Upstream(format!("no credit balance: {problem}, nor has GetSubscription")))
}

/// The `GetSubscriptionStats` answer: `{"subscriptionBalance":{…}}` (§7.7).
pub fn parse_stats(answer: &Value) -> Option<Credits> {
    balance(answer.get("subscriptionBalance")?, "GetSubscriptionStats")
}

/// The `GetSubscription` answer: its `balances[]`, the `FEATURE_OMNI` one, else the first that
/// gives a used ratio (§7.7).
pub fn parse_subscription(answer: &Value) -> Option<Credits> {
    let balances = answer.get("balances")?.as_array()?;
    let omni = balances.iter().find(|b| b.get("feature").and_then(Value::as_str) == Some(OMNI));
    let chosen = omni.or_else(|| balances.iter().find(|b| b.get("amountUsedRatio").is_some()))?;
    balance(chosen, "GetSubscription")
}

/// One balance object. Protobuf's JSON leaves out zeros, so a balance that says what it is
/// (`feature`, `unit` or `type`) but has no `amountUsedRatio` is unused.
fn balance(balance: &Value, source: &'static str) -> Option<Credits> {
    let object = balance.as_object()?;
    let used_ratio = match object.get("amountUsedRatio") {
        Some(ratio) => number(ratio)?,
        None if ["feature", "unit", "type"].iter().any(|k| object.contains_key(*k)) => 0.0,
        None => return None,
    };
    let resets_at = object.get("expireTime").and_then(Value::as_str).and_then(parse_rfc3339);
    Some(Credits { used_ratio: used_ratio.max(0.0), resets_at, source })
}

/// A finite number, given as a JSON number or a numeric string (protobuf's JSON may quote).
fn number(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// An RFC 3339 time (`2026-10-12T00:00:00Z`, `…T00:00:00.123+08:00`) as Unix seconds;
/// `None` for anything else, and for times before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset = offset_seconds(&text[19..])?;
    let days = days_from_civil(year, month, day);
    let unix = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(unix).ok()
}

/// The zone part after the seconds (an optional fraction, then `Z` or `±HH:MM`), in seconds
/// east of UTC.
fn offset_seconds(rest: &str) -> Option<i64> {
    let rest = match rest.strip_prefix('.') {
        Some(fraction) => {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            (digits > 0).then(|| &fraction[digits..])?
        }
        None => rest,
    };
    if rest.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let b = rest.as_bytes();
    if b.len() != 6 || b[3] != b':' || !matches!(b[0], b'+' | b'-') {
        return None;
    }
    let (h, m): (i64, i64) = (rest[1..3].parse().ok()?, rest[4..6].parse().ok()?);
    if h > 23 || m > 59 || !rest[1..3].bytes().chain(rest[4..6].bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let sign = if b[0] == b'-' { -1 } else { 1 };
    Some(sign * (h * 3600 + m * 60))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm; the inverse of
/// `token::utc`'s).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A Unix time as RFC 3339 (`2026-12-31T00:00:00Z`), from `token::utc`'s text.
pub fn rfc3339(unix: u64) -> String {
    let text = utc(unix);
    format!("{}Z", text.trim_end_matches(" UTC").replacen(' ', "T", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(balance: Value) -> Value {
        json!({ "subscriptionBalance": balance })
    }

    #[test]
    fn reads_the_stats_of_a_free_account() {
        let answer = stats(json!({"id": "b1", "feature": "FEATURE_OMNI", "type": "SUBSCRIPTION",
            "unit": "UNIT_CREDIT", "amountUsedRatio": 0.0319, "expireTime": "2026-10-12T00:00:00Z",
            "domain": "DOMAIN_NEXUS"}));
        let credits = parse_stats(&answer).unwrap();
        assert_eq!(credits.used_ratio, 0.0319);
        assert_eq!(credits.resets_at, Some(1_791_763_200));
        assert_eq!(credits.source, "GetSubscriptionStats");
        assert!((credits.remaining_ratio() - 0.9681).abs() < 1e-12);
        assert!(!credits.used_up());
    }

    #[test]
    fn a_used_up_account_and_odd_ratios() {
        let spent = parse_stats(&stats(json!({"feature": "FEATURE_OMNI", "amountUsedRatio": 1.0}))).unwrap();
        assert!(spent.used_up());
        assert_eq!((spent.remaining_ratio(), spent.resets_at), (0.0, None), "no expireTime: no reset");
        let over = parse_stats(&stats(json!({"amountUsedRatio": 1.25}))).unwrap();
        assert!(over.used_up() && over.remaining_ratio() == 0.0);
        let quoted = parse_stats(&stats(json!({"amountUsedRatio": "0.5"}))).unwrap();
        assert_eq!(quoted.used_ratio, 0.5);
        let negative = parse_stats(&stats(json!({"amountUsedRatio": -0.5}))).unwrap();
        assert_eq!(negative.used_ratio, 0.0);
    }

    #[test]
    fn a_missing_ratio_is_a_zero_left_out_but_only_on_a_real_balance() {
        let unused = parse_stats(&stats(json!({"feature": "FEATURE_OMNI", "unit": "UNIT_CREDIT"}))).unwrap();
        assert_eq!((unused.used_ratio, unused.remaining_ratio()), (0.0, 1.0));
        assert_eq!(parse_stats(&stats(json!({}))), None);
        assert_eq!(parse_stats(&json!({})), None);
    }

    #[test]
    fn garbage_has_no_credits() {
        let answers = [
            json!(null),
            json!([1, 2]),
            json!("subscriptionBalance"),
            stats(json!("full")),
            stats(json!({"amountUsedRatio": "lots"})),
            stats(json!({"amountUsedRatio": true})),
            stats(json!({"amountUsedRatio": "NaN"})),
            stats(json!({"amountUsedRatio": [0.5]})),
        ];
        for answer in answers {
            assert_eq!(parse_stats(&answer), None, "{answer}");
            assert_eq!(parse_subscription(&answer), None, "{answer}");
        }
        let bad_time = parse_stats(&stats(json!({"amountUsedRatio": 0.5, "expireTime": "soon"}))).unwrap();
        assert_eq!(bad_time.resets_at, None, "a bad time is left out, the ratio kept");
    }

    #[test]
    fn the_subscription_fallback_takes_the_omni_balance() {
        let answer = json!({"subscription": {"userId": "u1"}, "balances": [
            {"feature": "FEATURE_CODE", "amountUsedRatio": 0.9},
            {"feature": "FEATURE_OMNI", "amountUsedRatio": 0.25, "expireTime": "2026-12-31T00:00:00Z"}]});
        let credits = parse_subscription(&answer).unwrap();
        assert_eq!((credits.used_ratio, credits.resets_at), (0.25, Some(1_798_675_200)));
        assert_eq!(credits.source, "GetSubscription");
        let others =
            json!({"balances": [{"feature": "FEATURE_X"}, {"feature": "FEATURE_Y", "amountUsedRatio": 0.6}]});
        assert_eq!(parse_subscription(&others).unwrap().used_ratio, 0.6, "else the first with a ratio");
        for none in
            [json!({"subscription": {"userId": "u1"}}), json!({"balances": []}), json!({"balances": {}})]
        {
            assert_eq!(parse_subscription(&none), None, "{none}");
        }
    }

    #[test]
    fn rfc3339_dates_including_leap_years() {
        let cases = [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T00:00:00Z", 951_782_400),
            ("2024-02-29T12:30:15Z", 1_709_209_815),
            ("2026-10-12T00:00:00Z", 1_791_763_200),
            ("2026-11-18T11:06:40Z", 1_795_000_000),
            ("2026-12-31T00:00:00Z", 1_798_675_200),
            ("2100-03-01T00:00:00Z", 4_107_542_400),
            ("2400-02-29T12:00:00Z", 13_574_606_400),
            ("2026-10-12T00:00:00.123456789Z", 1_791_763_200),
            ("2026-10-12T08:00:00+08:00", 1_791_763_200),
            ("2026-10-11T19:30:00-04:30", 1_791_763_200),
            ("2026-10-12t00:00:00z", 1_791_763_200),
        ];
        for (text, unix) in cases {
            assert_eq!(parse_rfc3339(text), Some(unix), "{text}");
        }
    }

    #[test]
    fn rfc3339_refuses_what_is_not_a_date() {
        let bad = [
            "",
            "2026-10-12",
            "2026-10-12T00:00:00",
            "2025-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-10-12T24:00:00Z",
            "2026-10-12T00:00:00.Z",
            "2026-10-12T00:00:00+0800",
            "2026-10-12T00:00:00+08:00x",
            "1969-12-31T23:59:59Z",
            "+026-10-12T00:00:00Z",
            "2026-1a-12T00:00:00Z",
            "2026-10-12T00:00:00+0a:00",
            "２０26-10-12T00:00:00Z",
        ];
        for text in bad {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
    }

    #[test]
    fn rfc3339_round_trips_through_utc() {
        for unix in [0, 951_782_400, 1_798_675_200, 4_107_542_399, 13_574_606_400] {
            assert_eq!(parse_rfc3339(&rfc3339(unix)), Some(unix), "{unix}");
        }
        assert_eq!(rfc3339(1_798_675_200), "2026-12-31T00:00:00Z");
    }
}
