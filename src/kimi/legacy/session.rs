//! The access-token cache of the legacy API: one refresh per refresh token at a time.
//!
//! Each refresh token has a slot behind its own mutex. The first caller that finds the slot
//! empty or stale refreshes while holding the lock; callers for the same token wait on the
//! lock and then use what it fetched, so a burst of requests costs one refresh. Callers for
//! other tokens are never blocked by it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::kimi::Error;

/// A logged-in legacy session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub access_token: String,
    /// The user id, sent as `X-Traffic-Id`.
    pub user_id: String,
    /// The refresh token to use next time (Kimi may rotate it).
    pub refresh_token: String,
    /// When to refresh again: shortly before the access token expires.
    pub refresh_at: Instant,
}

type Slot = Arc<Mutex<Option<Session>>>;

/// Slots are dropped when the map grows past this, keeping those with a live session.
const MAX_SLOTS: usize = 4096;

#[derive(Default)]
pub struct Sessions {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Sessions {
    /// The cached session for `refresh_token`, or a new one from `login`, which receives the
    /// refresh token to use (the rotated one if Kimi gave one). The bool says whether the
    /// session was fetched just now.
    pub fn get(
        &self,
        refresh_token: &str,
        login: impl FnOnce(&str) -> Result<Session, Error>,
    ) -> Result<(Session, bool), Error> {
        let slot = self.slot(refresh_token);
        let mut cached = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = cached.as_ref().filter(|s| s.refresh_at > Instant::now()) {
            return Ok((session.clone(), false));
        }
        let current = cached.as_ref().map_or(refresh_token, |s| s.refresh_token.as_str()).to_string();
        match login(&current) {
            Ok(session) => {
                *cached = Some(session.clone());
                Ok((session, true))
            }
            Err(error) => {
                *cached = None;
                Err(error)
            }
        }
    }

    /// Forgets the access token (Kimi refused it); the next call logs in again.
    pub fn invalidate(&self, refresh_token: &str) {
        let slot = self.slot(refresh_token);
        let mut cached = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = cached.as_mut() {
            session.refresh_at = Instant::now();
        }
    }

    fn slot(&self, refresh_token: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(refresh_token) {
            let now = Instant::now();
            slots.retain(|_, slot| {
                slot.try_lock().map(|s| s.as_ref().is_some_and(|s| s.refresh_at > now)).unwrap_or(true)
            });
        }
        slots.entry(refresh_token.to_string()).or_default().clone()
    }
}

/// When to refresh an access token: a minute before its JWT `exp` claim, capped at five
/// minutes from now (the original project's lifetime, safe if the clock or claim is off).
pub fn refresh_deadline(access_token: &str, now_unix: u64) -> Instant {
    let cap = Duration::from_secs(300);
    let lifetime = crate::kimi::token::claim_u64(access_token, "exp")
        .map(|exp| Duration::from_secs(exp.saturating_sub(now_unix).saturating_sub(60)))
        .map_or(cap, |left| left.min(cap));
    Instant::now() + lifetime
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    fn session(token: &str, valid_for: Duration) -> Session {
        Session {
            access_token: format!("access-{token}"),
            user_id: "user".into(),
            refresh_token: format!("{token}-rotated"),
            refresh_at: Instant::now() + valid_for,
        }
    }

    #[test]
    fn concurrent_callers_share_one_login() {
        let sessions = Arc::new(Sessions::default());
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
        let sessions = Sessions::default();
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
        let sessions = Sessions::default();
        assert!(sessions.get("rt", |_| Err(Error::Unauthorized("no".into()))).is_err());
        assert!(sessions.get("rt", |t| Ok(session(t, Duration::from_secs(60)))).unwrap().1);
    }

    #[test]
    fn deadline_follows_the_exp_claim_with_a_cap() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = |exp: u64| format!("e30.{}.sig", b64.encode(format!("{{\"exp\":{exp}}}")));
        let now = 1_000_000;
        let soon = refresh_deadline(&token(now + 120), now);
        assert!(soon <= Instant::now() + Duration::from_secs(61));
        let later = refresh_deadline(&token(now + 900), now);
        assert!(later > Instant::now() + Duration::from_secs(290));
        let no_claim = refresh_deadline("opaque", now);
        assert!(no_claim > Instant::now() + Duration::from_secs(290));
    }
}
