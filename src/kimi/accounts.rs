//! Tokens as the caller or the operator gives them: a comma-separated credential (`t1,t2,t3`)
//! or a tokens file, and the fingerprints that name accounts without their tokens.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Every non-empty token of a comma-separated credential.
pub fn all(credential: &str) -> Vec<&str> {
    credential.split(',').map(str::trim).filter(|token| !token.is_empty()).collect()
}

/// A short name for an account that says nothing of its token: the first 8 hex digits of a
/// SHA-256 of it, for logs and `/token/check`.
pub fn fingerprint(token: &str) -> String {
    super::sha256::hex(format!("kimi-free-api account\0{token}").as_bytes())[..8].to_string()
}

/// The tokens of a tokens file (one per line; blank lines and `#` comments skipped), or of a
/// comma-separated list when `separator` is `,`. Duplicates are dropped. The error names the
/// entry that is wrong and why, never its text: it is probably a token.
pub fn tokens_file(text: &str, separator: char) -> Result<Vec<String>, String> {
    let entry = if separator == ',' { "entry" } else { "line" };
    let mut tokens: Vec<String> = Vec::new();
    for (n, line) in text.split(separator).enumerate() {
        let token = line.trim();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        let why = if token.contains(char::is_whitespace) || token.contains(',') {
            Some("holds more than one word (one token per entry)")
        } else if super::token::kind(token, 0).is_err() {
            Some("looks like a JWT but its payload cannot be read")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(format!("{entry} {}: {why}", n + 1));
        }
        if !tokens.iter().any(|t| t == token) {
            tokens.push(token.to_string());
        }
    }
    if tokens.is_empty() {
        return Err("no token in it".into());
    }
    Ok(tokens)
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

    #[test]
    fn tokens_files_skip_comments_and_say_which_line_is_wrong() {
        let text = "# accounts\n\nrt-one\n  rt-two  \n# rt-old\nrt-one\n";
        assert_eq!(tokens_file(text, '\n').unwrap(), ["rt-one", "rt-two"]);
        assert_eq!(tokens_file("rt-a, rt-b", ',').unwrap(), ["rt-a", "rt-b"]);
        let err = tokens_file("rt-one\nsecret-a secret-b\n", '\n').unwrap_err();
        assert_eq!(err, "line 2: holds more than one word (one token per entry)");
        let err = tokens_file("eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", '\n').unwrap_err();
        assert!(err.starts_with("line 1: looks like a JWT"), "{err}");
        assert_eq!(tokens_file("# nothing\n\n", '\n').unwrap_err(), "no token in it");
        assert_eq!(
            tokens_file("a,,b c", ',').unwrap_err(),
            "entry 3: holds more than one word (one token per entry)"
        );
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
