//! One account opened: its token's kind (read from the token, or found by trying it, once),
//! its region and its fingerprint ([`Resolved`]); then how it reaches Kimi ([`Login`]), the one
//! place where the token's kind picks the API and the login. On an opened account the front
//! door runs a chat ([`Kimi::run`]), checks the token ([`Kimi::probe`], for `/token/check`) and
//! makes unary calls ([`Kimi::on_connect`]: the catalogue, the credits).

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};

use super::connect::credits::Credits;
use super::guard::{Halt, Progress};
use super::http::Via;
use super::proxy::UpstreamProxy;
use super::token::{self, Claims, ConnectIdentity, Region, TokenKind};
use super::{Backend, Error, Kimi, RegionChoice, attachment, connect, fingerprint, legacy, session};
use crate::chat::{self, Sink};

/// Resolved kinds remembered at most (the map is cleared past this).
const MAX_RESOLVED: usize = 4096;

/// The token of one account, of a known kind.
pub(super) struct Resolved<'t> {
    pub(super) token: &'t str,
    /// The account's fingerprint (what Connect's per-account memory is keyed by).
    pub(super) fingerprint: String,
    pub(super) kind: TokenKind,
    region: Region,
    /// The kind was found by trying (the token itself did not tell).
    guessed: bool,
    /// The proxy its calls go through: its own from the tokens file, else the server's.
    pub(super) proxy: Option<UpstreamProxy>,
}

impl Resolved<'_> {
    /// The API the account's chats run on.
    pub(super) fn backend(&self) -> Backend {
        match self.kind {
            TokenKind::LegacyRefresh => Backend::Legacy,
            _ => Backend::Connect,
        }
    }
}

/// How an opened account reaches Kimi.
enum Login<'s> {
    /// The legacy API, with the refresh token itself (its session cache is the backend's).
    Legacy,
    Connect(Box<ConnectLogin<'s>>),
}

/// A login on the Connect API: the account's region and cookie form, the bearer token and the
/// identity headers.
struct ConnectLogin<'s> {
    ctx: connect::Context<'s>,
    token: Cow<'s, str>,
    who: Cow<'s, ConnectIdentity>,
    /// A cached 2026 web login, which Kimi may refuse although it was cached: then it is
    /// renewed once.
    renewable: bool,
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
    /// How the account takes a client's tools (`tool_mode.rs`), when its kind is known.
    pub tool_mode: Option<String>,
    /// The proxy the check went through, as `SCHEME://HOST:PORT` (never its credentials).
    pub proxy: Option<String>,
}

