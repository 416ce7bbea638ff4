//! What the doctor found: one [`Line`] per step (its name, an [`Outcome`] and one line of
//! detail), an account's [`Report`], and how both are printed. The same JSON carries them from
//! a server's `POST /doctor` to `kimi-free-api doctor --server`, which prints them as a local
//! run would.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// Neither a pass nor a failure: worth knowing (a paid-only model on a free account).
    Note,
    Fail,
}

/// What a step returns: its outcome and one line of detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub detail: String,
}

impl Verdict {
    pub fn pass(detail: impl Into<String>) -> Self {
        Verdict { outcome: Outcome::Pass, detail: detail.into() }
    }

    pub fn note(detail: impl Into<String>) -> Self {
        Verdict { outcome: Outcome::Note, detail: detail.into() }
    }

    pub fn fail(detail: impl Into<String>) -> Self {
        Verdict { outcome: Outcome::Fail, detail: detail.into() }
    }
}

/// One step's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub step: String,
    pub outcome: Outcome,
    pub detail: String,
    /// How long the step took, in milliseconds.
    pub ms: u64,
}

impl Line {
    pub fn new(step: &str, verdict: Verdict, took: Duration) -> Self {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        Line { step: step.to_string(), outcome: verdict.outcome, detail: verdict.detail, ms }
    }

    /// `name       ok   detail (12 ms)`: what the doctor prints.
    pub fn render(&self) -> String {
        let mark = match self.outcome {
            Outcome::Pass => "ok  ",
            Outcome::Note => "note",
            Outcome::Fail => "FAIL",
        };
        format!("{:<10} {mark} {} ({} ms)", self.step, self.detail, self.ms)
    }
}

/// The steps run on one account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The account's fingerprint (never the token).
    pub account: String,
    pub lines: Vec<Line>,
    /// Kimi accepted the login.
    pub logged_in: bool,
    /// The login was not tried: it would have rotated a 2026 login the state directory does not
    /// hold (`--rotate` allows it).
    pub held_back: bool,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.logged_in && self.lines.iter().all(|line| line.outcome != Outcome::Fail)
    }

    /// The last line: every step passed, or what the failures mean.
    pub fn summary(&self) -> String {
        let failed: Vec<&str> =
            self.lines.iter().filter(|l| l.outcome == Outcome::Fail).map(|l| l.step.as_str()).collect();
        if self.passed() {
            "doctor: every step passed".into()
        } else if self.held_back {
            "doctor: stopped before logging in, so as not to log out whoever else uses this login".into()
        } else if self.logged_in {
            format!(
                "doctor: {} failed while the login works: Kimi may have changed; paste these lines into a bug report",
                failed.join(", ")
            )
        } else {
            "doctor: the token does not work: see the login line above".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(step: &str, outcome: Outcome) -> Line {
        Line { step: step.into(), outcome, detail: "d".into(), ms: 3 }
    }

    #[test]
    fn a_line_shows_its_step_mark_detail_and_time() {
        assert_eq!(line("chat", Outcome::Pass).render(), "chat       ok   d (3 ms)");
        assert_eq!(line("k3", Outcome::Note).render(), "k3         note d (3 ms)");
        assert_eq!(line("search", Outcome::Fail).render(), "search     FAIL d (3 ms)");
    }

    #[test]
    fn a_note_passes_a_failure_does_not_and_the_summary_says_why() {
        let mut report = Report { account: "ab".into(), logged_in: true, ..Report::default() };
        report.lines = vec![line("login", Outcome::Pass), line("k3", Outcome::Note)];
        assert!(report.passed());
        assert_eq!(report.summary(), "doctor: every step passed");
        report.lines.push(line("search", Outcome::Fail));
        assert!(!report.passed());
        assert!(report.summary().contains("search failed while the login works"), "{}", report.summary());
        report.logged_in = false;
        assert!(report.summary().contains("the token does not work"));
        report.held_back = true;
        assert!(report.summary().contains("stopped before logging in"));
    }

    #[test]
    fn the_json_a_server_sends_reads_back_the_same() {
        let report = Report {
            account: "3f2a9c1e".into(),
            lines: vec![line("token", Outcome::Pass), line("k3", Outcome::Note)],
            logged_in: true,
            held_back: false,
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["lines"][1]["outcome"], "note");
        assert_eq!(serde_json::from_value::<Report>(json).unwrap(), report);
    }
}
