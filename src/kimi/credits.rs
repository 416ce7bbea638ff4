//! The Kimi side of an account's monthly credits (`docs/kimi-protocol.md` §7.7; the calls and
//! parsers are in `connect/credits.rs`): read with the login a chat would use, after a chat
//! (at most every ten minutes per account) and by `/token/check`; what the pool learns of
//! them; what a caller is told when every account that could serve has used them up.

use std::sync::Arc;

use super::connect::credits::Credits;
use super::pool::{self, Lease};
use super::{Error, Kimi, Resolved, connect, session, token};
use crate::chat::Ended;

impl Kimi {
    /// What the caller is told when the accounts that could serve have used up their monthly
    /// credits: until when, and a `Retry-After` until then.
    pub(super) fn credits_refusal(&self, accounts: &[Arc<pool::Account>], spent: usize) -> Error {
        let back = self.pool.credits_back(accounts);
        let until = back.map_or_else(|| "they reset".to_string(), token::utc);
        let wait = back.map(|at| at.saturating_sub(session::now_ms() / 1000).max(1));
        Error::RateLimited(
            format!("the monthly credits are used up on {spent} Kimi account(s) until {until}"),
            wait,
        )
    }

    /// The credits of an account whose token check passed, which the pool learns too (an
    /// account skipped for spent credits is back once they are not).
    pub(super) fn checked_credits(&self, account: &Resolved<'_>) -> Option<Result<Credits, Error>> {
        let outcome = self.read_credits(account)?;
        self.pool.learn_credits(account.token, &outcome);
        Some(outcome)
    }

    /// The monthly credits of the account of `token` (`docs/kimi-protocol.md` §7.7), read
    /// through the same login cache as chats: `None` for a legacy token (that API has none).
    pub fn credits(&self, token: &str) -> Option<Result<Credits, Error>> {
        match self.account(token) {
            Ok(account) => self.read_credits(&account),
            Err(error) => Some(Err(error)),
        }
    }

    /// After a successful attempt, reads the account's credits when they are unknown or ten
    /// minutes old (best effort: a failure is only remembered as a try).
    pub(super) fn refresh_credits(&self, lease: &Lease<'_>, result: &Result<Ended, Error>) {
        if !result.as_ref().is_ok_and(|ended| ended.answered()) || !lease.account().credits_due() {
            return;
        }
        let outcome = self.account(lease.token()).ok().and_then(|account| self.read_credits(&account));
        if let Some(outcome) = outcome {
            lease.account().note_credits(&outcome);
        }
    }

    /// One read of the credits on the Connect API, with the login a chat would use: a cached
    /// 2026 web login is reused, and renewed only when due, as for a chat (a rotation is never
    /// burnt). `None` for legacy tokens.
    fn read_credits(&self, account: &Resolved<'_>) -> Option<Result<Credits, Error>> {
        self.on_connect(account, connect::credits::fetch).transpose()
    }
}
