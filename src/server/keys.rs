//! The server's API keys (`--api-keys`): in server-pool mode, what a caller presents instead of
//! a Kimi token; in any mode, what `/metrics` and the accounts part of `/healthz` ask for.
//!
//! Keys are kept only as SHA-256 digests and compared digest against digest, every key every
//! time, folding the differences without an early exit: how long a refusal takes says nothing
//! of how close a guess was, nor of a key's length.

use tiny_http::Request;

use super::exchange;
use crate::kimi::sha256;

pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    pub fn new(keys: &[String]) -> ApiKeys {
        ApiKeys { digests: keys.iter().map(|key| sha256::digest(key.as_bytes())).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys.
    pub fn admits(&self, presented: &str) -> bool {
        let digest = sha256::digest(presented.as_bytes());
        let mut found = 0u8;
        for key in &self.digests {
            let diff = key.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= u8::from(diff == 0);
        }
        found == 1
    }

    /// Whether the request may see what the keys guard: no keys are set, or it carries one in
    /// any of the headers a client API uses.
    pub fn allow(&self, request: &Request) -> bool {
        self.is_empty() || exchange::credential(request).is_some_and(|key| self.admits(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_its_keys() {
        let keys = ApiKeys::new(&["key-one".to_string(), "key-two".to_string()]);
        assert!(keys.admits("key-one") && keys.admits("key-two"));
        for wrong in ["", "key-on", "key-one ", "key-onE", "key-three"] {
            assert!(!keys.admits(wrong), "{wrong:?}");
        }
        assert!(!ApiKeys::new(&[]).admits(""));
    }
}
