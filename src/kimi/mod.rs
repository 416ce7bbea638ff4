//! The Kimi side: credentials, the upstream HTTP client and the two protocol backends.
//!
//! This file is the front door: [`Kimi::chat`] takes an account from the pool (`pool.rs`: the
//! caller's tokens, or the server's own), runs the request on the backend that account's token
//! belongs to (`legacy/` for the REST + SSE API, `connect/` for the Connect RPC API; see
//! `docs/kimi-protocol.md`), and, while nothing has reached the client yet, moves a failed
//! request to the next account, or retries a transient failure of a lone one. What both
//! backends share sits beside them: the error type, the guards, the HTTP client, the prompt,
//! attachments, tokens.

mod accounts;
mod attachment;
pub mod browser;
mod connect;
mod credits;
pub mod drift;
mod error;
mod guard;
mod http;
mod legacy;
mod pool;
mod prompt;
mod read_buffer;
mod session;
pub(crate) mod sha256;
mod state;
mod token;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::chat::{self, Conversation, Ended, Sink};

pub use accounts::{fingerprint, tokens_file};
pub use connect::credits::{Credits, rfc3339};
pub use connect::envelope;
pub use error::Error;
use guard::{Halt, Progress};
pub use legacy::sse;
pub use pool::{AccountReport, AccountState, Credential};
use pool::{Lease, Pool, Refusal};
use session::Sessions;
pub use token::utc;
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
    /// Requests in flight allowed on one account at a time.
    pub account_streams: usize,
    /// How long a request waits for an account when every one is busy.
    pub account_wait: Duration,
    /// The web client version and User-Agent every call to Kimi presents.
    pub browser: browser::Browser,
}

/// `--kimi-region`: which of Kimi's two regions an account is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionChoice {
    /// From the token's `region` claim (mainland when it has none).
    Auto,
    Cn,
    Global,
}

/// How many times a transient failure of a request's only account is retried while the client
/// has seen nothing (with several accounts, the next account is tried instead).
const RETRIES: u32 = 2;
/// The first retry's pause; each later one doubles it.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The pauses before a chat is sent again on an account where another is still answering:
/// three tries in about ten seconds (working bridges retry after 3–5 s, `docs/kimi-protocol.md`
/// §7.5).
const BUSY_PAUSES: [Duration; 2] = [Duration::from_secs(3), Duration::from_secs(7)];

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
    memory: connect::Memory,
    chats: guard::ChatCounts,
    /// What tokens of unknown kind turned out to be (so the guess is made once).
    resolved: Mutex<HashMap<String, TokenKind>>,
    pool: Pool,
}

/// Resolved kinds remembered at most (the map is cleared past this).
const MAX_RESOLVED: usize = 4096;

