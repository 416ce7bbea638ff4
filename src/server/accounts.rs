//! Server-pool mode: the server's own Kimi accounts, from `--tokens-file` (reloaded on SIGHUP)
//! or `KIMI_TOKENS`, and the start-up checks that keep such a pool from being an open relay.
//!
//! A reload replaces the pool whole; running streams keep the accounts they hold, so nothing
//! in flight is dropped. A file that cannot be read or parsed keeps the pool as it was, and the
//! log says why (never what the file holds: its lines are tokens).

use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};

use signal_hook::consts::SIGHUP;
use signal_hook::iterator::{Handle, Signals};

use crate::config::Config;
use crate::kimi;

/// The server's accounts at start-up, or `None` in pass-through mode. Refuses a tokens file
/// that cannot be used, and a pool that anyone who reaches the address could use.
pub fn initial(config: &Config) -> io::Result<Option<Vec<kimi::Entry>>> {
    let tokens = match (&config.tokens_file, config.tokens.0.is_empty()) {
        (Some(path), _) => read(path).map_err(|why| io::Error::other(format!("the tokens file: {why}")))?,
        (None, false) => kimi::tokens_file(&config.tokens.0.join(","), ',')
            .map_err(|why| io::Error::other(format!("KIMI_TOKENS: {why}")))?,
        (None, true) => return Ok(None),
    };
    if config.api_keys.0.is_empty() && !loopback(&config.host) {
        return Err(io::Error::other(format!(
            "a server pool listening on {} without API keys would let anyone who reaches it use your \
             Kimi accounts: set --api-keys (API_KEYS), or listen on 127.0.0.1",
            config.host
        )));
    }
    Ok(Some(tokens))
}

/// Whether only this machine can reach the address.
fn loopback(host: &str) -> bool {
    host == "localhost" || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The accounts of the file; the error says what is wrong with it.
fn read(path: &Path) -> Result<Vec<kimi::Entry>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot be read ({})", e.kind()))?;
    if fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
        eprintln!("kimi-free-api: the tokens file can be read by other users: chmod 600 it");
    }
    kimi::tokens_file(&text, '\n')
}

/// Reloads the tokens file on every SIGHUP until dropped.
pub struct Reloader {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the thread that reloads `path` on SIGHUP and hands its accounts to `apply`, which
/// says how many were added and removed.
pub fn watch(
    path: PathBuf,
    apply: impl Fn(&[kimi::Entry]) -> (usize, usize) + Send + 'static,
) -> io::Result<Reloader> {
    let mut signals = Signals::new([SIGHUP])?;
    let handle = signals.handle();
    let thread = thread::Builder::new().name("reload".into()).spawn(move || {
        for _ in signals.forever() {
            match read(&path) {
                Ok(tokens) => {
                    let (added, removed) = apply(&tokens);
                    eprintln!(
                        "kimi-free-api: SIGHUP: the pool has {} Kimi accounts ({added} added, {removed} removed)",
                        tokens.len()
                    );
                }
                Err(why) => eprintln!("kimi-free-api: SIGHUP: the pool stays as it was: the tokens file {why}"),
            }
        }
    })?;
    Ok(Reloader { handle, thread: Some(thread) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secrets;

    #[test]
    fn loopback_addresses() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            assert!(loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.0.2.1", "example.com"] {
            assert!(!loopback(host), "{host}");
        }
    }

    #[test]
    fn a_pool_without_keys_on_an_open_address_is_refused_and_says_why() {
        let config = Config { tokens: Secrets(vec!["rt-a".into()]), ..Config::default() };
        let error = initial(&config).unwrap_err().to_string();
        assert!(error.contains("without API keys") && error.contains("--api-keys"), "{error}");
        assert!(!error.contains("rt-a"));
        let local = Config { host: "127.0.0.1".into(), ..config.clone() };
        assert_eq!(initial(&local).unwrap(), Some(vec![kimi::Entry { token: "rt-a".into(), proxy: None }]));
        let keyed = Config { api_keys: Secrets(vec!["k".into()]), ..config };
        assert!(initial(&keyed).unwrap().is_some());
        assert_eq!(initial(&Config::default()).unwrap(), None, "pass-through");
    }
}
