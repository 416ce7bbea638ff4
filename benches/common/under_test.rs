//! The server under test in the proxy bench: starting it as a child process, waiting for its
//! first `/ping`, reading its memory, and streaming an OpenAI chat through it.

use std::io::Read;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kimi_free_api::kimi::sse::SseDecoder;
use serde::Deserialize;
use serde_json::{Value, json};

use super::server;
use super::stream::{Backend, LEGACY_TOKEN, Run, connect_token};

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

/// The server under test, as a child process.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Server-pool mode: the API key callers present (instead of a Kimi token).
    key: Option<String>,
}

impl Server {
    /// Starts the server and returns it with the time from exec to its first 2xx on `/ping`.
    /// The mock has no per-account limit and the bench runs up to 500 streams on one token, so
    /// `--account-streams` is raised out of the way (the pool's bookkeeping still runs).
    pub fn start(mock: &str) -> (Server, Duration) {
        Self::start_with(mock, &[], None)
    }

    pub fn start_with(mock: &str, extra: &[&str], key: Option<&str>) -> (Server, Duration) {
        let started = Instant::now();
        let mut flags = vec!["--account-streams", "1024"];
        flags.extend_from_slice(extra);
        let (child, base) = server::spawn(mock, &flags);
        let addr = base.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if super::ping::ping(&addr) {
                break;
            }
            assert!(Instant::now() < deadline, "the server did not answer /ping");
            thread::sleep(Duration::from_micros(200));
        }
        let startup = started.elapsed();
        (Server { child, base, key: key.map(str::to_string) }, startup)
    }

    pub fn rss_kb(&self) -> u64 {
        rss_kb_of(self.child.id())
    }

    pub fn stream(&self, backend: Backend, agent: &ureq::Agent) -> Run {
        self.stream_with_tools(backend, agent, &Value::Null)
    }

    /// A streamed chat whose request declares `tools` (a JSON array, or null for none).
    pub fn stream_with_tools(&self, backend: Backend, agent: &ureq::Agent, tools: &Value) -> Run {
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

/// Samples the server's RSS until told to stop; returns the peak in kB.
pub fn sample_peak(server_pid: u32, stop: Arc<Mutex<bool>>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut peak = 0;
        let deadline = Instant::now() + Duration::from_secs(300);
        while !*stop.lock().unwrap() && Instant::now() < deadline {
            peak = peak.max(rss_kb_of(server_pid));
            thread::sleep(Duration::from_millis(10));
        }
        peak
    })
}

/// The resident memory of process `pid` in kB (0 if unreadable).
fn rss_kb_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