impl Kimi {
    /// The account of one token: its kind read from the token, or, for a token of no known
    /// shape, found by trying it as a 2026 refresh token and then as a legacy one (once).
    pub(super) fn account<'t>(&self, token: &'t str) -> Result<Resolved<'t>, Error> {
        let claims = Claims::of(token);
        let region = match (self.settings.region, claims.as_ref().and_then(Claims::region)) {
            (RegionChoice::Cn, _) | (RegionChoice::Auto, None | Some(Region::Cn)) => Region::Cn,
            (RegionChoice::Global, _) | (RegionChoice::Auto, Some(Region::Global)) => Region::Global,
        };
        let kind = token::kind(token, session::now_ms() / 1000)?;
        let guessed = kind == TokenKind::Unknown;
        let proxy = self.proxies.of(token);
        let kind = match kind {
            TokenKind::Unknown => self.resolve(token, region, proxy.as_ref())?,
            TokenKind::WebAccess { identity, expires } => {
                note_access_token(token, expires);
                TokenKind::WebAccess { identity, expires }
            }
            known => known,
        };
        Ok(Resolved { token, fingerprint: fingerprint(token), kind, region, guessed, proxy })
    }

    fn resolve(
        &self,
        token: &str,
        region: Region,
        proxy: Option<&UpstreamProxy>,
    ) -> Result<TokenKind, Error> {
        let remembered = self.resolved.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned();
        if let Some(kind) = remembered {
            return Ok(kind);
        }
        let account = fingerprint(token);
        let ctx = self.connect_in(region, false, &account, proxy);
        let kind = match self.web_sessions.get(token, |current| connect::login::refresh(ctx, current)) {
            Ok(_) => TokenKind::WebRefresh,
            Err(Error::Unauthorized(_)) => TokenKind::LegacyRefresh,
            // The account's proxy is down: nothing was learnt of the token.
            Err(error @ Error::ProxyUnreachable(_)) => return Err(error),
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

    /// How the account reaches Kimi: the one match on its token's kind. A 2026 web login comes
    /// from the session cache (renewed when due); a web access token must still be alive.
    fn login<'s>(&'s self, account: &'s Resolved<'_>) -> Result<Login<'s>, Error> {
        let token = Cow::Borrowed(account.token);
        let login = match &account.kind {
            TokenKind::LegacyRefresh => return Ok(Login::Legacy),
            TokenKind::KimiAuth(who) => ConnectLogin {
                ctx: self.connect(account, true),
                token,
                who: Cow::Borrowed(who),
                renewable: false,
            },
            TokenKind::WebAccess { identity, expires } => {
                access_token_alive(*expires)?;
                ConnectLogin {
                    ctx: self.connect(account, false),
                    token,
                    who: Cow::Borrowed(identity),
                    renewable: false,
                }
            }
            TokenKind::WebRefresh | TokenKind::Unknown => self.web_login(account)?,
        };
        Ok(Login::Connect(Box::new(login)))
    }

    /// A 2026 web login from the session cache (a rotation is kept, not burnt).
    fn web_login<'s>(&'s self, account: &'s Resolved<'_>) -> Result<ConnectLogin<'s>, Error> {
        let ctx = self.connect(account, false);
        let (session, fresh) =
            self.web_sessions.get(account.token, |current| connect::login::refresh(ctx, current))?;
        let who = Cow::Owned(web_identity(account.token, &session));
        Ok(ConnectLogin { ctx, token: Cow::Owned(session.access_token), who, renewable: !fresh })
    }

    /// A chat on the account. A cached 2026 web login that Kimi refuses is renewed once, while
    /// nothing reached the client.
    pub(super) fn run(
        &self,
        account: &Resolved<'_>,
        request: &chat::Request,
        sink: &mut Progress,
    ) -> Result<(), Halt> {
        let login = match self.login(account)? {
            Login::Legacy => {
                // The legacy API declares no tools: they go in the user's turn.
                if request.tool_prompt.is_some() {
                    sink.send(chat::Event::ToolsOffered(chat::ToolOffer::Prompt)).go()?;
                }
                let request = chat::tools::in_turn(request);
                return legacy::chat(self.legacy(account), account.token, &request, sink).map_err(|halt| {
                    match halt {
                        Halt::Failed(error) => Halt::Failed(refused_both(account, error)),
                        stopped => stopped,
                    }
                });
            }
            Login::Connect(login) => login,
        };
        match connect::chat(login.ctx, &login.token, &login.who, request, sink) {
            Err(Halt::Failed(Error::Unauthorized(_))) if login.renewable && !sink.delivered() => {
                self.web_sessions.invalidate(account.token);
                let renewed = self.web_login(account)?;
                connect::chat(renewed.ctx, &renewed.token, &login.who, request, sink)
            }
            other => other,
        }
    }

    /// Deletes a kept chat of the account.
    pub(super) fn delete_chat(&self, account: &Resolved<'_>, chat_id: &str) -> Result<(), Error> {
        match self.login(account)? {
            Login::Legacy => legacy::delete_chat(self.legacy(account), account.token, chat_id),
            Login::Connect(login) => connect::delete_chat(login.ctx, &login.token, &login.who, chat_id),
        }
    }

    /// Whether Kimi accepts the account's token: a read-only call with the login a chat would use.
    fn probe(&self, account: &Resolved<'_>) -> Result<(), Error> {
        match self.login(account)? {
            Login::Legacy => legacy::check_token(self.legacy(account), account.token)
                .map_err(|error| refused_both(account, error)),
            Login::Connect(login) => connect::check_token(login.ctx, &login.token, &login.who),
        }
    }

    /// Runs a unary call on the Connect API with the account's current login (the same login
    /// cache as chats: a rotation it causes is kept, not burnt); `None` for a legacy token.
    pub(super) fn on_connect<T>(
        &self,
        account: &Resolved<'_>,
        call: impl Fn(connect::Context<'_>, &str, &ConnectIdentity) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match self.login(account)? {
            Login::Legacy => Ok(None),
            Login::Connect(login) => call(login.ctx, &login.token, &login.who).map(Some),
        }
    }

    pub(super) fn check_one(&self, token: &str) -> TokenCheck {
        let account = self.account(token);
        let kind = account.as_ref().map_or("unknown", |a| a.kind.name());
        let expires = match &account {
            Ok(Resolved { kind: TokenKind::WebAccess { expires, .. }, .. }) => Some(*expires),
            _ => None,
        };
        let tool_mode = account.as_ref().ok().map(|a| match a.backend() {
            Backend::Legacy => "prompt (the legacy API declares no tools)".to_string(),
            _ => self.tool_modes.describe(&a.fingerprint),
        });
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
            tool_mode,
            proxy: self.proxies.of(token).map(|proxy| proxy.shown().to_string()),
        }
    }

    /// When an account's token stops working: a 2026 refresh token's newest rotation, else
    /// the token's own `exp`.
    pub(super) fn expiry(&self, token: &str, kind: &str) -> Option<u64> {
        let newest =
            (kind == TokenKind::WebRefresh.name()).then(|| self.web_sessions.newest_refresh_token(token));
        let current = newest.flatten().unwrap_or_else(|| token.to_string());
        token::claim_u64(&current, "exp")
    }

    fn legacy<'s>(&'s self, account: &'s Resolved<'_>) -> legacy::Context<'s> {
        legacy::Context {
            upstream: Via::new(&self.upstream, account.proxy.as_ref()),
            base: &self.settings.legacy_base_url,
            sessions: &self.legacy_sessions,
            fetch: self.fetch(),
            chats: &self.chats,
        }
    }

    fn connect<'s>(&'s self, account: &'s Resolved<'_>, kimi_auth_cookie: bool) -> connect::Context<'s> {
        self.connect_in(account.region, kimi_auth_cookie, &account.fingerprint, account.proxy.as_ref())
    }

    fn connect_in<'s>(
        &'s self,
        region: Region,
        kimi_auth_cookie: bool,
        account: &'s str,
        proxy: Option<&'s UpstreamProxy>,
    ) -> connect::Context<'s> {
        let settings = &self.settings;
        let (base, auth_base) = match region {
            Region::Cn => (&settings.connect_base_url, &settings.auth_base_url),
            Region::Global => (&settings.global_connect_base_url, &settings.global_auth_base_url),
        };
        connect::Context {
            upstream: Via::new(&self.upstream, proxy),
            base,
            auth_base,
            parents: &self.parents,
            memory: &self.memory,
            tools: &self.tool_modes,
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
