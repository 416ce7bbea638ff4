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
mod session;
mod sha256;
mod state;
mod token;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::chat::{self, Sink};

pub use accounts::fingerprint;
pub use connect::envelope;
pub use error::Error;
use guard::Progress;
pub use legacy::sse;
use session::Sessions;
use token::{Claims, ConnectIdentity, Region, TokenKind};

/// What the Kimi side needs to know: where Kimi is, how long to wait for it, and where logins
/// are kept. It knows nothing of listeners and workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Legacy REST + SSE API (refresh_token era).
    pub legacy_base_url: String,
    /// Connect RPC API and its auth host, for mainland (kimi.com) accounts.
    pub connect_base_url: String,
    pub auth_base_url: String,
    /// The same for global (kimi.ai) accounts.
    pub global_connect_base_url: String,
    pub global_auth_base_url: String,
    /// Which region's hosts to use; `Auto` follows each token's `region` claim.
    pub region: RegionChoice,
    /// Where rotated logins are kept; `None` keeps them in memory only.
    pub state_dir: Option<PathBuf>,
    /// Longest silence tolerated from Kimi before a request fails.
    pub upstream_timeout: Duration,
    /// Whether attachment URLs on loopback and private networks may be fetched.
    pub allow_private_urls: bool,
}

/// `--kimi-region`: which of Kimi's two regions an account is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionChoice {
    /// From the token's `region` claim (mainland when it has none).
    Auto,
    Cn,
    Global,
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
    settings: Settings,
    /// Logins of legacy refresh tokens, and of 2026 web refresh tokens.
    legacy_sessions: Sessions,
    web_sessions: Sessions,
    parents: connect::Parents,
    chats: guard::ChatCounts,
    /// What tokens of unknown kind turned out to be (so the guess is made once).
    resolved: Mutex<HashMap<String, TokenKind>>,
}

/// Resolved kinds remembered at most (the map is cleared past this).
const MAX_RESOLVED: usize = 4096;

/// One account of a request: its token, of a known kind.
struct Account<'t> {
    token: &'t str,
    kind: TokenKind,
    region: Region,
    /// The kind was found by trying (the token itself did not tell).
    guessed: bool,
}

impl Kimi {
    /// The Kimi client. The message, if any, is for the start-up log (the state directory
    /// cannot be written).
    pub fn new(settings: Settings) -> (Self, Option<String>) {
        let (state, problem) = state::StateDir::open(settings.state_dir.as_deref());
        let state = Arc::new(state);
        let kimi = Kimi {
            upstream: http::Upstream::new(settings.upstream_timeout),
            legacy_sessions: Sessions::new(state.clone(), "legacy"),
            web_sessions: Sessions::new(state, "web"),
            parents: connect::Parents::default(),
            chats: guard::ChatCounts::default(),
            resolved: Mutex::default(),
            settings,
        };
        (kimi, problem)
    }

    /// Runs one chat request for the caller's credential (one token or a comma-separated
    /// pool of any kinds), pushing events to `sink` as they are decoded. The upstream chat
    /// is deleted on every path unless the request keeps its conversation.
    pub fn chat(
        &self,
        credential: &str,
        request: &chat::Request,
        sink: &mut dyn Sink,
    ) -> (Backend, Result<(), Error>) {
        let account = match accounts::pick(credential).and_then(|token| self.account(token)) {
            Ok(account) => account,
            Err(error) => return (Backend::None, Err(error)),
        };
        let backend = match account.kind {
            TokenKind::LegacyRefresh => Backend::Legacy,
            _ => Backend::Connect,
        };
        let mut sink = Progress::new(sink);
        let mut attempt = 0;
        loop {
            match self.run(&account, request, &mut sink) {
                Err(error) if error.is_transient() && !sink.delivered() && attempt < RETRIES => {
                    thread::sleep(RETRY_PAUSE * 2u32.pow(attempt));
                    attempt += 1;
                }
                other => return (backend, other),
            }
        }
    }

    fn run(&self, account: &Account<'_>, request: &chat::Request, sink: &mut Progress) -> Result<(), Error> {
        let token = account.token;
        match &account.kind {
            TokenKind::LegacyRefresh => legacy::chat(self.legacy(), token, request, sink)
                .map_err(|error| refused_both(account, error)),
            TokenKind::KimiAuth(who) => {
                connect::chat(self.connect(account.region, true), token, who, request, sink)
            }
            TokenKind::WebAccess { identity, expires } => {
                access_token_alive(*expires)?;
                connect::chat(self.connect(account.region, false), token, identity, request, sink)
            }
            TokenKind::WebRefresh | TokenKind::Unknown => self.web_chat(account, request, sink),
        }
    }

