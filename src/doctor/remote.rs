//! `kimi-free-api doctor --server URL [--api-key KEY]`: asks a running server to run the steps
//! with its own accounts (`POST /doctor`), so that the login is never shared between two
//! processes, and prints the lines it sends back as a local run prints its own. The key is one
//! of the server's API keys in server-pool mode, the token itself in pass-through mode.

use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;

use super::cli;
use super::report::Report;
use crate::config::DoctorArgs;

/// How long the server may take: every step of every account, each a chat on Kimi.
const TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `POST /doctor`'s answer.
#[derive(Deserialize)]
struct Answer {
    accounts: Vec<Report>,
}

pub fn run(server: &str, args: &DoctorArgs) -> ExitCode {
    let Some(key) = args.api_key.as_deref().or(args.token.as_deref()) else {
        eprintln!(
            "doctor: --server needs a key: --api-key KEY (one of the server's API keys), or, in \
             pass-through mode, the token (TOKEN or $KIMI_TOKEN)"
        );
        return ExitCode::from(2);
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .new_agent();
    let url = format!("{server}/doctor");
    let sent = agent
        .post(&url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send("{}");
    let (status, body) = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.into_body().read_to_string().unwrap_or_default())
        }
        Err(error) => {
            println!("doctor: cannot reach {server}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match serde_json::from_str::<Answer>(&body) {
        Ok(answer) if status == 200 => print_accounts(&answer.accounts),
        _ => {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let message = value["error"]["message"].as_str().unwrap_or("not a doctor's answer");
            println!("doctor: {server} answered {status}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The lines and summary of each account (headed by its fingerprint when there are several).
fn print_accounts(accounts: &[Report]) -> ExitCode {
    if accounts.is_empty() {
        println!("doctor: the server has no account to check");
        return ExitCode::FAILURE;
    }
    for report in accounts {
        if accounts.len() > 1 {
            println!("account {}", report.account);
        }
        for line in &report.lines {
            println!("{}", line.render());
        }
        cli::conclude(report, None);
    }
    cli::status(accounts)
}
