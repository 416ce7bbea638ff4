//! `make bench`: the server measured against the mock Kimi served directly, in one run, for both
//! Kimi backends, as ratios (server / direct) so that a noisy 2-core machine still gives
//! comparable figures. Loopback only; every loop is bounded in count and time.
//!
//! "Direct" does the least upstream work a proxy must do: for the legacy API, create a chat and
//! read its completion stream; for Connect, one `Chat` call. Its chats are deleted afterwards,
//! outside the timing, so that the mock's count of live chats at the end is the server's leak.
//!
//! Run with the release server built: `make bench` (writes `target/bench/report.md`).

#[path = "../tests/support/mock/mod.rs"]
mod mock;
#[path = "common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kimi_free_api::kimi::envelope;
use kimi_free_api::kimi::sse::SseDecoder;
use mock::{MockKimi, Script};
use serde::Deserialize;
use serde_json::{Value, json};

/// The fields a client reads from a legacy event (typed: the bench should cost the client as
/// little on one side as on the other).
#[derive(Deserialize)]
struct LegacyEvent<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(default)]
    text: Option<String>,
}

/// The fields a client reads from an OpenAI chunk.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

const LEGACY_TOKEN: &str = "rt-bench";
/// Sequential streams per side and backend for latency.
const LATENCY_RUNS: usize = 40;
/// Events in one bulk-transfer stream, and the padding of each.
const BULK_EVENTS: usize = 20_000;
const BULK_PAD: usize = 200;
const LEVELS: [usize; 5] = [10, 50, 100, 200, 500];
/// Bursts measured again with idle keep-alive connections already open to the server.
const KEEP_ALIVE_LEVELS: [usize; 3] = [10, 100, 500];
const KEEP_ALIVE_IDLE: usize = 100;
/// Silent and half-sent sockets held open beside /ping and a chat.
const STUCK_SILENT: usize = 200;
const STUCK_HALF: usize = 100;

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Legacy,
    Connect,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Connect => "connect",
        }
    }
}

/// The key callers of the server-pool row present.
const POOL_KEY: &str = "bench-pool-key";
/// Accounts in the server-pool row's tokens file.
const POOL_ACCOUNTS: usize = 4;

fn connect_token() -> String {
    connect_token_of("bench-user")
}

fn connect_token_of(sub: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"typ": "access", "app_id": "kimi", "sub": sub, "ssid": "1", "device_id": "7"});
    format!("{}.{}.{}", b64.encode("{\"alg\":\"HS512\"}"), b64.encode(claims.to_string()), b64.encode("sig"))
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// What one stream gave: time to the first answer event, each event's latency (from the
/// mock's stamp), and the answer's size.
#[derive(Default, Clone)]
struct Run {
    ttft: Option<Duration>,
    latencies_us: Vec<u64>,
    events: usize,
    bytes: usize,
    ok: bool,
    failure: Option<String>,
}

impl Run {
    fn piece(&mut self, started: Instant, text: &str) {
        if text.is_empty() {
            return;
        }
        self.ttft.get_or_insert_with(|| started.elapsed());
        if let Some(stamp) = text.get(..16).and_then(|s| s.parse::<u64>().ok()) {
            self.latencies_us.push(now_micros().saturating_sub(stamp));
        }
        self.events += 1;
        self.bytes += text.len();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .max_idle_connections(1000)
        .max_idle_connections_per_host(1000)
        .build()
        .new_agent()
}

/// The direct side: the upstream work a proxy must do, against the mock.
struct Direct {
    base: String,
    access: String,
    agent: ureq::Agent,
}

impl Direct {
    fn new(base: &str) -> Direct {
        let agent = agent();
        let mut tokens = agent
            .get(format!("{base}/api/auth/token/refresh"))
            .header("Authorization", format!("Bearer {LEGACY_TOKEN}"))
            .call()
            .unwrap();
        let tokens: Value = serde_json::from_str(&tokens.body_mut().read_to_string().unwrap()).unwrap();
        Direct { base: base.to_string(), access: tokens["access_token"].as_str().unwrap().to_string(), agent }
    }

