//! Shared test support: the mock Kimi upstream, the real server started in-process on a free
//! loopback port, and a small HTTP client that records when each SSE frame arrived (and checks
//! every answer of the Responses API against OpenAI's schemas, `openapi.rs`).

#![allow(dead_code)]

pub mod mock;
pub mod openapi;
pub mod ping;
pub mod pool;
pub mod process;
pub mod proxy;

use std::io::Read;
use std::time::{Duration, Instant};

use kimi_free_api::config::Config;
use kimi_free_api::server::{self, RunningServer};
use serde_json::Value;

#[allow(unused_imports)] // each test file uses its own subset
pub use mock::{Fault, MockKimi, Script, Seen, mint_jwt};

/// A refresh token the mock accepts.
pub const TOKEN: &str = "rt-good-1";

/// Which kind of token a test uses (and so which Kimi API and login it exercises).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A legacy refresh_token: the REST + SSE API.
    Legacy,
    /// An old kimi-auth cookie JWT: the Connect API as is.
    Connect,
    /// A 2026 web refresh token: renewed (and rotated) at the auth host, then the Connect API.
    Web,
}

/// The Kimi API a token kind ends up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Legacy,
    Connect,
}

impl Kind {
    pub fn api(self) -> Api {
        match self {
            Kind::Legacy => Api::Legacy,
            Kind::Connect | Kind::Web => Api::Connect,
        }
    }

    /// A token of this kind for the account `user`.
    pub fn token_for(self, user: &str) -> String {
        match self {
            Kind::Legacy => format!("rt-{user}"),
            Kind::Connect => connect_token(user),
            Kind::Web => web_refresh_token(user),
        }
    }

    pub fn token(self) -> String {
        match self {
            Kind::Legacy => TOKEN.to_string(),
            Kind::Connect | Kind::Web => self.token_for("user-1"),
        }
    }

    /// The fault by which Kimi says another answer is streaming on the account (429).
    pub fn busy_fault(self) -> Fault {
        let error_type = match self.api() {
            Api::Legacy => "chat.user_stream_pushing",
            Api::Connect => "resource_exhausted",
        };
        Fault::CompletionStatus { status: 400, error_type: error_type.into() }
    }

    /// A token of this kind that Kimi refuses.
    pub fn refused_token(self) -> String {
        match self {
            Kind::Legacy => "bad-token".to_string(),
            Kind::Connect | Kind::Web => self.token_for("expired-user"),
        }
    }
}

/// A kimi-auth JWT (payload `typ: access`, `app_id: kimi`) for the user `sub`.
pub fn connect_token(sub: &str) -> String {
    mock::mint_jwt(&serde_json::json!({"iss": "user-center", "exp": 4_102_444_800u64, "typ": "access",
        "app_id": "kimi", "sub": sub, "ssid": "1731086499958639802", "device_id": "7651804114103329291",
        "region": "cn"}))
}

/// [`connect_token`] carrying a `mock` claim: what the mock makes of the account, e.g.
/// `{"plan": "free"}`, `{"catalogue": "variant"}`, `{"credits_used": 0.9}` or a fault.
pub fn connect_token_with(sub: &str, mock: Value) -> String {
    mock::mint_jwt(&serde_json::json!({"iss": "user-center", "exp": 4_102_444_800u64, "typ": "access",
        "app_id": "kimi", "sub": sub, "ssid": "1731086499958639802", "device_id": "7651804114103329291",
        "region": "cn", "mock": mock}))
}

/// [`web_refresh_token`] carrying a `mock` claim (see [`connect_token_with`]); the mock copies it
/// into the access tokens it mints.
pub fn web_refresh_token_with(sub: &str, mock: Value) -> String {
    let iat = 1_795_000_000u64;
    mock::mint_jwt(&serde_json::json!({"iss": "account-nt", "typ": "refresh", "app_id": "kimi", "sub": sub,
        "ssid": format!("ss-{sub}"), "device_id": format!("7{:018}", sub.len() * 7919), "region": "overseas",
        "iat": iat, "exp": iat + 90 * 86_400, "mock": mock}))
}

/// A 2026 web refresh token (lives 90 days, carries the web client's identity) for `sub`.
pub fn web_refresh_token(sub: &str) -> String {
    web_refresh_token_in(sub, "cn")
}

