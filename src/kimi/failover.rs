//! Failover and retries: while the client has seen nothing, a failed request moves to the next
//! account of its pool, or, on a lone account, is tried again after a transient failure; a chat
//! refused because another answer of the account is still streaming waits a little first.
//!
//! The decisions are pure functions ([`after_failure`], [`busy_pause`], [`with_wait`]) with
//! unit tests below; the loop around them leases the accounts and records what each attempt
//! taught the pool.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::guard::{Halt, Progress};
use super::pool::{self, Lease, Refusal};
use super::{Backend, Error, Kimi};
use crate::chat::{self, Ended, Sink};

/// How many times a transient failure of a request's only account is retried while the client
/// has seen nothing (with several accounts, the next account is tried instead).
const RETRIES: u32 = 2;
/// The first retry's pause; each later one doubles it.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The pauses before a chat is sent again on an account where another is still answering:
/// three tries in about ten seconds (working bridges retry after 3–5 s, `docs/kimi-protocol.md`
/// §7.5).
const BUSY_PAUSES: [Duration; 2] = [Duration::from_secs(3), Duration::from_secs(7)];

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The next account of the pool.
    Failover,
    /// The same account again, after [`retry_pause`].
    Retry,
    /// The caller gets the error.
    Return,
}

impl Kimi {
    /// Tries the request on the accounts: the next one after a failure the client did not see,
    /// or, for a lone account, the same one again after a transient failure.
    pub(super) fn attempts(
        &self,
        accounts: &[Arc<pool::Account>],
        request: &chat::Request,
        mark: bool,
        sink: &mut dyn Sink,
    ) -> (Backend, Result<Ended, Error>) {
        let mut sink = Progress::new(sink);
        let deadline = Instant::now() + self.settings.account_wait;
        let mut tried = Vec::new();
        let mut last = None;
        let mut retries = 0;
        // Set when an account's paced start came too late: if no other account takes the
        // request, the answer is busy (that account is, for this request).
        let mut paced_out = false;
        loop {
            let lease = match self.pool.acquire(accounts, request.mode.research, &tried, deadline) {
                Ok(lease) => lease,
                Err(refusal) => {
                    let refusal = if paced_out { Refusal::Busy } else { refusal };
                    return last.unwrap_or_else(|| (Backend::None, Err(self.refused(accounts, refusal))));
                }
            };
            sink.mark_conversation(mark.then(|| lease.fingerprint()));
            let others = accounts.len() > 1;
            if lease.refused_model(&request.model) {
                // Kimi refused this model on this account a short while ago: try the others
                // first, and a lone account is not asked again for a while.
                let refused = (Backend::Connect, Err(Error::PlanRequired(plan_refused(&request.model))));
                if !others {
                    return refused;
                }
                tried.push(lease.account().clone());
                last = Some(refused);
                continue;
            }
            if !lease.pace(self.settings.account_min_interval, deadline) {
                // Its next start comes after this request's deadline: another account, or busy.
                tried.push(lease.account().clone());
                paced_out = true;
                continue;
            }
            let (backend, result) = self.attempt_while_busy(&lease, request, &mut sink, accounts, &tried);
            let wait = lease.record(&result);
            if let Err(Error::PlanRequired(_)) = &result {
                lease.refuse_model(&request.model);
            }
            self.refresh_credits(&lease, &result);
            let result = result.map_err(|error| with_wait(error, wait));
            let error = match result {
                Err(error) => error,
                ok => return (backend, ok),
            };
            match after_failure(&error, sink.delivered(), others, retries) {
                Step::Failover => {
                    tried.push(lease.account().clone());
                    last = Some((backend, Err(error)));
                }
                Step::Retry => {
                    drop(lease);
                    thread::sleep(retry_pause(retries));
                    retries += 1;
                }
                Step::Return => return (backend, Err(error)),
            }
        }
    }

    /// One attempt on the leased account, tried again after a pause while Kimi says another
    /// chat of the account is still answering (`docs/kimi-protocol.md` §7.5) — unless another
    /// account of the pool is idle, which the caller then moves to.
    fn attempt_while_busy(
        &self,
        lease: &Lease<'_>,
        request: &chat::Request,
        sink: &mut Progress,
        accounts: &[Arc<pool::Account>],
        tried: &[Arc<pool::Account>],
    ) -> (Backend, Result<Ended, Error>) {
        let mut tries = 0;
        loop {
            let (backend, result) = self.attempt(lease, request, sink);
            let idle_elsewhere = || self.pool.has_idle(accounts, tried, lease.account());
            match busy_pause(&result, sink.delivered(), tries, idle_elsewhere) {
                Some(pause) => thread::sleep(pause),
                None => return (backend, result),
            }
            tries += 1;
        }
    }