    fn user_id(&self) -> String {
        let mut user = self
            .agent
            .get(format!("{}/api/user", self.base))
            .header("Authorization", format!("Bearer {}", self.access))
            .call()
            .unwrap();
        let user: Value = serde_json::from_str(&user.body_mut().read_to_string().unwrap()).unwrap();
        user["id"].as_str().unwrap().to_string()
    }

    fn stream(&self, backend: Backend, user: &str) -> Run {
        let started = Instant::now();
        let mut run = Run::default();
        let result = match backend {
            Backend::Legacy => self.legacy(started, user, &mut run),
            Backend::Connect => self.connect(started, &mut run),
        };
        match result {
            Ok(chat_id) => {
                run.ok = true;
                self.delete(backend, &chat_id);
            }
            Err(why) => run.failure = Some(why),
        }
        run
    }

    fn legacy(&self, started: Instant, user: &str, run: &mut Run) -> Result<String, String> {
        let auth = format!("Bearer {}", self.access);
        let mut created = self
            .agent
            .post(format!("{}/api/chat", self.base))
            .header("Authorization", &auth)
            .header("X-Traffic-Id", user)
            .header("Content-Type", "application/json")
            .send(json!({"name": "bench", "kimiplus_id": "kimi"}).to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let created: Value =
            serde_json::from_str(&created.body_mut().read_to_string().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let chat_id = created["id"].as_str().ok_or("no chat id")?.to_string();
        let body = json!({"kimiplus_id": "kimi", "messages": [{"role": "user", "content": "bench\n"}], "refs": [],
            "use_search": false, "extend": {"sidebar": true}});
        let response = self
            .agent
            .post(format!("{}/api/chat/{chat_id}/completion/stream", self.base))
            .header("Authorization", &auth)
            .header("X-Traffic-Id", user)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reader = response.into_body().into_reader();
        let mut decoder = SseDecoder::new();
        let mut buf = vec![0; 8192];
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("stream ended early".into());
            }
            decoder.push(&buf[..n]);
            while let Some(data) = decoder.next_event().map_err(|e| e.to_string())? {
                let event: LegacyEvent = serde_json::from_str(&data).map_err(|e| e.to_string())?;
                match event.event {
                    "cmpl" => run.piece(started, event.text.as_deref().unwrap_or_default()),
                    "all_done" => return Ok(chat_id),
                    _ => {}
                }
            }
        }
    }

    fn connect(&self, started: Instant, run: &mut Run) -> Result<String, String> {
        let token = connect_token();
        // The request the server sends for `kimi` (docs/kimi-protocol.md §7.2), which the mock
        // checks against its catalogue like Kimi.
        let body = json!({"scenario": "SCENARIO_CHAT", "tools": [{"type": "TOOL_TYPE_CRON_JOB"}],
            "message": {"role": "user", "blocks": [{"message_id": "", "text": {"content": "bench\n"}}],
                "scenario": "SCENARIO_CHAT", "is_goal": false},
            "options": {"thinking": true, "enable_plugin": true, "reasoning_effort": "REASONING_EFFORT_NONE",
                "model": "k2d6-chat"},
            "project_id": ""});
        let response = self
            .agent
            .post(format!("{}/apiv2/kimi.gateway.chat.v1.ChatService/Chat", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Traffic-Id", "bench-user")
            .header("Content-Type", "application/connect+json")
            .send(&envelope::encode(0, body.to_string().as_bytes())[..])
            .map_err(|e| e.to_string())?;
        let mut reader = response.into_body().into_reader();
        let mut decoder = envelope::Decoder::new();
        let mut buf = vec![0; 8192];
        let mut chat_id = String::new();
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("stream ended early".into());
            }
            decoder.push(&buf[..n]);
            while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
                if frame.is_end_stream() {
                    return Ok(chat_id);
                }
                let event: Value = serde_json::from_slice(&frame.payload).map_err(|e| e.to_string())?;
                if let Some(id) = event["chat"]["id"].as_str() {
                    chat_id = id.to_string();
                }
                if let Some(text) = event["block"]["text"]["content"].as_str() {
                    run.piece(started, text);
                }
            }
        }
    }