    /// A chat with a 2026 web login: the access token from the session cache; one that Kimi
    /// refuses although it was cached is renewed once, while nothing reached the client.
    fn web_chat(
        &self,
        account: &Account<'_>,
        request: &chat::Request,
        sink: &mut Progress,
    ) -> Result<(), Error> {
        let ctx = self.connect(account.region, false);
        let login = || self.web_sessions.get(account.token, |current| connect::login::refresh(ctx, current));
        let (session, fresh) = login()?;
        let who = web_identity(account.token, &session);
        match connect::chat(ctx, &session.access_token, &who, request, sink) {
            Err(Error::Unauthorized(_)) if !fresh && !sink.delivered() => {
                self.web_sessions.invalidate(account.token);
                let (session, _) = login()?;
                connect::chat(ctx, &session.access_token, &who, request, sink)
            }
            other => other,
        }
    }

    /// The account of one token: its kind read from the token, or, for a token of no known
    /// shape, found by trying it as a 2026 refresh token and then as a legacy one (once).
    fn account<'t>(&self, token: &'t str) -> Result<Account<'t>, Error> {
        let claims = Claims::of(token);
        let region = match (self.settings.region, claims.as_ref().and_then(Claims::region)) {
            (RegionChoice::Cn, _) | (RegionChoice::Auto, None | Some(Region::Cn)) => Region::Cn,
            (RegionChoice::Global, _) | (RegionChoice::Auto, Some(Region::Global)) => Region::Global,
        };
        let kind = token::kind(token, session::now_ms() / 1000)?;
        let guessed = kind == TokenKind::Unknown;
        let kind = match kind {
            TokenKind::Unknown => self.resolve(token, region)?,
            TokenKind::WebAccess { identity, expires } => {
                note_access_token(token, expires);
                TokenKind::WebAccess { identity, expires }
            }
            known => known,
        };
        Ok(Account { token, kind, region, guessed })
    }

    fn resolve(&self, token: &str, region: Region) -> Result<TokenKind, Error> {
        let remembered = self.resolved.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned();
        if let Some(kind) = remembered {
            return Ok(kind);
        }
        let ctx = self.connect(region, false);
        let kind = match self.web_sessions.get(token, |current| connect::login::refresh(ctx, current)) {
            Ok(_) => TokenKind::WebRefresh,
            Err(Error::Unauthorized(_)) => TokenKind::LegacyRefresh,
            // The auth host is out of reach: this once, the legacy API may still know the token.
            Err(_) => return Ok(TokenKind::LegacyRefresh),
        };
        let mut resolved = self.resolved.lock().unwrap_or_else(PoisonError::into_inner);
        if resolved.len() >= MAX_RESOLVED {
            resolved.clear();
        }
        resolved.insert(token.to_string(), kind.clone());
        Ok(kind)
    }

    /// What each token of a credential is and whether Kimi accepts it, checked through the
    /// same login cache as chats (a rotation it causes is kept, not burnt) and a read-only
    /// call.
    pub fn check_token(&self, credential: &str) -> Vec<TokenCheck> {
        accounts::all(credential).into_iter().map(|token| self.check_one(token)).collect()
    }

    fn check_one(&self, token: &str) -> TokenCheck {
        let account = self.account(token);
        let kind = account.as_ref().map_or("unknown", |a| a.kind.name());
        let expires = match &account {
            Ok(Account { kind: TokenKind::WebAccess { expires, .. }, .. }) => Some(*expires),
            _ => None,
        };
        let result = account.and_then(|account| self.probe(&account));
        let note = expires.map(|at| {
            format!(
                "a web access_token works until {} (about 15 minutes); give its refresh_token for a lasting login",
                token::utc(at)
            )
        });
        TokenCheck {
            fingerprint: fingerprint(token),
            kind,
            live: result.is_ok(),
            expires,
            note,
            problem: result.err().map(|e| e.to_string()),
        }
    }

    fn probe(&self, account: &Account<'_>) -> Result<(), Error> {
        let token = account.token;
        match &account.kind {
            TokenKind::LegacyRefresh => {
                legacy::check_token(self.legacy(), token).map_err(|error| refused_both(account, error))
            }
            TokenKind::KimiAuth(who) => connect::check_token(self.connect(account.region, true), token, who),
            TokenKind::WebAccess { identity, expires } => {
                access_token_alive(*expires)?;
                connect::check_token(self.connect(account.region, false), token, identity)
            }
            TokenKind::WebRefresh | TokenKind::Unknown => {
                let ctx = self.connect(account.region, false);
                let (session, _) =
                    self.web_sessions.get(token, |current| connect::login::refresh(ctx, current))?;
                connect::check_token(ctx, &session.access_token, &web_identity(token, &session))
            }
        }
    }

    /// Ends every upstream call in flight (at shutdown, after the drain deadline): each request
    /// fails at once and its chat is still deleted.
    pub fn interrupt(&self) {
        self.upstream.interrupt();
    }

    /// Chats that were to be deleted, were deleted, and could not be, since the start.
    pub fn chat_counts(&self) -> (u64, u64, u64) {
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        (load(&self.chats.to_delete), load(&self.chats.deleted), load(&self.chats.failed))
    }

    fn legacy(&self) -> legacy::Context<'_> {
        legacy::Context {
            upstream: &self.upstream,
            base: &self.settings.legacy_base_url,
            sessions: &self.legacy_sessions,
            fetch: self.fetch(),
            chats: &self.chats,
        }
    }

    fn connect(&self, region: Region, kimi_auth_cookie: bool) -> connect::Context<'_> {
        let settings = &self.settings;
        let (base, auth_base) = match region {
            Region::Cn => (&settings.connect_base_url, &settings.auth_base_url),
            Region::Global => (&settings.global_connect_base_url, &settings.global_auth_base_url),
        };
        connect::Context {
            upstream: &self.upstream,
            base,
            auth_base,
            parents: &self.parents,
            fetch: self.fetch(),
            kimi_auth_cookie,
            chats: &self.chats,
        }
    }

    fn fetch(&self) -> attachment::Fetch<'_> {
        attachment::Fetch { upstream: &self.upstream, allow_private: self.settings.allow_private_urls }
    }
}

