//! The Kimi side: credentials, the upstream HTTP client and the two protocol backends.
//!
//! This file is the front door: the settings, the [`Kimi`] client and its public methods, each
//! a few lines handing over to the file that owns the work. [`Kimi::chat`] finds the accounts a
//! request may run on (`routing.rs`: the caller's tokens or the server's pool from `pool.rs`,
//! and the account a kept conversation lives on), tries them in turn (`failover.rs`: the next
//! account, or the same one again, while nothing has reached the client), and runs each try on
//! the account as opened by `account.rs` (its token's kind, region and login) on the backend
//! its token belongs to (`legacy/` for the REST + SSE API, `connect/` for the Connect RPC API;
//! see `docs/kimi-protocol.md`). What both backends share sits beside them: the error type,
//! the guards, the HTTP client, the prompt, attachments, tokens.

mod account;
mod accounts;
mod attachment;
pub mod browser;
mod connect;
mod credits;
pub mod drift;
mod error;
mod failover;
mod guard;
mod http;
mod legacy;
mod pool;
mod prompt;
mod proxy;
mod read_buffer;
mod routing;
mod session;
pub(crate) mod sha256;
mod state;
mod token;
mod tool_mode;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::chat::{self, Ended, Sink};

use account::Resolved;
pub use account::TokenCheck;
pub use accounts::{Entry, fingerprint, tokens_file};
pub use connect::credits::{Credits, rfc3339};
pub use connect::envelope;
pub use error::Error;
pub use legacy::sse;
use pool::Pool;
pub use pool::{AccountReport, AccountState, Credential};
pub use proxy::{PROXY_GRAMMAR, UpstreamProxy};
use session::Sessions;
use token::TokenKind;
pub use token::utc;
pub use tool_mode::ToolMode;
use tool_mode::ToolModes;

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
    /// Least time between two request starts on one account, jittered by ±20 % (zero: no
    /// pacing).
    pub account_min_interval: Duration,
    /// How the client's tools reach Kimi's model (`tool_mode.rs`).
    pub tool_mode: ToolMode,
    /// The web client version and User-Agent every call to Kimi presents.
    pub browser: browser::Browser,
    /// The proxy every call to Kimi's hosts goes through, unless an account has its own
    /// (`proxy.rs`); attachment fetches never use it.
    pub upstream_proxy: Option<UpstreamProxy>,
}

