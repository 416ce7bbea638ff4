//! `make bench`: the server measured against the mock Kimi served directly, in one run, for both
//! Kimi backends, as ratios (server / direct) so that a noisy 2-core machine still gives
//! comparable figures. Loopback only; every loop is bounded in count and time.
//!
//! "Direct" does the least upstream work a proxy must do: for the legacy API, create a chat and
//! read its completion stream; for Connect, one `Chat` call. Its chats are deleted afterwards,
//! outside the timing, so that the mock's count of live chats at the end is the server's leak.
//!
//! This file holds the rows and the report; its pieces are in `benches/common/`: the server under
//! test (`under_test.rs`), the direct side (`direct.rs`), one stream's record (`stream.rs`), load
//! and stuck sockets (`load.rs`), and percentiles and number formats (`figures.rs`).
//!
//! Run with the release server built: `make bench` (writes `target/bench/report.md`).

#[path = "common/direct.rs"]
mod direct;
#[path = "common/figures.rs"]
mod figures;
#[path = "common/load.rs"]
mod load;
#[path = "../tests/support/mock/mod.rs"]
mod mock;
#[path = "../tests/support/ping.rs"]
mod ping;
#[path = "common/server.rs"]
mod server;
#[path = "common/stream.rs"]
mod stream;
#[path = "common/under_test.rs"]
mod under_test;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use direct::Direct;
use figures::{ms, percentile, ratio};
use load::{burst, open_idle_keep_alive, open_stuck};
use mock::{MockKimi, Script};
use ping::ping;
use serde_json::{Value, json};
use stream::{Backend, LEGACY_TOKEN, Run, agent, connect_token_of};
use under_test::{Server, sample_peak};

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

/// The key callers of the server-pool row present.
const POOL_KEY: &str = "bench-pool-key";
/// Accounts in the server-pool row's tokens file.
const POOL_ACCOUNTS: usize = 4;

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
