//! The HTTP client all backends share: one ureq agent (pooled connections), timeouts from the
//! configuration, and the translation of transport failures and error bodies into [`Error`].
//! Each account's calls go through a [`Via`]: the shared agents, through the account's proxy
//! when it has one (`proxy.rs`; ureq keeps the connections of each proxy apart). The agents
//! themselves use no proxy: the environment's `HTTPS_PROXY` and the like are not read.
//!
//! It also builds the agents that fetch attachment URLs on the caller's behalf: their address
//! check sits in the resolver ([`Guarded`]): ureq connects only to the addresses its resolver
//! returned, so every connection is checked, each redirect hop included, and a name cannot
//! answer one address to a check and another to the connect (DNS rebinding). The fetch agent
//! uses no proxy (a proxy would connect where the check cannot see) and follows at most
//! [`MAX_REDIRECTS`] redirects within [`FETCH_TIMEOUT`] in all.

use std::fmt;
use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use ureq::http::{Response, Uri};
use ureq::typestate::{WithBody, WithoutBody};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use ureq::{Agent, RequestBuilder};

use super::Error;
use super::browser::Browser;
use super::proxy::UpstreamProxy;

/// Longest a chat deletion may take.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest non-streamed upstream body read (token refresh, user, chat creation...).
const MAX_JSON_BODY: u64 = 1024 * 1024;

pub struct Upstream {
    agent: Agent,
    /// Deletes chats once [`Upstream::interrupt`] stopped `agent` (before, deletions reuse the
    /// connections `agent` pools, as a chat's own stream just left one).
    cleanup: Agent,
    interrupted: AtomicBool,
    /// Attachment fetches: public addresses only, and any address (`--allow-private-urls`).
    fetch_public: Agent,
    fetch_any: Agent,
    /// Who the calls say they come from: Kimi's web API is made for browsers.
    browser: Browser,
}

impl Upstream {
    /// `timeout` bounds both the wait for response headers and every silence while a body
    /// streams; the total length of a stream is not bounded (research answers run minutes).
    /// Every agent sends `browser`'s User-Agent.
    pub fn new(timeout: Duration, browser: &Browser) -> Self {
        let builder = || {
            Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_recv_response(Some(timeout))
                .timeout_per_read(Some(timeout))
                .user_agent(browser.user_agent.as_str())
                // Buffers sized for hundreds of concurrent streams rather than for bulk downloads
                // (ureq's default is 128 KiB each way per connection). The output buffer must hold
                // a request head (a kimi-auth JWT appears twice), the input one a response head.
                .input_buffer_size(8 * 1024)
                .output_buffer_size(8 * 1024)
                .max_response_header_size(8 * 1024)
                .max_idle_connections_per_host(32)
                // Only `--upstream-proxy` and the tokens file choose a proxy ([`Via`]).
                .proxy(None)
        };
        Upstream {
            agent: builder().build().new_agent(),
            // A deletion is small: it need not wait long, and it bounds how long a shutdown
            // waits for the chats of interrupted requests.
            cleanup: builder().timeout_global(Some(CLEANUP_TIMEOUT)).build().new_agent(),
            interrupted: AtomicBool::new(false),
            fetch_public: fetch_agent(false, &browser.user_agent),
            fetch_any: fetch_agent(true, &browser.user_agent),
            browser: browser.clone(),
        }
    }

    /// The agent that deletes chats: the shared one, or after [`Upstream::interrupt`] the one
    /// kept for deletions.
    fn cleanup(&self) -> &Agent {
        if self.interrupted.load(Ordering::Acquire) { &self.cleanup } else { &self.agent }
    }

    pub fn fetch_agent(&self, allow_private: bool) -> &Agent {
        if allow_private { &self.fetch_any } else { &self.fetch_public }
    }

    /// Ends every upstream call in flight at once (a blocked read fails) and refuses new ones,
    /// except chat deletions: at shutdown, so the chats of interrupted requests are deleted.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
        for agent in [&self.agent, &self.fetch_public, &self.fetch_any] {
            agent.clone().shutdown();
        }
    }
}

/// How one account's calls reach Kimi: the shared agents, through the account's proxy if it
/// has one. Every call to Kimi's hosts is made here; a failure is read with [`Via::failed`],
/// which tells a proxy that cannot be reached from Kimi's own trouble.
#[derive(Clone, Copy)]
pub struct Via<'a> {
    upstream: &'a Upstream,
    proxy: Option<&'a UpstreamProxy>,
    /// Calls on the agent that deletes chats (it survives a shutdown's interruption).
    cleanup: bool,
}

