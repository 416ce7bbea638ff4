//! The login cache shared by both backends: one refresh per account at a time, and the newest
//! login saved in the state directory so that it survives a restart.
//!
//! Each account (keyed by the token the user gave, the *seed*) has a slot behind its own mutex.
//! The first caller that finds the slot empty or stale refreshes while holding the lock;
//! callers for the same account wait on the lock and then use what it fetched, so a burst of
//! requests costs one refresh, and a refresh token that Kimi rotated away is never sent again
//! (a rotating auth server may end the whole session for that, `docs/kimi-protocol.md` §2.5).
//! Callers for other accounts are never blocked by it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Error;
use super::state::{Saved, StateDir};

/// A logged-in account.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub access_token: String,
    /// The user id, sent as `X-Traffic-Id`.
    pub user_id: String,
    /// The refresh token to use next time (Kimi may rotate it).
    pub refresh_token: String,
    /// When to refresh again (Unix milliseconds): shortly before the access token expires.
    pub refresh_after_ms: u64,
    /// When Kimi gave this login (Unix milliseconds): the newer of two wins.
    pub obtained_ms: u64,
}

impl Session {
    fn is_fresh(&self) -> bool {
        self.refresh_after_ms > now_ms()
    }
}

impl From<Saved> for Session {
    fn from(saved: Saved) -> Self {
        Session {
            access_token: saved.access_token,
            user_id: saved.user_id,
            refresh_token: saved.refresh_token,
            refresh_after_ms: saved.refresh_after_ms,
            obtained_ms: saved.obtained_ms,
        }
    }
}

impl From<&Session> for Saved {
    fn from(session: &Session) -> Self {
        Saved {
            refresh_token: session.refresh_token.clone(),
            access_token: session.access_token.clone(),
            refresh_after_ms: session.refresh_after_ms,
            obtained_ms: session.obtained_ms,
            user_id: session.user_id.clone(),
        }
    }
}

type Slot = Arc<Mutex<Option<Session>>>;

/// Slots are dropped when the map grows past this, keeping those with a live session.
const MAX_SLOTS: usize = 4096;

/// The logins of one API (the legacy API and the 2026 web login each have their own, so
/// that a token tried as one kind is never taken for the other).
pub struct Sessions {
    slots: Mutex<HashMap<String, Slot>>,
    state: Arc<StateDir>,
    /// Keeps this API's saved logins apart from the other's in the state directory.
    api: &'static str,
}

impl Sessions {
    pub fn new(state: Arc<StateDir>, api: &'static str) -> Self {
        Sessions { slots: Mutex::default(), state, api }
    }

    fn load(&self, seed: &str) -> Option<Session> {
        self.state.load(&format!("{}\0{seed}", self.api)).map(Session::from)
    }

    /// The cached session of the account `seed`, or a new one from `login`, which receives the
    /// refresh token to use: the newest one known (in memory or in the state directory), else
    /// the seed itself. The bool says whether the session was fetched just now.
    pub fn get(
        &self,
        seed: &str,
        login: impl FnOnce(&str) -> Result<Session, Error>,
    ) -> Result<(Session, bool), Error> {
        let slot = self.slot(seed);
        let mut cached = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if !cached.as_ref().is_some_and(Session::is_fresh) {
            // At start-up, or before a refresh: another process sharing the state directory
            // (the doctor, a second server) may have rotated the login since.
            let saved = self.load(seed);
            if let Some(saved) =
                saved.filter(|s| cached.as_ref().is_none_or(|c| s.obtained_ms > c.obtained_ms))
            {
                *cached = Some(saved);
            }
        }
        if let Some(session) = cached.as_ref().filter(|s| s.is_fresh()) {
            return Ok((session.clone(), false));
        }
        let current = cached.as_ref().map_or(seed, |s| s.refresh_token.as_str()).to_string();
        match login(&current) {
            Ok(session) => {
                self.state.save(&format!("{}\0{seed}", self.api), &Saved::from(&session));
                *cached = Some(session.clone());
                Ok((session, true))
            }
            // The refresh token in hand stays the one to use: what came before it is spent.
            Err(error) => Err(error),
        }
    }

    /// Whether this process holds a login of the account `seed`: in memory, or saved in the
    /// state directory (by this process or another one sharing the directory).
    pub fn knows(&self, seed: &str) -> bool {
        let slot = self.slots.lock().unwrap_or_else(PoisonError::into_inner).get(seed).cloned();
        let in_memory =
            slot.is_some_and(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).is_some());
        in_memory || self.load(seed).is_some()
    }

    /// The refresh token the account will use next (the newest rotation), if it has logged in.
    pub fn newest_refresh_token(&self, seed: &str) -> Option<String> {
        let slot = self.slots.lock().unwrap_or_else(PoisonError::into_inner).get(seed).cloned()?;
        let cached = slot.try_lock().ok()?;
        cached.as_ref().map(|session| session.refresh_token.clone())
    }

    /// Forgets the access token (Kimi refused it); the next call logs in again.
    pub fn invalidate(&self, seed: &str) {
        let slot = self.slot(seed);
        let mut cached = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = cached.as_mut() {
            session.refresh_after_ms = 0;
        }
    }

    fn slot(&self, seed: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(seed) {
            slots.retain(|_, slot| {
                slot.try_lock().map(|s| s.as_ref().is_some_and(Session::is_fresh)).unwrap_or(true)
            });
        }
        slots.entry(seed.to_string()).or_default().clone()
    }
}

/// Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// When to refresh an access token (Unix milliseconds): a quarter of its lifetime before its
/// JWT `exp`, at most a minute before; five minutes from now when it has no `exp` (the
/// original project's lifetime).
pub fn refresh_deadline(access_token: &str, now_ms: u64) -> u64 {
    let claim = |name| super::token::claim_u64(access_token, name);
    let Some(exp_ms) = claim("exp").map(|exp| exp * 1000) else { return now_ms + 300_000 };
    let issued_ms = claim("iat").map_or(now_ms, |iat| iat * 1000);
    let margin = (exp_ms.saturating_sub(issued_ms) / 4).min(60_000);
    exp_ms.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;

    fn session(token: &str, valid_for: Duration) -> Session {
        Session {
            access_token: format!("access-{token}"),
            user_id: "user".into(),
            refresh_token: format!("{token}-rotated"),
            refresh_after_ms: now_ms() + valid_for.as_millis() as u64,
            obtained_ms: now_ms(),
        }
    }

    #[test]
    fn concurrent_callers_share_one_login() {
        let sessions = Arc::new(Sessions::new(Arc::new(StateDir::memory()), "test"));
        let logins = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (sessions, logins) = (sessions.clone(), logins.clone());
                thread::spawn(move || {
                    sessions
                        .get("rt", |token| {
                            logins.fetch_add(1, Ordering::SeqCst);
                            thread::sleep(Duration::from_millis(50));
                            Ok(session(token, Duration::from_secs(60)))
                        })
                        .unwrap()
                        .0
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap().access_token, "access-rt");
        }
        assert_eq!(logins.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn invalidated_session_logs_in_again_with_the_rotated_token() {
        let sessions = Sessions::new(Arc::new(StateDir::memory()), "test");
        let (_, fresh) = sessions.get("rt", |t| Ok(session(t, Duration::from_secs(60)))).unwrap();
        assert!(fresh);
        let (_, fresh) = sessions.get("rt", |_| panic!("cached")).unwrap();
        assert!(!fresh);
        sessions.invalidate("rt");
        let mut used = String::new();
        sessions
            .get("rt", |t| {
                used = t.to_string();
                Ok(session(t, Duration::from_secs(60)))
            })
            .unwrap();
        assert_eq!(used, "rt-rotated");
    }

    #[test]
    fn failed_login_is_not_cached() {
        let sessions = Sessions::new(Arc::new(StateDir::memory()), "test");
        assert!(sessions.get("rt", |_| Err(Error::Unauthorized("no".into()))).is_err());
        assert!(sessions.get("rt", |t| Ok(session(t, Duration::from_secs(60)))).unwrap().1);
    }

    #[test]
    fn deadline_is_shortly_before_the_exp_claim() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = |claims: String| format!("e30.{}.sig", b64.encode(claims));
        let now_s = 1_000_000;
        let now = now_s * 1000;
        let fifteen_minutes = token(format!(r#"{{"iat":{now_s},"exp":{}}}"#, now_s + 900));
        assert_eq!(refresh_deadline(&fifteen_minutes, now), (now_s + 900 - 60) * 1000);
        let two_seconds = token(format!(r#"{{"iat":{now_s},"exp":{}}}"#, now_s + 2));
        assert_eq!(refresh_deadline(&two_seconds, now), now + 1500);
        let no_iat = token(format!(r#"{{"exp":{}}}"#, now_s + 120));
        assert_eq!(refresh_deadline(&no_iat, now), now + 90_000);
        assert_eq!(refresh_deadline("opaque", now), now + 300_000);
    }

    #[test]
    fn a_restart_continues_from_the_saved_rotation_not_from_the_seed() {
        let dir = std::env::temp_dir().join(format!("kimi-sessions-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = Sessions::new(Arc::new(StateDir::open(Some(&dir)).0), "test");
        first.get("seed", |t| Ok(session(t, Duration::ZERO))).unwrap();
        let restarted = Sessions::new(Arc::new(StateDir::open(Some(&dir)).0), "test");
        let mut used = String::new();
        restarted
            .get("seed", |t| {
                used = t.to_string();
                Ok(session(t, Duration::from_secs(60)))
            })
            .unwrap();
        assert_eq!(used, "seed-rotated");
        let again = Sessions::new(Arc::new(StateDir::open(Some(&dir)).0), "test");
        let (cached, fresh) = again.get("seed", |_| panic!("the saved access token is still good")).unwrap();
        assert!(!fresh && cached.refresh_token == "seed-rotated-rotated");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rotation_by_another_process_is_picked_up_before_refreshing() {
        let dir = std::env::temp_dir().join(format!("kimi-sessions-other-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let server = Sessions::new(Arc::new(StateDir::open(Some(&dir)).0), "test");
        server.get("seed", |t| Ok(session(t, Duration::ZERO))).unwrap();
        thread::sleep(Duration::from_millis(2));
        let doctor = Sessions::new(Arc::new(StateDir::open(Some(&dir)).0), "test");
        doctor.get("seed", |t| Ok(session(t, Duration::ZERO))).unwrap();
        let mut used = String::new();
        server
            .get("seed", |t| {
                used = t.to_string();
                Ok(session(t, Duration::from_secs(60)))
            })
            .unwrap();
        assert_eq!(used, "seed-rotated-rotated", "not the token the doctor spent");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_refresh_keeps_the_rotated_token_for_the_next_try() {
        let sessions = Sessions::new(Arc::new(StateDir::memory()), "test");
        sessions.get("seed", |t| Ok(session(t, Duration::ZERO))).unwrap();
        assert!(sessions.get("seed", |_| Err(Error::Transport("cut".into()))).is_err());
        let mut used = String::new();
        sessions
            .get("seed", |t| {
                used = t.to_string();
                Ok(session(t, Duration::from_secs(60)))
            })
            .unwrap();
        assert_eq!(used, "seed-rotated", "the seed was rotated away and is never sent again");
    }
}
