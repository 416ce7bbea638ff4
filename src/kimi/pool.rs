//! The accounts a request may run on, and what is remembered of each between requests.
//!
//! An account is a token the user gave (the seed; its rotated logins live in the state
//! directory). In pass-through mode the accounts are those of the caller's credential, and
//! their health is remembered here for the life of the process; in server-pool mode they are
//! the server's own (`--tokens-file`, `KIMI_TOKENS`), replaced whole by a reload while running
//! streams keep the accounts they hold.
//!
//! Selection is round-robin over the accounts that can serve, with at most `--account-streams`
//! requests in flight on each (Kimi refuses a second answer streaming on one account with
//! `chat.user_stream_pushing`). An account is skipped while it cools down after a rate limit,
//! while it is dead (Kimi refused its login; asked again every ten minutes, or after a reload)
//! and, for research requests, while its research quota is used up; and while its monthly
//! credits are used up (until they reset). When every account that could serve is busy, a
//! request waits a bounded time for one.
//!
//! A kept conversation lives on the account that created it. Its id, as the client sees it,
//! carries that account's fingerprint (`{chat id}@{fingerprint}`): unlike a map kept by the
//! server, that survives restarts and reloads, costs no memory, and can say clearly when the
//! account has left the pool.
//!
//! This file holds the accounts, their health, selection and leases. Beside it, as its own
//! modules: `pool_credits.rs` (what the pool knows of each account's monthly credits),
//! `pool_pace.rs` (pacing of one account's starts) and `pool_report.rs` (the accounts as
//! `/healthz` and `/metrics` show them, and the pool's counters).

#[path = "pool_credits.rs"]
mod credits;
#[path = "pool_pace.rs"]
mod pace;
#[path = "pool_report.rs"]
mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::connect::credits::Credits;
use super::{Error, accounts};
use crate::chat::{Ended, Stop};
use pace::{Pace, jitter};
pub use report::{AccountReport, AccountState};

/// The first cool-down after a rate limit that says nothing of when to come back.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// Cool-downs double on each rate limit in a row, up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// How long a dead account is skipped before Kimi is asked again (its refusal may have been
/// Kimi's outage rather than the token's end).
const DEAD_RECHECK: Duration = Duration::from_secs(10 * 60);
/// How long an account whose research quota is used up is skipped for research.
const RESEARCH_RECHECK: Duration = Duration::from_secs(60 * 60);
/// How long an account that Kimi refused a model (free plan) is not asked for it again while
/// other accounts may serve it.
const MODEL_RECHECK: Duration = Duration::from_secs(30 * 60);
/// Models remembered as refused per account at most.
const MAX_REFUSED_MODELS: usize = 16;
/// Pass-through accounts remembered at most.
const MAX_KNOWN: usize = 4096;
/// Separates a kept conversation's Kimi id from its account's fingerprint.
const MARK: char = '@';

/// Whose accounts a request runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Pass-through: the caller's own Kimi token, or a comma-separated list of them.
    Tokens(&'a str),
    /// The server's pool: the caller presented one of the server's API keys.
    Pool,
}

/// One account and what is known of it.
pub struct Account {
    /// The token the user gave.
    token: String,
    fingerprint: String,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    health: Mutex<Health>,
    pace: Mutex<Pace>,
}

/// What the last requests on an account taught.
#[derive(Default)]
struct Health {
    /// The token's kind, once known (`TokenKind::name`).
    kind: &'static str,
    cooling_until: Option<Instant>,
    /// The next cool-down when Kimi does not say how long.
    backoff: Duration,
    /// Set while the account is dead: when Kimi is asked again.
    dead_until: Option<Instant>,
    /// The refusal a dead account answers with, without asking Kimi.
    refusal: Option<Error>,
    research_until: Option<Instant>,
    /// Model names Kimi refused on this account (free plan), and until when that is trusted.
    refused_models: Vec<(String, Instant)>,
    last_error: Option<(String, u64)>,
    /// The monthly credits last read (`docs/kimi-protocol.md` §7.7) and when (Unix seconds).
    credits: Option<(Credits, u64)>,
    /// When a read of the credits was last started, whatever came of it.
    credits_tried: Option<Instant>,
    /// Set while the credits are used up: until when the account is skipped, also in Unix
    /// seconds (what the caller is told).
    spent_until: Option<(Instant, u64)>,
}

