//! `make bench`, the agent-session row: a 40-turn tool loop through the Anthropic API (streamed,
//! each tool result 2 KB) against the mock Kimi, with agent sessions on (the default) and off:
//! the bytes the server sent to Kimi in all, against the sum of what each turn added (the new
//! tail), and the time to the first answer byte of the first and of the last turn. The loop
//! runs [`LOOPS`] times on one server (each loop its own session) and each TTFT is the median
//! of its loops: one turn is a single sample of a few milliseconds on a noisy machine. Target
//! (issue #22): with sessions, upstream bytes at most 1.5× the sum of the tails, and the last
//! turn's TTFT no worse than the first's. Loopback only; the loops are bounded.
//!
//! Appends its rows to `target/bench/report.md` (written by the `proxy` bench before it).

#[path = "../tests/support/mock/mod.rs"]
mod mock;
#[path = "common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use mock::{MockKimi, Script};
use serde_json::{Value, json};

const TURNS: usize = 40;
const LOOPS: usize = 9;
const RESULT_BYTES: usize = 2048;

fn connect_token() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims =
        json!({"typ": "access", "app_id": "kimi", "sub": "bench-agent", "ssid": "1", "device_id": "7"});
    format!("{}.{}.{}", b64.encode("{\"alg\":\"HS512\"}"), b64.encode(claims.to_string()), b64.encode("sig"))
}

/// What the mock's model writes at turn `n`: a sentence, then a call of `Read`.
fn answer(n: usize) -> String {
    format!(
        "Step {n}: reading the next file.\n<function_calls>\n<invoke name=\"Read\">\n<parameter name=\"file_path\">/src/f{n}.rs</parameter>\n</invoke>\n</function_calls>"
    )
}

