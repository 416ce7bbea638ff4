//! The doctor: one round trip per step against Kimi, one line each with its time and an outcome
//! (pass, note, fail), so that a user can tell "my token" from "Kimi changed" and paste the
//! lines into a bug report. The token is never printed (its fingerprint is); every chat the
//! steps open is deleted; a rotation of a 2026 login is saved in the state directory, and a
//! login that would rotate one the state directory does not hold is not tried without
//! `--rotate` (it would log out whoever else uses it: `docs/kimi-protocol.md` §2.5).
//!
//! `steps.rs` is the list of steps and the run through them (`chats.rs`: the chat steps,
//! `tools.rs`: the tool probe),
//! `report.rs` what they find, `cli.rs` the command on this machine, `remote.rs` the command
//! that asks a running server (`--server`), whose `POST /doctor` (`server/doctor.rs`) runs
//! [`check`] with its own login.

mod chats;
mod cli;
mod remote;
mod report;
mod steps;
mod tools;

pub use cli::run;
pub use report::{Line, Outcome, Report, Verdict};
pub use steps::{Context, STEPS, Step, check};