    fn delete(&self, backend: Backend, chat_id: &str) {
        let _ = match backend {
            Backend::Legacy => self
                .agent
                .delete(format!("{}/api/chat/{chat_id}", self.base))
                .header("Authorization", format!("Bearer {}", self.access))
                .call(),
            Backend::Connect => self
                .agent
                .post(format!("{}/apiv2/kimi.chat.v1.ChatService/DeleteChat", self.base))
                .header("Authorization", format!("Bearer {}", connect_token()))
                .header("Content-Type", "application/json")
                .send(json!({"chat_id": chat_id}).to_string().as_bytes()),
        };
    }
}

/// The server under test, as a child process.
struct Server {
    child: Child,
    base: String,
    /// Server-pool mode: the API key callers present (instead of a Kimi token).
    key: Option<String>,
}

impl Server {
    /// Starts the server and returns it with the time from exec to its first 2xx on `/ping`.
    /// The mock has no per-account limit and the bench runs up to 500 streams on one token, so
    /// `--account-streams` is raised out of the way (the pool's bookkeeping still runs).
    fn start(mock: &str) -> (Server, Duration) {
        Self::start_with(mock, &[], None)
    }

    fn start_with(mock: &str, extra: &[&str], key: Option<&str>) -> (Server, Duration) {
        let started = Instant::now();
        let mut flags = vec!["--account-streams", "1024"];
        flags.extend_from_slice(extra);
        let (child, base) = server::spawn(mock, &flags);
        let addr = base.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if ping(&addr) {
                break;
            }
            assert!(Instant::now() < deadline, "the server did not answer /ping");
            thread::sleep(Duration::from_micros(200));
        }
        let startup = started.elapsed();
        (Server { child, base, key: key.map(str::to_string) }, startup)
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn stream(&self, backend: Backend, agent: &ureq::Agent) -> Run {
        self.stream_with_tools(backend, agent, &Value::Null)
    }

    /// A streamed chat whose request declares `tools` (a JSON array, or null for none).
    fn stream_with_tools(&self, backend: Backend, agent: &ureq::Agent, tools: &Value) -> Run {
        let token = match (&self.key, backend) {
            (Some(key), _) => key.clone(),
            (None, Backend::Legacy) => LEGACY_TOKEN.to_string(),
            (None, Backend::Connect) => connect_token(),
        };
        let started = Instant::now();
        let mut run = Run::default();
        let mut body =
            json!({"model": "kimi", "stream": true, "messages": [{"role": "user", "content": "bench"}]});
        if tools.is_array() {
            body["tools"] = tools.clone();
        }
        let response = agent
            .post(format!("{}/v1/chat/completions", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes());
        let response = match response {
            Ok(response) if response.status() == 200 => response,
            Ok(response) => {
                run.failure = Some(format!("HTTP {}", response.status().as_u16()));
                return run;
            }
            Err(e) => {
                run.failure = Some(format!("transport: {e}"));
                return run;
            }
        };
        let mut reader = response.into_body().into_reader();
        let mut decoder = SseDecoder::new();
        let mut buf = vec![0; 8192];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    run.failure = Some(format!("read: {e}"));
                    return run;
                }
            };
            if n == 0 {
                run.failure = Some("stream ended early".into());
                return run;
            }
            decoder.push(&buf[..n]);
            while let Ok(Some(data)) = decoder.next_event() {
                if data == "[DONE]" {
                    run.ok = true;
                    return run;
                }
                let Ok(chunk) = serde_json::from_str::<Chunk>(&data) else {
                    run.failure = Some("unreadable chunk".into());
                    return run;
                };
                if chunk.error.is_some() {
                    run.failure = Some("error chunk".into());
                }
                if let Some(text) = chunk.choices.first().and_then(|c| c.delta.content.as_deref()) {
                    run.piece(started, text);
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(addr: &str) -> bool {
    let Ok(mut socket) = TcpStream::connect(addr) else { return false };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    if socket.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 12];
    socket.read_exact(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 2")
}

/// Runs `level` copies of `stream` at once (released together) and returns what each gave.
fn burst(level: usize, stream: impl Fn() -> Run + Sync) -> Vec<Run> {
    let barrier = Barrier::new(level);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..level)
            .map(|_| {
                let (barrier, stream) = (&barrier, &stream);
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        barrier.wait();
                        stream()
                    })
                    .unwrap()
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `count` keep-alive connections that each made one request and then stay silent.
fn open_idle_keep_alive(base: &str, count: usize) -> Vec<TcpStream> {
    let addr = base.trim_start_matches("http://");
    (0..count)
        .filter_map(|_| {
            let mut socket = TcpStream::connect(addr).ok()?;
            socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            socket.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
            let mut answer = Vec::new();
            let mut buf = [0u8; 512];
            while !answer.ends_with(b"pong") {
                let n = socket.read(&mut buf).ok().filter(|n| *n > 0)?;
                answer.extend_from_slice(&buf[..n]);
            }
            Some(socket)
        })
        .collect()
}

/// Sockets that send nothing, and sockets that sent half a request head.
fn open_stuck(base: &str, silent: usize, half: usize) -> Vec<TcpStream> {
    let addr = base.trim_start_matches("http://");
    let mut sockets: Vec<TcpStream> = (0..silent).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    for _ in 0..half {
        if let Ok(mut socket) = TcpStream::connect(addr) {
            let _ = socket.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le");
            sockets.push(socket);
        }
    }
    sockets
}

fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank]
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn ratio(server: f64, direct: f64) -> String {
    if direct <= 0.0 { "-".into() } else { format!("{:.2}×", server / direct) }
}

/// Samples the server's RSS until told to stop; returns the peak in kB.
fn sample_peak(server_pid: u32, stop: Arc<Mutex<bool>>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut peak = 0;
        let deadline = Instant::now() + Duration::from_secs(300);
        while !*stop.lock().unwrap() && Instant::now() < deadline {
            let status = std::fs::read_to_string(format!("/proc/{server_pid}/status")).unwrap_or_default();
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            peak = peak.max(rss);
            thread::sleep(Duration::from_millis(10));
        }
        peak
    })
}

