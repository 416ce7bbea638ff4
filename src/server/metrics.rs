//! `GET /metrics`: what the server did, in Prometheus' text exposition format (every name
//! prefixed `kimi_free_api_` but `kimi_unknown_total`, whose name issue #19 fixed; checked by
//! `promtool check metrics` in the tests).
//!
//! Counting costs a request one short lock (requests by route, API and status) and a few
//! atomic additions; the rest is read from the Kimi side when scraped. Labels come from fixed
//! sets (route and state names, statuses), account fingerprints and the names Kimi sent that
//! this server does not know (cleaned by `kimi::drift`, escaped here): never a token or a path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tiny_http::Request;

use super::{App, exchange};
use crate::chat::tools::ToolReport;
use crate::chat::{self, ErrorKind, ToolOffer};
use crate::dialect::Dialect;
use crate::kimi::{AccountReport, AccountState, drift};

/// Upper bounds of the latency histograms' buckets, in seconds: from a local mock's
/// milliseconds to a research answer's minutes.
const BUCKETS: [f64; 16] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// The kinds of upstream error, always listed (zero or not) so that a dashboard has a series.
const ERROR_KINDS: [&str; 10] = [
    "unauthorized",
    "rate_limited",
    "quota_used_up",
    "overloaded",
    "rejected",
    "not_found",
    "upstream",
    "transport",
    "proxy_unreachable",
    "timeout",
];

/// The server's own counters; the Kimi side keeps the rest.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    in_flight: AtomicUsize,
    first_byte: Histogram,
    stream: Histogram,
    /// Tool calls passed on, by form and mode; required calls asked for again and never made,
    /// by mode.
    tool_calls: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    tool_follow_ups: Mutex<BTreeMap<&'static str, u64>>,
    tool_missing: Mutex<BTreeMap<&'static str, u64>>,
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Counts a chat request while it is served.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn request(&self, route: &'static str, dialect: Option<Dialect>, status: u16) {
        let key = (route, dialect.map_or("none", Dialect::name), status);
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default() += 1;
    }

    /// A chat request's time to its first byte.
    pub fn first_byte(&self, after: Duration) {
        self.first_byte.observe(after);
    }

    /// A streamed answer's whole duration.
    pub fn stream(&self, lasted: Duration) {
        self.stream.observe(lasted);
    }

    /// What became of one request's tools.
    pub fn tools(&self, report: &ToolReport) {
        let Some(mode) = report.offer.map(ToolOffer::name) else { return };
        let mut calls = lock(&self.tool_calls);
        for form in &report.forms {
            *calls.entry((form, mode)).or_default() += 1;
        }
        drop(calls);
        if report.followed_up {
            *lock(&self.tool_follow_ups).entry(mode).or_default() += 1;
        }
        if report.missing {
            *lock(&self.tool_missing).entry(mode).or_default() += 1;
        }
    }

    pub fn chat_started(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }
}

/// `GET /metrics`; with API keys set, only for a caller that presents one. Not inlined, for
/// the reason `healthz::serve` gives.
#[inline(never)]
pub fn serve(app: &App, request: Request) -> u16 {
    if !app.keys.allow(&request) {
        let error =
            chat::Error::new(ErrorKind::Authentication, "/metrics needs one of the server's API keys");
        exchange::respond_error(request, Dialect::OpenAi, &error, &[]);
        return 401;
    }
    let body = render(app).into_bytes();
    exchange::respond(request, 200, "text/plain; version=0.0.4; charset=utf-8", body, &[]);
    200
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP kimi_free_api_{name} {help}\n# TYPE kimi_free_api_{name} {kind}");
}

