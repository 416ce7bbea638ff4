//! The one error type of the Kimi side. Every backend maps what Kimi answers onto it, and the
//! server turns it into the neutral [`chat::Error`] a dialect renders.

use std::fmt;

use crate::chat::{self, ErrorKind};

/// A failure talking to Kimi. Messages never contain a token or a cookie.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The credential is missing, expired or refused.
    Unauthorized(String),
    /// The credential has no Kimi token's shape: refused here, without asking Kimi.
    NotAToken(String),
    /// Kimi refuses for now: a quota, or another answer streaming on the same account. The
    /// number is how many seconds to wait, when Kimi (or the pool) says.
    RateLimited(String, Option<u64>),
    /// The account's research quota is used up; other requests still work on it.
    QuotaUsedUp(String),
    /// Kimi serves this model only on a paid plan (free accounts get
    /// `REASON_SERVER_OVERLOADED_FOR_FREE_USER`, `docs/kimi-protocol.md` §7.5); another account
    /// may serve it.
    PlanRequired(String),
    /// Another chat of the account is still generating (`REASON_CHAT_IN_PROGRESS`); it is worth
    /// waiting a few seconds.
    ChatInProgress(String),
    /// Kimi (or every account of the pool) is overloaded or busy; worth retrying, after the
    /// seconds given, when known.
    Overloaded(String, Option<u64>),
    /// Kimi says the request itself is wrong.
    Rejected(String),
    /// The conversation is longer than Kimi takes.
    TooLong(String),
    /// The conversation to continue does not exist.
    NotFound(String),
    /// Kimi answered with an error status, or with bytes that are not its protocol.
    Upstream(String),
    /// Kimi refused the answer for a reason this server does not know (`block.exception`, an
    /// unknown `REASON_…`): its own message; not retried on the same account.
    Refused(String),
    /// The connection to Kimi failed or was cut.
    Transport(String),
    /// The account's proxy (`--upstream-proxy`, or its own in the tokens file) could not be
    /// reached or refused the connection: the proxy, as `SCHEME://HOST:PORT`, and why. The
    /// call is never made directly instead.
    ProxyUnreachable(String),
    /// Kimi went silent for longer than the configured upstream timeout.
    Timeout,
}

impl Error {
    /// The neutral kind a dialect renders.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthorized(_) | Error::NotAToken(_) => ErrorKind::Authentication,
            Error::RateLimited(..)
            | Error::QuotaUsedUp(_)
            | Error::PlanRequired(_)
            | Error::ChatInProgress(_) => ErrorKind::RateLimited,
            Error::Overloaded(..) => ErrorKind::Overloaded,
            Error::Rejected(_) => ErrorKind::InvalidRequest,
            Error::TooLong(_) => ErrorKind::ContextLength,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Upstream(_) | Error::Refused(_) | Error::Transport(_) | Error::ProxyUnreachable(_) => {
                ErrorKind::Upstream
            }
            Error::Timeout => ErrorKind::Timeout,
        }
    }

    /// Whether the account's credential does not work (refused by Kimi, or no token at all):
    /// the account is dead until it works again.
    pub(super) fn is_dead_credential(&self) -> bool {
        matches!(self, Error::Unauthorized(_) | Error::NotAToken(_))
    }

    /// Whether another attempt may succeed where this one failed.
    pub(super) fn is_transient(&self) -> bool {
        matches!(self, Error::Upstream(_) | Error::Transport(_) | Error::Overloaded(..))
    }

    /// How many seconds the caller should wait before trying again, when known.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited(_, after) | Error::Overloaded(_, after) => *after,
            Error::ChatInProgress(_) => Some(5),
            _ => None,
        }
    }

    /// A short name of the error's kind, for metrics (`kimi_free_api_upstream_errors_total`).
    pub(super) fn name(&self) -> &'static str {
        match self {
            Error::Unauthorized(_) => "unauthorized",
            Error::NotAToken(_) => "not_a_token",
            Error::RateLimited(..) => "rate_limited",
            Error::QuotaUsedUp(_) => "quota_used_up",
            Error::PlanRequired(_) => "plan_required",
            Error::ChatInProgress(_) => "chat_in_progress",
            Error::Overloaded(..) => "overloaded",
            Error::Rejected(_) => "rejected",
            Error::TooLong(_) => "too_long",
            Error::NotFound(_) => "not_found",
            Error::Upstream(_) => "upstream",
            Error::Refused(_) => "refused",
            Error::Transport(_) => "transport",
            Error::ProxyUnreachable(_) => "proxy_unreachable",
            Error::Timeout => "timeout",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Found without asking Kimi: the message says what the credential is, whole.
            Error::NotAToken(why) => f.write_str(why),
            Error::Unauthorized(why) => write!(f, "Kimi refused the credential: {why}"),
            Error::RateLimited(why, _) => write!(f, "Kimi rate limit: {why}"),
            Error::QuotaUsedUp(why) => write!(f, "Kimi rate limit: {why}"),
            Error::PlanRequired(why) => write!(f, "Kimi needs a paid plan for this model: {why}"),
            Error::ChatInProgress(why) => {
                write!(f, "another chat is still answering on this Kimi account: {why}")
            }
            Error::Overloaded(why, _) => write!(f, "Kimi is overloaded: {why}"),
            Error::Rejected(why) => write!(f, "Kimi rejected the request: {why}"),
            Error::TooLong(why) => write!(f, "the conversation is longer than Kimi takes ({why})"),
            Error::NotFound(why) => write!(f, "not found on Kimi: {why}"),
            Error::Upstream(why) => write!(f, "Kimi upstream error: {why}"),
            Error::Refused(why) => write!(f, "Kimi refused to answer: {why}"),
            Error::Transport(why) => write!(f, "cannot reach Kimi: {why}"),
            Error::ProxyUnreachable(why) => write!(f, "proxy unreachable: {why}"),
            Error::Timeout => write!(f, "Kimi did not answer in time"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for chat::Error {
    fn from(error: Error) -> Self {
        let retry_after = error.retry_after();
        let retryable = !matches!(error, Error::PlanRequired(_));
        chat::Error { retry_after, retryable, ..chat::Error::new(error.kind(), error.to_string()) }
    }
}
