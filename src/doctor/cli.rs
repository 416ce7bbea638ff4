//! `kimi-free-api doctor [TOKEN]` on this machine: the steps run here, with the server's state
//! directory (the same resolution as the server's: `--state-dir`, `STATE_DIR`,
//! `$STATE_DIRECTORY`, else `./kimi-state`), each line printed as it is found; and how every
//! doctor run ends (the summary, what to do when the login was held back, the exit status).

use std::path::Path;
use std::process::ExitCode;

use super::report::Report;
use super::{remote, steps};
use crate::config::{Config, DoctorArgs};
use crate::kimi::{self, Kimi};

/// Runs the doctor as the command line asked: here, or on the server of `--server`.
pub fn run(config: &Config, args: &DoctorArgs) -> ExitCode {
    if let Some(server) = &args.server {
        return remote::run(server, args);
    }
    let Some(token) = args.token.as_deref().filter(|t| !t.contains(',')) else {
        eprintln!(
            "doctor: give one Kimi token: kimi-free-api doctor TOKEN (or set KIMI_TOKEN), or ask a \
             running server: kimi-free-api doctor --server URL [--api-key KEY]"
        );
        return ExitCode::from(2);
    };
    let (kimi, problem) = Kimi::new(config.kimi_settings());
    if let Some(problem) = problem {
        println!("note       {problem}");
    }
    match account_proxies(config) {
        Ok(entries) => kimi.set_account_proxies(&entries),
        Err(why) => println!("note       the accounts' own proxies are not used: {why}"),
    }
    let tools = match crate::server::tool_settings(config) {
        Ok(tools) => tools,
        Err(error) => {
            eprintln!("doctor: {error}");
            return ExitCode::from(2);
        }
    };
    let report = steps::check(&kimi, &tools, token, args.rotate, &mut |line| println!("{}", line.render()));
    conclude(&report, Some(&config.state_dir));
    status(&[report])
}

/// The accounts of the server's tokens file (or `KIMI_TOKENS`), for the proxies their lines
/// name: Kimi is reached as the server would reach it for this token. None without a pool.
fn account_proxies(config: &Config) -> Result<Vec<kimi::Entry>, String> {
    match (&config.tokens_file, config.tokens.0.is_empty()) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("the tokens file cannot be read ({})", e.kind()))?;
            kimi::tokens_file(&text, '\n').map_err(|why| format!("the tokens file: {why}"))
        }
        (None, false) => {
            kimi::tokens_file(&config.tokens.0.join(","), ',').map_err(|why| format!("KIMI_TOKENS: {why}"))
        }
        (None, true) => Ok(Vec::new()),
    }
}

/// Prints a report's summary, and, for a login held back, why and what to do instead.
pub fn conclude(report: &Report, state_dir: Option<&Path>) {
    println!("{}", report.summary());
    if report.held_back {
        print!("{}", held_back(state_dir));
    }
}

/// The exit status: 0 when every account passed, 2 when a login was held back, else 1.
pub fn status(reports: &[Report]) -> ExitCode {
    if reports.iter().any(|r| r.held_back) {
        ExitCode::from(2)
    } else if !reports.is_empty() && reports.iter().all(Report::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Why the login was not tried, and the two safe ways on (`docs/kimi-protocol.md` §2.5).
fn held_back(state_dir: Option<&Path>) -> String {
    let dir = state_dir.map_or_else(|| "the state directory".to_string(), |d| d.display().to_string());
    format!(
        "  A 2026 refresh_token rotates at every login: Kimi gives a new one and the old one dies at
  once. A server (or anything else) using this login with another state directory than {dir}
  still holds the old one; when it next renews the login, Kimi ends the whole session, and it
  is logged out until you log in again and paste the new refresh_token.
  - A server uses this token? Ask it to run the steps with its own login:
      kimi-free-api doctor --server http://HOST:PORT [--api-key KEY]
    or run the doctor with the server's state directory (--state-dir or STATE_DIR; under
    systemd: sudo kimi-free-api doctor --state-dir /var/lib/kimi-free-api TOKEN).
  - Nothing else uses it? kimi-free-api doctor --rotate TOKEN: the new rotation is saved in
    {dir}, where a server started with that state directory finds it.
"
    )
}