fn render(app: &App) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let (kimi, metrics) = (&app.kimi, &app.metrics);
    let mode = if kimi.is_server_pool() { "pool" } else { "pass-through" };
    family(&mut out, "info", "gauge", "The server's version and mode (always 1).");
    let _ =
        writeln!(out, "kimi_free_api_info{{version=\"{}\",mode=\"{mode}\"}} 1", env!("CARGO_PKG_VERSION"));
    family(&mut out, "uptime_seconds", "gauge", "Seconds since the server started.");
    let _ = writeln!(out, "kimi_free_api_uptime_seconds {}", app.started.elapsed().as_secs());
    family(&mut out, "requests_total", "counter", "Requests answered, by route, client API and status.");
    for ((route, dialect, status), n) in
        metrics.requests.lock().unwrap_or_else(PoisonError::into_inner).iter()
    {
        let _ = writeln!(
            out,
            "kimi_free_api_requests_total{{route=\"{route}\",dialect=\"{dialect}\",status=\"{status}\"}} {n}"
        );
    }
    family(&mut out, "streams_in_flight", "gauge", "Chat requests being served (each is a Kimi stream).");
    let _ = writeln!(out, "kimi_free_api_streams_in_flight {}", metrics.in_flight.load(Ordering::Relaxed));
    render_kimi(&mut out, app);
    render_tools(&mut out, app);
    render_sessions(&mut out, app);
    render_unknown(&mut out, &drift::seen());
    metrics.first_byte.render(
        &mut out,
        "kimi_free_api_time_to_first_byte_seconds",
        "Time from a chat request's arrival to the first byte of its answer.",
    );
    metrics.stream.render(
        &mut out,
        "kimi_free_api_stream_duration_seconds",
        "How long streamed answers lasted.",
    );
    out
}

/// Agent sessions (`sessions.rs`): how many live, how their turns went to Kimi, and the bytes
/// every chat sent.
fn render_sessions(out: &mut String, app: &App) {
    let (sessions, kimi) = (&app.sessions, &app.kimi);
    family(out, "sessions", "gauge", "Agent sessions kept on a Kimi chat now.");
    let _ = writeln!(out, "kimi_free_api_sessions {}", sessions.live());
    family(
        out,
        "session_turns_total",
        "counter",
        "Session turns sent to Kimi as a tail or as the whole history.",
    );
    for (sent, n) in [("tail", &sessions.tails), ("full", &sessions.fulls)] {
        let _ = writeln!(
            out,
            "kimi_free_api_session_turns_total{{sent=\"{sent}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    family(
        out,
        "session_rotations_total",
        "counter",
        "Sessions moved to a fresh Kimi chat (the old one deleted).",
    );
    let _ =
        writeln!(out, "kimi_free_api_session_rotations_total {}", sessions.rotations.load(Ordering::Relaxed));
    family(
        out,
        "session_bodies_elided_total",
        "counter",
        "Requests continuing a session byte for byte, read without the history its chat holds.",
    );
    let elided = sessions.elided.load(Ordering::Relaxed);
    let _ = writeln!(out, "kimi_free_api_session_bodies_elided_total {elided}");
    family(
        out,
        "upstream_bytes_total",
        "counter",
        "Bytes of chat requests sent to Kimi (bodies and attachments).",
    );
    let _ = writeln!(out, "kimi_free_api_upstream_bytes_total {}", kimi.sent_bytes());
    family(out, "chats_cancelled_total", "counter", "Answers stopped in kept chats (CancelChat).");
    let _ = writeln!(out, "kimi_free_api_chats_cancelled_total {}", kimi.chats_cancelled());
}

/// What the Kimi side counts: upstream errors, failovers, chats, and each account.
fn render_kimi(out: &mut String, app: &App) {
    let kimi = &app.kimi;
    family(out, "upstream_errors_total", "counter", "Errors Kimi answered, by kind.");
    let errors = kimi.upstream_errors();
    for kind in ERROR_KINDS {
        let n = errors.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "kimi_free_api_upstream_errors_total{{kind=\"{kind}\"}} {n}");
    }
    family(
        out,
        "failovers_total",
        "counter",
        "Requests moved to another account before the client saw anything.",
    );
    let _ = writeln!(out, "kimi_free_api_failovers_total {}", kimi.failovers());
    family(
        out,
        "pacing_wait_seconds_total",
        "counter",
        "Time requests waited for their start on an account (--account-min-interval).",
    );
    let _ = writeln!(out, "kimi_free_api_pacing_wait_seconds_total {}", kimi.pacing_wait().as_secs_f64());
    let (_, deleted, failed) = kimi.chat_counts();
    family(out, "chats_created_total", "counter", "Chats created on Kimi (kept conversations included).");
    let _ = writeln!(out, "kimi_free_api_chats_created_total {}", kimi.chats_created());
    family(out, "chats_deleted_total", "counter", "Chats deleted on Kimi after their answer.");
    let _ = writeln!(out, "kimi_free_api_chats_deleted_total {deleted}");
    family(out, "chats_delete_failed_total", "counter", "Chats that could not be deleted on Kimi.");
    let _ = writeln!(out, "kimi_free_api_chats_delete_failed_total {failed}");
    let accounts = kimi.accounts();
    family(out, "account_state", "gauge", "1 for the state each account is in, by account fingerprint.");
    for account in &accounts {
        for state in AccountState::ALL {
            let on = u8::from(account.state == state);
            let (fp, name) = (&account.fingerprint, state.name());
            let _ = writeln!(out, "kimi_free_api_account_state{{account=\"{fp}\",state=\"{name}\"}} {on}");
        }
    }
    family(out, "account_streams", "gauge", "Requests in flight on each account.");
    for account in &accounts {
        let _ = writeln!(
            out,
            "kimi_free_api_account_streams{{account=\"{}\"}} {}",
            account.fingerprint, account.streams
        );
    }
    family(out, "account_requests_total", "counter", "Attempts made on each account.");
    for account in &accounts {
        let _ = writeln!(
            out,
            "kimi_free_api_account_requests_total{{account=\"{}\"}} {}",
            account.fingerprint, account.requests
        );
    }
    render_credits(out, &accounts);
}

