//! How each account takes a request's tools (`docs/tools.md` §3): declared to Kimi natively
//! (device tools, their section in the system prompt field, `docs/kimi-protocol.md` §7.4) or
//! described in the newest user turn. `--tool-mode` fixes one way for every account; `auto`
//! starts natively and learns per account: a refusal of the native way, two required calls in
//! a row that never came, or the doctor's probe, switch it. What is learned is kept in the state
//! directory (one small record per account, named by a hash of its fingerprint) and shown by
//! `/token/check` and the doctor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::state::StateDir;
use super::{session, token};
use crate::chat::ToolOffer;

/// The record kind in the state directory.
const RECORD: &str = "tools";
/// How long a record read from the state directory is trusted before it is read again (a doctor
/// run by another process writes it).
const REREAD_AFTER: Duration = Duration::from_secs(60);
/// Required calls that did not come, in a row, before `auto` gives up the native way.
const MISSES_BEFORE_SWITCH: u8 = 2;
/// Accounts remembered at most (the maps are cleared past this).
const MAX_REMEMBERED: usize = 10_000;

/// `--tool-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolMode {
    Native,
    Prompt,
    Auto,
}

impl ToolMode {
    pub fn parse(value: &str) -> Option<ToolMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "native" => Some(ToolMode::Native),
            "prompt" => Some(ToolMode::Prompt),
            "auto" => Some(ToolMode::Auto),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ToolMode::Native => "native",
            ToolMode::Prompt => "prompt",
            ToolMode::Auto => "auto",
        }
    }
}

/// What `auto` learned of one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// `native` or `prompt`.
    pub mode: String,
    /// What taught it, in words for a log or a bug report.
    pub why: String,
    /// When (Unix seconds).
    pub at: u64,
}

impl Learned {
    fn offer(&self) -> ToolOffer {
        if self.mode == ToolOffer::Prompt.name() { ToolOffer::Prompt } else { ToolOffer::Native }
    }
}

/// The tool mode of every account, as set and as learned.
pub struct ToolModes {
    setting: ToolMode,
    state: Arc<StateDir>,
    /// Records read from the state directory (or set here), with when they were read.
    learned: Mutex<HashMap<String, (Instant, Option<Learned>)>>,
    /// Required calls that did not come in a row, per account offered tools natively.
    misses: Mutex<HashMap<String, u8>>,
    switches: AtomicU64,
}

impl ToolModes {
    pub fn new(setting: ToolMode, state: Arc<StateDir>) -> Self {
        ToolModes {
            setting,
            state,
            learned: Mutex::default(),
            misses: Mutex::default(),
            switches: AtomicU64::new(0),
        }
    }

    /// How the account's requests offer tools on the Connect API.
    pub fn offer(&self, account: &str) -> ToolOffer {
        match self.setting {
            ToolMode::Native => ToolOffer::Native,
            ToolMode::Prompt => ToolOffer::Prompt,
            ToolMode::Auto => self.learned(account).map_or(ToolOffer::Native, |l| l.offer()),
        }
    }

    /// Kimi refused the native way on the account: under `auto` the account switches to the
    /// prompt (`true`: send again that way); a fixed `native` keeps failing (`false`).
    pub fn refused(&self, account: &str, why: &str) -> bool {
        if self.setting != ToolMode::Auto {
            return false;
        }
        self.switch(account, format!("Kimi refused the declared tools ({why})"));
        true
    }

    /// A request that required a call, offered natively, ended with one (`called`) or without
    /// one even after asking again: two without in a row switch an `auto` account to the prompt.
    pub fn outcome(&self, account: &str, called: bool) {
        if self.setting != ToolMode::Auto {
            return;
        }
        let misses = {
            let mut misses = lock(&self.misses);
            if misses.len() >= MAX_REMEMBERED {
                misses.clear();
            }
            let count = misses.entry(account.to_string()).or_default();
            *count = if called { 0 } else { count.saturating_add(1) };
            *count
        };
        if misses >= MISSES_BEFORE_SWITCH {
            lock(&self.misses).remove(account);
            self.switch(account, format!("{MISSES_BEFORE_SWITCH} required tool calls in a row never came"));
        }
    }

    /// The doctor's probe found the way that works on the account: `auto` follows it.
    pub fn learn(&self, account: &str, offer: ToolOffer, why: String) {
        self.keep(account, Learned { mode: offer.name().into(), why, at: session::now_ms() / 1000 });
    }

    /// The account's mode in words, for `/token/check` and the doctor.
    pub fn describe(&self, account: &str) -> String {
        match (self.setting, self.learned(account)) {
            (ToolMode::Auto, Some(learned)) => {
                format!("{} (auto, since {}: {})", learned.mode, token::utc(learned.at), learned.why)
            }
            (ToolMode::Auto, None) => "native (auto; nothing learned yet)".into(),
            (fixed, _) => format!("{} (--tool-mode)", fixed.name()),
        }
    }

    /// Accounts switched to the prompt since the start.
    pub fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    fn switch(&self, account: &str, why: String) {
        if self.learned(account).is_some_and(|l| l.offer() == ToolOffer::Prompt) {
            return;
        }
        eprintln!("kimi: account {account}: tools now go in the user's turn: {why}");
        self.switches.fetch_add(1, Ordering::Relaxed);
        self.keep(
            account,
            Learned { mode: ToolOffer::Prompt.name().into(), why, at: session::now_ms() / 1000 },
        );
    }

    fn keep(&self, account: &str, learned: Learned) {
        self.state.save_record(RECORD, account, &learned);
        let mut map = lock(&self.learned);
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
        map.insert(account.to_string(), (Instant::now(), Some(learned)));
    }

    /// What `auto` learned of the account: from memory while fresh, else from the state
    /// directory (a record set here but not saved, with memory-only state, stays).
    fn learned(&self, account: &str) -> Option<Learned> {
        let now = Instant::now();
        if let Some((read, learned)) = lock(&self.learned).get(account)
            && now.duration_since(*read) < REREAD_AFTER
        {
            return learned.clone();
        }
        let stored: Option<Learned> = self.state.load_record(RECORD, account);
        let mut map = lock(&self.learned);
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
        let kept = map.entry(account.to_string()).or_insert((now, None));
        kept.0 = now;
        if stored.is_some() {
            kept.1 = stored;
        }
        kept.1.clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[path = "tool_mode_tests.rs"]
mod tests;
