//! Tokens as the caller or the operator gives them: a comma-separated credential (`t1,t2,t3`)
//! or a tokens file (each line a token and, if it has one, its proxy), and the fingerprints
//! that name accounts without their tokens.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use super::proxy::UpstreamProxy;

/// Every non-empty token of a comma-separated credential.
pub fn all(credential: &str) -> Vec<&str> {
    credential.split(',').map(str::trim).filter(|token| !token.is_empty()).collect()
}

/// A short name for an account that says nothing of its token: the first 8 hex digits of a
/// SHA-256 of it, for logs and `/token/check`.
pub fn fingerprint(token: &str) -> String {
    super::sha256::hex(format!("kimi-free-api account\0{token}").as_bytes())[..8].to_string()
}

/// One account of the server's pool: its token and, when its line names one, its own proxy.
#[derive(Clone, PartialEq)]
pub struct Entry {
    pub token: String,
    pub proxy: Option<UpstreamProxy>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entry(account {}, proxy {:?})", fingerprint(&self.token), self.proxy)
    }
}

/// The accounts of a tokens file, or of a comma-separated list when `separator` is `,`.
/// Duplicates are dropped. The error names the entry that is wrong and why, never its text:
/// it is probably a token, or a proxy's password.
///
/// The grammar, one entry per line (or per comma):
///
/// ```text
/// entry   = blank | comment | account
/// comment = "#" any text
/// account = TOKEN [ 1*WSP "proxy=" PROXY-URL ]
/// ```
///
/// TOKEN is any Kimi token (no white space, no comma); PROXY-URL is
/// `SCHEME://[USER[:PASSWORD]@]HOST[:PORT]` with SCHEME `http`, `https`, `socks5` or `socks5h`
/// (`proxy.rs`): that account's calls to Kimi go through it instead of `--upstream-proxy`.
pub fn tokens_file(text: &str, separator: char) -> Result<Vec<Entry>, String> {
    let entry = if separator == ',' { "entry" } else { "line" };
    let mut entries: Vec<Entry> = Vec::new();
    for (n, line) in text.split(separator).enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = parse_entry(line).map_err(|why| format!("{entry} {}: {why}", n + 1))?;
        match entries.iter().find(|e| e.token == parsed.token) {
            Some(seen) if seen.proxy != parsed.proxy => {
                return Err(format!("{entry} {}: the same token as before with another proxy", n + 1));
            }
            Some(_) => {}
            None => entries.push(parsed),
        }
    }
    if entries.is_empty() {
        return Err("no token in it".into());
    }
    Ok(entries)
}

/// One account's entry: `TOKEN [proxy=URL]`.
fn parse_entry(line: &str) -> Result<Entry, String> {
    let mut words = line.split_whitespace();
    let token = words.next().unwrap_or_default();
    let mut proxy = None;
    for word in words {
        match word.strip_prefix("proxy=") {
            Some(_) if proxy.is_some() => return Err("names proxy= twice".into()),
            Some(url) => proxy = Some(UpstreamProxy::parse(url).map_err(|why| format!("proxy=: {why}"))?),
            None => {
                return Err(
                    "holds more than one token, or an option other than proxy=URL (TOKEN [proxy=URL])".into(),
                );
            }
        }
    }
    if token.contains(',') || token.starts_with("proxy=") {
        return Err("holds more than one token, or no token before proxy= (TOKEN [proxy=URL])".into());
    }
    if super::token::kind(token, 0).is_err() {
        return Err("looks like a JWT but its payload cannot be read".into());
    }
    Ok(Entry { token: token.to_string(), proxy })
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish() | 1);
}

/// A xorshift draw below `n`: spreading load needs no cryptographic randomness.
fn random_below(n: usize) -> usize {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x % n as u64) as usize
    })
}

/// A random fraction in `[0, 1)`, in steps of a millionth (pacing's jitter).
pub fn random_fraction() -> f64 {
    random_below(1_000_000) as f64 / 1e6
}

