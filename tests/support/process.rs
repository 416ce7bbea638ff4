//! The real binary as a child process: for what only a process shows (its exit on a signal,
//! its memory), against the in-process mock. Every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::mock::MockKimi;
use super::temp_state_dir;

/// The binary `cargo test` built (debug under `cargo test`, as CI runs it), unless
/// `KIMI_TEST_SERVER` names another (such as the musl release binary).
pub fn binary() -> String {
    std::env::var("KIMI_TEST_SERVER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_kimi-free-api").to_string())
}

pub struct ServerProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    log: Arc<Mutex<String>>,
    state_dir: PathBuf,
}

/// Points every Kimi host of the binary's `command` at the mock (both regions).
pub fn at_mock(command: &mut Command, mock: &MockKimi) {
    command.args(super::mock::host_flags(mock.url()));
}

impl ServerProcess {
    /// Starts the binary on a free loopback port, every Kimi host pointed at `mock`, with the
    /// extra flags given; returns once it answers `/ping`.
    pub fn start(mock: &MockKimi, extra: &[&str]) -> ServerProcess {
        let state_dir = temp_state_dir();
        let mut command = Command::new(binary());
        command.arg("--state-dir").arg(&state_dir);
        Self::spawn(command, mock, extra, state_dir)
    }

    /// [`ServerProcess::start`] in the working directory `dir` and without `--state-dir`: the
    /// server finds its state directory as it would by default (`./kimi-state` there).
    pub fn start_in(dir: &std::path::Path, mock: &MockKimi, extra: &[&str]) -> ServerProcess {
        let mut command = Command::new(binary());
        command.current_dir(dir);
        Self::spawn(command, mock, extra, dir.join("kimi-state"))
    }

    fn spawn(mut command: Command, mock: &MockKimi, extra: &[&str], state_dir: PathBuf) -> ServerProcess {
        // Many streams run on one token here: the per-account limit is the pool tests' matter.
        command.args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--upstream-timeout",
            "5",
            "--account-streams",
            "64",
        ]);
        at_mock(&mut command, mock);
        command.args(extra);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut addr = None;
        for _ in 0..20 {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(found) = line.trim().rsplit_once("listening on http://") {
                addr = Some(found.1.to_string());
                break;
            }
        }
        let addr = addr.expect("the server says where it listens");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let server = ServerProcess { child, base: format!("http://{addr}"), addr, log, state_dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(&server.addr) {
            assert!(Instant::now() < deadline, "the server answers /ping");
            thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a signal (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -s {name}");
    }

    /// Waits for the process to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident memory (VmRSS) in kB.
    pub fn rss_kb(&self) -> u64 {
        self.status("VmRSS:")
    }

    /// The server's threads.
    pub fn threads(&self) -> u64 {
        self.status("Threads:")
    }

    fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// What the server logged on stderr so far (after its first line).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

pub use super::ping::ping;

/// What a command that ran to its end printed.
pub struct Finished {
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end, at most `within` (then it is killed and the test fails).
pub fn run_within(mut command: Command, within: Duration) -> Finished {
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starts");
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not end within {within:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Finished { code: status.code(), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}
