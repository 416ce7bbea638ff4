//! What the pool shows outside: each account's state and report for `/healthz` and `/metrics`
//! (never its token), and the pool's counters (failovers, pacing waits, Kimi's errors by kind).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::{Account, Credits, Pool, lock, unix_now};

/// What an account looks like from outside, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    Healthy,
    /// Its token expires within three days (a kimi-auth cookie is never renewed).
    Expiring,
    /// As many requests in flight as `--account-streams` allows.
    Busy,
    CoolingDown,
    Dead,
}

impl AccountState {
    pub const ALL: [AccountState; 5] = [
        AccountState::Healthy,
        AccountState::Expiring,
        AccountState::Busy,
        AccountState::CoolingDown,
        AccountState::Dead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AccountState::Healthy => "healthy",
            AccountState::Expiring => "expiring",
            AccountState::Busy => "busy",
            AccountState::CoolingDown => "cooling_down",
            AccountState::Dead => "dead",
        }
    }
}

/// One account as `/healthz` shows it: never its token.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountReport {
    pub fingerprint: String,
    pub kind: &'static str,
    pub state: AccountState,
    /// When its token stops working (Unix seconds), when known.
    pub expires: Option<u64>,
    pub streams: usize,
    pub requests: u64,
    /// Whether research requests may use it.
    pub research: bool,
    /// The last error and when (Unix seconds).
    pub last_error: Option<(String, u64)>,
    /// The monthly credits, when they were read, and when (Unix seconds).
    pub credits: Option<Credits>,
    pub credits_read_at: Option<u64>,
}

impl Pool {
    /// The server pool's accounts, or else the pass-through accounts seen so far.
    pub fn reports(&self, expires: impl Fn(&str, &str) -> Option<u64>) -> Vec<AccountReport> {
        let server = self.server.read().unwrap_or_else(PoisonError::into_inner).clone();
        let accounts: Vec<Arc<Account>> = match server {
            Some(list) => list.to_vec(),
            None => {
                let mut known: Vec<Arc<Account>> = lock(&self.known).values().cloned().collect();
                known.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
                known
            }
        };
        accounts.iter().map(|a| self.report(a, &expires)).collect()
    }

    fn report(&self, account: &Account, expires: &impl Fn(&str, &str) -> Option<u64>) -> AccountReport {
        let now = Instant::now();
        let health = lock(&account.health);
        let kind = health.kind;
        let expires = expires(&account.token, kind);
        let streams = account.in_flight.load(Ordering::Relaxed);
        let soon = unix_now() + 3 * 86_400;
        let state = if health.dead(now) {
            AccountState::Dead
        } else if health.cooling(now) {
            AccountState::CoolingDown
        } else if streams >= self.limit {
            AccountState::Busy
        } else if expires.is_some_and(|at| at <= soon) {
            AccountState::Expiring
        } else {
            AccountState::Healthy
        };
        AccountReport {
            fingerprint: account.fingerprint.clone(),
            kind,
            state,
            expires,
            streams,
            requests: account.requests.load(Ordering::Relaxed),
            research: health.research_until.is_none_or(|until| until <= now),
            last_error: health.last_error.clone(),
            credits: health.credits.as_ref().map(|(credits, _)| credits.clone()),
            credits_read_at: health.credits.as_ref().map(|(_, at)| *at),
        }
    }

    /// Failovers since the start: requests that moved to another account before the client
    /// saw anything.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Time requests spent waiting for their paced start on an account, since the start.
    pub fn pacing_wait(&self) -> Duration {
        Duration::from_micros(self.paced_micros.load(Ordering::Relaxed))
    }

    /// Errors Kimi answered, by kind, since the start.
    pub fn errors(&self) -> Vec<(&'static str, u64)> {
        lock(&self.errors).iter().map(|(kind, n)| (*kind, *n)).collect()
    }
}