impl Health {
    fn dead(&self, now: Instant) -> bool {
        self.dead_until.is_some_and(|until| until > now)
    }

    fn cooling(&self, now: Instant) -> bool {
        self.cooling_until.is_some_and(|until| until > now)
    }

    /// Until when (Unix seconds) the account's credits are used up, if they are now.
    fn spent(&self, now: Instant) -> Option<u64> {
        self.spent_until.filter(|(until, _)| *until > now).map(|(_, unix)| unix)
    }
}

/// Why no account could take a request.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Every account that could serve had its streams full for the whole wait.
    Busy,
    /// Every account was dead, cooling down, out of research quota or of monthly credits (or
    /// already tried).
    Unusable { dead: usize, cooling: usize, research: usize, credits: usize },
}

/// The accounts of the process and the selection among them.
pub struct Pool {
    /// The server's own accounts, in the order of its tokens file; `None` in pass-through.
    server: RwLock<Option<Arc<[Arc<Account>]>>>,
    /// Pass-through accounts, by token.
    known: Mutex<HashMap<String, Arc<Account>>>,
    cursor: AtomicUsize,
    /// Requests in flight allowed per account.
    limit: usize,
    released: Mutex<()>,
    freed: Condvar,
    waiters: AtomicUsize,
    failovers: AtomicU64,
    /// Time requests spent waiting for their paced start, in microseconds.
    paced_micros: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

/// A request's hold on one account: one of its stream slots, given back when dropped.
pub struct Lease<'p> {
    pool: &'p Pool,
    account: Arc<Account>,
}

impl Pool {
    pub fn new(limit: usize) -> Pool {
        Pool {
            server: RwLock::new(None),
            known: Mutex::default(),
            cursor: AtomicUsize::new(0),
            limit: limit.max(1),
            released: Mutex::new(()),
            freed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            failovers: AtomicU64::new(0),
            paced_micros: AtomicU64::new(0),
            errors: Mutex::default(),
        }
    }

