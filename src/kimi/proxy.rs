//! Upstream proxies: every call to Kimi's hosts (chats, logins and refreshes, uploads, the
//! catalogue, the credits) may leave through an HTTP CONNECT or SOCKS5 proxy, the server's
//! (`--upstream-proxy`, `UPSTREAM_PROXY`) or an account's own (`proxy=URL` on its line of the
//! tokens file, [`super::accounts::tokens_file`]). Attachment fetches from the caller's URLs
//! never use one: their address check (`http.rs`) must see where they connect.
//!
//! A proxy URL is `SCHEME://[USER[:PASSWORD]@]HOST[:PORT]`: SCHEME `http` or `https` (HTTP
//! CONNECT, to the proxy in clear or over TLS), `socks5` (Kimi's host names resolved here) or
//! `socks5h` (resolved by the proxy); USER and PASSWORD percent-encoded where they hold
//! `@ : / % #`; PORT by default 80, 443 or 1080. It is shown only as `SCHEME://HOST:PORT`
//! ([`UpstreamProxy::shown`], also its `Debug` and `Display`): the credentials appear in no
//! log, error or metric. A proxy that cannot be reached fails the call with
//! [`Error::ProxyUnreachable`]: there is never a silent direct connection.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{PoisonError, RwLock};

use ureq::Timeout;

use super::Error;

/// A proxy for the calls to Kimi, parsed and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamProxy {
    inner: ureq::Proxy,
    /// `SCHEME://HOST:PORT`, without credentials.
    shown: String,
}

/// What a proxy URL must look like (said when one is refused; the URL itself is never echoed:
/// it may hold a password).
pub const PROXY_GRAMMAR: &str = "expected a proxy URL SCHEME://[USER[:PASSWORD]@]HOST[:PORT] with SCHEME \
                                 http, https, socks5 or socks5h";

impl UpstreamProxy {
    /// Parses a proxy URL; the error says what is wrong without repeating the URL.
    pub fn parse(url: &str) -> Result<Self, &'static str> {
        let (scheme, rest) = url.split_once("://").ok_or(PROXY_GRAMMAR)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            "socks5" | "socks5h" => 1080,
            _ => return Err("unsupported proxy scheme: expected http, https, socks5 or socks5h"),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#'])
            || authority.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("a proxy URL has no path, query or spaces: SCHEME://[USER[:PASSWORD]@]HOST[:PORT]");
        }
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
        let (host, port) = split_port(host_port)?;
        if host.is_empty() || host == "[]" {
            return Err("the proxy URL has no host");
        }
        let port = port.unwrap_or(default_port);
        let inner = ureq::Proxy::new(&format!("{scheme}://{authority}"))
            .map_err(|_| "the proxy URL cannot be read (percent-encode @ : / % # in USER and PASSWORD)")?;
        Ok(UpstreamProxy { inner, shown: format!("{scheme}://{host}:{port}") })
    }

    /// `SCHEME://HOST:PORT`: what logs, errors, `/token/check` and `doctor` say of it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub(super) fn ureq(&self) -> &ureq::Proxy {
        &self.inner
    }

    /// What a failed call through this proxy means: a connection to the proxy that could not
    /// be made (or that it refused) is [`Error::ProxyUnreachable`]; anything else keeps its
    /// usual meaning, said to have gone through the proxy.
    pub(super) fn failed(&self, error: ureq::Error) -> Error {
        let why = match &error {
            ureq::Error::HostNotFound => "a host name did not resolve".to_string(),
            ureq::Error::ConnectionFailed => "connection failed".to_string(),
            ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => "no connection in time".to_string(),
            ureq::Error::ConnectProxyFailed(reason) => reason.clone(),
            ureq::Error::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                "it refused the user name or password".to_string()
            }
            ureq::Error::Io(e) if unreachable(e) => e.kind().to_string(),
            _ => {
                return match super::http::from_ureq(error) {
                    Error::Transport(why) => {
                        Error::Transport(format!("{why} (through the proxy {})", self.shown))
                    }
                    other => other,
                };
            }
        };
        Error::ProxyUnreachable(format!("{} ({why})", self.shown))
    }
}

/// Whether an I/O error is one of a connection that could not be made at all.
fn unreachable(error: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable | NotFound
    )
}

/// The host and the port, if given, of `HOST[:PORT]` (an IPv6 host in brackets).
fn split_port(host_port: &str) -> Result<(&str, Option<u16>), &'static str> {
    let bad_port = "the proxy URL's port is not a number from 1 to 65535";
    let (host, port) = match host_port.rfind(':') {
        Some(at) if !host_port[at..].contains(']') => (&host_port[..at], Some(&host_port[at + 1..])),
        _ => (host_port, None),
    };
    let port = port.map(|p| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or(bad_port)).transpose()?;
    Ok((host, port))
}