impl<'a> Via<'a> {
    pub fn new(upstream: &'a Upstream, proxy: Option<&'a UpstreamProxy>) -> Self {
        Via { upstream, proxy, cleanup: false }
    }

    /// The same account's calls on the agent that deletes chats.
    pub fn cleanup(self) -> Self {
        Via { cleanup: true, ..self }
    }

    fn agent(&self) -> &'a Agent {
        if self.cleanup { self.upstream.cleanup() } else { &self.upstream.agent }
    }

    fn through<B>(&self, builder: RequestBuilder<B>) -> RequestBuilder<B> {
        match self.proxy {
            Some(proxy) => builder.config().proxy(Some(proxy.ureq().clone())).build(),
            None => builder,
        }
    }

    pub fn get(&self, url: impl AsRef<str>) -> RequestBuilder<WithoutBody> {
        self.through(self.agent().get(url.as_ref()))
    }

    pub fn delete(&self, url: impl AsRef<str>) -> RequestBuilder<WithoutBody> {
        self.through(self.agent().delete(url.as_ref()))
    }

    pub fn post(&self, url: impl AsRef<str>) -> RequestBuilder<WithBody> {
        self.through(self.agent().post(url.as_ref()))
    }

    pub fn put(&self, url: impl AsRef<str>) -> RequestBuilder<WithBody> {
        self.through(self.agent().put(url.as_ref()))
    }

    /// What a failed call means ([`from_ureq`], or through the proxy [`UpstreamProxy::failed`]).
    pub fn failed(&self, error: ureq::Error) -> Error {
        match self.proxy {
            Some(proxy) => proxy.failed(error),
            None => from_ureq(error),
        }
    }

    /// The browser identity whose headers each call adds.
    pub fn browser(&self) -> &'a Browser {
        &self.upstream.browser
    }
}

/// Redirects an attachment fetch follows at most.
pub const MAX_REDIRECTS: u32 = 3;
/// The whole fetch of one attachment: every connection, redirect and the body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A resolver that refuses names with an address `allowed` rejects; with it, every address an
/// agent connects to has been checked.
#[derive(Debug)]
pub struct Guarded<R> {
    pub inner: R,
    pub allowed: fn(IpAddr) -> bool,
}

/// Why a fetch was refused before it connected.
#[derive(Debug)]
pub struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attachment URLs on private or local addresses are refused ({})", self.0)
    }
}

impl std::error::Error for Refused {}

impl<R: Resolver> Resolver for Guarded<R> {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if addrs.iter().all(|a| (self.allowed)(a.ip())) {
            return Ok(addrs);
        }
        let host = uri.host().unwrap_or_default().to_string();
        Err(ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, Refused(host))))
    }
}

/// The agent attachment fetches use: public addresses only unless `allow_private`, at most
/// [`MAX_REDIRECTS`] redirects, [`FETCH_TIMEOUT`] in all, no proxy, the same User-Agent as
/// the calls to Kimi.
pub fn fetch_agent(allow_private: bool, user_agent: &str) -> Agent {
    let allowed = if allow_private { |_| true } else { is_public };
    guarded_agent(Guarded { inner: DefaultResolver::default(), allowed }, FETCH_TIMEOUT, user_agent)
}

/// [`fetch_agent`] with the resolver and time bound given (tests put a double under the guard).
pub fn guarded_agent<R: Resolver>(resolver: Guarded<R>, timeout: Duration, user_agent: &str) -> Agent {
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(MAX_REDIRECTS)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(Duration::from_secs(10)))
        .proxy(None)
        .user_agent(user_agent)
        // Attachments come from any host, rarely the same one twice: a kept connection saves
        // little, and one the host already closed fails the next fetch ("peer disconnected").
        .max_idle_connections(0)
        .build();
    Agent::with_parts(config, DefaultConnector::default(), resolver)
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 224)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Reads a small JSON body, or turns an error status into an [`Error`].
pub fn read_json<T: for<'de> Deserialize<'de>>(response: Response<ureq::Body>) -> Result<T, Error> {
    if !response.status().is_success() {
        return Err(error_of(response));
    }
    let body = read_small(response)?;
    serde_json::from_slice(&body).map_err(|e| Error::Upstream(format!("unexpected answer from Kimi: {e}")))
}

/// Reads a small body whole (bounded by [`MAX_JSON_BODY`]).
pub fn read_small(response: Response<ureq::Body>) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    response.into_body().into_reader().take(MAX_JSON_BODY).read_to_end(&mut body).map_err(|e| from_io(&e))?;
    Ok(body)
}