/// A random decimal id of `digits` digits starting with `lead`, like the web client's
/// device and session ids.
pub fn random_digits(lead: char, digits: usize) -> String {
    let mut id = String::with_capacity(digits);
    id.push(lead);
    while id.len() < digits {
        id.push(char::from(b'0' + random_below(10) as u8));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_trims_the_pool() {
        assert_eq!(all(" a, b ,,c "), vec!["a", "b", "c"]);
        assert!(all(" , ").is_empty());
    }

    fn tokens(entries: Vec<Entry>) -> Vec<String> {
        entries.into_iter().map(|e| e.token).collect()
    }

    #[test]
    fn tokens_files_skip_comments_and_say_which_line_is_wrong() {
        let text = "# accounts\n\nrt-one\n  rt-two  \n# rt-old\nrt-one\n";
        assert_eq!(tokens(tokens_file(text, '\n').unwrap()), ["rt-one", "rt-two"]);
        assert_eq!(tokens(tokens_file("rt-a, rt-b", ',').unwrap()), ["rt-a", "rt-b"]);
        let err = tokens_file("rt-one\nsecret-a secret-b\n", '\n').unwrap_err();
        assert_eq!(
            err,
            "line 2: holds more than one token, or an option other than proxy=URL (TOKEN [proxy=URL])"
        );
        let err = tokens_file("eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", '\n').unwrap_err();
        assert!(err.starts_with("line 1: looks like a JWT"), "{err}");
        assert_eq!(tokens_file("# nothing\n\n", '\n').unwrap_err(), "no token in it");
        assert!(tokens_file("a,,b c", ',').unwrap_err().starts_with("entry 3: holds more than one token"));
    }

    #[test]
    fn tokens_file_lines_may_name_their_proxy() {
        let text = "rt-one   proxy=socks5h://alice:hunter2@10.0.0.2:1080\nrt-two\nrt-three\tproxy=http://10.0.0.3:3128\n";
        let entries = tokens_file(text, '\n').unwrap();
        let proxies: Vec<Option<&str>> =
            entries.iter().map(|e| e.proxy.as_ref().map(|p| p.shown())).collect();
        assert_eq!(tokens(entries.clone()), ["rt-one", "rt-two", "rt-three"]);
        assert_eq!(proxies, [Some("socks5h://10.0.0.2:1080"), None, Some("http://10.0.0.3:3128")]);
        let shown = format!("{entries:?}");
        assert!(!shown.contains("rt-one") && !shown.contains("hunter2"), "{shown}");
        let listed = tokens_file("rt-a proxy=socks5://10.0.0.4:1080, rt-b", ',').unwrap();
        assert_eq!(listed[0].proxy.as_ref().map(|p| p.shown()), Some("socks5://10.0.0.4:1080"));
    }

    #[test]
    fn bad_proxy_lines_are_refused_with_their_number_and_never_their_text() {
        for (text, why) in [
            ("rt-ok\nrt-secret proxy=ftp://alice:hunter2@h:21\n", "line 2: proxy=: unsupported proxy scheme"),
            ("rt-secret proxy=http://alice:hunter2@h:99999\n", "line 1: proxy=: the proxy URL's port"),
            ("rt-secret proxy=http://h:1 proxy=http://h:2\n", "line 1: names proxy= twice"),
            ("rt-secret prxy=http://alice:hunter2@h:1\n", "line 1: holds more than one token, or an option"),
            ("proxy=http://alice:hunter2@h:1\n", "line 1: holds more than one token, or no token"),
            ("rt-secret proxy=http://h:1\nrt-secret proxy=http://h:2\n", "line 2: the same token as before"),
        ] {
            let err = tokens_file(text, '\n').unwrap_err();
            assert!(err.starts_with(why), "{text:?}: {err}");
            assert!(
                !err.contains("rt-secret") && !err.contains("hunter2") && !err.contains("alice"),
                "{err}"
            );
        }
    }

    #[test]
    fn fingerprints_are_short_stable_and_say_nothing_of_the_token() {
        let token = "eyJhbGciOiJIUzI1NiJ9.secret-payload.sig";
        let fp = fingerprint(token);
        assert_eq!(fp.len(), 8);
        assert_eq!(fp, fingerprint(token));
        assert_ne!(fp, fingerprint("another"));
        assert!(!token.contains(&fp) && fp.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn digit_ids_have_the_asked_shape() {
        let id = random_digits('7', 19);
        assert_eq!(id.len(), 19);
        assert!(id.starts_with('7') && id.bytes().all(|b| b.is_ascii_digit()));
    }
}