impl fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UpstreamProxy({})", self.shown)
    }
}

impl fmt::Display for UpstreamProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Which proxy each account's calls take: its own from the tokens file, else the server's.
pub(super) struct Proxies {
    global: Option<UpstreamProxy>,
    accounts: RwLock<HashMap<String, UpstreamProxy>>,
}

impl Proxies {
    pub(super) fn new(global: Option<UpstreamProxy>) -> Self {
        Proxies { global, accounts: RwLock::default() }
    }

    /// The proxy of the account of `token`, if any.
    pub(super) fn of(&self, token: &str) -> Option<UpstreamProxy> {
        let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
        accounts.get(token).or(self.global.as_ref()).cloned()
    }

    /// The accounts' own proxies, replacing those known (a reload of the tokens file).
    pub(super) fn set<'a>(&self, own: impl Iterator<Item = (&'a str, &'a UpstreamProxy)>) {
        let own = own.map(|(token, proxy)| (token.to_string(), proxy.clone())).collect();
        *self.accounts.write().unwrap_or_else(PoisonError::into_inner) = own;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_shown_without_credentials() {
        for (url, shown) in [
            ("http://127.0.0.1:3128", "http://127.0.0.1:3128"),
            ("https://user:s3cret@proxy.example:8443/", "https://proxy.example:8443"),
            ("socks5://alice:pa%40ss@10.0.0.1", "socks5://10.0.0.1:1080"),
            ("SOCKS5H://bob@[::1]:9050", "socks5h://[::1]:9050"),
            ("http://proxy.example", "http://proxy.example:80"),
        ] {
            let proxy = UpstreamProxy::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(proxy.shown(), shown);
            assert_eq!(format!("{proxy:?} {proxy}"), format!("UpstreamProxy({shown}) {shown}"));
        }
        let proxy = UpstreamProxy::parse("socks5://alice:pa%40ss@10.0.0.1").unwrap();
        assert_eq!((proxy.ureq().username(), proxy.ureq().password()), (Some("alice"), Some("pa@ss")));
    }

    #[test]
    fn bad_proxy_urls_are_refused_without_echoing_them() {
        for url in [
            "ftp://user:hunter2@host:21",
            "socks4://user:hunter2@host:1080",
            "user:hunter2@host:3128",
            "http://user:hunter2@host:99999",
            "http://user:hunter2@host:0",
            "http://user:hunter2@/",
            "http://user:hunter2@host:3128/path",
            "http://user:hunter2@ho st:3128",
        ] {
            let why = UpstreamProxy::parse(url).expect_err(url);
            assert!(!why.contains("hunter2") && !why.contains("user"), "{url}: {why}");
        }
    }

    #[test]
    fn a_refused_connection_to_the_proxy_is_proxy_unreachable() {
        let proxy = UpstreamProxy::parse("socks5://alice:hunter2@127.0.0.1:9").unwrap();
        let refused = ureq::Error::Io(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        let error = proxy.failed(refused);
        assert!(matches!(error, Error::ProxyUnreachable(_)), "{error:?}");
        let text = error.to_string();
        assert!(text.starts_with("proxy unreachable: socks5://127.0.0.1:9 ("), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("alice"), "{text}");
        let tunnel = proxy.failed(ureq::Error::ConnectProxyFailed("proxy server responded 407".into()));
        assert!(matches!(tunnel, Error::ProxyUnreachable(m) if m.contains("407")));
        assert_eq!(proxy.failed(ureq::Error::Timeout(Timeout::RecvResponse)), Error::Timeout);
        let cut = proxy.failed(ureq::Error::Io(io::Error::new(io::ErrorKind::ConnectionReset, "reset")));
        assert!(matches!(cut, Error::Transport(m) if m.contains("through the proxy socks5://127.0.0.1:9")));
    }

    #[test]
    fn an_accounts_own_proxy_wins_over_the_servers() {
        let global = UpstreamProxy::parse("http://10.0.0.1:3128").unwrap();
        let own = UpstreamProxy::parse("socks5h://10.0.0.2:1080").unwrap();
        let proxies = Proxies::new(Some(global.clone()));
        proxies.set([("rt-a", &own)].into_iter());
        assert_eq!(proxies.of("rt-a"), Some(own));
        assert_eq!(proxies.of("rt-b"), Some(global));
        proxies.set(std::iter::empty());
        assert_eq!(Proxies::new(None).of("rt-a"), None);
        assert_eq!(proxies.of("rt-a").unwrap().shown(), "http://10.0.0.1:3128");
    }
}
