//! `GET /healthz`: whether the server can serve, for a container's `HEALTHCHECK`, a systemd
//! unit and a person. 200 while at least one account is usable (not dead) or in pass-through
//! mode (the caller brings the account), else 503. The accounts part (by fingerprint, never a
//! token) needs an API key when keys are set; the status never does.

use serde::Serialize;
use tiny_http::Request;

use super::{App, exchange};
use crate::kimi::{AccountReport, AccountState, Credits};

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    mode: &'static str,
    /// Accounts that are not dead.
    usable: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<Vec<Account>>,
}

#[derive(Serialize)]
struct Account {
    fingerprint: String,
    kind: &'static str,
    state: &'static str,
    /// When the token stops working: Unix seconds, and the same as a UTC date.
    expires: Option<u64>,
    expires_at: Option<String>,
    streams: usize,
    requests: u64,
    /// Whether research requests may use it (its quota is not used up).
    research: bool,
    last_error: Option<String>,
    /// When the last error happened (Unix seconds).
    last_error_at: Option<u64>,
    /// The monthly credits, once read (`docs/kimi-protocol.md` §7.7).
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<CreditsView>,
}

/// An account's monthly credits as `/healthz` and `/token/check` show them:
/// `{"used_ratio":0.25,"remaining_ratio":0.75,"resets_at":"2026-12-31T00:00:00Z"}`, and, on
/// `/healthz`, when they were read (Unix seconds).
#[derive(Serialize)]
pub struct CreditsView {
    used_ratio: f64,
    remaining_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_at: Option<u64>,
}

impl CreditsView {
    pub fn new(credits: &Credits, read_at: Option<u64>) -> Self {
        CreditsView {
            used_ratio: credits.used_ratio,
            remaining_ratio: credits.remaining_ratio(),
            resets_at: credits.resets_at.map(crate::kimi::rfc3339),
            read_at,
        }
    }
}

impl From<AccountReport> for Account {
    fn from(report: AccountReport) -> Self {
        let (last_error, last_error_at) =
            report.last_error.map_or((None, None), |(e, at)| (Some(e), Some(at)));
        Account {
            fingerprint: report.fingerprint,
            kind: report.kind,
            state: report.state.name(),
            expires: report.expires,
            expires_at: report.expires.map(crate::kimi::utc),
            streams: report.streams,
            requests: report.requests,
            research: report.research,
            last_error,
            last_error_at,
            credits: report.credits.as_ref().map(|c| CreditsView::new(c, report.credits_read_at)),
        }
    }
}

/// Answers `/healthz` and returns the status it gave.
///
/// Not inlined (nor is `/metrics`): their frames would join the router's, which stays on every
/// worker's stack while it streams (see `routes::handle`).
#[inline(never)]
pub fn serve(app: &App, request: Request) -> u16 {
    let pool = app.kimi.is_server_pool();
    let accounts = app.kimi.accounts();
    let usable = accounts.iter().filter(|a| a.state != AccountState::Dead).count();
    let ok = !pool || usable > 0;
    let shown = app.keys.allow(&request).then(|| accounts.into_iter().map(Account::from).collect());
    let health = Health {
        status: if ok { "ok" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: app.started.elapsed().as_secs(),
        mode: if pool { "pool" } else { "pass-through" },
        usable,
        accounts: shown,
    };
    let status = if ok { 200 } else { 503 };
    exchange::respond_json(request, status, serde_json::to_vec(&health).unwrap_or_default());
    status
}
