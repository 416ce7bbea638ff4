//! What the mock remembers between requests: the script and stats, logins, chats, the 2026 web
//! sessions, and the answers streaming now.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::auth::jwt_claims;
use super::script::{Fault, Script, Stats};

#[derive(Default)]
pub(super) struct State {
    pub(super) script: Script,
    pub(super) stats: Stats,
    pub(super) faults_used: u32,
    pub(super) next_id: u64,
    /// access token → user id
    pub(super) access: HashMap<String, String>,
    /// chat id → completions seen on it
    pub(super) chats: HashMap<String, u32>,
    pub(super) web: WebLogins,
    /// Answers streaming now, by user.
    pub(super) streaming: HashMap<String, u32>,
    /// Faults of accounts minted with a `mock` claim that already struck, by user.
    pub(super) account_faults: HashMap<String, u32>,
    /// Legacy users whose research quota is used up (their refresh token says `no-research`).
    pub(super) no_research: BTreeSet<String>,
    /// Connect chats that grew too long: Kimi locks them for good (`docs/kimi-protocol.md` §7.5).
    pub(super) locked: BTreeSet<String>,
}

/// The 2026 auth host's view of web logins: each session (`ssid`) has one current refresh
/// token; a spent one presented again ends the session, as rotating auth servers do.
#[derive(Default)]
pub(super) struct WebLogins {
    pub(super) current: HashMap<String, String>,
    pub(super) spent: BTreeSet<String>,
    pub(super) revoked: BTreeSet<String>,
    /// ssid → device id of its refresh token (the access tokens carry none).
    pub(super) devices: HashMap<String, String>,
}

/// Deletes a live chat; false if there is none with that id.
pub(super) fn delete_chat(state: &Mutex<State>, id: &str) -> bool {
    let mut st = state.lock().unwrap();
    // Kimi knows a deleted chat no more (`docs/kimi-protocol.md` §4.7).
    st.chats.remove(id);
    let deleted = st.stats.live_chats.remove(id);
    st.stats.chats_deleted += u32::from(deleted);
    deleted
}

/// The script's fault, counted, while it has struck fewer than `fault_times` times.
pub(super) fn fault_applies(st: &mut State) -> Option<Fault> {
    let fault = st.script.fault.clone()?;
    if st.script.fault_times.is_some_and(|n| st.faults_used >= n) {
        return None;
    }
    st.faults_used += 1;
    Some(fault)
}

/// The fault an account was minted with (a JWT claim `mock: {"fault": ..., "times": n}`), while
/// it has struck fewer than `times` times (always, without `times`).
pub(super) fn account_fault(st: &mut State, user: &str, token: &str) -> Option<Fault> {
    let claims = jwt_claims(token)?;
    let fault: Fault = serde_json::from_value(claims["mock"]["fault"].clone()).ok()?;
    let struck = st.account_faults.entry(user.to_string()).or_default();
    if claims["mock"]["times"].as_u64().is_some_and(|times| u64::from(*struck) >= times) {
        return None;
    }
    *struck += 1;
    Some(fault)
}

/// Counts an answer streaming for `user` while alive, and keeps the user's peak.
pub(super) struct Streaming<'a> {
    state: &'a Mutex<State>,
    user: String,
}

impl<'a> Streaming<'a> {
    pub(super) fn start(state: &'a Mutex<State>, user: &str) -> Streaming<'a> {
        let mut st = state.lock().unwrap();
        Self::begin(state, &mut st, user)
    }

    /// [`Streaming::start`] under a lock the caller holds (to check and count in one step).
    pub(super) fn begin(state: &'a Mutex<State>, st: &mut State, user: &str) -> Streaming<'a> {
        let now = {
            let n = st.streaming.entry(user.to_string()).or_default();
            *n += 1;
            *n
        };
        let peak = st.stats.peak_streams_by_user.entry(user.to_string()).or_default();
        *peak = (*peak).max(now);
        Streaming { state, user: user.to_string() }
    }
}

impl Drop for Streaming<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.state.lock().unwrap().streaming.get_mut(&self.user) {
            *n -= 1;
        }
    }
}