/// `--kimi-region`: which of Kimi's two regions an account is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionChoice {
    /// From the token's `region` claim (mainland when it has none).
    Auto,
    Cn,
    Global,
}

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
    tool_modes: ToolModes,
    chats: guard::ChatCounts,
    /// What tokens of unknown kind turned out to be (so the guess is made once).
    resolved: Mutex<HashMap<String, TokenKind>>,
    pool: Pool,
    /// The proxy of each account: its own from the tokens file, else `--upstream-proxy`.
    proxies: proxy::Proxies,
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
            web_sessions: Sessions::new(state.clone(), "web"),
            parents: connect::Parents::default(),
            memory: connect::Memory::default(),
            tool_modes: ToolModes::new(settings.tool_mode, state),
            chats: guard::ChatCounts::default(),
            resolved: Mutex::default(),
            pool: Pool::new(settings.account_streams),
            proxies: proxy::Proxies::new(settings.upstream_proxy.clone()),
            settings,
        };
        (kimi, problem)
    }

    /// Makes `entries` the server's own accounts (server-pool mode; callers then present API
    /// keys), each through its own proxy if its line names one. Running requests keep the
    /// accounts they hold. Returns how many were added and removed.
    pub fn set_pool(&self, entries: &[Entry]) -> (usize, usize) {
        self.set_account_proxies(entries);
        let tokens: Vec<String> = entries.iter().map(|entry| entry.token.clone()).collect();
        self.pool.set_server(&tokens)
    }

    /// The proxy the calls of `token`'s account go through, as `SCHEME://HOST:PORT` (never its
    /// credentials); `None` when they go straight to Kimi.
    pub fn proxy_of(&self, token: &str) -> Option<String> {
        self.proxies.of(token).map(|proxy| proxy.shown().to_string())
    }

    /// The accounts' own proxies (`proxy=URL` in the tokens file), for whatever uses their
    /// tokens: the pool, `/token/check`, `doctor`.
    pub fn set_account_proxies(&self, entries: &[Entry]) {
        self.proxies.set(entries.iter().filter_map(|e| Some((e.token.as_str(), e.proxy.as_ref()?))));
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
            Err(error) if error.is_dead_credential() && credential == Credential::Pool => {
                let why = format!("the pool's account does not work ({error}); see /healthz");
                (backend, Err(Error::Overloaded(why, Some(60))))
            }
            other => (backend, other),
        }
    }

    /// What `/healthz` and `/metrics` show of each account: the server's pool, or the
    /// pass-through accounts seen so far.
    pub fn accounts(&self) -> Vec<AccountReport> {
        self.pool.reports(|token, kind| self.expiry(token, kind))
    }

    /// Whether the server has a pool of its own.
    pub fn is_server_pool(&self) -> bool {
        self.pool.is_server_pool()
    }

    /// Requests moved to another account before the client saw anything, since the start.
    pub fn failovers(&self) -> u64 {
        self.pool.failovers()
    }

    /// The doctor's tool probe found the way tools work on the account of `token`: `auto`
    /// follows it from now on (kept in the state directory).
    pub fn learn_tool_mode(&self, token: &str, offer: chat::ToolOffer, why: String) {
        self.tool_modes.learn(&fingerprint(token), offer, why);
    }

    /// Accounts `--tool-mode auto` moved from native tools to the prompt since the start.
    pub fn tool_mode_switches(&self) -> u64 {
        self.tool_modes.switches()
    }

    /// Time requests spent waiting for their paced start on an account (`--account-min-interval`).
    pub fn pacing_wait(&self) -> Duration {
        self.pool.pacing_wait()
    }

    /// Errors Kimi answered, by kind (`unauthorized`, `rate_limited`...), since the start.
    pub fn upstream_errors(&self) -> Vec<(&'static str, u64)> {
        self.pool.errors()
    }

    /// What each token of a credential is and whether Kimi accepts it, checked through the
    /// same login cache as chats (a rotation it causes is kept, not burnt) and a read-only
    /// call.
    pub fn check_token(&self, credential: &str) -> Vec<TokenCheck> {
        accounts::all(credential).into_iter().map(|token| self.check_one(token)).collect()
    }

    /// What a token is, read from the token alone (Kimi is not asked): its kind's name
    /// (`unknown` when only trying it can tell), or why it is no Kimi token.
    pub fn token_kind(token: &str) -> Result<&'static str, Error> {
        token::kind(token, session::now_ms() / 1000).map(|kind| kind.name())
    }

    /// Whether logging in with `token` would rotate a login this process does not hold: a 2026
    /// web refresh token whose newest rotation is neither in memory nor in the state directory.
    /// Whoever else uses that login (a server with another state directory) then holds a spent
    /// token, and Kimi ends the session when it comes back (`docs/kimi-protocol.md` §2.5).
    pub fn rotates_a_login_it_does_not_hold(&self, token: &str) -> bool {
        let web = matches!(token::kind(token, session::now_ms() / 1000), Ok(TokenKind::WebRefresh));
        web && !self.web_sessions.knows(token)
    }

    /// The tokens of a credential's accounts, in order (the server's own for `Pool`): for the
    /// doctor's steps, which run on each; never shown.
    pub fn tokens_of(&self, credential: Credential<'_>) -> Vec<String> {
        self.pool.accounts(credential).iter().map(|account| account.token().to_string()).collect()
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

    /// Deletes a conversation kept earlier, by the id its first answer gave (marked with its
    /// account, see `routing.rs`), on the account it lives on.
    pub fn delete_conversation(&self, credential: Credential<'_>, id: &str) -> Result<(), Error> {
        self.delete_kept(credential, id)
    }

    /// Whether a kept conversation should take its next turn on its own account (not when that
    /// account is gone, dead, cooling down or spent while another of the caller's is ready).
    pub fn kept_chat_can_stay(&self, credential: Credential<'_>, id: &str) -> bool {
        self.stays_on_its_account(credential, id)
    }

    /// Bytes of chat requests sent to Kimi since the start (bodies and attachments).
    pub fn sent_bytes(&self) -> u64 {
        self.chats.sent_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Kept chats whose answer was stopped with `CancelChat` since the start.
    pub fn chats_cancelled(&self) -> u64 {
        self.chats.cancelled.load(std::sync::atomic::Ordering::Relaxed)
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

    /// [`Kimi::chat_counts`] of the chats run on the calling thread alone (each chat is created
    /// and deleted on the thread that runs it), whatever other requests do meanwhile.
    pub fn chat_counts_on_this_thread(&self) -> (u64, u64, u64) {
        let [to_delete, deleted, failed] = guard::counts_on_this_thread();
        (to_delete, deleted, failed)
    }
}