/// [`web_refresh_token`] of an account in `region` (`cn` or `overseas`). The same for the same
/// arguments (a test that builds it twice presents one token, as a user pasting it would).
pub fn web_refresh_token_in(sub: &str, region: &str) -> String {
    let iat = 1_795_000_000u64;
    mock::mint_jwt(&serde_json::json!({"iss": "account-nt", "typ": "refresh", "app_id": "kimi", "sub": sub,
        "ssid": format!("ss-{sub}"), "device_id": format!("7{:018}", sub.len() * 7919), "region": region,
        "iat": iat, "exp": iat + 90 * 86_400}))
}

/// Runs each named test body, `fn name(kind: Kind)`, once per token kind.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn legacy() {
                super::$name($crate::support::Kind::Legacy)
            }
            #[test]
            fn connect() {
                super::$name($crate::support::Kind::Connect)
            }
            #[test]
            fn web() {
                super::$name($crate::support::Kind::Web)
            }
        }
    )+};
}

/// The mock and the server pointed at it.
pub struct Harness {
    pub mock: MockKimi,
    pub server: RunningServer,
    pub base: String,
    /// The server's state directory (removed when the harness is dropped).
    pub state_dir: std::path::PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// A state directory of its own for each server a test starts.
/// The names a Connect chat body declared as device tools (`docs/tools.md` §3), in order.
#[allow(dead_code)]
pub fn device_tools(body: Option<&Value>) -> Vec<String> {
    let tools = body.and_then(|b| b["tools"].as_array()).cloned().unwrap_or_default();
    tools
        .iter()
        .filter(|t| t["type"] == "TOOL_TYPE_DEVICE_TOOL")
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

pub fn temp_state_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("kimi-free-api-test-{}-{n}", std::process::id()))
}

/// A configuration whose every Kimi host is `mock`, with a fresh state directory.
pub fn config_for(mock: &MockKimi) -> Config {
    Config {
        host: "127.0.0.1".into(),
        port: 0,
        kimi_base_url: mock.url().to_string(),
        kimi_connect_base_url: mock.url().to_string(),
        kimi_auth_base_url: mock.url().to_string(),
        kimi_global_base_url: mock.url().to_string(),
        kimi_global_auth_base_url: mock.url().to_string(),
        state_dir: temp_state_dir(),
        workers: 8,
        // Room for a test's burst (ten requests at once) while the workers it starts on demand
        // come up: a queue of 8 answered the last two 503 when no worker had taken one yet.
        queue_depth: 16,
        upstream_timeout: Duration::from_secs(1),
        // Tests that are not about the account pool run many streams on one token.
        account_streams: 64,
        // One chat per request, as these tests pin it; tests/sessions.rs turns sessions on.
        sessions: 0,
        ..Config::default()
    }
}