    /// Whether the server has accounts of its own.
    pub fn is_server_pool(&self) -> bool {
        self.server.read().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// Makes `tokens` the server's accounts. Accounts already in the pool keep what is known of
    /// them, except death: a reload is how an operator says "try these again". Returns how many
    /// accounts were added and removed.
    pub fn set_server(&self, tokens: &[String]) -> (usize, usize) {
        let mut server = self.server.write().unwrap_or_else(PoisonError::into_inner);
        let old: HashMap<&str, &Arc<Account>> =
            server.iter().flat_map(|list| list.iter()).map(|a| (a.token.as_str(), a)).collect();
        let mut added = 0;
        let accounts: Vec<Arc<Account>> = tokens
            .iter()
            .map(|token| match old.get(token.as_str()) {
                Some(account) => {
                    let mut health = lock(&account.health);
                    health.dead_until = None;
                    health.refusal = None;
                    // The operator may have bought credits: the next chat reads them again.
                    health.spent_until = None;
                    health.credits_tried = None;
                    drop(health);
                    Arc::clone(account)
                }
                None => {
                    added += 1;
                    Arc::new(Account::new(token))
                }
            })
            .collect();
        let removed = old.keys().filter(|token| !tokens.iter().any(|t| t == *token)).count();
        *server = Some(accounts.into());
        (added, removed)
    }

    /// The accounts a request may use, in order.
    pub fn accounts(&self, credential: Credential<'_>) -> Vec<Arc<Account>> {
        match credential {
            Credential::Pool => {
                self.server.read().unwrap_or_else(PoisonError::into_inner).as_deref().unwrap_or(&[]).to_vec()
            }
            Credential::Tokens(tokens) => {
                let mut list: Vec<Arc<Account>> = Vec::new();
                for token in accounts::all(tokens) {
                    if !list.iter().any(|a| a.token == token) {
                        list.push(self.server_account(token).unwrap_or_else(|| self.known(token)));
                    }
                }
                list
            }
        }
    }

    /// The server's own account of `token`, if it is one (the doctor's steps share its slots).
    fn server_account(&self, token: &str) -> Option<Arc<Account>> {
        let server = self.server.read().unwrap_or_else(PoisonError::into_inner);
        server.as_deref()?.iter().find(|account| account.token == token).cloned()
    }

    fn known(&self, token: &str) -> Arc<Account> {
        let mut known = lock(&self.known);
        if let Some(account) = known.get(token) {
            return Arc::clone(account);
        }
        if known.len() >= MAX_KNOWN {
            // Forget what matters least first: accounts not in use and in good health.
            let now = Instant::now();
            known.retain(|_, a| Arc::strong_count(a) > 1 || lock(&a.health).dead(now));
            if known.len() >= MAX_KNOWN {
                known.retain(|_, a| Arc::strong_count(a) > 1);
            }
        }
        let account = Arc::new(Account::new(token));
        known.insert(token.to_string(), Arc::clone(&account));
        account
    }

    /// A slot on the next account that can serve, skipping those in `tried`; waits until
    /// `deadline` while every such account is busy. `first` allows, when every account cools
    /// down, the one whose cool-down ends first (Kimi's limit may lift before our backoff
    /// does, and a lone account must not be refused for half a minute on our guess).
    pub fn acquire(
        &self,
        candidates: &[Arc<Account>],
        research: bool,
        tried: &[Arc<Account>],
        deadline: Instant,
    ) -> Result<Lease<'_>, Refusal> {
        let first = tried.is_empty();
        let mut outcome = self.pick(candidates, research, tried, first, Instant::now());
        if matches!(outcome, Err(Refusal::Busy)) {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            outcome = self.wait_for_slot(candidates, research, tried, first, deadline);
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
        if !first && outcome.is_ok() {
            self.failovers.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    fn wait_for_slot(
        &self,
        candidates: &[Arc<Account>],
        research: bool,
        tried: &[Arc<Account>],
        first: bool,
        deadline: Instant,
    ) -> Result<Lease<'_>, Refusal> {
        let mut released = lock(&self.released);
        loop {
            let now = Instant::now();
            let outcome = self.pick(candidates, research, tried, first, now);
            if !matches!(outcome, Err(Refusal::Busy)) || now >= deadline {
                return outcome;
            }
            released =
                self.freed.wait_timeout(released, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn pick(
        &self,
        candidates: &[Arc<Account>],
        research: bool,
        tried: &[Arc<Account>],
        first: bool,
        now: Instant,
    ) -> Result<Lease<'_>, Refusal> {
        let n = candidates.len();
        let start = if n > 1 { self.cursor.fetch_add(1, Ordering::Relaxed) % n } else { 0 };
        let (mut busy, mut dead, mut cooling, mut quota, mut spent) = (0, 0, 0, 0, 0);
        let mut soonest: Option<(Instant, &Arc<Account>)> = None;
        for account in candidates.iter().cycle().skip(start).take(n) {
            if tried.iter().any(|t| Arc::ptr_eq(t, account)) {
                continue;
            }
            let mut health = lock(&account.health);
            if health.dead(now) {
                dead += 1;
                continue;
            }
            if health.spent(now).is_some() {
                spent += 1;
                continue;
            }
            if research && health.research_until.is_some_and(|until| until > now) {
                quota += 1;
                continue;
            }
            if let Some(until) = health.cooling_until.filter(|until| *until > now) {
                cooling += 1;
                if soonest.is_none_or(|(end, _)| until < end) {
                    soonest = Some((until, account));
                }
                continue;
            }
            if let Some(lease) = self.reserve(account) {
                if health.dead_until.is_some() {
                    // Its ten minutes are up: this request asks Kimi again, and only this one.
                    health.dead_until = Some(now + DEAD_RECHECK);
                }
                return Ok(lease);
            }
            busy += 1;
        }
        if let Some((_, account)) = soonest.filter(|_| first && busy == 0) {
            return self.reserve(account).ok_or(Refusal::Busy);
        }
        if busy > 0 {
            return Err(Refusal::Busy);
        }
        Err(Refusal::Unusable { dead, cooling, research: quota, credits: spent })
    }

    fn reserve(&self, account: &Arc<Account>) -> Option<Lease<'_>> {
        let limit = self.limit;
        account
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < limit).then_some(n + 1))
            .ok()?;
        Some(Lease { pool: self, account: Arc::clone(account) })
    }

    /// Whether an account can take a request now: not dead, not cooling down, credits left.
    pub fn ready(&self, account: &Account) -> bool {
        let now = Instant::now();
        let health = lock(&account.health);
        !health.dead(now) && !health.cooling(now) && health.spent(now).is_none()
    }

    /// Whether an account among `candidates`, other than `current` and those `tried`, has no
    /// request in flight and can serve (not dead, not cooling down).
    pub fn has_idle(
        &self,
        candidates: &[Arc<Account>],
        tried: &[Arc<Account>],
        current: &Arc<Account>,
    ) -> bool {
        let now = Instant::now();
        candidates.iter().any(|account| {
            let other = !Arc::ptr_eq(account, current) && !tried.iter().any(|t| Arc::ptr_eq(t, account));
            let health = lock(&account.health);
            other
                && account.in_flight.load(Ordering::SeqCst) == 0
                && !health.dead(now)
                && !health.cooling(now)
        })
    }

    /// The refusal a dead account answers with, if every candidate is dead.
    pub fn refusal_of_the_dead(&self, candidates: &[Arc<Account>]) -> Option<Error> {
        let now = Instant::now();
        let mut refusal = None;
        for account in candidates {
            let health = lock(&account.health);
            if !health.dead(now) {
                return None;
            }
            refusal = refusal.or_else(|| health.refusal.clone());
        }
        refusal
    }
}

impl Account {
    fn new(token: &str) -> Account {
        let kind = super::token::kind(token, unix_now()).map_or("unknown", |kind| kind.name());
        Account {
            token: token.to_string(),
            fingerprint: accounts::fingerprint(token),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            health: Mutex::new(Health { kind, ..Health::default() }),
            pace: Mutex::default(),
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Lease<'_> {
    pub fn token(&self) -> &str {
        &self.account.token
    }

    pub fn fingerprint(&self) -> &str {
        &self.account.fingerprint
    }

    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// Waits for this request's start on the account, at least `interval` (jittered) after the
    /// previous start there (`--account-min-interval`). Starts are claimed in the order leases
    /// were taken, so concurrent requests on one account are spaced out one after another.
    /// Returns `false`, without waiting or claiming anything, when the start would come after
    /// `deadline`: the caller then tries another account or answers busy.
    pub fn pace(&self, interval: Duration, deadline: Instant) -> bool {
        if interval.is_zero() {
            return true;
        }
        let now = Instant::now();
        let Some(start) = lock(&self.account.pace).claim(now, deadline, interval, jitter()) else {
            return false;
        };
        let wait = start.saturating_duration_since(now);
        if !wait.is_zero() {
            std::thread::sleep(wait);
            self.pool.paced_micros.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
        }
        true
    }

    /// What the token turned out to be.
    pub fn note_kind(&self, kind: &'static str) {
        lock(&self.account.health).kind = kind;
    }

    /// Whether Kimi refused this model name on the account a short while ago.
    pub fn refused_model(&self, model: &str) -> bool {
        let now = Instant::now();
        let model = model.trim().to_ascii_lowercase();
        lock(&self.account.health).refused_models.iter().any(|(name, until)| *name == model && *until > now)
    }

    /// Remembers that Kimi refused this model name on the account (its plan does not include it).
    pub fn refuse_model(&self, model: &str) {
        let now = Instant::now();
        let model = model.trim().to_ascii_lowercase();
        let mut health = lock(&self.account.health);
        health.refused_models.retain(|(name, until)| *until > now && *name != model);
        if health.refused_models.len() >= MAX_REFUSED_MODELS {
            health.refused_models.remove(0);
        }
        health.refused_models.push((model, now + MODEL_RECHECK));
    }

    /// Learns from one attempt's outcome; on a rate limit, returns the cool-down in seconds
    /// (what the client is told to wait).
    pub fn record(&self, outcome: &Result<Ended, Error>) -> Option<u64> {
        self.record_at(outcome, Instant::now())
    }

    fn record_at(&self, outcome: &Result<Ended, Error>, now: Instant) -> Option<u64> {
        let account = &self.account;
        account.requests.fetch_add(1, Ordering::Relaxed);
        // Read before the health lock: `set_server` holds the server list while it locks them.
        let reloadable = outcome.as_ref().is_err_and(Error::is_dead_credential) && self.is_server_account();
        let mut health = lock(&account.health);
        let error = match outcome {
            // A client that left says nothing of the account; a tool-call answer is a success.
            Ok(Ended::Stopped(Stop::ClientGone)) => return None,
            Ok(_) => {
                if health.dead_until.take().is_some() {
                    eprintln!("kimi: account {} works again", account.fingerprint);
                }
                health.refusal = None;
                health.cooling_until = None;
                health.backoff = Duration::ZERO;
                return None;
            }
            Err(error) => error,
        };
        *lock(&self.pool.errors).entry(error.name()).or_default() += 1;
        health.last_error = Some((error.to_string(), unix_now()));
        match error {
            error if error.is_dead_credential() => {
                if health.dead_until.is_none() {
                    eprintln!("{}", dead_log_line(&account.fingerprint, error, reloadable));
                }
                health.dead_until = Some(now + DEAD_RECHECK);
                health.refusal = Some(error.clone());
                None
            }
            Error::RateLimited(_, said) => {
                let wait = said.map_or_else(|| next_backoff(&mut health), Duration::from_secs);
                health.cooling_until = Some(now + wait);
                eprintln!(
                    "kimi: account {} cools down for {} s ({error})",
                    account.fingerprint,
                    wait.as_secs()
                );
                Some(wait.as_secs().max(1))
            }
            Error::ProxyUnreachable(_) => {
                health.cooling_until = Some(now + FIRST_BACKOFF);
                eprintln!("kimi: account {} cools down for 30 s ({error})", account.fingerprint);
                None
            }
            Error::QuotaUsedUp(_) => {
                health.research_until = Some(now + RESEARCH_RECHECK);
                Some(RESEARCH_RECHECK.as_secs())
            }
            _ => None,
        }
    }
}

impl Lease<'_> {
    /// Whether the account is one of the server's own (from its tokens file or list), which a
    /// reload brings back; a caller's token in pass-through mode is not.
    fn is_server_account(&self) -> bool {
        let server = self.pool.server.read().unwrap_or_else(PoisonError::into_inner);
        server.as_ref().is_some_and(|accounts| accounts.iter().any(|a| Arc::ptr_eq(a, &self.account)))
    }
}

/// The log line of an account found dead. Only the server's own accounts are reloaded (SIGHUP);
/// a pass-through account is skipped until a recheck finds it working.
fn dead_log_line(fingerprint: &str, error: &Error, reloadable: bool) -> String {
    let until = if reloadable { "until the tokens are reloaded" } else { "until it works again" };
    format!(
        "kimi: account {fingerprint} is dead ({error}): skipped {until}, and Kimi is asked again every {} minutes",
        DEAD_RECHECK.as_secs() / 60
    )
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.account.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.pool.waiters.load(Ordering::SeqCst) > 0 {
            let _released = lock(&self.pool.released);
            self.pool.freed.notify_all();
        }
    }
}

/// The cool-down for a rate limit that did not say how long: 30 s, doubling on each one in a
/// row, capped.
fn next_backoff(health: &mut Health) -> Duration {
    let wait = health.backoff.max(FIRST_BACKOFF);
    health.backoff = (wait * 2).min(MAX_BACKOFF);
    wait
}

/// A kept conversation's id as the client sees it: Kimi's id and the account's fingerprint.
pub fn marked_conversation(chat_id: &str, fingerprint: &str) -> String {
    format!("{chat_id}{MARK}{fingerprint}")
}

/// Kimi's id and the account fingerprint of a marked conversation id.
pub fn split_conversation(id: &str) -> Option<(&str, &str)> {
    let (chat_id, fingerprint) = id.rsplit_once(MARK)?;
    let looks_right = fingerprint.len() == 8 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
    (looks_right && !chat_id.is_empty()).then_some((chat_id, fingerprint))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
