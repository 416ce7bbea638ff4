//! What the Connect backend remembers of each account between requests
//! (`docs/kimi-protocol.md` §7.1–7.5): its model catalogue (an hour), whether Kimi refused the
//! system prompt field on it, and which kept chats Kimi locked for length. Accounts are named
//! by fingerprint; nothing here holds a token.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::models::Catalogue;
use crate::kimi::Error;

/// How long an account's catalogue is trusted.
const CATALOGUE_TTL: Duration = Duration::from_secs(60 * 60);
/// How long the built-in catalogue stands in before Kimi's is asked for again.
const FALLBACK_TTL: Duration = Duration::from_secs(5 * 60);
/// Accounts and chats remembered at most (each map is cleared past this).
const MAX_REMEMBERED: usize = 10_000;

#[derive(Default)]
pub struct Memory {
    catalogues: Mutex<HashMap<String, (Instant, Arc<Catalogue>)>>,
    /// Accounts whose fallback to the built-in catalogue was logged.
    fallback_logged: Mutex<HashSet<String>>,
    /// Accounts on which Kimi refused `options.systemPrompt`.
    plain_system: Mutex<HashSet<String>>,
    /// Kept chats that hit Kimi's length limit (Kimi answers nothing more in them).
    locked: Mutex<HashSet<String>>,
}

impl Memory {
    /// The account's catalogue, and whether it was fetched just now: from the cache while it is
    /// fresh, else from `fetch`. A failed fetch (other than a refused login, which is returned)
    /// stands in the built-in catalogue for a few minutes and logs that once per account.
    pub fn catalogue(
        &self,
        account: &str,
        fetch: impl FnOnce() -> Result<Catalogue, Error>,
    ) -> Result<(Arc<Catalogue>, bool), Error> {
        let now = Instant::now();
        if let Some((until, catalogue)) = lock(&self.catalogues).get(account)
            && *until > now
        {
            return Ok((catalogue.clone(), false));
        }
        let (catalogue, ttl) = match fetch() {
            Ok(catalogue) => (catalogue, CATALOGUE_TTL),
            Err(error @ Error::Unauthorized(_)) => return Err(error),
            Err(error) => {
                self.log_fallback(account, &error);
                (Catalogue::builtin(), FALLBACK_TTL)
            }
        };
        let catalogue = Arc::new(catalogue);
        let mut catalogues = lock(&self.catalogues);
        if catalogues.len() >= MAX_REMEMBERED {
            catalogues.clear();
        }
        catalogues.insert(account.to_string(), (now + ttl, catalogue.clone()));
        Ok((catalogue, true))
    }

    /// Forgets the account's catalogue (Kimi refused a model it listed).
    pub fn forget_catalogue(&self, account: &str) {
        lock(&self.catalogues).remove(account);
    }

    fn log_fallback(&self, account: &str, error: &Error) {
        let mut logged = lock(&self.fallback_logged);
        if logged.len() < MAX_REMEMBERED && logged.insert(account.to_string()) {
            eprintln!(
                "kimi: account {account}: Kimi's model catalogue could not be read ({error}); the \
                 built-in catalogue of docs/kimi-protocol.md §7.1 stands in"
            );
        }
    }

    /// Whether the system prompt goes into the text on this account (Kimi refused the field).
    pub fn plain_system(&self, account: &str) -> bool {
        lock(&self.plain_system).contains(account)
    }

    pub fn set_plain_system(&self, account: &str) {
        remember(&self.plain_system, account);
    }

    /// Whether Kimi locked this chat for length.
    pub fn is_locked(&self, chat_id: &str) -> bool {
        lock(&self.locked).contains(chat_id)
    }

    pub fn lock_chat(&self, chat_id: &str) {
        remember(&self.locked, chat_id);
    }
}

fn remember(set: &Mutex<HashSet<String>>, key: &str) {
    let mut set = lock(set);
    if set.len() >= MAX_REMEMBERED {
        set.clear();
    }
    set.insert(key.to_string());
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_is_fetched_once_then_cached_until_forgotten() {
        let memory = Memory::default();
        let fetched = || Ok(Catalogue::builtin());
        let (_, fresh) = memory.catalogue("a1", fetched).unwrap();
        assert!(fresh);
        let (_, fresh) = memory.catalogue("a1", || panic!("cached")).unwrap();
        assert!(!fresh);
        memory.forget_catalogue("a1");
        assert!(memory.catalogue("a1", fetched).unwrap().1);
    }

    #[test]
    fn a_failed_fetch_stands_in_the_builtin_but_a_refused_login_is_an_error() {
        let memory = Memory::default();
        let (catalogue, _) = memory.catalogue("a2", || Err(Error::Upstream("down".into()))).unwrap();
        assert!(catalogue.builtin);
        let refused = memory.catalogue("a3", || Err(Error::Unauthorized("no".into())));
        assert!(matches!(refused, Err(Error::Unauthorized(_))));
    }

    #[test]
    fn refusals_are_remembered_per_account_and_chat() {
        let memory = Memory::default();
        memory.set_plain_system("a1");
        memory.lock_chat("c1");
        assert!(memory.plain_system("a1") && !memory.plain_system("a2"));
        assert!(memory.is_locked("c1") && !memory.is_locked("c2"));
    }
}