impl Harness {
    pub fn start() -> Harness {
        Self::start_with(|_| {})
    }

    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> Harness {
        let mock = MockKimi::start();
        let mut config = config_for(&mock);
        adjust(&mut config);
        let state_dir = config.state_dir.clone();
        let server = server::start(config).expect("server starts");
        let base = format!("http://{}", server.addr());
        Harness { mock, server, base, state_dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's `/metrics` text (no API keys are set in a harness).
    #[allow(dead_code)]
    pub fn metrics(&self) -> String {
        let reply = get(&self.url("/metrics"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

/// A complete answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn reply(response: ureq::http::Response<ureq::Body>) -> Reply {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = response.into_body().read_to_string().unwrap_or_default();
    Reply { status, headers, body }
}

pub fn get(url: &str) -> Reply {
    reply(agent().get(url).call().expect("GET completes"))
}

pub fn request(method: &str, url: &str) -> Reply {
    let request = ureq::http::Request::builder().method(method).uri(url).body(()).unwrap();
    reply(agent().run(request).expect("request completes"))
}

/// Posts JSON with the given headers.
pub fn post_with(url: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    post_bytes(url, headers, body.to_string().as_bytes())
}

/// A POST of these very bytes (a body laid out otherwise than `serde_json` would).
pub fn post_bytes(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut builder = agent().post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    checked(url, reply(builder.send(body).expect("POST completes")))
}

/// A Responses API answer is checked against OpenAI's schemas.
fn checked(url: &str, reply: Reply) -> Reply {
    if openapi::is_responses(url) {
        openapi::check_answer(reply.status, &reply.body);
    }
    reply
}

/// GETs with the given headers.
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = agent().get(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    reply(builder.call().expect("GET completes"))
}

pub fn post(url: &str, token: Option<&str>, body: &str) -> Reply {
    let mut builder = agent().post(url).header("Content-Type", "application/json");
    if let Some(token) = token {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    checked(url, reply(builder.send(body.as_bytes()).expect("POST completes")))
}

pub fn post_json(url: &str, token: Option<&str>, body: &Value) -> Reply {
    post(url, token, &body.to_string())
}

/// One SSE frame's data (and `event:` name, if any) and when it arrived.
#[derive(Debug, Clone)]
pub struct Frame {
    pub at: Instant,
    pub event: Option<String>,
    pub data: String,
}

/// Asserts that frames (of a stream whose upstream paced its events) arrived spread over at
/// least `at_least`, each after the one before: proof that nothing buffered them.
pub fn assert_arrived_apart(frames: &[&Frame], at_least: std::time::Duration) {
    let spread = frames.last().unwrap().at.duration_since(frames[0].at);
    assert!(spread >= at_least, "frames arrived in a lump: {spread:?}");
    for pair in frames.windows(2) {
        assert!(pair[1].at > pair[0].at, "each frame arrives on its own");
    }
}

impl Frame {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {}", self.data))
    }
}

/// A streamed answer: status, content type and each `data:` frame with its arrival time.
#[derive(Debug)]
pub struct Streamed {
    pub status: u16,
    pub content_type: String,
    pub frames: Vec<Frame>,
    /// Whether the body ended properly (terminating chunk).
    pub complete: bool,
    pub body_if_error: String,
    /// The whole body as received.
    pub raw: String,
}

impl Streamed {
    pub fn data(&self) -> Vec<&str> {
        self.frames.iter().map(|f| f.data.as_str()).collect()
    }

    /// The concatenated `delta.content` of OpenAI chunks.
    pub fn content(&self) -> String {
        self.field("content")
    }

    pub fn reasoning(&self) -> String {
        self.field("reasoning_content")
    }

    fn field(&self, name: &str) -> String {
        self.frames
            .iter()
            .filter(|f| f.data != "[DONE]")
            .filter_map(|f| f.json()["choices"][0]["delta"][name].as_str().map(str::to_string))
            .collect()
    }
}

/// Posts and reads the SSE answer incrementally, stamping each frame as it arrives.
pub fn stream(url: &str, token: Option<&str>, body: &Value) -> Streamed {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    stream_with(url, &headers, body)
}

/// [`stream`] with the given headers.
pub fn stream_with(url: &str, headers: &[(&str, &str)], body: &Value) -> Streamed {
    let mut builder = agent().post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder.send(body.to_string().as_bytes()).expect("POST completes");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if !content_type.starts_with("text/event-stream") {
        let body_if_error = response.into_body().read_to_string().unwrap_or_default();
        let raw = body_if_error.clone();
        if openapi::is_responses(url) {
            openapi::check_answer(status, &body_if_error);
        }
        return Streamed { status, content_type, frames: Vec::new(), complete: true, body_if_error, raw };
    }
    let mut reader = response.into_body().into_reader();
    let mut pending = Vec::new();
    let mut frames = Vec::new();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = loop {
        match reader.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                let at = Instant::now();
                raw.extend_from_slice(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = frame_end(&pending) {
                    let frame: Vec<u8> = pending.drain(..end).collect();
                    let text = String::from_utf8(frame).expect("frames are UTF-8");
                    let mut event = None;
                    for line in text.lines() {
                        if let Some(name) = line.strip_prefix("event: ") {
                            event = Some(name.trim_end().to_string());
                        } else if let Some(data) = line.strip_prefix("data: ") {
                            frames.push(Frame {
                                at,
                                event: event.clone(),
                                data: data.trim_end().to_string(),
                            });
                        }
                    }
                }
            }
            Err(_) => break false,
        }
    };
    let raw = String::from_utf8(raw).expect("the body is UTF-8");
    if openapi::is_responses(url) {
        openapi::check_events(frames.iter().map(|frame| frame.data.as_str()));
    }
    Streamed { status, content_type, frames, complete, body_if_error: String::new(), raw }
}

/// Where the first SSE frame in `bytes` ends (after its blank line, `\n\n` or `\r\n\r\n`).
fn frame_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
