#![forbid(unsafe_code)]

use std::process::ExitCode;

use kimi_free_api::config::{self, Command};
use kimi_free_api::{doctor, health, server};

fn main() -> ExitCode {
    let command = config::parse(std::env::args().skip(1), |name| std::env::var(name).ok());
    let config = match command {
        Ok(Command::Serve(config)) => config,
        Ok(Command::Doctor { config, token }) => return doctor::run(&config, token.as_deref()),
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
    match server::start(config) {
        Ok(running) => {
            eprintln!("kimi-free-api listening on http://{}", running.addr());
            running.wait();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kimi-free-api: cannot start: {error}");
            ExitCode::FAILURE
        }
    }
}
