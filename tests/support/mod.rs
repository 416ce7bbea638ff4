//! Shared test support: the mock Kimi upstream, the real server started in-process on a free
//! loopback port, and a small HTTP client that records when each SSE frame arrived.

#![allow(dead_code)]

pub mod mock;

use std::io::Read;
use std::time::{Duration, Instant};

use kimi_free_api::config::Config;
use kimi_free_api::server::{self, RunningServer};
use serde_json::Value;

#[allow(unused_imports)] // each test file uses its own subset
pub use mock::{Fault, MockKimi, Script};

/// A refresh token the mock accepts.
pub const TOKEN: &str = "rt-good-1";

/// Which Kimi API a test's token selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Legacy,
    Connect,
}

impl Kind {
    /// A token of this kind for the account `user`.
    pub fn token_for(self, user: &str) -> String {
        match self {
            Kind::Legacy => format!("rt-{user}"),
            Kind::Connect => connect_token(user),
        }
    }

    pub fn token(self) -> String {
        match self {
            Kind::Legacy => TOKEN.to_string(),
            Kind::Connect => connect_token("user-1"),
        }
    }

    /// The fault by which Kimi says another answer is streaming on the account (429).
    pub fn busy_fault(self) -> Fault {
        let error_type = match self {
            Kind::Legacy => "chat.user_stream_pushing",
            Kind::Connect => "resource_exhausted",
        };
        Fault::CompletionStatus { status: 400, error_type: error_type.into() }
    }

    /// A token of this kind that Kimi refuses.
    pub fn refused_token(self) -> String {
        match self {
            Kind::Legacy => "bad-token".to_string(),
            Kind::Connect => connect_token("expired-user"),
        }
    }
}

/// A kimi-auth JWT (payload `typ: access`, `app_id: kimi`) for the user `sub`.
pub fn connect_token(sub: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = serde_json::json!({"iss": "user-center", "exp": 4_102_444_800u64, "typ": "access", "app_id": "kimi",
        "sub": sub, "ssid": "1731086499958639802", "device_id": "7651804114103329291", "region": "cn"});
    format!(
        "{}.{}.{}",
        b64.encode(r#"{"alg":"HS512","typ":"JWT"}"#),
        b64.encode(claims.to_string()),
        b64.encode("sig")
    )
}

/// Runs each named test body, `fn name(kind: Kind)`, once per Kimi backend.
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
        }
    )+};
}

/// The mock and the server pointed at it.
pub struct Harness {
    pub mock: MockKimi,
    pub server: RunningServer,
    pub base: String,
}

impl Harness {
    pub fn start() -> Harness {
        Self::start_with(|_| {})
    }

    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> Harness {
        let mock = MockKimi::start();
        let mut config = Config {
            host: "127.0.0.1".into(),
            port: 0,
            kimi_base_url: mock.url().to_string(),
            kimi_connect_base_url: mock.url().to_string(),
            workers: 8,
            queue_depth: 8,
            upstream_timeout: Duration::from_secs(1),
            ..Config::default()
        };
        adjust(&mut config);
        let server = server::start(config).expect("server starts");
        let base = format!("http://{}", server.addr());
        Harness { mock, server, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
    let mut builder = agent().post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    reply(builder.send(body.to_string().as_bytes()).expect("POST completes"))
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
    reply(builder.send(body.as_bytes()).expect("POST completes"))
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