/// The token of one account, of a known kind.
struct Resolved<'t> {
    token: &'t str,
    /// The account's fingerprint (what Connect's per-account memory is keyed by).
    fingerprint: String,
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
            upstream: http::Upstream::new(settings.upstream_timeout, &settings.browser),
            legacy_sessions: Sessions::new(state.clone(), "legacy"),
            web_sessions: Sessions::new(state, "web"),
            parents: connect::Parents::default(),
            memory: connect::Memory::default(),
            chats: guard::ChatCounts::default(),
            resolved: Mutex::default(),
            pool: Pool::new(settings.account_streams),
            settings,
        };
        (kimi, problem)
    }

    /// Makes `tokens` the server's own accounts (server-pool mode; callers then present API
    /// keys). Running requests keep the accounts they hold. Returns how many were added and
    /// removed.
    pub fn set_pool(&self, tokens: &[String]) -> (usize, usize) {
        self.pool.set_server(tokens)
    }

    /// Runs one chat request on an account of `credential`, pushing events to `sink` as they
    /// are decoded. The upstream chat is deleted on every path unless the request keeps its
    /// conversation, and a kept conversation continues on the account that created it.
    pub fn chat(
        &self,
        credential: Credential<'_>,
        request: &chat::Request,
        sink: &mut dyn Sink,
    ) -> (Backend, Result<Ended, Error>) {
        let (backend, result) = self.chat_on_pool(credential, request, sink);
        match result {
            // The caller's key was good: a pool account that Kimi refuses is the server's trouble,
            // and a 401 would tell the client (Claude Code retries those for minutes) otherwise.
            Err(Error::Unauthorized(why)) if credential == Credential::Pool => {
                let why = format!("Kimi refused the pool's account ({why}); see /healthz");
                (backend, Err(Error::Overloaded(why, Some(60))))
            }
            other => (backend, other),
        }
    }

    fn chat_on_pool(
        &self,
        credential: Credential<'_>,
        request: &chat::Request,
        sink: &mut dyn Sink,
    ) -> (Backend, Result<Ended, Error>) {
        let (accounts, continued) = match self.accounts_for(credential, &request.conversation) {
            Ok(route) => route,
            Err(error) => return (Backend::None, Err(error)),
        };
        // A conversation's id names its account whenever there was a choice: when it came
        // marked, when the caller has several accounts, and always for the server's pool.
        let mark = request.conversation != Conversation::Ephemeral
            && (continued.is_some() || accounts.len() > 1 || self.pool.is_server_pool());
        let stripped;
        let request = match continued {
            Some(chat_id) => {
                stripped = chat::Request { conversation: Conversation::Continue(chat_id), ..request.clone() };
                &stripped
            }
            None => request,
        };
        self.attempts(&accounts, request, mark, sink)
    }

    /// Tries the request on the accounts: the next one after a failure the client did not see,
    /// or, for a lone account, the same one again after a transient failure.
    fn attempts(
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
        loop {
            let lease = match self.pool.acquire(accounts, request.mode.research, &tried, deadline) {
                Ok(lease) => lease,
                Err(refusal) => {
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
            let (backend, result) = self.attempt_while_busy(&lease, request, &mut sink, accounts, &tried);
            let wait = lease.record(&result);
            if let Err(Error::PlanRequired(_)) = &result {
                lease.refuse_model(&request.model);
            }
            self.refresh_credits(&lease, &result);
            let result = result.map_err(|error| with_wait(error, wait));
            match result {
                Err(error) if fails_over(&error) && !sink.delivered() && others => {
                    tried.push(lease.account().clone());
                    last = Some((backend, Err(error)));
                }
                Err(error) if error.is_transient() && !sink.delivered() && retries < RETRIES => {
                    drop(lease);
                    thread::sleep(RETRY_PAUSE * 2u32.pow(retries));
                    retries += 1;
                }
                other => return (backend, other),
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
        let mut pauses = BUSY_PAUSES.iter();
        loop {
            let (backend, result) = self.attempt(lease, request, sink);
            let busy = matches!(result, Err(Error::ChatInProgress(_))) && !sink.delivered();
            let idle_elsewhere = || self.pool.has_idle(accounts, tried, lease.account());
            match pauses.next() {
                Some(pause) if busy && !idle_elsewhere() => thread::sleep(*pause),
                _ => return (backend, result),
            }
        }
    }

    /// The accounts a request may run on, and, for a kept conversation, Kimi's id of it: the
    /// conversation continues on the account whose fingerprint its id carries.
    fn accounts_for(
        &self,
        credential: Credential<'_>,
        conversation: &Conversation,
    ) -> Result<(Vec<Arc<pool::Account>>, Option<String>), Error> {
        let accounts = self.pool.accounts(credential);
        if accounts.is_empty() {
            return Err(match credential {
                Credential::Tokens(_) => Error::Unauthorized("no Kimi token was given".into()),
                Credential::Pool => Error::Overloaded("the server's pool has no Kimi account".into(), None),
            });
        }
        let Conversation::Continue(id) = conversation else { return Ok((accounts, None)) };
        match pool::split_conversation(id) {
            Some((chat_id, fingerprint)) => {
                let account =
                    accounts.into_iter().find(|a| a.fingerprint() == fingerprint).ok_or_else(|| {
                        Error::NotFound(format!(
                            "conversation {id} lives on Kimi account {fingerprint}, which is not in this \
                         server's pool (any more); start a new conversation"
                        ))
                    })?;
                Ok((vec![account], Some(chat_id.to_string())))
            }
            None if accounts.len() == 1 => Ok((accounts, None)),
            None => Err(Error::NotFound(format!(
                "conversation {id} does not say which Kimi account it lives on (it was not started \
                 through this pool); continue it with the one token that started it, or start a new one"
            ))),
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
        let backend = match account.kind {
            TokenKind::LegacyRefresh => Backend::Legacy,
            _ => Backend::Connect,
        };
        (backend, ended(self.run(&account, request, sink)))
    }

    /// What `/healthz` and `/metrics` show of each account: the server's pool, or the
    /// pass-through accounts seen so far.
    pub fn accounts(&self) -> Vec<AccountReport> {
        self.pool.reports(|token, kind| self.expiry(token, kind))
    }

    /// When an account's token stops working: a 2026 refresh token's newest rotation, else
    /// the token's own `exp`.
    fn expiry(&self, token: &str, kind: &str) -> Option<u64> {
        let newest =
            (kind == TokenKind::WebRefresh.name()).then(|| self.web_sessions.newest_refresh_token(token));
        let current = newest.flatten().unwrap_or_else(|| token.to_string());
        token::claim_u64(&current, "exp")
    }

    /// Whether the server has a pool of its own.
    pub fn is_server_pool(&self) -> bool {
        self.pool.is_server_pool()
    }

    /// Requests moved to another account before the client saw anything, since the start.
    pub fn failovers(&self) -> u64 {
        self.pool.failovers()
    }

    /// Errors Kimi answered, by kind (`unauthorized`, `rate_limited`...), since the start.
    pub fn upstream_errors(&self) -> Vec<(&'static str, u64)> {
        self.pool.errors()
    }

    fn run(&self, account: &Resolved<'_>, request: &chat::Request, sink: &mut Progress) -> Result<(), Halt> {
        let token = account.token;
        match &account.kind {
            TokenKind::LegacyRefresh => {
                legacy::chat(self.legacy(), token, request, sink).map_err(|halt| match halt {
                    Halt::Failed(error) => Halt::Failed(refused_both(account, error)),
                    stopped => stopped,
                })
            }
            TokenKind::KimiAuth(who) => connect::chat(self.connect(account, true), token, who, request, sink),
            TokenKind::WebAccess { identity, expires } => {
                access_token_alive(*expires)?;
                connect::chat(self.connect(account, false), token, identity, request, sink)
            }
            TokenKind::WebRefresh | TokenKind::Unknown => self.web_chat(account, request, sink),
        }
    }

    /// A chat with a 2026 web login: the access token from the session cache; one that Kimi
    /// refuses although it was cached is renewed once, while nothing reached the client.
    fn web_chat(
        &self,
        account: &Resolved<'_>,
        request: &chat::Request,
        sink: &mut Progress,
    ) -> Result<(), Halt> {
        let ctx = self.connect(account, false);
        let login = || self.web_sessions.get(account.token, |current| connect::login::refresh(ctx, current));
        let (session, fresh) = login()?;
        let who = web_identity(account.token, &session);
        match connect::chat(ctx, &session.access_token, &who, request, sink) {
            Err(Halt::Failed(Error::Unauthorized(_))) if !fresh && !sink.delivered() => {
                self.web_sessions.invalidate(account.token);
                let (session, _) = login()?;
                connect::chat(ctx, &session.access_token, &who, request, sink)
            }
            other => other,
        }
    }

    /// The account of one token: its kind read from the token, or, for a token of no known
    /// shape, found by trying it as a 2026 refresh token and then as a legacy one (once).
    fn account<'t>(&self, token: &'t str) -> Result<Resolved<'t>, Error> {
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
        Ok(Resolved { token, fingerprint: fingerprint(token), kind, region, guessed })
    }

    fn resolve(&self, token: &str, region: Region) -> Result<TokenKind, Error> {
        let remembered = self.resolved.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned();
        if let Some(kind) = remembered {
            return Ok(kind);
        }
        let account = fingerprint(token);
        let ctx = self.connect_in(region, false, &account);
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
            Ok(Resolved { kind: TokenKind::WebAccess { expires, .. }, .. }) => Some(*expires),
            _ => None,
        };
        let result = account.as_ref().map_err(Error::clone).and_then(|account| self.probe(account));
        let credits = account.ok().filter(|_| result.is_ok()).and_then(|a| self.checked_credits(&a));
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
            credits_problem: credits.as_ref().and_then(|c| c.as_ref().err()).map(ToString::to_string),
            credits: credits.and_then(Result::ok),
        }
    }

    fn probe(&self, account: &Resolved<'_>) -> Result<(), Error> {
        match account.kind {
            TokenKind::LegacyRefresh => legacy::check_token(self.legacy(), account.token)
                .map_err(|error| refused_both(account, error)),
            _ => self.on_connect(account, connect::check_token).map(drop),
        }
    }

    /// Runs a unary call on the Connect API with the account's current login (the same login
    /// cache as chats: a rotation it causes is kept, not burnt); `None` for a legacy token.
    fn on_connect<T>(
        &self,
        account: &Resolved<'_>,
        call: impl Fn(connect::Context<'_>, &str, &ConnectIdentity) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        let token = account.token;
        match &account.kind {
            TokenKind::LegacyRefresh => Ok(None),
            TokenKind::KimiAuth(who) => call(self.connect(account, true), token, who).map(Some),
            TokenKind::WebAccess { identity, expires } => {
                access_token_alive(*expires)?;
                call(self.connect(account, false), token, identity).map(Some)
            }
            TokenKind::WebRefresh | TokenKind::Unknown => {
                let ctx = self.connect(account, false);
                let (session, _) =
                    self.web_sessions.get(token, |current| connect::login::refresh(ctx, current))?;
                call(ctx, &session.access_token, &web_identity(token, &session)).map(Some)
            }
        }
    }

    /// The model catalogue of a credential's first account (`docs/kimi-protocol.md` §7.1);
    /// `None` for legacy tokens, or when it cannot be read.
    pub(crate) fn catalogue(&self, credential: Credential<'_>) -> Option<Arc<connect::models::Catalogue>> {
        let first = self.pool.accounts(credential).into_iter().next()?;
        let account = self.account(first.token()).ok()?;
        let catalogue = self.on_connect(&account, connect::catalogue);
        catalogue.ok().flatten().map(|(catalogue, _)| catalogue)
    }

    /// What `/v1/models` lists: each name and what it asks for, and, when the credential's
    /// account is known, which of its models the name runs on, then the catalogue's own ids.
    pub fn model_list(&self, credential: Option<Credential<'_>>) -> Vec<(String, String)> {
        let mut list = chat::listed_models();
        let Some(catalogue) = credential.and_then(|c| self.catalogue(c)) else { return list };
        for (name, description) in &mut list {
            let entry = if name.contains("research") { catalogue.research() } else { catalogue.pick(name) };
            *description = format!("{description} → {}", entry.describe());
        }
        list.extend(catalogue.entries.iter().map(|entry| (entry.id.clone(), entry.describe())));
        list
    }

    /// Ends every upstream call in flight (at shutdown, after the drain deadline): each request
    /// fails at once and its chat is still deleted.
    pub fn interrupt(&self) {
        self.upstream.interrupt();
    }

    /// Chats created on Kimi since the start, kept ones included.
    pub fn chats_created(&self) -> u64 {
        self.chats.created.load(std::sync::atomic::Ordering::Relaxed)
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

    fn connect<'s>(&'s self, account: &'s Resolved<'_>, kimi_auth_cookie: bool) -> connect::Context<'s> {
        self.connect_in(account.region, kimi_auth_cookie, &account.fingerprint)
    }

    fn connect_in<'s>(
        &'s self,
        region: Region,
        kimi_auth_cookie: bool,
        account: &'s str,
    ) -> connect::Context<'s> {
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
            memory: &self.memory,
            account,
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
    /// The account's monthly credits, when the token reaches the Connect API and they could
    /// be read (`docs/kimi-protocol.md` §7.7).
    pub credits: Option<Credits>,
    /// Why they could not be read (the token may still be live).
    pub credits_problem: Option<String>,
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

/// Whether a failure before the client saw anything is worth trying on another account: the
/// account's trouble (its login, its limits) or Kimi's (5xx, a cut), not the request's.
fn fails_over(error: &Error) -> bool {
    matches!(
        error,
        Error::Unauthorized(_)
            | Error::RateLimited(..)
            | Error::QuotaUsedUp(_)
            | Error::PlanRequired(_)
            | Error::ChatInProgress(_)
            | Error::Overloaded(..)
            | Error::Upstream(_)
            | Error::Refused(_)
            | Error::Transport(_)
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

/// A token whose kind was guessed and that the legacy API refuses too: the user most likely
/// pasted a spent 2026 refresh token.
fn refused_both(account: &Resolved<'_>, error: Error) -> Error {
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
