//! The server binary as a child process, in server-pool or pass-through mode, against the mock,
//! keeping every log line it writes and every body it answers. When a [`PoolServer`] is
//! dropped it checks that none of them holds a token or an API key the test used (nor a
//! rotated refresh token the mock issued): the secrets check runs over the whole pool suite.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{MockKimi, Reply, Streamed, get_with, mint_jwt, post_with, stream_with, temp_state_dir};

/// A kimi-auth JWT for `sub` whose Connect chats the mock answers with `fault` (JSON of a
/// `mock::Fault`), the first `times` times (always, without `times`).
pub fn connect_token_with_fault(sub: &str, fault: Value, times: Option<u32>) -> String {
    mint_jwt(&serde_json::json!({"iss": "user-center", "exp": 4_102_444_800u64, "typ": "access",
        "app_id": "kimi", "sub": sub, "ssid": "1731086499958639802", "device_id": "7651804114103329291",
        "region": "cn", "mock": {"fault": fault, "times": times}}))
}

pub struct PoolServer {
    pub mock: MockKimi,
    pub base: String,
    child: Child,
    dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    bodies: Mutex<Vec<String>>,
    secrets: Mutex<Vec<String>>,
}

impl PoolServer {
    /// A server pool of `tokens` (in a tokens file), callers presenting one of `keys`.
    pub fn start(tokens: &[String], keys: &[&str], flags: &[&str]) -> PoolServer {
        Self::start_on(MockKimi::start(), Some(tokens), keys, flags)
    }

    /// Pass-through mode: callers present their own tokens.
    pub fn pass_through(flags: &[&str]) -> PoolServer {
        Self::start_on(MockKimi::start(), None, &[], flags)
    }

    pub fn start_on(mock: MockKimi, tokens: Option<&[String]>, keys: &[&str], flags: &[&str]) -> PoolServer {
        let dir = temp_state_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kimi-free-api"));
        command.args(["--host", "127.0.0.1", "--port", "0", "--upstream-timeout", "2"]);
        super::process::at_mock(&mut command, &mock);
        command.arg("--state-dir").arg(dir.join("state"));
        let mut secrets: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        if let Some(tokens) = tokens {
            write_private(&dir.join("tokens"), &tokens.join("\n"));
            command.arg("--tokens-file").arg(dir.join("tokens"));
            secrets.extend(tokens.iter().cloned());
        }
        if !keys.is_empty() {
            command.args(["--api-keys", &keys.join(",")]);
        }
        command.args(flags).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("the server binary starts");
        let (base, log) = read_until_listening(&mut child);
        PoolServer { mock, base, child, dir, log, bodies: Mutex::default(), secrets: Mutex::new(secrets) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Something else the test used that must never show (a token presented as a key...).
    pub fn secret(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_string());
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let reply = post_with(&self.url(path), headers, body);
        self.bodies.lock().unwrap().push(reply.body.clone());
        reply
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let reply = get_with(&self.url(path), headers);
        self.bodies.lock().unwrap().push(reply.body.clone());
        reply
    }

    pub fn stream(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Streamed {
        let answer = stream_with(&self.url(path), headers, body);
        self.bodies.lock().unwrap().push(answer.raw.clone());
        answer
    }

    /// Rewrites the tokens file.
    pub fn write_tokens(&self, lines: &[String]) {
        write_private(&self.dir.join("tokens"), &lines.join("\n"));
        self.secrets.lock().unwrap().extend(lines.iter().cloned());
    }

    /// Sends SIGHUP and waits (bounded) for the server to log that it handled it.
    pub fn hup(&self) {
        let before = self.count("SIGHUP:");
        let status = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        assert!(self.wait_for("SIGHUP:", before + 1), "no SIGHUP line in the log:\n{}", self.log());
    }

    /// Waits (at most 10 s) until `count` log lines contain `needle`.
    pub fn wait_for(&self, needle: &str, count: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.count(needle) >= count {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn count(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|line| line.contains(needle)).count()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().concat()
    }

    /// `/healthz` with the key, as JSON.
    pub fn health(&self, key: &str) -> Value {
        self.get("/healthz", &[("Authorization", &format!("Bearer {key}"))]).json()
    }

    /// One account of `/healthz` by fingerprint.
    pub fn account(&self, key: &str, fingerprint: &str) -> Value {
        let health = self.health(key);
        let accounts = health["accounts"].as_array().cloned().unwrap_or_default();
        accounts.into_iter().find(|a| a["fingerprint"] == fingerprint).unwrap_or(Value::Null)
    }

    fn check_secrets(&self) {
        let mut secrets = self.secrets.lock().unwrap().clone();
        secrets.extend(self.mock.stats().web_refresh_tokens);
        let log = self.log.lock().unwrap().clone();
        let bodies = self.bodies.lock().unwrap().clone();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            // A JWT's header is the same for every token: look for its payload.
            let needle = secret.split('.').nth(1).filter(|p| p.len() > 16).unwrap_or(secret);
            for line in &log {
                assert!(!line.contains(needle), "a secret in the log: {line}");
            }
            for body in &bodies {
                assert!(!body.contains(needle), "a secret in an answer: {body}");
            }
        }
    }
}

impl Drop for PoolServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The log's last lines may still be in the pipe.
        thread::sleep(Duration::from_millis(50));
        let _ = std::fs::remove_dir_all(&self.dir);
        if !thread::panicking() {
            self.check_secrets();
        }
    }
}

fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let temp = path.with_extension("new");
    std::fs::write(&temp, text).unwrap();
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// Reads the log up to the "listening on" line (bounded), then keeps draining it into the
/// shared log.
fn read_until_listening(child: &mut Child) -> (String, Arc<Mutex<Vec<String>>>) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut base = None;
    for _ in 0..20 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        log.lock().unwrap().push(line.clone());
        if let Some(addr) = line.trim().strip_prefix("kimi-free-api listening on ") {
            base = Some(addr.to_string());
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("the server did not start:\n{}", log.lock().unwrap().concat()));
    let shared = log.clone();
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            shared.lock().unwrap().push(line + "\n");
        }
    });
    (base, log)
}

/// `promtool check metrics` on the text: the exposition is valid and lint-clean.
pub fn promtool(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (make test installs it: apt-get install prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
}