/// Tool calls by the form the model wrote them in and the mode they were offered in
/// (`docs/tools.md` §3), the follow-ups that asked for a required call, the answers where it
/// never came, and the accounts `auto` moved to the prompt.
fn render_tools(out: &mut String, app: &App) {
    let metrics = &app.metrics;
    family(
        out,
        "tool_calls_total",
        "counter",
        "Tool calls passed to clients, by the form the model wrote and the mode.",
    );
    for ((form, mode), n) in lock(&metrics.tool_calls).iter() {
        let _ = writeln!(out, "kimi_free_api_tool_calls_total{{form=\"{form}\",mode=\"{mode}\"}} {n}");
    }
    family(
        out,
        "tool_follow_ups_total",
        "counter",
        "Answers that had to be asked again for a required tool call.",
    );
    for (mode, n) in lock(&metrics.tool_follow_ups).iter() {
        let _ = writeln!(out, "kimi_free_api_tool_follow_ups_total{{mode=\"{mode}\"}} {n}");
    }
    family(
        out,
        "tool_calls_missing_total",
        "counter",
        "Answers that required a tool call and made none, even when asked again.",
    );
    for (mode, n) in lock(&metrics.tool_missing).iter() {
        let _ = writeln!(out, "kimi_free_api_tool_calls_missing_total{{mode=\"{mode}\"}} {n}");
    }
    family(
        out,
        "tool_mode_switches_total",
        "counter",
        "Accounts --tool-mode auto moved from native tools to the prompt.",
    );
    let _ = writeln!(out, "kimi_free_api_tool_mode_switches_total {}", app.kimi.tool_mode_switches());
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Each account's monthly credits, for the accounts whose credits are known
/// (`docs/kimi-protocol.md` §7.7).
fn render_credits(out: &mut String, accounts: &[AccountReport]) {
    family(
        out,
        "account_credits_used_ratio",
        "gauge",
        "Share of the account's monthly Kimi credits used (GetSubscriptionStats), per account fingerprint.",
    );
    for account in accounts {
        if let Some(credits) = &account.credits {
            let (fp, used) = (&account.fingerprint, credits.used_ratio);
            let _ = writeln!(out, "kimi_free_api_account_credits_used_ratio{{account=\"{fp}\"}} {used}");
        }
    }
    family(
        out,
        "account_credits_reset_seconds",
        "gauge",
        "When the account's monthly Kimi credits reset (Unix time), per account fingerprint.",
    );
    for account in accounts {
        if let Some(at) = account.credits.as_ref().and_then(|c| c.resets_at) {
            let fp = &account.fingerprint;
            let _ = writeln!(out, "kimi_free_api_account_credits_reset_seconds{{account=\"{fp}\"}} {at}");
        }
    }
}

/// `kimi_unknown_total{what,name}`: one sample per name Kimi sent that the decoders do not know.
fn render_unknown(out: &mut String, seen: &[(&'static str, String, u64)]) {
    let _ = writeln!(
        out,
        "# HELP kimi_unknown_total Stream events, block kinds, masks, error codes and reasons Kimi sent that \
         this server does not know, by name.\n# TYPE kimi_unknown_total counter"
    );
    for (what, name, n) in seen {
        let _ = writeln!(out, "kimi_unknown_total{{what=\"{}\",name=\"{}\"}} {n}", label(what), label(name));
    }
}

/// A label value escaped as the exposition format asks: backslash, double quote, line feed.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kimi::Credits;

    fn account(fingerprint: &str, credits: Option<Credits>) -> AccountReport {
        AccountReport {
            fingerprint: fingerprint.into(),
            kind: "web_refresh",
            state: AccountState::Healthy,
            expires: None,
            streams: 0,
            requests: 0,
            research: true,
            last_error: None,
            credits,
            credits_read_at: None,
        }
    }

    #[test]
    fn credits_are_shown_for_the_accounts_that_have_them() {
        let read =
            |used_ratio, resets_at| Some(Credits { used_ratio, resets_at, source: "GetSubscriptionStats" });
        let accounts = [
            account("0a1b2c3d", read(0.25, Some(1_798_675_200))),
            account("11111111", None),
            account("22222222", read(1.0, None)),
        ];
        let mut out = String::new();
        render_credits(&mut out, &accounts);
        let expected = "# HELP kimi_free_api_account_credits_used_ratio Share of the account's monthly Kimi credits used \
            (GetSubscriptionStats), per account fingerprint.\n\
            # TYPE kimi_free_api_account_credits_used_ratio gauge\n\
            kimi_free_api_account_credits_used_ratio{account=\"0a1b2c3d\"} 0.25\n\
            kimi_free_api_account_credits_used_ratio{account=\"22222222\"} 1\n\
            # HELP kimi_free_api_account_credits_reset_seconds When the account's monthly Kimi credits reset \
            (Unix time), per account fingerprint.\n\
            # TYPE kimi_free_api_account_credits_reset_seconds gauge\n\
            kimi_free_api_account_credits_reset_seconds{account=\"0a1b2c3d\"} 1798675200\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_inf() {
        let histogram = Histogram::default();
        for ms in [1, 7, 7, 2000, 900_000] {
            histogram.observe(Duration::from_millis(ms));
        }
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "test");
        assert!(out.contains("x_seconds_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.01\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"600\"} 4\n"), "{out}");
        assert!(
            out.contains("x_seconds_bucket{le=\"+Inf\"} 5\nx_seconds_sum 902.015\nx_seconds_count 5\n"),
            "{out}"
        );
    }

    #[test]
    fn unknown_names_are_one_escaped_sample_each() {
        let seen = [("reason", "REASON_X".to_string(), 3), ("mask", "a\\b\"c\nd".to_string(), 1)];
        let mut out = String::new();
        render_unknown(&mut out, &seen);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "# HELP kimi_unknown_total Stream events, block kinds, masks, error codes and reasons Kimi sent \
                 that this server does not know, by name.",
                "# TYPE kimi_unknown_total counter",
                "kimi_unknown_total{what=\"reason\",name=\"REASON_X\"} 3",
                r#"kimi_unknown_total{what="mask",name="a\\b\"c\nd"} 1"#,
            ]
        );
    }
}