/// A tool result of [`RESULT_BYTES`], different each turn.
fn tool_result(n: usize) -> String {
    let line = format!("{n:04} fn step_{n}() {{ let value = compute({n}); println!(\"{{value}}\"); }}\n");
    line.repeat(RESULT_BYTES / line.len() + 1)[..RESULT_BYTES].to_string()
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(mock: &str, sessions: &str) -> Server {
        let (child, base) = server::spawn(mock, &["--sessions", sessions]);
        thread::sleep(Duration::from_millis(200));
        Server { child, base }
    }

    /// A counter of `/metrics`.
    fn metric(&self, agent: &ureq::Agent, name: &str) -> f64 {
        let text =
            agent.get(format!("{}/metrics", self.base)).call().unwrap().into_body().read_to_string().unwrap();
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One streamed turn: the time to its first text, and whether it ended with the call. The
/// request goes out in one write on a socket without Nagle's delay (a client library that
/// writes the head and the body apart waits out the server's delayed ACK, ~40 ms, which would
/// hide what is measured here).
fn turn(base: &str, body: &Value) -> (Duration, bool) {
    let addr = base.trim_start_matches("http://");
    let body = body.to_string();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {}\r\nanthropic-version: 2023-06-01\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        connect_token(),
        body.len()
    );
    let started = Instant::now();
    let mut socket = TcpStream::connect(addr).expect("the server listens");
    socket.set_nodelay(true).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let (mut seen, mut buf, mut ttft) = (Vec::new(), vec![0; 8192], None);
    loop {
        let n = socket.read(&mut buf).expect("the stream reads");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if ttft.is_none() && text.contains("text_delta") {
            ttft = Some(started.elapsed());
        }
        if n == 0 || text.contains("message_stop") {
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            return (ttft.unwrap_or_else(|| started.elapsed()), text.contains("\"tool_use\""));
        }
    }
}

/// What one server did: upstream bytes and the sum of the tails (all loops), the median TTFT of
/// the loops' first and last turns, and the continued turns read from an elided body.
struct Figures {
    bytes: f64,
    tails: usize,
    first: Duration,
    last: Duration,
    elided: f64,
}

/// The loops on one server.
fn run(mock: &MockKimi, sessions: &str) -> Figures {
    // The scripted turns count from the mock's first completion.
    mock.reset_stats();
    let turns = (0..LOOPS).flat_map(|_| (1..=TURNS).map(|n| vec![answer(n)]));
    mock.script(Script { turns: turns.collect(), ..Script::default() });
    let server = Server::start(mock.url(), sessions);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let (mut tails, mut firsts, mut lasts) = (0, Vec::new(), Vec::new());
    for round in 1..=LOOPS {
        let (added, first, last) = agent_loop(&server.base, round);
        tails += added;
        firsts.push(first);
        lasts.push(last);
    }
    let bytes = server.metric(&agent, "kimi_free_api_upstream_bytes_total");
    let elided = server.metric(&agent, "kimi_free_api_session_bodies_elided_total");
    Figures { bytes, tails, first: median(firsts), last: median(lasts), elided }
}

/// One agent loop of [`TURNS`] turns (`round` makes its task its own): the sum of its tails,
/// the TTFT of its first and last turns.
fn agent_loop(base: &str, round: usize) -> (usize, Duration, Duration) {
    let schema =
        json!({"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]});
    let tools = json!([{"name": "Read", "description": "Reads a file from the local filesystem.", "input_schema": schema}]);
    let task = format!("Task {round}: read the files of the project one by one and summarise them.");
    let first = json!({"role": "user", "content": task});
    let mut tails = first.to_string().len();
    let mut messages = vec![first];
    let mut ttfts = Vec::new();
    for n in 1..=TURNS {
        let body = json!({"model": "kimi", "max_tokens": 4096, "stream": true,
            "system": "You are a coding agent. Use the tools.", "tools": tools, "messages": messages});
        let (ttft, called) = turn(base, &body);
        assert!(called, "turn {n} ends with its call");
        ttfts.push(ttft);
        let id = format!("toolu_{round}_{n:04}");
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": format!("Step {n}: reading the next file.")},
            {"type": "tool_use", "id": id, "name": "Read", "input": {"file_path": format!("/src/f{n}.rs")}}]}));
        let result = json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": tool_result(n)}]});
        if n < TURNS {
            tails += result.to_string().len();
        }
        messages.push(result);
    }
    (tails, ttfts[0], ttfts[TURNS - 1])
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let mock = MockKimi::start();
    let (on, off) = (run(&mock, "64"), run(&mock, "0"));
    let continued = LOOPS * (TURNS - 2);
    let row = |label: &str, f: &Figures| {
        let ratio = f.bytes / f.tails as f64;
        format!("| {label} | {:.0} | {ratio:.2} | {} ms | {} ms |", f.bytes, ms(f.first), ms(f.last))
    };
    let rows = [
        String::new(),
        format!(
            "### Agent session: {TURNS}-turn tool loop ×{LOOPS}, Anthropic API, {RESULT_BYTES}-byte tool results (connect)"
        ),
        String::new(),
        "| sessions | bytes sent to Kimi | × the sum of the new tails | TTFT first turn (median) | TTFT last turn (median) |"
            .into(),
        "| --- | --- | --- | --- | --- |".into(),
        row("on (64)", &on),
        row("off (0)", &off),
        format!(
            "| target: on ≤ 1.5× the tails ({} bytes) | {} | | | last ≤ first: {} |",
            on.tails,
            if on.bytes <= 1.5 * on.tails as f64 { "met" } else { "NOT met" },
            if on.last <= on.first { "met" } else { "not met" }
        ),
        String::new(),
        format!("Continued turns read without the history their chat holds: {:.0} of {continued}.", on.elided),
    ];
    let text = rows.join("\n") + "\n";
    print!("{text}");
    std::fs::create_dir_all("target/bench").unwrap();
    let path = "target/bench/report.md";
    let mut report = std::fs::read_to_string(path).unwrap_or_default();
    report.push_str(&text);
    std::fs::write(path, report).unwrap();
}