/// The error an unsuccessful response stands for, with the wait its `Retry-After` header asks
/// (in seconds) on a rate limit or an overload.
pub fn error_of(response: Response<ureq::Body>) -> Error {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    let body = match read_small(response) {
        Ok(body) => body,
        Err(error) => return error,
    };
    match error_from_body(status, &body) {
        Error::RateLimited(why, None) => Error::RateLimited(why, retry_after),
        Error::Overloaded(why, None) => Error::Overloaded(why, retry_after),
        other => other,
    }
}

/// The legacy error body `{"error_type","message"}`; Connect's `{"code","message"}` is read too.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Maps an upstream error status and body onto [`Error`].
pub fn error_from_body(status: u16, body: &[u8]) -> Error {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = if parsed.message.is_empty() { format!("HTTP {status}") } else { parsed.message.clone() };
    classify(status, if parsed.error_type.is_empty() { &parsed.code } else { &parsed.error_type }, message)
}

/// Maps an upstream error type (legacy `error_type` or Connect `code`) and status onto [`Error`].
pub fn classify(status: u16, error_type: &str, message: String) -> Error {
    match error_type {
        "auth.token.invalid" | "unauthenticated" | "permission_denied" => {
            return Error::Unauthorized(message);
        }
        "chat.user_stream_pushing" => {
            return Error::RateLimited(
                format!("another answer is streaming on this Kimi account ({message})"),
                None,
            );
        }
        "chat.not_found" | "not_found" => return Error::NotFound(message),
        "resource_exhausted" => return Error::RateLimited(message, None),
        "invalid_argument" => return Error::Rejected(message),
        kind if kind.contains("token_length")
            || kind.contains("too_long")
            || kind.contains("context_length") =>
        {
            return Error::TooLong(message);
        }
        "openai.completion.stream" | "unavailable" | "deadline_exceeded" => {
            return Error::Overloaded(message, None);
        }
        _ => {}
    }
    match status {
        401 | 403 => Error::Unauthorized(message),
        404 => Error::NotFound(message),
        429 => Error::RateLimited(message, None),
        400..=499 => Error::Rejected(message),
        503 => Error::Overloaded(message, None),
        _ if error_type.is_empty() => Error::Upstream(format!("Kimi answered HTTP {status}: {message}")),
        _ => Error::Upstream(format!("{error_type}: {message}")),
    }
}

/// Maps a ureq failure (connect, send, headers) onto [`Error`].
pub fn from_ureq(error: ureq::Error) -> Error {
    match error {
        ureq::Error::Timeout(_) => Error::Timeout,
        ureq::Error::Io(e) => from_io(&e),
        other => Error::Transport(other.to_string()),
    }
}

/// Maps a failed read of a streaming body onto [`Error`].
pub fn from_io(error: &io::Error) -> Error {
    if matches!(error.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        return Error::Timeout;
    }
    if let Some(inner) = error.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
        if matches!(inner, ureq::Error::Timeout(_)) {
            return Error::Timeout;
        }
        return Error::Transport(inner.to_string());
    }
    Error::Transport(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn error_bodies_map_to_kinds() {
        let body = br#"{"error_type":"auth.token.invalid","message":"expired"}"#;
        assert_eq!(error_from_body(401, body), Error::Unauthorized("expired".into()));
        let body = br#"{"error_type":"chat.user_stream_pushing","message":"busy"}"#;
        assert!(matches!(error_from_body(400, body), Error::RateLimited(..)));
        assert!(matches!(error_from_body(502, b"<html>"), Error::Upstream(m) if m.contains("HTTP 502")));
        assert!(matches!(error_from_body(503, b""), Error::Overloaded(..)));
        assert!(matches!(error_from_body(429, b"{}"), Error::RateLimited(..)));
        let body = br#"{"code":"unauthenticated","message":"token expired"}"#;
        assert!(matches!(error_from_body(401, body), Error::Unauthorized(_)));
    }

    #[test]
    fn kimis_length_error_is_a_context_length_error() {
        let body = br#"{"error_type":"openai.completion.token_length_too_long","message":"too long"}"#;
        assert_eq!(error_from_body(400, body), Error::TooLong("too long".into()));
        assert_eq!(Error::TooLong("x".into()).kind(), crate::chat::ErrorKind::ContextLength);
    }

    #[test]
    fn timeouts_are_recognised_in_io_errors() {
        assert_eq!(from_io(&io::Error::new(io::ErrorKind::TimedOut, "t")), Error::Timeout);
        assert!(matches!(from_io(&io::Error::new(io::ErrorKind::ConnectionReset, "r")), Error::Transport(_)));
    }
}
