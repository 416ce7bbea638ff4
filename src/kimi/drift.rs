//! Kimi's next change, noticed before it breaks anything: every stream event, block kind,
//! mask, error code and reason the decoders do not know is counted here by name, and the first
//! sighting of each name is logged once (the name only, never content). `/metrics` shows the
//! counts as `kimi_unknown_total{what,name}`; `doctor` lists them (`docs/kimi-protocol.md` §7).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Names kept at most: past this, new names are counted under one overflow name.
const MAX_NAMES: usize = 256;
/// Longest name kept; Kimi's names are far shorter.
const MAX_NAME: usize = 64;
const OVERFLOW: &str = "(other)";

static SEEN: Mutex<BTreeMap<(&'static str, String), u64>> = Mutex::new(BTreeMap::new());

/// Counts one sighting of an unknown `name` of the kind `what` (`event`, `block`, `mask`,
/// `code`, `reason`, `status`); logs the first of each.
pub fn note(what: &'static str, name: &str) {
    let name = clean(name);
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    let key = if seen.len() >= MAX_NAMES && !seen.contains_key(&(what, name.clone())) {
        (what, OVERFLOW.to_string())
    } else {
        (what, name)
    };
    let count = seen.entry(key.clone()).or_default();
    *count += 1;
    if *count == 1 {
        eprintln!(
            "kimi: Kimi sent something this server does not know: {what} `{}` (counted in /metrics \
             as kimi_unknown_total; Kimi may have changed, see docs/kimi-protocol.md §7.12)",
            key.1
        );
    }
}

/// Every unknown name seen since the start: its kind, the name, how often.
pub fn seen() -> Vec<(&'static str, String, u64)> {
    let seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    seen.iter().map(|((what, name), n)| (*what, name.clone(), *n)).collect()
}

/// A name as it may appear in a log line and a metric label: printable ASCII of the kinds
/// Kimi's names use, shortened.
fn clean(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
        .take(MAX_NAME)
        .collect();
    if kept.is_empty() { "(empty)".to_string() } else { kept }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_counted_and_cleaned() {
        note("reason", "REASON_TEST_DRIFT_ONE");
        note("reason", "REASON_TEST_DRIFT_ONE");
        note("mask", "block.\"odd\"\nname");
        let seen = seen();
        assert!(seen.contains(&("reason", "REASON_TEST_DRIFT_ONE".to_string(), 2)), "{seen:?}");
        assert!(seen.contains(&("mask", "block.oddname".to_string(), 1)), "{seen:?}");
        assert_eq!(clean(&"x".repeat(100)).len(), MAX_NAME);
        assert_eq!(clean("\u{1F6E0}"), "(empty)");
    }
}
