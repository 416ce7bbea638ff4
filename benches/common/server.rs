//! Starting the release server for a bench: `--port 0` on loopback, every Kimi host on the mock,
//! its address read from the log line that says where it listens, and the rest of its log
//! drained so that it never blocks on a full pipe.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread;

/// The binary under test: the static musl release that ships (`make release`), unless
/// `BENCH_SERVER` names another.
const SERVER: &str = "target/x86_64-unknown-linux-musl/release/kimi-free-api";

/// The server with the mock at `mock` and the `extra` flags, and its base URL.
pub fn spawn(mock: &str, extra: &[&str]) -> (Child, String) {
    let binary = std::env::var("BENCH_SERVER").unwrap_or_else(|_| SERVER.to_string());
    let mut child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(super::mock::host_flags(mock))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the release server is built (make bench runs make release first)");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    for _ in 0..10 {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 || line.contains("listening on") {
            break;
        }
    }
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, format!("http://{addr}"))
}
