//! One measured stream, as both sides of the proxy bench share it: the backend it goes to, the
//! token a caller presents for it, the HTTP agent that carries it, and what it gave (`Run`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

pub const LEGACY_TOKEN: &str = "rt-bench";

#[derive(Clone, Copy, PartialEq)]
pub enum Backend {
    Legacy,
    Connect,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Connect => "connect",
        }
    }
}

pub fn connect_token() -> String {
    connect_token_of("bench-user")
}

pub fn connect_token_of(sub: &str) -> String {
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
pub struct Run {
    pub ttft: Option<Duration>,
    pub latencies_us: Vec<u64>,
    pub events: usize,
    pub bytes: usize,
    pub ok: bool,
    pub failure: Option<String>,
}

impl Run {
    pub fn piece(&mut self, started: Instant, text: &str) {
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

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .max_idle_connections(1000)
        .max_idle_connections_per_host(1000)
        .build()
        .new_agent()
}