/// Twenty function tools of the size Claude Code sends (a description and a few parameters).
fn twenty_tools() -> Value {
    let tools: Vec<Value> = (0..20)
        .map(|i| {
            json!({"type": "function", "function": {"name": format!("tool_{i}"),
                "description": "Reads a file from the local filesystem and returns its contents with line numbers.",
                "parameters": {"type": "object", "properties": {
                    "file_path": {"type": "string", "description": "The absolute path to the file"},
                    "offset": {"type": "integer"}, "limit": {"type": "integer"}}, "required": ["file_path"]}}})
        })
        .collect();
    Value::Array(tools)
}

/// (g) the cost of the tool-call parser: the same streamed answer (plain text, no call) with
/// twenty tools declared and with none, through the server, on the default (Connect) path.
fn tool_rows(mock: &MockKimi, server: &Server, client: &ureq::Agent, line: &mut impl FnMut(String)) {
    let (tools, none) = (twenty_tools(), Value::Null);
    mock.script(Script { stamp: true, events: 20, delay_ms: 5, ..Script::default() });
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..LATENCY_RUNS {
        let order = if i % 2 == 0 { [&tools, &none] } else { [&none, &tools] };
        for declared in order {
            let run = server.stream_with_tools(Backend::Connect, client, declared);
            if declared.is_array() { with.push(run) } else { without.push(run) }
        }
    }
    let lats = |runs: &[Run]| runs.iter().flat_map(|r| r.latencies_us.clone()).collect::<Vec<_>>();
    let (mut lw, mut ln) = (lats(&with), lats(&without));
    let (w, n) = (percentile(&mut lw, 50.0), percentile(&mut ln, 50.0));
    line(format!(
        "| event latency p50 (ms), 20 tools vs none | connect | {} | {} | +{} ms |",
        ms(w),
        ms(n),
        ms(w.saturating_sub(n))
    ));
    mock.script(Script { stamp: true, events: BULK_EVENTS, pad: BULK_PAD, ..Script::default() });
    let rate = |declared: &Value| {
        let started = Instant::now();
        let run = server.stream_with_tools(Backend::Connect, client, declared);
        (run.events as f64 / started.elapsed().as_secs_f64(), run.ok)
    };
    let ((rn, _), (rw, ok)) = (rate(&none), rate(&tools));
    line(format!(
        "| throughput ×1 (events/s), 20 tools vs none | connect | {rw:.0}{} | {rn:.0} | {} |",
        if ok { "" } else { " (failures)" },
        ratio(rw, rn)
    ));
}

