//! `kimi-free-api health [URL]`: probes a running server's `/healthz` and exits 0 when it
//! answers 200, else 1, so that a `FROM scratch` image (no curl in it) can have a
//! `HEALTHCHECK` and a systemd unit a check of its own.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;

/// How long the probe waits for the whole answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Probes `url`, by default `http://127.0.0.1:$PORT/healthz`, and prints one line.
pub fn run(config: &Config, url: Option<&str>) -> ExitCode {
    let url = url.map_or_else(|| format!("http://127.0.0.1:{}/healthz", config.port), str::to_string);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .new_agent();
    // What is printed leaves out the query: it may carry an API key (`?key=`).
    let shown = url.split('?').next().unwrap_or_default();
    match agent.get(&url).call() {
        Ok(response) if response.status() == 200 => {
            println!("healthy: {shown} answered 200");
            ExitCode::SUCCESS
        }
        Ok(response) => {
            println!("unhealthy: {shown} answered {}", response.status().as_u16());
            ExitCode::FAILURE
        }
        Err(error) => {
            println!("unhealthy: {shown}: {error}");
            ExitCode::FAILURE
        }
    }
}
