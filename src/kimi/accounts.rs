//! The caller's credential as a pool of Kimi accounts: `t1,t2,t3` picks one per request.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use super::Error;

/// Every non-empty token of a comma-separated credential.
pub fn all(credential: &str) -> Vec<&str> {
    credential.split(',').map(str::trim).filter(|token| !token.is_empty()).collect()
}

/// A short name for an account that says nothing of its token: the first 8 hex digits of a
/// SHA-256 of it, for logs and `/token/check`.
pub fn fingerprint(token: &str) -> String {
    super::sha256::hex(format!("kimi-free-api account\0{token}").as_bytes())[..8].to_string()
}

/// One token of the pool, chosen uniformly at random.
pub fn pick(credential: &str) -> Result<&str, Error> {
    let tokens = all(credential);
    if tokens.is_empty() {
        return Err(Error::Unauthorized("no Kimi token was given".into()));
    }
    Ok(tokens[random_below(tokens.len())])
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
        assert!(matches!(pick(" , "), Err(Error::Unauthorized(_))));
    }

    #[test]
    fn picks_every_token_eventually() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(pick("a,b,c").unwrap());
        }
        assert_eq!(seen.len(), 3);
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
