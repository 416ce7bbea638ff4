//! The Kimi side: credentials, the upstream HTTP client and the two protocol backends.
//!
//! This file is the front door: [`Kimi::chat`] picks an account from the caller's credential,
//! runs the request on the backend that credential belongs to (`legacy/` for the REST + SSE
//! API, `connect/` for the Connect RPC API; see `docs/kimi-protocol.md`), and retries
//! transient failures while nothing has reached the client yet. What both backends share sits
//! beside them: the error type, the guards, the HTTP client, the prompt, attachments, tokens.

mod accounts;
mod attachment;
mod connect;
mod error;
mod guard;
mod http;
mod legacy;
mod prompt;
mod read_buffer;
mod token;

use std::thread;
use std::time::Duration;

use crate::chat::{self, Sink};

pub use connect::envelope;
pub use error::Error;
use guard::Progress;
pub use legacy::sse;

/// What the Kimi side needs to know: where Kimi is and how long to wait for it. It knows
/// nothing of listeners and workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Legacy REST + SSE API (refresh_token era).
    pub legacy_base_url: String,
    /// Connect RPC API (kimi-auth JWT era).
    pub connect_base_url: String,
    /// Longest silence tolerated from Kimi before a request fails.
    pub upstream_timeout: Duration,
    /// Whether attachment URLs on loopback and private networks may be fetched.
    pub allow_private_urls: bool,
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
    upstream: http::Upstream,
    legacy_base: String,
    connect_base: String,
    sessions: legacy::Sessions,
    parents: connect::Parents,
    allow_private_urls: bool,
}

impl Kimi {
    pub fn new(settings: Settings) -> Self {
        Kimi {
            upstream: http::Upstream::new(settings.upstream_timeout),
            legacy_base: settings.legacy_base_url,
            connect_base: settings.connect_base_url,
            sessions: legacy::Sessions::default(),
            parents: connect::Parents::default(),
            allow_private_urls: settings.allow_private_urls,
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