/// What `/token/check` reports of one token (never the token itself).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenCheck {
    pub fingerprint: String,
    pub kind: &'static str,
    pub live: bool,
    /// When a 15-minute web access token stops working (Unix seconds).
    pub expires: Option<u64>,
    /// What the user should know (a web access token is a stopgap).
    pub note: Option<String>,
    /// Why the token does not work.
    pub problem: Option<String>,
}

/// The identity headers of a 2026 web login: from the newest refresh token's claims (the
/// access token has no `device_id`), else from the token the user gave.
fn web_identity(seed: &str, session: &session::Session) -> ConnectIdentity {
    Claims::of(&session.refresh_token).or_else(|| Claims::of(seed)).map_or_else(
        || ConnectIdentity {
            user_id: session.user_id.clone(),
            device_id: String::new(),
            session_id: String::new(),
        },
        |claims| claims.identity(),
    )
}

/// A token whose kind was guessed and that the legacy API refuses too: the user most likely
/// pasted a spent 2026 refresh token.
fn refused_both(account: &Account<'_>, error: Error) -> Error {
    match error {
        Error::Unauthorized(_) if account.guessed => Error::Unauthorized(format!(
            "Kimi accepts this token neither as a 2026 refresh_token nor as a legacy one: {}",
            connect::login::LOG_IN_AGAIN
        )),
        other => other,
    }
}

/// A 15-minute web access token works until it expires; then the caller is told what to give
/// instead.
fn access_token_alive(expires: u64) -> Result<(), Error> {
    if expires > session::now_ms() / 1000 {
        return Ok(());
    }
    Err(Error::Unauthorized(format!(
        "this web access_token expired at {} (they last about 15 minutes): give the refresh_token \
         instead (www.kimi.com → F12 → Application → Local Storage → refresh_token)",
        token::utc(expires)
    )))
}

/// Logs once per process when a 15-minute web access token is first used, and when it stops.
fn note_access_token(token: &str, expires: u64) {
    static NOTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let fingerprint = fingerprint(token);
    let mut noted = NOTED.lock().unwrap_or_else(PoisonError::into_inner);
    if noted.contains(&fingerprint) || noted.len() >= MAX_RESOLVED {
        return;
    }
    eprintln!(
        "kimi: account {fingerprint} is a web access_token: it stops working at {}; give its \
         refresh_token for a lasting login",
        token::utc(expires)
    );
    noted.push(fingerprint);
}