fn main() {
    let total = Instant::now();
    let mock = MockKimi::start();
    let direct = Direct::new(mock.url());
    let user = direct.user_id();
    let mut report = String::new();
    let mut line = |text: String| {
        println!("{text}");
        report.push_str(&text);
        report.push('\n');
    };

    // (f) start-up, the median of five.
    let mut startups: Vec<u64> = (0..5).map(|_| Server::start(mock.url()).1.as_micros() as u64).collect();
    let startup = percentile(&mut startups, 50.0);
    let (server, _) = Server::start(mock.url());
    thread::sleep(Duration::from_millis(300));
    let rss_idle = server.rss_kb();
    let client = agent();

    line("## kimi-free-api benchmark".into());
    line(String::new());
    line(format!(
        "Machine: {} cores, {}; loopback only; server = release build, default flags but \
         --account-streams 1024 (the mock has no per-account limit).",
        thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_string()))
            .unwrap_or_default()
    ));
    line(String::new());
    line("| measure | backend | server | direct | ratio / added |".into());
    line("| --- | --- | --- | --- | --- |".into());

    for backend in [Backend::Legacy, Backend::Connect] {
        let name = backend.name();
        // (a) TTFT and (b) per-event latency: sequential streams, the two sides alternating.
        mock.script(Script { stamp: true, events: 20, delay_ms: 5, ..Script::default() });
        let (mut server_runs, mut direct_runs) = (Vec::new(), Vec::new());
        for i in 0..LATENCY_RUNS {
            if i % 2 == 0 {
                direct_runs.push(direct.stream(backend, &user));
                server_runs.push(server.stream(backend, &client));
            } else {
                server_runs.push(server.stream(backend, &client));
                direct_runs.push(direct.stream(backend, &user));
            }
        }
        let ttfts = |runs: &[Run]| {
            runs.iter().filter_map(|r| r.ttft).map(|d| d.as_micros() as u64).collect::<Vec<_>>()
        };
        let lats = |runs: &[Run]| runs.iter().flat_map(|r| r.latencies_us.clone()).collect::<Vec<_>>();
        let (mut st, mut dt) = (ttfts(&server_runs), ttfts(&direct_runs));
        let (mut sl, mut dl) = (lats(&server_runs), lats(&direct_runs));
        for p in [50.0, 99.0] {
            let (s, d) = (percentile(&mut st, p), percentile(&mut dt, p));
            line(format!(
                "| TTFT p{p} (ms) | {name} | {} | {} | {} |",
                ms(s),
                ms(d),
                ratio(s as f64, d as f64)
            ));
        }
        for p in [50.0, 99.0] {
            let (s, d) = (percentile(&mut sl, p), percentile(&mut dl, p));
            line(format!(
                "| event latency p{p} (ms) | {name} | {} | {} | +{} ms |",
                ms(s),
                ms(d),
                ms(s.saturating_sub(d))
            ));
        }
        let failed = server_runs.iter().filter(|r| !r.ok).count();
        if failed > 0 {
            line(format!("| latency streams failed | {name} | {failed} | | |"));
        }

        // (c) throughput: long streams, 1 and 4 in parallel.
        mock.script(Script { stamp: true, events: BULK_EVENTS, pad: BULK_PAD, ..Script::default() });
        for parallel in [1usize, 4] {
            let measure = |through_server: bool| {
                let started = Instant::now();
                let runs: Vec<Run> = thread::scope(|scope| {
                    let handles: Vec<_> = (0..parallel)
                        .map(|_| {
                            scope.spawn(|| {
                                if through_server {
                                    server.stream(backend, &client)
                                } else {
                                    direct.stream(backend, &user)
                                }
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                let seconds = started.elapsed().as_secs_f64();
                let events: usize = runs.iter().map(|r| r.events).sum();
                let bytes: usize = runs.iter().map(|r| r.bytes).sum();
                (events as f64 / seconds, bytes as f64 / seconds / 1e6, runs.iter().all(|r| r.ok))
            };
            let (de, dmb, _) = measure(false);
            let (se, smb, ok) = measure(true);
            line(format!(
                "| throughput ×{parallel} (events/s, MB/s) | {name} | {:.0}, {:.1}{} | {:.0}, {:.1} | {} |",
                se,
                smb,
                if ok { "" } else { " (failures)" },
                de,
                dmb,
                ratio(se, de)
            ));
        }
    }
    tool_rows(&mock, &server, &client, &mut line);
    thread::sleep(Duration::from_secs(1));
    let rss_after_bulk = server.rss_kb();

    // (d) concurrency: slow streams started together on fresh connections, through the server
    // and directly, at each level; then the same bursts with idle keep-alive connections already
    // open to the server (each held a tiny_http thread: before the pool fix a burst queued
    // behind them). (e) peak RSS at each level. Target: TTFT p99 <= 3x direct + 50 ms.
    mock.script(Script { stamp: true, events: 10, delay_ms: 100, ..Script::default() });
    let (mut levels_met, mut levels) = (0, 0);
    for backend in [Backend::Legacy, Backend::Connect] {
        let bursts =
            LEVELS.iter().map(|&n| (n, 0)).chain(KEEP_ALIVE_LEVELS.iter().map(|&n| (n, KEEP_ALIVE_IDLE)));
        for (level, idle) in bursts {
            let direct_runs = burst(level, || direct.stream(backend, &user));
            let idle_sockets = open_idle_keep_alive(&server.base, idle);
            let stop = Arc::new(Mutex::new(false));
            let sampler = sample_peak(server.child.id(), stop.clone());
            let fresh = agent();
            let runs = burst(level, || server.stream(backend, &fresh));
            *stop.lock().unwrap() = true;
            let peak = sampler.join().unwrap();
            drop(idle_sockets);
            let summary = |runs: &[Run]| {
                let completed = runs.iter().filter(|r| r.ok).count();
                let mut kinds: Vec<String> = runs.iter().filter_map(|r| r.failure.clone()).collect();
                kinds.sort();
                kinds.dedup();
                let mut ttft: Vec<u64> =
                    runs.iter().filter_map(|r| r.ttft).map(|d| d.as_micros() as u64).collect();
                let mut lat: Vec<u64> = runs.iter().flat_map(|r| r.latencies_us.clone()).collect();
                let failures =
                    if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join("; ")) };
                (completed, failures, percentile(&mut ttft, 99.0), percentile(&mut lat, 99.0))
            };
            let (completed, failures, ttft, lat) = summary(&runs);
            let (d_completed, d_failures, d_ttft, _) = summary(&direct_runs);
            let limit = 3 * d_ttft + 50_000;
            let met = completed == level && ttft <= limit;
            levels += 1;
            levels_met += usize::from(met);
            let name = if idle == 0 {
                format!("{level} streams")
            } else {
                format!("{level} streams behind {idle} idle keep-alive connections")
            };
            line(format!(
                "| {name}: completed/failed, TTFT p99, event p99, peak RSS | {} | {completed}/{}{failures}, {} ms, {} ms, \
                 {:.1} MB | {d_completed}/{}{d_failures}, {} ms | {} (limit {} ms: {}) |",
                backend.name(),
                level - completed,
                ms(ttft),
                ms(lat),
                peak as f64 / 1024.0,
                level - d_completed,
                ms(d_ttft),
                ratio(ttft as f64, d_ttft as f64),
                ms(limit),
                if met { "met" } else { "MISSED" },
            ));
        }
    }

    // (g) stuck sockets: /ping and a chat beside silent and half-sent connections, against the
    // same with none open.
    let stuck_figures = |stuck: bool| {
        let sockets = if stuck { open_stuck(&server.base, STUCK_SILENT, STUCK_HALF) } else { Vec::new() };
        let mut pings: Vec<u64> = (0..50)
            .map(|_| {
                let started = Instant::now();
                assert!(ping(server.base.trim_start_matches("http://")));
                started.elapsed().as_micros() as u64
            })
            .collect();
        let mut ttfts: Vec<u64> = (0..10)
            .filter_map(|_| server.stream(Backend::Legacy, &client).ttft)
            .map(|d| d.as_micros() as u64)
            .collect();
        drop(sockets);
        (percentile(&mut pings, 99.0), percentile(&mut ttfts, 99.0))
    };
    let (ping_none, chat_none) = stuck_figures(false);
    let (ping_stuck, chat_stuck) = stuck_figures(true);
    line(format!(
        "| /ping p99, chat TTFT p99 beside {STUCK_SILENT} silent + {STUCK_HALF} half-sent sockets (vs none) | legacy | \
         {} ms, {} ms | {} ms, {} ms | +{} ms, +{} ms |",
        ms(ping_stuck),
        ms(chat_stuck),
        ms(ping_none),
        ms(chat_none),
        ms(ping_stuck.saturating_sub(ping_none)),
        ms(chat_stuck.saturating_sub(chat_none)),
    ));
    drop(server);
    for backend in [Backend::Legacy, Backend::Connect] {
        for row in pool_rows(&mock, &direct, &user, backend) {
            line(row);
        }
    }

    thread::sleep(Duration::from_millis(500));
    let stats = mock.settled();
    line(format!(
        "| RSS idle / after bulk transfer | both | {:.1} MB / {:.1} MB | | |",
        rss_idle as f64 / 1024.0,
        rss_after_bulk as f64 / 1024.0
    ));
    line(format!("| start-up, exec to first 2xx on /ping (median of 5) | - | {} ms | | |", ms(startup)));
    line(format!(
        "| concurrency target: TTFT p99 <= 3x direct + 50 ms | both | met at {levels_met} of {levels} levels | | |"
    ));
    line(format!(
        "| chats created / deleted / leaked | both | {} / {} / {} | | |",
        stats.chats_created,
        stats.chats_deleted,
        stats.live_chats.len()
    ));
    line(String::new());
    line(format!("Run time: {:.0} s.", total.elapsed().as_secs_f64()));
    std::fs::create_dir_all("target/bench").unwrap();
    std::fs::write("target/bench/report.md", &report).unwrap();
    println!("report written to target/bench/report.md");
}

/// The server-pool row: a tokens file of [`POOL_ACCOUNTS`] accounts of one backend, callers
/// presenting an API key, `/metrics` scraped after every stream; TTFT against direct in the
/// same alternation as the pass-through rows.
fn pool_rows(mock: &MockKimi, direct: &Direct, user: &str, backend: Backend) -> Vec<String> {
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir).unwrap();
    let tokens: Vec<String> = (0..POOL_ACCOUNTS)
        .map(|i| match backend {
            Backend::Legacy => format!("{LEGACY_TOKEN}-{i}"),
            Backend::Connect => connect_token_of(&format!("bench-pool-{i}")),
        })
        .collect();
    let file = dir.join(format!("tokens-{}", backend.name()));
    std::fs::write(&file, tokens.join("\n")).unwrap();
    let file = file.to_string_lossy().to_string();
    let flags = ["--tokens-file", file.as_str(), "--api-keys", POOL_KEY];
    let (server, _) = Server::start_with(mock.url(), &flags, Some(POOL_KEY));
    let client = agent();
    mock.script(Script { stamp: true, events: 20, delay_ms: 5, ..Script::default() });
    let (mut server_runs, mut direct_runs) = (Vec::new(), Vec::new());
    let mut scraped = 0;
    for i in 0..LATENCY_RUNS {
        if i % 2 == 0 {
            direct_runs.push(direct.stream(backend, user));
            server_runs.push(server.stream(backend, &client));
        } else {
            server_runs.push(server.stream(backend, &client));
            direct_runs.push(direct.stream(backend, user));
        }
        let metrics = client.get(format!("{}/metrics", server.base)).header("x-api-key", POOL_KEY).call();
        scraped += usize::from(metrics.is_ok_and(|r| r.status() == 200));
    }
    let ttfts =
        |runs: &[Run]| runs.iter().filter_map(|r| r.ttft).map(|d| d.as_micros() as u64).collect::<Vec<_>>();
    let (mut st, mut dt) = (ttfts(&server_runs), ttfts(&direct_runs));
    let name = format!("{}, server pool of {POOL_ACCOUNTS}", backend.name());
    let mut rows = Vec::new();
    for p in [50.0, 99.0] {
        let (s, d) = (percentile(&mut st, p), percentile(&mut dt, p));
        rows.push(format!(
            "| TTFT p{p} (ms) | {name} | {} | {} | {} |",
            ms(s),
            ms(d),
            ratio(s as f64, d as f64)
        ));
    }
    let failed = server_runs.iter().filter(|r| !r.ok).count();
    rows.push(format!("| streams failed / /metrics scrapes answered | {name} | {failed} / {scraped} | | |"));
    let _ = std::fs::remove_file(&file);
    rows
}
