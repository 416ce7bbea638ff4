//! The Kimi side: credentials, the upstream HTTP client and the protocol backends.
//!
//! [`Kimi::chat`] picks an account from the caller's credential, runs the request on the
//! backend that credential belongs to, and retries transient failures while nothing has
//! reached the client yet.

mod accounts;
pub mod attachment;
mod connect;
pub mod connect_event;
pub mod envelope;
mod http;
mod legacy;
pub mod legacy_event;
pub mod prompt;
mod read_buffer;
mod session;
pub mod sse;
pub mod token;

use std::fmt;
use std::thread;
use std::time::Duration;

use crate::chat::{self, Disconnected, ErrorKind, Event, Sink};
use crate::config::Config;

pub use http::Upstream;

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
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Upstream(_) | Error::Transport(_) | Error::Disconnected => ErrorKind::Upstream,
            Error::Timeout => ErrorKind::Timeout,
        }
    }

    /// Whether another attempt may succeed where this one failed.
    fn is_transient(&self) -> bool {
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

/// How many times a transient failure is retried while the client has seen nothing.
const RETRIES: u32 = 2;
/// The first retry's pause; each later one doubles it.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Which Kimi API served a request (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// No backend was reached (the credential was refused before).
    None,
    Legacy,
    Connect,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::None => "-",
            Backend::Legacy => "legacy",
            Backend::Connect => "connect",
        }
    }
}

/// The Kimi client shared by every worker.
pub struct Kimi {
    upstream: Upstream,
    legacy_base: String,
    connect_base: String,
    sessions: session::Sessions,
    parents: connect::Parents,
    allow_private_urls: bool,
}

impl Kimi {
    pub fn new(config: &Config) -> Self {
        Kimi {
            upstream: Upstream::new(config.upstream_timeout),
            legacy_base: config.kimi_base_url.clone(),
            connect_base: config.kimi_connect_base_url.clone(),
            sessions: session::Sessions::default(),
            parents: connect::Parents::default(),
            allow_private_urls: config.allow_private_urls,
        }
    }

    /// Runs one chat request for the caller's credential (one token or a comma-separated
    /// pool of either kind), pushing events to `sink` as they are decoded. The upstream chat
    /// is deleted on every path unless the request keeps its conversation.
    pub fn chat(
        &self,
        credential: &str,
        request: &chat::Request,
        sink: &mut dyn Sink,
    ) -> (Backend, Result<(), Error>) {
        let picked = accounts::pick(credential).and_then(|token| Ok((token, token::kind(token)?)));
        let (token, kind) = match picked {
            Ok(picked) => picked,
            Err(error) => return (Backend::None, Err(error)),
        };
        let backend = match kind {
            token::TokenKind::Refresh => Backend::Legacy,
            token::TokenKind::Connect(_) => Backend::Connect,
        };
        let mut sink = Progress::new(sink);
        let mut attempt = 0;
        loop {
            let result = match &kind {
                token::TokenKind::Refresh => legacy::chat(self.legacy(), token, request, &mut sink),
                token::TokenKind::Connect(who) => {
                    connect::chat(self.connect(), token, who, request, &mut sink)
                }
            };
            match result {
                Err(error) if error.is_transient() && !sink.delivered() && attempt < RETRIES => {
                    thread::sleep(RETRY_PAUSE * 2u32.pow(attempt));
                    attempt += 1;
                }
                other => return (backend, other),
            }
        }
    }

    /// Whether a credential is accepted by Kimi (every token of a pool must be).
    pub fn check_token(&self, credential: &str) -> bool {
        let tokens = accounts::all(credential);
        !tokens.is_empty()
            && tokens.iter().all(|token| match token::kind(token) {
                Ok(token::TokenKind::Refresh) => legacy::check_token(self.legacy(), token),
                Ok(token::TokenKind::Connect(who)) => connect::check_token(self.connect(), token, &who),
                Err(_) => false,
            })
    }

    fn legacy(&self) -> legacy::Context<'_> {
        legacy::Context {
            upstream: &self.upstream,
            base: &self.legacy_base,
            sessions: &self.sessions,
            fetch: self.fetch(),
        }
    }

    fn connect(&self) -> connect::Context<'_> {
        connect::Context {
            upstream: &self.upstream,
            base: &self.connect_base,
            parents: &self.parents,
            fetch: self.fetch(),
        }
    }

    fn fetch(&self) -> attachment::Fetch<'_> {
        attachment::Fetch { upstream: &self.upstream, allow_private: self.allow_private_urls }
    }
}

/// Deletes an upstream chat when dropped, so every path out of a request (success, error,
/// client gone, even a panic) cleans up, unless the caller keeps the conversation.
pub(crate) struct ChatGuard<'a> {
    chat_id: String,
    keep: bool,
    delete: Box<DeleteChat<'a>>,
}

/// A backend's call that deletes one chat by id.
type DeleteChat<'a> = dyn FnMut(&str) -> Result<(), Error> + 'a;

impl<'a> ChatGuard<'a> {
    fn new(chat_id: String, keep: bool, delete: impl FnMut(&str) -> Result<(), Error> + 'a) -> Self {
        ChatGuard { chat_id, keep, delete: Box::new(delete) }
    }

    fn chat_id(&self) -> &str {
        &self.chat_id
    }
}

impl Drop for ChatGuard<'_> {
    fn drop(&mut self) {
        if !self.keep
            && let Err(error) = (self.delete)(&self.chat_id)
        {
            eprintln!("kimi: could not delete chat {}: {error}", self.chat_id);
        }
    }
}

/// Remembers whether any content reached the client: once it has, a retry would repeat it.
pub(crate) struct Progress<'a> {
    inner: &'a mut dyn Sink,
    delivered: bool,
}

impl<'a> Progress<'a> {
    fn new(inner: &'a mut dyn Sink) -> Self {
        Progress { inner, delivered: false }
    }

    fn delivered(&self) -> bool {
        self.delivered
    }
}

impl Sink for Progress<'_> {
    fn send(&mut self, event: Event) -> Result<(), Disconnected> {
        if !matches!(event, Event::ConversationId(_) | Event::Heartbeat) {
            self.delivered = true;
        }
        self.inner.send(event)
    }

    fn flush(&mut self) -> Result<(), Disconnected> {
        self.inner.flush()
    }
}
