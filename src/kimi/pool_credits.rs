//! What the pool knows of each account's monthly credits (`docs/kimi-protocol.md` §7.7): when a
//! successful chat should read them again, what a read (after a chat, or by `/token/check`)
//! teaches, and when a refused caller gets them back. Selection skips an account whose credits
//! are used up (`Health::spent`, in `pool.rs`).

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::{Account, Credits, Error, Pool, lock, unix_now};

/// How old an account's credits may be before a successful chat reads them again.
pub(super) const CREDITS_STALE: Duration = Duration::from_secs(10 * 60);
/// How long an account whose credits are used up is skipped when Kimi does not say when they
/// reset.
pub(super) const CREDITS_RECHECK: Duration = Duration::from_secs(60 * 60);

impl Pool {
    /// When the first of the candidates whose credits are used up gets them back (Unix
    /// seconds): what a refused caller is told.
    pub fn credits_back(&self, candidates: &[Arc<Account>]) -> Option<u64> {
        let now = Instant::now();
        candidates.iter().filter_map(|a| lock(&a.health).spent(now)).min()
    }

    /// Learns the credits of the account of `token`, if the pool knows it (`/token/check`
    /// read them); an unknown token is not added.
    pub fn learn_credits(&self, token: &str, outcome: &Result<Credits, Error>) {
        let server = self.server.read().unwrap_or_else(PoisonError::into_inner).clone();
        let in_server = server.and_then(|list| list.iter().find(|a| a.token == token).cloned());
        let account = in_server.or_else(|| lock(&self.known).get(token).cloned());
        if let Some(account) = account {
            account.note_credits(outcome);
        }
    }
}

impl Account {
    /// Whether a successful chat should read the account's credits now: they are unknown or
    /// older than ten minutes, and no other request is reading them. Says yes once per turn.
    pub fn credits_due(&self) -> bool {
        self.credits_due_at(Instant::now())
    }

    pub(super) fn credits_due_at(&self, now: Instant) -> bool {
        let mut health = lock(&self.health);
        let due = health.credits_tried.is_none_or(|at| now.saturating_duration_since(at) >= CREDITS_STALE);
        if due {
            health.credits_tried = Some(now);
        }
        due
    }

    /// Learns the account's credits (a failed read changes nothing). An account whose credits
    /// are used up is skipped until they reset, or for an hour when Kimi does not say when.
    pub fn note_credits(&self, outcome: &Result<Credits, Error>) {
        self.note_credits_at(outcome, Instant::now(), unix_now());
    }

    pub(super) fn note_credits_at(&self, outcome: &Result<Credits, Error>, now: Instant, unix: u64) {
        let Ok(credits) = outcome else { return };
        let mut health = lock(&self.health);
        health.credits_tried = Some(now);
        let was_spent = health.spent(now).is_some();
        health.credits = Some((credits.clone(), unix));
        health.spent_until = None;
        if !credits.used_up() {
            return;
        }
        let wait = credits
            .resets_at
            .filter(|at| *at > unix)
            .map_or(CREDITS_RECHECK, |at| Duration::from_secs(at - unix));
        health.spent_until = Some((now + wait, unix + wait.as_secs()));
        if !was_spent {
            eprintln!(
                "kimi: account {} has used up its monthly credits: skipped until {}",
                self.fingerprint,
                crate::kimi::token::utc(unix + wait.as_secs())
            );
        }
    }
}
