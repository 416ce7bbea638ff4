#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use kimi_free_api::config::{self, Command};
use kimi_free_api::server::{self, RunningServer};
use kimi_free_api::{doctor, health};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let command = config::parse(std::env::args().skip(1), |name| std::env::var(name).ok());
    let config = match command {
        Ok(Command::Serve(config)) => config,
        Ok(Command::Doctor { config, args }) => return doctor::run(&config, &args),
        Ok(Command::Health { config, url }) => return health::run(&config, url.as_deref()),
        Ok(Command::Help) => {
            print!("{}", config::help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("kimi-free-api {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("kimi-free-api: {error}");
            return ExitCode::from(2);
        }
    };
    // Taken before the server starts, so that a signal during start-up is not lost.
    let signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("kimi-free-api: cannot handle SIGTERM and SIGINT: {error}");
            return ExitCode::FAILURE;
        }
    };
    let drain = config.drain_timeout;
    match server::start(config) {
        Ok(running) => {
            eprintln!("kimi-free-api listening on http://{}", running.addr());
            serve_until_signalled(&running, signals, drain);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kimi-free-api: cannot start: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or SIGINT, then drains: the port closes at once, running requests may
/// finish within `drain`, the rest are ended with their dialect's error, every chat is
/// deleted. A second signal ends the running requests at once (their chats still deleted).
fn serve_until_signalled(running: &RunningServer, mut signals: Signals, drain: Duration) {
    let (sender, received) = crossbeam_channel::bounded(4);
    thread::spawn(move || {
        for _ in signals.forever() {
            if sender.send(()).is_err() {
                return;
            }
        }
    });
    if received.recv().is_err() {
        return;
    }
    eprintln!(
        "kimi-free-api: stopping: the port is closed; {} running requests may finish within {} s \
         (a second signal ends them now)",
        running.in_flight(),
        drain.as_secs_f64()
    );
    let drained = running.drain(drain, &received);
    eprintln!(
        "kimi-free-api: stopped: {} requests finished, {} ended by the shutdown{}",
        drained.finished,
        drained.ended,
        if drained.abandoned > 0 { format!(", {} still running", drained.abandoned) } else { String::new() }
    );
}