    /// What the caller is told when no account could take the request.
    fn refused(&self, accounts: &[Arc<pool::Account>], refusal: Refusal) -> Error {
        let wait = self.settings.account_wait.as_secs().max(1);
        match refusal {
            Refusal::Busy => Error::Overloaded(
                format!(
                    "every Kimi account is busy ({} requests each at most); retry shortly",
                    self.settings.account_streams
                ),
                Some(wait),
            ),
            Refusal::Unusable { dead, .. } if dead == accounts.len() && !self.pool.is_server_pool() => {
                self.pool.refusal_of_the_dead(accounts).unwrap_or_else(|| {
                    Error::Unauthorized("Kimi refused this token earlier; it is asked again later".into())
                })
            }
            Refusal::Unusable { credits, .. } if credits > 0 => self.credits_refusal(accounts, credits),
            Refusal::Unusable { research, .. } if research > 0 => Error::QuotaUsedUp(format!(
                "the research quota is used up on {research} Kimi account(s) and no other can serve"
            )),
            Refusal::Unusable { dead, cooling, .. } => Error::Overloaded(
                format!(
                    "no Kimi account of the pool can serve now ({dead} dead, {cooling} cooling down; \
                     see /healthz)"
                ),
                Some(60),
            ),
        }
    }

    /// One attempt on the leased account: its token's kind, then the chat.
    fn attempt(
        &self,
        lease: &Lease<'_>,
        request: &chat::Request,
        sink: &mut Progress,
    ) -> (Backend, Result<Ended, Error>) {
        let account = match self.account(lease.token()) {
            Ok(account) => account,
            Err(error) => return (Backend::None, Err(error)),
        };
        lease.note_kind(account.kind.name());
        (account.backend(), ended(self.run(&account, request, sink)))
    }
}

/// What follows a failure, from whether the client saw anything (then nothing may be repeated),
/// whether the request has other accounts, and how many retries it had.
fn after_failure(error: &Error, delivered: bool, others: bool, retries: u32) -> Step {
    match error {
        _ if delivered => Step::Return,
        error if fails_over(error) && others => Step::Failover,
        error if error.is_transient() && retries < RETRIES => Step::Retry,
        _ => Step::Return,
    }
}

/// The pause before retry number `retries` (from 0): [`RETRY_PAUSE`], doubled each time.
fn retry_pause(retries: u32) -> Duration {
    RETRY_PAUSE * 2u32.pow(retries)
}

/// The pause before a chat is sent again on its account after `tries` tries that found another
/// answer of the account still streaming; `None` when it is not worth it: the attempt ended
/// otherwise, the client saw something, the pauses are spent, or another account is idle.
fn busy_pause(
    result: &Result<Ended, Error>,
    delivered: bool,
    tries: usize,
    idle_elsewhere: impl FnOnce() -> bool,
) -> Option<Duration> {
    let busy = matches!(result, Err(Error::ChatInProgress(_))) && !delivered;
    match BUSY_PAUSES.get(tries) {
        Some(pause) if busy && !idle_elsewhere() => Some(*pause),
        _ => None,
    }
}

/// Whether a failure before the client saw anything is worth trying on another account: the
/// account's trouble (its login, its limits) or Kimi's (5xx, a cut), not the request's.
fn fails_over(error: &Error) -> bool {
    matches!(
        error,
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
            | Error::ProxyUnreachable(_)
    )
}

/// What the caller is told when every account of a pool that was asked refused the model to
/// free plans.
fn plan_refused(model: &str) -> String {
    format!(
        "Kimi refused `{model}` on this account a short while ago (it serves agent models only to paid \
         plans; asked again after 30 minutes); use the model `kimi` (Instant), which works on a free account"
    )
}

/// How a chat that did not fail ended: a stop by the client's sinks is a value, not an error.
fn ended(result: Result<(), Halt>) -> Result<Ended, Error> {
    match result {
        Ok(()) => Ok(Ended::Complete),
        Err(Halt::Stopped(stop)) => Ok(Ended::Stopped(stop)),
        Err(Halt::Failed(error)) => Err(error),
    }
}

/// A rate limit tells the client how long the account cools down, when Kimi did not say.
fn with_wait(error: Error, wait: Option<u64>) -> Error {
    match error {
        Error::RateLimited(why, None) => Error::RateLimited(why, wait),
        other => other,
    }
}

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
