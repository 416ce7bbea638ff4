//! The one error type of the Kimi side. Every backend maps what Kimi answers onto it, and the
//! server turns it into the neutral [`chat::Error`] a dialect renders.

use std::fmt;

use crate::chat::{self, Disconnected, ErrorKind};

/// A failure talking to Kimi. Messages never contain a token or a cookie.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The credential is missing, malformed, expired or refused.
    Unauthorized(String),
    /// Kimi refuses for now: a quota, or another answer streaming on the same account.
    RateLimited(String),
    /// Kimi is overloaded; worth retrying.
    Overloaded(String),
    /// Kimi says the request itself is wrong.
    Rejected(String),
    /// The conversation is longer than Kimi takes.
    TooLong(String),
    /// The conversation to continue does not exist.
    NotFound(String),
    /// Kimi answered with an error status, or with bytes that are not its protocol.
    Upstream(String),
    /// The connection to Kimi failed or was cut.
    Transport(String),
    /// Kimi went silent for longer than the configured upstream timeout.
    Timeout,
    /// The client went away; nothing more to do.
    Disconnected,
}

impl Error {
    /// The neutral kind a dialect renders.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthorized(_) => ErrorKind::Authentication,
            Error::RateLimited(_) => ErrorKind::RateLimited,
            Error::Overloaded(_) => ErrorKind::Overloaded,
            Error::Rejected(_) => ErrorKind::InvalidRequest,
            Error::TooLong(_) => ErrorKind::ContextLength,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Upstream(_) | Error::Transport(_) | Error::Disconnected => ErrorKind::Upstream,
            Error::Timeout => ErrorKind::Timeout,
        }
    }

    /// Whether another attempt may succeed where this one failed.
    pub(super) fn is_transient(&self) -> bool {
        matches!(self, Error::Upstream(_) | Error::Transport(_) | Error::Overloaded(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unauthorized(why) => write!(f, "Kimi refused the credential: {why}"),
            Error::RateLimited(why) => write!(f, "Kimi rate limit: {why}"),
            Error::Overloaded(why) => write!(f, "Kimi is overloaded: {why}"),
            Error::Rejected(why) => write!(f, "Kimi rejected the request: {why}"),
            Error::TooLong(why) => write!(f, "the conversation is longer than Kimi takes ({why})"),
            Error::NotFound(why) => write!(f, "not found on Kimi: {why}"),
            Error::Upstream(why) => write!(f, "Kimi upstream error: {why}"),
            Error::Transport(why) => write!(f, "cannot reach Kimi: {why}"),
            Error::Timeout => write!(f, "Kimi did not answer in time"),
            Error::Disconnected => write!(f, "the client disconnected"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for chat::Error {
    fn from(error: Error) -> Self {
        chat::Error::new(error.kind(), error.to_string())
    }
}

impl From<Disconnected> for Error {
    fn from(_: Disconnected) -> Self {
        Error::Disconnected
    }
}
