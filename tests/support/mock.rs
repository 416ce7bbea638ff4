//! A mock Kimi upstream on 127.0.0.1, speaking both Kimi protocols of `docs/kimi-protocol.md`:
//! the legacy REST + SSE API (§3) and the Connect RPC API (§4), scripted per test, with fault
//! injection and recorded statistics.
//!
//! Since September 2026 (§7) its Connect side also serves the model catalogue and credits, and
//! checks each chat request against the account's catalogue as Kimi does: a request without
//! `options.model`, with a scenario or effort its model does not offer, or an agent scenario
//! without `kimiplus_id`, ends in `invalid_argument` before any chat frame. A token's `mock`
//! claim says what the account is: `plan: "free"`, `catalogue`, `credits_used`, a `fault`.
//! With [`Script::refuse_system_prompt`] it also refuses a chat that sends the system prompt in
//! `options.systemPrompt` (`invalid_argument`, "unknown field options.systemPrompt"), as Kimi may
//! (`docs/kimi-protocol.md` §7.3).
//!
//! Tests script it directly ([`MockKimi::script`]) or over HTTP (`POST /_mock/script` with a
//! JSON [`Script`], `GET /_mock/stats`), which is how the Python SDK tests drive it.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the next completions answer. Every field has a default, so `{}` is a plain answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Script {
    /// Answer pieces, one `cmpl` event each.
    pub text: Vec<String>,
    /// K1 reasoning pieces, one `k1` event each, before the answer.
    pub thinking: Vec<String>,
    /// Search results (title, url), one `search_plus` `get_res` event each, before the answer.
    pub search: Vec<(String, String)>,
    /// Pause before each event.
    pub delay_ms: u64,
    /// How many completions end with `length` before one ends normally.
    pub length_cuts: u32,
    /// Send every event in two writes, splitting it inside a multi-byte character.
    pub split_utf8: bool,
    /// Answer with the received prompt instead of `text`.
    pub echo: bool,
    pub fault: Option<Fault>,
    /// How many requests the fault hits (then answers normally); `None` means all of them.
    pub fault_times: Option<u32>,
    /// `GET /api/chat/research/usage` says the quota is used up.
    pub research_used_up: bool,
    /// Replace each answer piece with its send time (microseconds since the Unix epoch, 16
    /// digits, then a space), so a client can measure each event's latency end to end.
    pub stamp: bool,
    /// Bytes of padding appended to each stamped piece (to measure throughput in bytes).
    pub pad: usize,
    /// Answer pieces to send when `stamp` is set (instead of `text`).
    pub events: usize,
    /// How long the access tokens of 2026 web logins live (Kimi: 15 minutes).
    pub access_lifetime_secs: u64,
    /// The answer pieces of the first completions, in order (the first completion answers with
    /// `turns[0]`, ...); later ones answer with `text`. Scripts tool loops turn by turn.
    pub turns: Vec<Vec<String>>,
    /// Connect: after this many answer pieces, a server-side `block.tool` round, then the rest of
    /// the pieces in a new text block (Kimi's 2026 stream).
    pub tool_round_after: Option<usize>,
    /// The model catalogue (`docs/kimi-protocol.md` §7.1): `standard`, `variant` (other ids, keys
    /// and Instant efforts) or `fail` (GetAvailableModels answers 500; chats are checked against
    /// `standard`, the server's built-in fallback). A token's `mock.catalogue` claim overrides it.
    pub catalogue: String,
    /// A chat of a user who already has an answer streaming is refused as `REASON_CHAT_IN_PROGRESS`
    /// (`docs/kimi-protocol.md` §7.5).
    pub one_chat_per_user: bool,
    /// A prompt (first text block) longer than this (in characters) ends as `REASON_TOKEN_LENGTH_TOO_LONG`,
    /// and its chat keeps answering so (`docs/kimi-protocol.md` §7.5).
    pub max_prompt_chars: Option<usize>,
    /// The share of credits used that GetSubscriptionStats reports (`docs/kimi-protocol.md` §7.7),
    /// unless the token's `mock.credits_used` claim says otherwise.
    pub credits_used: f64,
    /// GetSubscriptionStats answers 404, as N5 saw (`docs/kimi-protocol.md` §7.7).
    pub stats_missing: bool,
    /// What GetFileParseProgress answers from the second poll on (default `PROCESS_STATUS_SUCCESS`;
    /// `docs/kimi-protocol.md` §7.10).
    pub upload_status: Option<String>,
    /// Deep research asks the user this question after one search, then parks the chat
    /// (`docs/kimi-protocol.md` §7.5).
    pub research_question: Option<String>,
    /// A Connect chat whose body has `options.systemPrompt` (or `options.system_prompt`) is refused
    /// with `invalid_argument`, "unknown field options.systemPrompt", before any chat frame: Kimi
    /// may not take the field (`docs/kimi-protocol.md` §7.3).
    pub refuse_system_prompt: bool,
}

/// A stamped answer piece: the send time, a space, and padding.
fn stamp_piece(pad: usize) -> String {
    format!("{:016} {}", now_micros(), "x".repeat(pad))
}

impl Default for Script {
    fn default() -> Self {
        Script {
            text: ["Hello", " from", " the", " mock", " Kimi."].map(String::from).to_vec(),
            thinking: Vec::new(),
            search: Vec::new(),
            delay_ms: 0,
            length_cuts: 0,
            split_utf8: false,
            echo: false,
            fault: None,
            fault_times: None,
            research_used_up: false,
            stamp: false,
            pad: 0,
            events: 10,
            access_lifetime_secs: 900,
            turns: Vec::new(),
            tool_round_after: None,
            catalogue: "standard".into(),
            one_chat_per_user: false,
            max_prompt_chars: None,
            credits_used: 0.25,
            stats_missing: false,
            upload_status: None,
            research_question: None,
            refuse_system_prompt: false,
        }
    }
}

/// A failure to inject. `after` counts answer events sent before it strikes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The token refresh answers 401 `auth.token.invalid`.
    RefreshUnauthorized,
    /// The completion answers 401 `auth.token.invalid` (an access token that expired early).
    AccessExpired,
    /// The completion answers this status and legacy error body.
    CompletionStatus { status: u16, error_type: String },
    /// Chat creation answers this status.
    CreateStatus { status: u16 },
    /// An SSE `error` event.
    ErrorEvent { error_type: String, message: String, after: usize },
    /// The connection is cut (no `all_done`, no end of the chunked body).
    Cut { after: usize },
    /// A line that is not JSON.
    Malformed { after: usize },
    /// The stream goes silent for `ms` milliseconds.
    Stall { after: usize, ms: u64 },
    /// Connect: `done`, then an end-of-stream error with this code.
    ErrorAfterDone { code: String },
    /// A document's parse progress says nothing: the legacy progress stream ends without a
    /// status, and Connect's progress call answers 200 with a body that is not JSON.
    ParseSaysNothing,
    /// Connect's parse progress answers `PROCESS_STATUS_FAIL` (the name of `docs/kimi-protocol.md` §7.10).
    ParseFails,
    /// HTTP 429 (Connect `resource_exhausted`, legacy `chat.user_stream_pushing`), with a
    /// `Retry-After` header when given.
    RateLimited { retry_after: Option<u64> },
    /// Connect: `resource_exhausted`, `REASON_CHAT_IN_PROGRESS`, before any chat frame
    /// (`docs/kimi-protocol.md` §7.5).
    ChatInProgress,
    /// Connect: the chat, then a `block.exception` with `REASON_TOKEN_LENGTH_TOO_LONG`, `done` and
    /// no text (`docs/kimi-protocol.md` §7.5). The chat stays locked.
    TooLong,
    /// Connect: [`Fault::TooLong`]'s shape with any reason and message (the chat is not locked).
    Exception { reason: String, message: String },
    /// Connect: a block of an unknown kind and an unknown top-level event before the answer.
    UnknownFrames,
}

/// What the mock saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub refreshes: u32,
    pub user_calls: u32,
    pub chats_created: u32,
    pub chats_deleted: u32,
    pub live_chats: BTreeSet<String>,
    pub completions: u32,
    /// The body of the last completion request.
    pub last_completion: Option<Value>,
    /// The body of the last chat creation.
    pub last_create: Option<Value>,
    /// `X-Traffic-Id` of the last completion.
    pub last_traffic_id: Option<String>,
    /// The prompt text of the last chat turn, whichever protocol carried it.
    pub last_prompt: Option<String>,
    /// Connect: the `parent_id` of the last turn.
    pub last_parent_id: Option<String>,
    /// Attachments stored, in order.
    pub uploads: Vec<Upload>,
    /// Refresh tokens seen by the refresh endpoint, in order.
    pub refresh_tokens: Vec<String>,
    /// 2026 web logins: refreshes at the auth host and the refresh tokens they presented.
    pub web_refreshes: u32,
    pub web_refresh_tokens: Vec<String>,
    /// Web sessions ended because a spent refresh token was presented again.
    pub sessions_revoked: u32,
    /// The `Cookie` header of the last Connect chat, if any.
    pub last_cookie: Option<String>,
    /// Chat turns by user id (the Connect `sub`, or the legacy user), faulted ones included.
    pub completions_by_user: BTreeMap<String, u32>,
    /// The most answers each user had streaming at once.
    pub peak_streams_by_user: BTreeMap<String, u32>,
    /// Calls of `ConfigService/GetAvailableModels`, refused ones included.
    pub catalogue_calls: u32,
    /// Calls of `MembershipService/GetSubscriptionStats`, refused ones included.
    pub stats_calls: u32,
    /// The headers of the last Connect chat that say which client sent it (`docs/kimi-protocol.md`
    /// §7.9): `x-msh-version`, `user-agent`, `sec-ch-ua`, `sec-ch-ua-mobile`, `sec-ch-ua-platform`,
    /// lowercase, those present.
    pub last_headers: BTreeMap<String, String>,
    /// Deep research streams parked waiting for the user's answer.
    pub research_parked: u32,
    /// Parked streams whose client hung up before the mock gave up on them.
    pub research_hangups: u32,
}

/// One stored attachment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Upload {
    pub name: String,
    pub mime: String,
    pub size: usize,
    /// Whether a Kimi credential reached the storage host (it must not).
    pub saw_credential: bool,
}

#[derive(Default)]
struct State {
    script: Script,
    stats: Stats,
    faults_used: u32,
    next_id: u64,
    /// access token → user id
    access: HashMap<String, String>,
    /// chat id → completions seen on it
    chats: HashMap<String, u32>,
    web: WebLogins,
    /// Answers streaming now, by user.
    streaming: HashMap<String, u32>,
    /// Faults of accounts minted with a `mock` claim that already struck, by user.
    account_faults: HashMap<String, u32>,
    /// Legacy users whose research quota is used up (their refresh token says `no-research`).
    no_research: BTreeSet<String>,
    /// Connect chats that grew too long: Kimi locks them for good (`docs/kimi-protocol.md` §7.5).
    locked: BTreeSet<String>,
}

/// The 2026 auth host's view of web logins: each session (`ssid`) has one current refresh
/// token; a spent one presented again ends the session, as rotating auth servers do.
#[derive(Default)]
struct WebLogins {
    current: HashMap<String, String>,
    spent: BTreeSet<String>,
    revoked: BTreeSet<String>,
    /// ssid → device id of its refresh token (the access tokens carry none).
    devices: HashMap<String, String>,
}

/// A running mock; it stops when the process ends.
#[derive(Clone)]
pub struct MockKimi {
    url: String,
    state: Arc<Mutex<State>>,
}

impl MockKimi {
    pub fn start() -> MockKimi {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(addr: &str) -> MockKimi {
        let listener = TcpListener::bind(addr).expect("mock binds");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                thread::spawn(move || connection(&state, stream));
            }
        });
        MockKimi { url, state }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn script(&self, script: Script) {
        let mut state = self.state.lock().unwrap();
        state.script = script;
        state.faults_used = 0;
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().unwrap().stats.clone()
    }

    /// Forgets what was seen so far (the logins it issued stay).
    pub fn reset_stats(&self) {
        self.state.lock().unwrap().stats = Stats::default();
    }

    /// Waits (bounded) until no chat is live, and returns the stats then.
    pub fn settled(&self) -> Stats {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = self.stats();
            if stats.live_chats.is_empty() || Instant::now() > deadline {
                return stats;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One request read off a connection. The mock speaks just enough HTTP/1.1 for a client:
/// `Content-Length` bodies in, keep-alive, and chunked streams out that it can also cut.
pub struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    stream: TcpStream,
}

/// Whether the connection can serve another request.
enum Flow {
    KeepAlive,
    Close,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or("").to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let stream = reader.get_ref().try_clone()?;
    Ok(Some(Request { method, path, headers, body, stream }))
}

fn connection(state: &Mutex<State>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    while let Ok(Some(request)) = read_request(&mut reader) {
        if let Flow::Close = serve(state, request) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn json_response(request: Request, status: u16, body: Value) -> Flow {
    json_response_with(request, status, body, "")
}

/// [`json_response`] with extra header lines (each ending in CRLF).
fn json_response_with(mut request: Request, status: u16, body: Value, headers: &str) -> Flow {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n",
        status_text(status),
        body.len()
    );
    match request.stream.write_all(format!("{head}{body}").as_bytes()) {
        Ok(()) => Flow::KeepAlive,
        Err(_) => Flow::Close,
    }
}

fn legacy_error(request: Request, status: u16, error_type: &str) -> Flow {
    json_response(request, status, json!({"error_type": error_type, "message": format!("mock {error_type}")}))
}

fn request_header(request: &Request, name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    request.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
}

fn bearer(request: &Request) -> String {
    request_header(request, "Authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
        .unwrap_or_default()
}

fn serve(state: &Mutex<State>, request: Request) -> Flow {
    let path = request.path.split('?').next().unwrap_or("").to_string();
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let method = request.method.clone();
    match (method.as_str(), path.as_str()) {
        ("POST", "/_mock/script") => match serde_json::from_value::<Script>(body) {
            Ok(script) => {
                let mut st = state.lock().unwrap();
                st.script = script;
                st.faults_used = 0;
                drop(st);
                json_response(request, 200, json!({}))
            }
            Err(e) => json_response(request, 400, json!({"error": e.to_string()})),
        },
        ("GET", "/_mock/stats") => {
            let stats = state.lock().unwrap().stats.clone();
            json_response(request, 200, serde_json::to_value(stats).unwrap())
        }
        ("GET", "/api/auth/token/refresh") => refresh(state, request),
        ("POST", "/api/account.gateway.v1.AuthService/RefreshToken") => web_refresh(state, request, &body),
        ("GET", "/api/user") => {
            let token = bearer(&request);
            let mut st = state.lock().unwrap();
            st.stats.user_calls += 1;
            match st.access.get(&token).cloned() {
                Some(user) => {
                    drop(st);
                    json_response(request, 200, json!({"id": user, "name": "mock user"}))
                }
                None => {
                    drop(st);
                    legacy_error(request, 401, "auth.token.invalid")
                }
            }
        }
        ("GET", "/api/chat/research/usage") => {
            let st = state.lock().unwrap();
            let user = st.access.get(&bearer(&request)).cloned().unwrap_or_default();
            let used_up = st.script.research_used_up || st.no_research.contains(&user);
            drop(st);
            let used = if used_up { 30 } else { 3 };
            json_response(request, 200, json!({"remain": 30 - used, "total": 30, "used": used}))
        }
        ("POST", "/api/chat") => create_chat(state, request, body),
        ("DELETE", p) if p.starts_with("/api/chat/") => {
            if !state.lock().unwrap().access.contains_key(&bearer(&request)) {
                return legacy_error(request, 401, "auth.token.invalid");
            }
            if delete_chat(state, &p["/api/chat/".len()..]) {
                json_response(request, 200, json!({}))
            } else {
                legacy_error(request, 404, "chat.not_found")
            }
        }
        ("POST", p) if p.starts_with("/api/chat/") && p.ends_with("/completion/stream") => {
            let id = p["/api/chat/".len()..p.len() - "/completion/stream".len()].to_string();
            completion(state, request, &id, body)
        }
        ("POST", "/apiv2/kimi.gateway.chat.v1.ChatService/Chat") => connect_chat(state, request),
        ("POST", "/apiv2/kimi.gateway.config.v1.ConfigService/GetAvailableModels") => {
            available_models(state, request)
        }
        ("POST", "/apiv2/kimi.gateway.membership.v2.MembershipService/GetSubscriptionStats") => {
            subscription_stats(state, request)
        }
        ("POST", "/api/pre-sign-url") => {
            if !state.lock().unwrap().access.contains_key(&bearer(&request)) {
                return legacy_error(request, 401, "auth.token.invalid");
            }
            let host = request_header(&request, "Host").unwrap_or_default();
            let mut st = state.lock().unwrap();
            st.next_id += 1;
            let object = format!("obj-{}-{}", st.next_id, body["name"].as_str().unwrap_or("x"));
            let file_id =
                if body["action"] == "image" { format!("fid-{}", st.next_id) } else { String::new() };
            drop(st);
            json_response(
                request,
                200,
                json!({"url": format!("http://{host}/_oss/{object}"), "object_name": object,
                "file_id": file_id}),
            )
        }
        ("PUT", p) if p.starts_with("/_oss/") => {
            let upload = Upload {
                name: p["/_oss/".len()..].to_string(),
                mime: request_header(&request, "Content-Type").unwrap_or_default(),
                size: request.body.len(),
                saw_credential: request_header(&request, "Authorization").is_some()
                    || request_header(&request, "X-Traffic-Id").is_some(),
            };
            state.lock().unwrap().stats.uploads.push(upload);
            json_response(request, 200, json!({}))
        }
        ("POST", "/api/file") => {
            if !state.lock().unwrap().access.contains_key(&bearer(&request)) {
                return legacy_error(request, 401, "auth.token.invalid");
            }
            let mut st = state.lock().unwrap();
            st.next_id += 1;
            let id = format!("file-{}", st.next_id);
            drop(st);
            let status = if body["type"] == "image" { "parsed" } else { "initialized" };
            json_response(
                request,
                200,
                json!({"id": id, "name": body["name"], "type": body["type"], "status": status}),
            )
        }
        ("POST", "/api/file/parse_process") => {
            let silent = state.lock().unwrap().script.fault == Some(Fault::ParseSaysNothing);
            let Ok(mut out) = Chunked::open(request) else { return Flow::Close };
            let _ = out.chunk(b"data: {\"event\":\"resp\",\"file_info\":{\"status\":\"parsing\"}}\n\n");
            if !silent {
                let _ = out.chunk(b"data: {\"event\":\"resp\",\"file_info\":{\"status\":\"parsed\"}}\n\n");
            }
            out.end()
        }
        ("POST", "/apiv2-files/file/upload") => {
            if connect_identity(state, &request).is_err() {
                return connect_error(request, 401, "unauthenticated");
            }
            let text = String::from_utf8_lossy(&request.body).to_string();
            let field = |key: &str| {
                text.split(key)
                    .nth(1)
                    .and_then(|rest| rest.split(['"', '\r']).next())
                    .unwrap_or_default()
                    .to_string()
            };
            let upload = Upload {
                name: field("filename=\""),
                mime: field("Content-Type: "),
                size: request.body.len(),
                saw_credential: false,
            };
            let mut st = state.lock().unwrap();
            st.stats.uploads.push(upload);
            st.next_id += 1;
            let id = format!("cf-{}", st.next_id);
            drop(st);
            json_response(request, 200, json!({"file": {"id": id, "parseResult": {}}}))
        }
        ("POST", "/apiv2-files/kimi.gateway.file.v1.FileService/GetFileParseProgress") => {
            // The first poll of a file finds it still processing.
            let id = body["file_ids"][0].as_str().unwrap_or_default().to_string();
            let mut st = state.lock().unwrap();
            let first = st.chats.insert(format!("poll-{id}"), 0).is_none();
            let silent = st.script.fault == Some(Fault::ParseSaysNothing);
            let fails = st.script.fault == Some(Fault::ParseFails);
            let later = st.script.upload_status.clone().unwrap_or_else(|| "PROCESS_STATUS_SUCCESS".into());
            drop(st);
            if silent {
                let mut request = request;
                let page = "<html>gateway</html>";
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                    page.len()
                );
                let _ = request.stream.write_all(format!("{head}{page}").as_bytes());
                return Flow::KeepAlive;
            }
            // Processing first, then done or the script's status (`docs/kimi-protocol.md` §7.10).
            let status = match (first, fails) {
                (true, _) => "PROCESS_STATUS_PROCESSING",
                (false, true) => "PROCESS_STATUS_FAIL",
                (false, false) => later.as_str(),
            };
            json_response(request, 200, json!({"progresses": [{"fileId": id, "status": status}]}))
        }
        ("GET", p) if p.starts_with("/_files/") => {
            let (mime, bytes): (&str, &[u8]) = if p.ends_with(".png") {
                ("image/png", b"\x89PNG\r\n\x1a\nmock image")
            } else {
                ("text/plain", b"a mock document")
            };
            let mut request = request;
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Type: {mime}\r\nContent-Length: {}\r\n\r\n", bytes.len());
            let written =
                request.stream.write_all(head.as_bytes()).and_then(|()| request.stream.write_all(bytes));
            if written.is_ok() { Flow::KeepAlive } else { Flow::Close }
        }
        ("POST", "/apiv2/kimi.chat.v1.ChatService/DeleteChat") => {
            if connect_identity(state, &request).is_err() {
                return connect_error(request, 401, "unauthenticated");
            }
            if delete_chat(state, body["chat_id"].as_str().unwrap_or_default()) {
                json_response(request, 200, json!({}))
            } else {
                connect_error(request, 404, "not_found")
            }
        }
        ("POST", "/apiv2/kimi.gateway.order.v1.SubscriptionService/GetSubscription") => {
            match connect_identity(state, &request) {
                Ok(sub) => {
                    // The credits also ride here, in `balances` (`docs/kimi-protocol.md` §7.7).
                    let balance = credit_balance(credits_used(state, &request));
                    json_response(
                        request,
                        200,
                        json!({"subscription": {"userId": sub}, "balances": [balance]}),
                    )
                }
                Err(_) => connect_error(request, 401, "unauthenticated"),
            }
        }
        _ => legacy_error(request, 404, "mock.no_route"),
    }
}

/// What an answer-event fault does to the stream at this point.
enum Strike {
    Nothing,
    /// An error event (legacy) or end-of-stream error (Connect): type or code, message.
    Error(String, String),
    Cut,
    Malformed,
}

/// The fault striking before answer event number `answered` (a stall just sleeps here).
fn strike(fault: &Option<Fault>, answered: usize) -> Strike {
    match fault {
        Some(Fault::ErrorEvent { error_type, message, after }) if answered == *after => {
            Strike::Error(error_type.clone(), message.clone())
        }
        Some(Fault::Cut { after }) if answered == *after => Strike::Cut,
        Some(Fault::Malformed { after }) if answered == *after => Strike::Malformed,
        Some(Fault::Stall { after, ms }) if answered == *after => {
            thread::sleep(Duration::from_millis(*ms));
            Strike::Nothing
        }
        _ => Strike::Nothing,
    }
}

/// Deletes a live chat; false if there is none with that id.
fn delete_chat(state: &Mutex<State>, id: &str) -> bool {
    let mut st = state.lock().unwrap();
    let deleted = st.stats.live_chats.remove(id);
    st.stats.chats_deleted += u32::from(deleted);
    deleted
}

fn fault_applies(st: &mut State) -> Option<Fault> {
    let fault = st.script.fault.clone()?;
    if st.script.fault_times.is_some_and(|n| st.faults_used >= n) {
        return None;
    }
    st.faults_used += 1;
    Some(fault)
}

fn refresh(state: &Mutex<State>, request: Request) -> Flow {
    let token = bearer(&request);
    let mut st = state.lock().unwrap();
    st.stats.refreshes += 1;
    st.stats.refresh_tokens.push(token.clone());
    let refused = token.is_empty()
        || token.starts_with("bad")
        || (st.script.fault == Some(Fault::RefreshUnauthorized) && fault_applies(&mut st).is_some());
    if refused {
        drop(st);
        return legacy_error(request, 401, "auth.token.invalid");
    }
    st.next_id += 1;
    let access = format!("access-{}", st.next_id);
    let user: String = format!("user{:016}", token.bytes().map(u64::from).sum::<u64>());
    if token.contains("no-research") {
        st.no_research.insert(user.clone());
    }
    st.access.insert(access.clone(), user);
    drop(st);
    json_response(request, 200, json!({"access_token": access, "refresh_token": token}))
}

/// The claims of a JWT, if it is one.
fn jwt_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok().filter(Value::is_object)
}

/// A JWT with these claims (the mock signs nothing; the server verifies nothing).
pub fn mint_jwt(claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(claims.to_string()),
        b64.encode("sig")
    )
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `AuthService/RefreshToken`: a new access token and a new refresh token; the one presented is
/// spent. Refused: tokens that are no web refresh JWT, users whose id starts with `expired`,
/// the `RefreshUnauthorized` fault, revoked sessions, and spent tokens (which revoke).
fn web_refresh(state: &Mutex<State>, request: Request, body: &Value) -> Flow {
    let token = body["refresh_token"].as_str().or_else(|| body["refreshToken"].as_str()).unwrap_or_default();
    let mut st = state.lock().unwrap();
    st.stats.web_refreshes += 1;
    st.stats.web_refresh_tokens.push(token.to_string());
    let claims = jwt_claims(token).unwrap_or_default();
    let (sub, ssid) =
        (claims["sub"].as_str().unwrap_or_default(), claims["ssid"].as_str().unwrap_or_default());
    let refused = sub.is_empty()
        || ssid.is_empty()
        || claims["typ"] == "access"
        || sub.starts_with("expired")
        || st.web.revoked.contains(ssid)
        || (st.script.fault == Some(Fault::RefreshUnauthorized) && fault_applies(&mut st).is_some());
    if refused {
        drop(st);
        return connect_error(request, 401, "unauthenticated");
    }
    let current = st.web.current.get(ssid).cloned();
    if st.web.spent.contains(token) || current.as_ref().is_some_and(|c| c != token) {
        st.web.revoked.insert(ssid.to_string());
        st.stats.sessions_revoked += 1;
        drop(st);
        return connect_error(request, 401, "unauthenticated");
    }
    st.next_id += 1;
    let now = unix_now();
    let mut next = claims.clone();
    next["jti"] = json!(format!("rt-{}", st.next_id));
    next["iat"] = json!(now);
    next["exp"] = json!(now + 90 * 86_400);
    let next = mint_jwt(&next);
    let mut access = json!({"iss": "account-nt", "typ": "access", "sub": sub, "ssid": ssid,
        "jti": format!("at-{}", st.next_id), "iat": now, "exp": now + st.script.access_lifetime_secs});
    if !claims["mock"].is_null() {
        access["mock"] = claims["mock"].clone();
    }
    let access = mint_jwt(&access);
    st.web.spent.insert(token.to_string());
    st.web.current.insert(ssid.to_string(), next.clone());
    let device =
        claims["device_id"].as_str().map(str::to_string).unwrap_or_else(|| claims["device_id"].to_string());
    st.web.devices.insert(ssid.to_string(), device);
    drop(st);
    json_response(request, 200, json!({"accessToken": access, "refreshToken": next}))
}

fn create_chat(state: &Mutex<State>, request: Request, body: Value) -> Flow {
    let mut st = state.lock().unwrap();
    if !st.access.contains_key(&bearer(&request)) {
        drop(st);
        return legacy_error(request, 401, "auth.token.invalid");
    }
    if let Some(Fault::CreateStatus { status }) = st.script.fault.clone()
        && fault_applies(&mut st).is_some()
    {
        drop(st);
        return legacy_error(request, status, "mock.create_failed");
    }
    st.next_id += 1;
    let id = format!("cm{:018}", st.next_id);
    st.stats.chats_created += 1;
    st.stats.live_chats.insert(id.clone());
    st.stats.last_create = Some(body);
    st.chats.insert(id.clone(), 0);
    drop(st);
    json_response(request, 200, json!({"id": id, "name": "未命名会话"}))
}

/// A chunked HTTP body written event by event (the socket is unbuffered: one write each).
struct Chunked(TcpStream);

impl Chunked {
    fn open(mut request: Request) -> io::Result<Chunked> {
        request.stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        )?;
        Ok(Chunked(request.stream))
    }

    fn chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
        frame.extend_from_slice(bytes);
        frame.extend_from_slice(b"\r\n");
        self.0.write_all(&frame)
    }

    fn end(mut self) -> Flow {
        match self.0.write_all(b"0\r\n\r\n") {
            Ok(()) => Flow::KeepAlive,
            Err(_) => Flow::Close,
        }
    }
}

/// The answer's pieces: the script's text, the prompt (echo), or placeholders to be stamped.
/// What a prompt line `MOCK-REPLY: text` asks the answer to be: a file the client's tool read
/// (and fed back as a tool result) scripts the final answer of a real CLI's agent loop.
const REPLY_MARKER: &str = "MOCK-REPLY:";

/// The answer of completion number `turn` (1 for the first) to `prompt`.
fn answer_pieces(script: &Script, prompt: &str, turn: usize) -> Vec<String> {
    if let Some(at) = prompt.rfind(REPLY_MARKER) {
        let reply = prompt[at + REPLY_MARKER.len()..].lines().next().unwrap_or_default().trim();
        return vec![reply.to_string()];
    }
    if let Some(pieces) = script.turns.get(turn.wrapping_sub(1)) {
        return pieces.clone();
    }
    if script.stamp {
        vec![String::new(); script.events]
    } else if script.echo {
        vec![prompt.to_string()]
    } else {
        script.text.clone()
    }
}

fn now_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()
}

fn completion(state: &Mutex<State>, request: Request, chat_id: &str, body: Value) -> Flow {
    let mut st = state.lock().unwrap();
    let user = st.access.get(&bearer(&request)).cloned();
    st.stats.completions += 1;
    st.stats.last_completion = Some(body.clone());
    st.stats.last_prompt = body["messages"][0]["content"].as_str().map(str::to_string);
    st.stats.last_traffic_id = request_header(&request, "X-Traffic-Id");
    let Some(user) = user else {
        drop(st);
        return legacy_error(request, 401, "auth.token.invalid");
    };
    *st.stats.completions_by_user.entry(user.clone()).or_default() += 1;
    if st.stats.last_traffic_id.as_deref() != Some(user.as_str()) {
        drop(st);
        return legacy_error(request, 400, "mock.traffic_id_mismatch");
    }
    let Some(seen) = st.chats.get_mut(chat_id) else {
        drop(st);
        return legacy_error(request, 404, "chat.not_found");
    };
    *seen += 1;
    let round = *seen;
    let script = st.script.clone();
    let turn = st.stats.completions as usize;
    let fault = fault_applies(&mut st);
    drop(st);
    match &fault {
        Some(Fault::AccessExpired) => return legacy_error(request, 401, "auth.token.invalid"),
        Some(Fault::CompletionStatus { status, error_type }) => {
            return legacy_error(request, *status, error_type);
        }
        Some(Fault::RateLimited { retry_after }) => {
            let body = json!({"error_type": "chat.user_stream_pushing", "message": "mock busy"});
            return json_response_with(request, 429, body, &retry_after_header(*retry_after));
        }
        _ => {}
    }
    let _streaming = Streaming::start(state, &user);
    let prompt = body["messages"][0]["content"].as_str().unwrap_or_default().to_string();
    let mut events: Vec<Value> = vec![
        json!({"event": "req", "id": format!("seg{round}"), "group_id": "grp", "content": prompt, "refs": []}),
        json!({"event": "resp", "id": format!("resp{round}"), "group_id": "grp"}),
    ];
    let mut content = Vec::new();
    for (title, url) in &script.search {
        content.push(json!({"event": "search_plus", "msg": {"type": "get_res", "title": title, "url": url}}));
    }
    for piece in &script.thinking {
        content.push(json!({"event": "k1", "text": piece}));
    }
    let text = answer_pieces(&script, &prompt, turn);
    for piece in &text {
        content.push(json!({"event": "cmpl", "text": piece}));
    }
    events.extend(content);
    if round <= script.length_cuts {
        events.push(json!({"event": "length"}));
    }
    events.push(json!({"event": "all_done"}));

    let Ok(mut out) = Chunked::open(request) else { return Flow::Close };
    let mut answered = 0;
    for mut event in events {
        let is_answer = matches!(event["event"].as_str(), Some("cmpl" | "k1" | "search_plus"));
        if is_answer {
            match strike(&fault, answered) {
                Strike::Error(error_type, message) => {
                    let error =
                        json!({"event": "error", "error": {"error_type": error_type, "message": message}});
                    let _ = out.chunk(format!("data: {error}\n\n").as_bytes());
                    return out.end();
                }
                Strike::Cut => return Flow::Close,
                Strike::Malformed => {
                    let _ = out.chunk(b"data: {this is not json\n\n");
                }
                Strike::Nothing => {}
            }
            answered += 1;
        }
        if script.delay_ms > 0 {
            thread::sleep(Duration::from_millis(script.delay_ms));
        }
        if script.stamp && event["event"] == "cmpl" {
            event["text"] = json!(stamp_piece(script.pad));
        }
        let frame = format!("data: {event}\n\n");
        let bytes = frame.as_bytes();
        let written = if script.split_utf8 {
            // Split inside the first multi-byte character, if any.
            let cut =
                frame.char_indices().find(|(_, c)| c.len_utf8() > 1).map_or(bytes.len() / 2, |(i, _)| i + 1);
            out.chunk(&bytes[..cut]).and_then(|()| {
                thread::sleep(Duration::from_millis(2));
                out.chunk(&bytes[cut..])
            })
        } else {
            out.chunk(bytes)
        };
        if written.is_err() {
            return Flow::Close;
        }
    }
    out.end()
}

// ---- Connect RPC (docs/kimi-protocol.md §4) ----

fn connect_error(request: Request, status: u16, code: &str) -> Flow {
    json_response(request, status, json!({"code": code, "message": format!("mock {code}")}))
}

/// The `sub` of the access token in `Authorization`: a kimi-auth JWT, or a 2026 web access
/// token that has not expired and comes with the identity headers of its login (session and
/// user, and the device of the refresh token it was minted from). `Err` for anything else,
/// and for users whose id starts with `expired`.
fn connect_identity(state: &Mutex<State>, request: &Request) -> Result<String, ()> {
    let claims = jwt_claims(&bearer(request)).ok_or(())?;
    let text =
        |name: &str| claims[name].as_str().map(str::to_string).unwrap_or_else(|| claims[name].to_string());
    let sub = claims["sub"].as_str().unwrap_or_default();
    if claims["typ"] != "access" || sub.is_empty() || sub.starts_with("expired") {
        return Err(());
    }
    if claims["app_id"] == "kimi" && claims["iss"] != "account-nt" {
        return Ok(sub.to_string());
    }
    let expired = claims["exp"].as_u64().is_none_or(|exp| exp <= unix_now());
    let header = |name: &str| request_header(request, name).unwrap_or_default();
    let ssid = text("ssid");
    let device = state.lock().unwrap().web.devices.get(&ssid).cloned();
    let device_ok = device.is_none_or(|d| d == header("X-Msh-Device-Id"));
    if expired || header("X-Msh-Session-Id") != ssid || header("X-Traffic-Id") != sub || !device_ok {
        return Err(());
    }
    Ok(sub.to_string())
}

fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A Connect stream that already answered `200`: its end-of-stream error.
fn end_with_error(out: Chunked, code: &str, message: &str) -> Flow {
    end_with_reason(out, code, "REASON_MOCK", message)
}

/// [`end_with_error`] with the debug reason Kimi names (`docs/kimi-protocol.md` §7.5).
fn end_with_reason(mut out: Chunked, code: &str, reason: &str, message: &str) -> Flow {
    let trailer = json!({"error": {"code": code, "message": message,
        "details": [{"debug": {"reason": reason, "localizedMessage": {"message": message}}}]}});
    let _ = out.chunk(&envelope(2, trailer.to_string().as_bytes()));
    out.end()
}

/// Answers `200` and ends the stream at once with this error, before any chat frame.
fn refuse(request: Request, code: &str, reason: &str, message: &str) -> Flow {
    let Ok(out) = Chunked::open(request) else { return Flow::Close };
    end_with_reason(out, code, reason, message)
}

/// What Kimi says when another chat of the account is still generating (`docs/kimi-protocol.md` §7.5).
const CHAT_IN_PROGRESS: &str = "Chat session in progress. Please try again later.";
/// What a free account asking for an agent model reads after `done` (`docs/kimi-protocol.md` §7.2).
const OVERLOADED: &str =
    "Too many people are chatting with Kimi right now. Subscribe to enter a priority queue!";
/// The exception of a chat grown too long (`docs/kimi-protocol.md` §7.5).
const TOO_LONG: (&str, &str) = (
    "REASON_TOKEN_LENGTH_TOO_LONG",
    "Your conversation with Kimi is getting too long. Try starting a new session.",
);
/// The headers of a Connect chat the stats keep (`docs/kimi-protocol.md` §7.9).
const CHAT_HEADERS: [&str; 5] =
    ["x-msh-version", "user-agent", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform"];

/// The JSON of a framed Connect request, if it is one.
fn connect_body(request: &Request) -> Option<Value> {
    let framed = request_header(request, "Content-Type").as_deref() == Some("application/connect+json");
    (framed && request.body.len() >= 5).then(|| serde_json::from_slice(&request.body[5..]).ok()).flatten()
}

/// Records a chat request in the stats: its headers, body and prompt.
fn note_chat(st: &mut State, request: &Request, body: Option<&Value>) {
    st.stats.completions += 1;
    st.stats.last_traffic_id = request_header(request, "X-Traffic-Id");
    st.stats.last_cookie = request_header(request, "Cookie");
    st.stats.last_headers =
        CHAT_HEADERS.iter().filter_map(|n| request_header(request, n).map(|v| (n.to_string(), v))).collect();
    if let Some(body) = body {
        st.stats.last_completion = Some(body.clone());
        st.stats.last_prompt = body["message"]["blocks"][0]["text"]["content"].as_str().map(str::to_string);
        st.stats.last_parent_id = body["message"]["parent_id"].as_str().map(str::to_string);
    }
}

/// One chat turn being answered.
struct Turn {
    chat_id: String,
    message_id: String,
    prompt: String,
    body: Value,
    /// The catalogue entry whose rules the request met.
    entry: Value,
    /// Deep research (`kimiplus_id: deep-researcher`).
    research: bool,
    /// The account is on the free plan.
    free: bool,
    /// The chat is too long (or was once): it answers only the exception.
    too_long: bool,
    /// Completion number (1 for the first).
    number: usize,
}

impl Turn {
    /// Agent models and deep research are refused to free accounts (`docs/kimi-protocol.md` §7.2).
    fn refused_for_free(&self) -> bool {
        self.free && (self.research || self.entry["scenario"].as_str().is_some_and(is_agent_scenario))
    }
}

/// How an answer stream ends after its frames.
enum Ending {
    /// `{}` (or the error of an `ErrorAfterDone` fault).
    Close,
    /// The free-plan refusal after `done` (`docs/kimi-protocol.md` §7.2).
    Overloaded,
    /// Research waiting for the user's answer (`docs/kimi-protocol.md` §7.5): parks.
    Park,
}

fn connect_chat(state: &Mutex<State>, request: Request) -> Flow {
    let sub = match connect_identity(state, &request) {
        Ok(sub) => sub,
        Err(()) => return connect_error(request, 401, "unauthenticated"),
    };
    let body = connect_body(&request);
    let mut st = state.lock().unwrap();
    note_chat(&mut st, &request, body.as_ref());
    let Some(body) = body else {
        drop(st);
        return refuse(request, "invalid_argument", "REASON_MOCK", "the request is not a Connect envelope");
    };
    if st.stats.last_traffic_id.as_deref() != Some(sub.as_str()) {
        drop(st);
        return connect_error(request, 400, "invalid_argument");
    }
    *st.stats.completions_by_user.entry(sub.clone()).or_default() += 1;
    let claim = mock_claim(&request);
    let entry = match validate_chat(&catalogue(&catalogue_name(&st, &claim)), &body) {
        Ok(entry) => entry,
        Err(problem) => {
            drop(st);
            return refuse(request, "invalid_argument", "REASON_MOCK", &problem);
        }
    };
    let options = &body["options"];
    if st.script.refuse_system_prompt
        && (options.get("systemPrompt").is_some() || options.get("system_prompt").is_some())
    {
        drop(st);
        return refuse(request, "invalid_argument", "REASON_MOCK", "unknown field options.systemPrompt");
    }
    let fault = account_fault(&mut st, &sub, &bearer(&request)).or_else(|| fault_applies(&mut st));
    let busy = st.script.one_chat_per_user && st.streaming.get(&sub).is_some_and(|n| *n > 0);
    if busy || fault == Some(Fault::ChatInProgress) {
        drop(st);
        return refuse(request, "resource_exhausted", "REASON_CHAT_IN_PROGRESS", CHAT_IN_PROGRESS);
    }
    if let Some(flow) = early_fault(&fault) {
        drop(st);
        return flow(request);
    }
    let Some(chat_id) = open_chat(&mut st, &body) else {
        drop(st);
        return refuse(request, "not_found", "REASON_MOCK", "no such chat");
    };
    let prompt = body["message"]["blocks"][0]["text"]["content"].as_str().unwrap_or_default().to_string();
    let too_long = st.locked.contains(&chat_id)
        || fault == Some(Fault::TooLong)
        || st.script.max_prompt_chars.is_some_and(|max| prompt.chars().count() > max);
    if too_long {
        // Kimi locks a chat that grew too long for good (`docs/kimi-protocol.md` §7.5).
        st.locked.insert(chat_id.clone());
    }
    st.next_id += 1;
    let message_id = format!("msg-{}", st.next_id);
    let script = st.script.clone();
    let (number, research) = (st.stats.completions as usize, kimiplus_id(&body) == Some("deep-researcher"));
    let free = claim["plan"] == "free";
    let _streaming = Streaming::begin(state, &mut st, &sub);
    drop(st);
    let turn = Turn { chat_id, message_id, prompt, body, entry, research, free, too_long, number };
    let (events, ending) = chat_events(&script, &turn, &fault);
    let Ok(out) = Chunked::open(request) else { return Flow::Close };
    send_chat(state, out, &script, &fault, events, ending)
}

/// The answer of a fault that strikes before the stream opens, if it is one.
fn early_fault(fault: &Option<Fault>) -> Option<Box<dyn FnOnce(Request) -> Flow>> {
    match fault.clone()? {
        Fault::AccessExpired => Some(Box::new(|request| connect_error(request, 401, "unauthenticated"))),
        Fault::CompletionStatus { status, error_type } => {
            Some(Box::new(move |request| connect_error(request, status, &error_type)))
        }
        Fault::RateLimited { retry_after } => Some(Box::new(move |request| {
            let body = json!({"code": "resource_exhausted", "message": "mock rate limit"});
            json_response_with(request, 429, body, &retry_after_header(retry_after))
        })),
        _ => None,
    }
}

/// The chat a turn continues (`chat_id`, or `chatId`), or a new one; `None` for an unknown id.
fn open_chat(st: &mut State, body: &Value) -> Option<String> {
    match body["chat_id"].as_str().or_else(|| body["chatId"].as_str()) {
        Some(id) if st.chats.contains_key(id) => Some(id.to_string()),
        Some(_) => None,
        None => {
            st.next_id += 1;
            let id = format!("19be5aab-32f2-8b55-8000-{:012}", st.next_id);
            st.chats.insert(id.clone(), 0);
            st.stats.chats_created += 1;
            st.stats.live_chats.insert(id.clone());
            Some(id)
        }
    }
}

/// The frames of a turn and how its stream ends.
fn chat_events(script: &Script, turn: &Turn, fault: &Option<Fault>) -> (Vec<(bool, Value)>, Ending) {
    let done = (false, json!({"done": {}}));
    let mut events = head_frames(turn);
    if turn.refused_for_free() {
        events.push(done);
        return (events, Ending::Overloaded);
    }
    let exception = match fault {
        Some(Fault::Exception { reason, message }) => Some((reason.as_str(), message.as_str())),
        _ => turn.too_long.then_some(TOO_LONG),
    };
    if let Some((reason, message)) = exception {
        events.push((false, exception_frame(reason, message)));
        events.push(done);
        return (events, Ending::Close);
    }
    if fault == &Some(Fault::UnknownFrames) {
        events.extend(unknown_frames());
    }
    if turn.research {
        events.extend(search_round("5", 1, "mock research 1").into_iter().map(|frame| (false, frame)));
        if let Some(question) = &script.research_question {
            events.extend(ask_user_frames(&turn.chat_id, question).into_iter().map(|frame| (false, frame)));
            return (events, Ending::Park);
        }
        events.extend(search_round("6", 2, "mock research 2").into_iter().map(|frame| (false, frame)));
    }
    events.extend(answer_frames(script, turn));
    events.push(done);
    (events, Ending::Close)
}

/// The chat, a heartbeat, the user's message and the assistant's (`docs/kimi-protocol.md` §4.3).
fn head_frames(turn: &Turn) -> Vec<(bool, Value)> {
    let (chat_id, message_id) = (&turn.chat_id, &turn.message_id);
    vec![
        (false, json!({"op": "set", "chat": {"id": chat_id, "name": "未命名会话"}})),
        (false, json!({"heartbeat": {}})),
        (
            false,
            json!({"op": "set", "mask": "message", "message": {"id": format!("{message_id}-u"), "role": "user",
            "status": "MESSAGE_STATUS_COMPLETED", "blocks": [{"id": "text_0_0", "text": {"content": turn.prompt}}]}}),
        ),
        (
            false,
            json!({"op": "set", "mask": "message", "message": {"id": message_id, "role": "assistant",
            "parentId": format!("{message_id}-u"), "status": "MESSAGE_STATUS_GENERATING",
            "scenario": turn.body["scenario"]}}),
        ),
    ]
}

/// Thinking, search results and the answer text, then the message's completion.
fn answer_frames(script: &Script, turn: &Turn) -> Vec<(bool, Value)> {
    let body = &turn.body;
    let thinking = body["options"]["thinking"] == true;
    let searching =
        body["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["type"] == "TOOL_TYPE_SEARCH"));
    let mut events = Vec::new();
    if thinking {
        for (i, piece) in script.thinking.iter().enumerate() {
            let (op, mask) = if i == 0 { ("set", "block.think") } else { ("append", "block.think.content") };
            events.push((
                true,
                json!({"op": op, "mask": mask, "block": {"id": "1", "think": {"content": piece}}}),
            ));
        }
    }
    if searching && !script.search.is_empty() {
        let chunks: Vec<Value> = script
            .search
            .iter()
            .enumerate()
            .map(|(i, (title, url))| {
                json!({"id": format!("{i}"), "base": {"title": title, "url": url, "siteName": "mock"},
                "refIndex": format!("web_search:1#{i}")})
            })
            .collect();
        events.push((true, json!({"op": "append", "mask": "message.refs.searchChunks", "message": {"refs": {"searchChunks": chunks}}})));
    }
    let text = answer_pieces(script, &turn.prompt, turn.number);
    // With search results, the first piece carries a citation marker the server must strip,
    // unless the script brings markers of its own (which an extra one could cut in two).
    let own_markers = text.iter().any(|piece| piece.contains(['\u{E3A0}', '\u{1F6E0}']));
    let marker = searching && !script.search.is_empty() && !own_markers;
    events.extend(answer_blocks(script, &text, marker));
    events.push((false, json!({"op": "set", "mask": "message.status", "message": {"id": turn.message_id, "status": "MESSAGE_STATUS_COMPLETED"}})));
    events
}

/// The exception block Kimi sends instead of text (`docs/kimi-protocol.md` §7.5).
fn exception_frame(reason: &str, message: &str) -> Value {
    json!({"op": "set", "mask": "block.exception", "block": {"id": "9", "exception": {"error": {"reason": reason,
        "localizedMessage": {"locale": "en-US", "message": message}}}}})
}

/// A block kind and a top-level event no source has shown (`docs/kimi-protocol.md` §7.5: the
/// stream keeps growing new kinds).
fn unknown_frames() -> Vec<(bool, Value)> {
    vec![
        (false, json!({"op": "set", "mask": "block.hologram", "block": {"id": "8", "hologram": {"x": 1}}})),
        (false, json!({"op": "set", "mask": "weather", "weather": {}})),
    ]
}

/// Deep research asking the user a question, then the chat parked in `STATUS_ASK_USER_QUESTION`
/// (`docs/kimi-protocol.md` §7.5): pending, the arguments in two fragments, running with all of them.
fn ask_user_frames(chat_id: &str, question: &str) -> Vec<Value> {
    let id = "7";
    let args = json!({"questions": [{"question": question, "type": "single",
        "options": [{"option": "Europe", "recommended": true}, {"option": "Asia"}]}]})
    .to_string();
    let cut = args.floor_char_boundary(args.len() / 2);
    vec![
        json!({"op": "set", "block": {"id": id,
            "tool": {"toolCallId": "ask_user:0", "name": "ask_user", "status": "STATUS_PENDING"}}}),
        json!({"op": "append", "mask": "block.tool.args", "block": {"id": id, "tool": {"args": &args[..cut]}}}),
        json!({"op": "append", "mask": "block.tool.args", "block": {"id": id, "tool": {"args": &args[cut..]}}}),
        json!({"op": "set", "mask": "block.tool.args,block.tool.status",
            "block": {"id": id, "tool": {"toolCallId": "ask_user:0", "args": args, "status": "STATUS_RUNNING"}}}),
        json!({"op": "set", "mask": "chat.status", "chat": {"id": chat_id, "status": "STATUS_ASK_USER_QUESTION"}}),
    ]
}

/// Where writing a turn's frames stopped.
enum Sent {
    All,
    /// A fault's end-of-stream error: code, message.
    Error(String, String),
    /// The connection is gone (or cut on purpose).
    Gone,
}

/// Writes a turn's frames and its ending.
fn send_chat(
    state: &Mutex<State>,
    mut out: Chunked,
    script: &Script,
    fault: &Option<Fault>,
    events: Vec<(bool, Value)>,
    ending: Ending,
) -> Flow {
    match write_frames(&mut out, script, fault, events) {
        Sent::All => {}
        Sent::Error(code, message) => return end_with_error(out, &code, &message),
        Sent::Gone => return Flow::Close,
    }
    match ending {
        Ending::Overloaded => {
            end_with_reason(out, "resource_exhausted", "REASON_SERVER_OVERLOADED_FOR_FREE_USER", OVERLOADED)
        }
        Ending::Park => park(state, out),
        Ending::Close => {
            if let Some(Fault::ErrorAfterDone { code }) = fault {
                return end_with_error(out, code, "failed after done");
            }
            let _ = out.chunk(&envelope(2, b"{}"));
            out.end()
        }
    }
}

/// Writes the frames, numbered, with the script's pacing and the fault's strikes.
fn write_frames(
    out: &mut Chunked,
    script: &Script,
    fault: &Option<Fault>,
    events: Vec<(bool, Value)>,
) -> Sent {
    let mut answered = 0;
    for (offset, (is_answer, mut event)) in events.into_iter().enumerate() {
        if is_answer {
            match strike(fault, answered) {
                Strike::Error(code, message) => return Sent::Error(code, message),
                Strike::Cut => return Sent::Gone,
                Strike::Malformed => {
                    let _ = out.chunk(&envelope(0, b"{this is not json"));
                }
                Strike::Nothing => {}
            }
            answered += 1;
        }
        if script.delay_ms > 0 {
            thread::sleep(Duration::from_millis(script.delay_ms));
        }
        event["eventOffset"] = json!(offset + 1);
        if script.stamp && event["block"]["text"].is_object() {
            event["block"]["text"]["content"] = json!(stamp_piece(script.pad));
        }
        let frame = envelope(0, event.to_string().as_bytes());
        let written = if script.split_utf8 {
            // Split inside the first multi-byte character, or else inside the 5-byte header.
            let text = event.to_string();
            let cut = text.char_indices().find(|(_, c)| c.len_utf8() > 1).map_or(3, |(i, _)| 5 + i + 1);
            out.chunk(&frame[..cut]).and_then(|()| {
                thread::sleep(Duration::from_millis(2));
                out.chunk(&frame[cut..])
            })
        } else {
            out.chunk(&frame)
        };
        if written.is_err() {
            return Sent::Gone;
        }
    }
    Sent::All
}

/// How long a parked research stream stays open at most.
const PARK_LIMIT: Duration = Duration::from_secs(10);

/// A research chat waiting for the user's answer: the stream stays open without `done`, a
/// heartbeat every 500 ms, until the client hangs up or [`PARK_LIMIT`] passes (then `{}`).
fn park(state: &Mutex<State>, mut out: Chunked) -> Flow {
    state.lock().unwrap().stats.research_parked += 1;
    let deadline = Instant::now() + PARK_LIMIT;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(500));
        if out.chunk(&envelope(0, br#"{"heartbeat":{}}"#)).is_err() {
            state.lock().unwrap().stats.research_hangups += 1;
            return Flow::Close;
        }
    }
    let _ = out.chunk(&envelope(2, b"{}"));
    out.end()
}

/// The answer's `block.text` frames, or, with `tool_round_after`, the pieces before it, a
/// `block.tool` round, and the rest in a new text block.
fn answer_blocks(script: &Script, pieces: &[String], marker: bool) -> Vec<(bool, Value)> {
    let Some(after) = script.tool_round_after else { return text_block("0", pieces, marker) };
    let (before, rest) = pieces.split_at(after.min(pieces.len()));
    let mut frames = text_block("0", before, marker);
    frames.extend(tool_round().into_iter().map(|frame| (false, frame)));
    frames.extend(text_block("3", rest, false));
    frames
}

/// One text block: a `set` on `block.text`, then `append`s.
fn text_block(id: &str, pieces: &[String], marker: bool) -> Vec<(bool, Value)> {
    let frame = |(i, piece): (usize, &String)| {
        let (op, mask) = if i == 0 { ("set", "block.text") } else { ("append", "block.text.content") };
        let content = if marker && i == 0 {
            format!("{piece}\u{E3A0}cite\u{E3A3}web_search:1#0\u{E3A8}")
        } else {
            piece.clone()
        };
        (true, json!({"op": op, "mask": mask, "block": {"id": id, "text": {"content": content}}}))
    };
    pieces.iter().enumerate().map(frame).collect()
}

/// A web search Kimi runs on its side (`docs/kimi-protocol.md` §4.4): pending, the arguments in
/// fragments, running with the whole arguments and the normalised id, done with its results.
fn tool_round() -> Vec<Value> {
    search_round("2", 1, "mock weather")
}

/// [`tool_round`] as block `id`, the `n`th search of the answer, for `query`.
fn search_round(id: &str, n: usize, query: &str) -> Vec<Value> {
    let parent = "0";
    let args = format!(r#"{{"queries": [{}]}}"#, json!(query));
    let result = json!({"searchResult": {"base": {"title": "Tool result", "url": "https://tool.example/r",
        "snippet": "TOOL CONTENT"}, "refIndex": format!("web_search:{n}#0")}});
    vec![
        json!({"op": "set", "block": {"id": id, "parentId": parent,
            "tool": {"toolCallId": format!("web_search_{}", n - 1), "name": "web_search", "status": "STATUS_PENDING"}}}),
        json!({"op": "append", "mask": "block.tool.args", "block": {"id": id, "tool": {"args": &args[..14]}}}),
        json!({"op": "append", "mask": "block.tool.args", "block": {"id": id, "tool": {"args": &args[14..]}}}),
        json!({"op": "set", "mask": "block.tool.args,block.tool.status,block.tool.toolCallId",
            "block": {"id": id, "tool": {"toolCallId": format!("web_search:{n}"), "args": args, "status": "STATUS_RUNNING"}}}),
        json!({"op": "set", "mask": "block.tool.contents,block.tool.status",
            "block": {"id": id, "tool": {"contents": [result], "status": "STATUS_DONE", "isError": false}}}),
    ]
}

/// A `Retry-After` header line, or none.
fn retry_after_header(seconds: Option<u64>) -> String {
    seconds.map_or_else(String::new, |s| format!("Retry-After: {s}\r\n"))
}

/// The fault an account was minted with (a JWT claim `mock: {"fault": ..., "times": n}`), while
/// it has struck fewer than `times` times (always, without `times`).
fn account_fault(st: &mut State, user: &str, token: &str) -> Option<Fault> {
    let claims = jwt_claims(token)?;
    let fault: Fault = serde_json::from_value(claims["mock"]["fault"].clone()).ok()?;
    let struck = st.account_faults.entry(user.to_string()).or_default();
    if claims["mock"]["times"].as_u64().is_some_and(|times| u64::from(*struck) >= times) {
        return None;
    }
    *struck += 1;
    Some(fault)
}

/// Counts an answer streaming for `user` while alive, and keeps the user's peak.
struct Streaming<'a> {
    state: &'a Mutex<State>,
    user: String,
}

impl<'a> Streaming<'a> {
    fn start(state: &'a Mutex<State>, user: &str) -> Streaming<'a> {
        let mut st = state.lock().unwrap();
        Self::begin(state, &mut st, user)
    }

    /// [`Streaming::start`] under a lock the caller holds (to check and count in one step).
    fn begin(state: &'a Mutex<State>, st: &mut State, user: &str) -> Streaming<'a> {
        let now = {
            let n = st.streaming.entry(user.to_string()).or_default();
            *n += 1;
            *n
        };
        let peak = st.stats.peak_streams_by_user.entry(user.to_string()).or_default();
        *peak = (*peak).max(now);
        Streaming { state, user: user.to_string() }
    }
}

impl Drop for Streaming<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.state.lock().unwrap().streaming.get_mut(&self.user) {
            *n -= 1;
        }
    }
}

// ---- Autumn 2026: the model catalogue, strict chat requests, plans and credits ----

/// The `mock` claim of the bearer token: per-account faults, `plan`, `catalogue`, `credits_used`.
fn mock_claim(request: &Request) -> Value {
    jwt_claims(&bearer(request)).map(|claims| claims["mock"].clone()).unwrap_or(Value::Null)
}

/// The catalogue an account sees: its token's `mock.catalogue`, else the script's.
fn catalogue_name(st: &State, claim: &Value) -> String {
    claim["catalogue"].as_str().map_or_else(|| st.script.catalogue.clone(), str::to_string)
}

/// Whether a scenario is one of the agent's (K3, K2.8, Swarm: `docs/kimi-protocol.md` §7.1).
fn is_agent_scenario(scenario: &str) -> bool {
    scenario.starts_with("SCENARIO_OK_COMPUTER")
}

/// `kimiplus_id` (or `kimiplusId`: Kimi takes both spellings, `docs/kimi-protocol.md` §7.2).
fn kimiplus_id(body: &Value) -> Option<&str> {
    body["kimiplus_id"].as_str().or_else(|| body["kimiplusId"].as_str()).filter(|id| !id.is_empty())
}

/// An effort ladder: (effort, display name) pairs.
fn ladder(efforts: &[(&str, &str)]) -> Value {
    efforts.iter().map(|(effort, name)| json!({"effort": effort, "displayName": name})).collect()
}

/// The Instant entry (`docs/kimi-protocol.md` §7.1).
fn instant_entry(id: &str, key: &str, efforts: &[(&str, &str)]) -> Value {
    json!({"id": id, "key": key, "scenario": "SCENARIO_CHAT", "displayName": "Instant",
        "reasoningEffortOptions": ladder(efforts), "defaultReasoningEffort": "REASONING_EFFORT_LOW"})
}

/// An agent entry (K2.8, K3, Swarm): ladder LOW/HIGH/MAX, context L or XL (`docs/kimi-protocol.md` §7.1).
fn agent_entry(id: &str, key: &str, name: &str, swarm: bool) -> Value {
    let efforts = [
        ("REASONING_EFFORT_LOW", "Standard"),
        ("REASONING_EFFORT_HIGH", "High"),
        ("REASONING_EFFORT_MAX", "Max"),
    ];
    let mut entry = json!({"id": id, "key": key, "displayName": name, "kimiPlusId": "ok-computer",
        "scenario": if swarm { "SCENARIO_OK_COMPUTER_SWARM" } else { "SCENARIO_OK_COMPUTER" },
        "agentMode": if swarm { "TYPE_ULTRA" } else { "TYPE_NORMAL" },
        "reasoningEffortOptions": ladder(&efforts), "defaultReasoningEffort": "REASONING_EFFORT_HIGH",
        "contextLengthOptions": [{"contextLength": "CONTEXT_LENGTH_L"},
            {"contextLength": "CONTEXT_LENGTH_XL", "available": false, "minMembershipLevel": "LEVEL_ADVANCED"}],
        "defaultContextLength": "CONTEXT_LENGTH_L"});
    if swarm {
        entry["minMembershipLevel"] = json!("LEVEL_BASIC");
    }
    entry
}

/// The `GetAvailableModels` answer (`docs/kimi-protocol.md` §7.1): `standard` is what a free
/// www.kimi.ai account got; `variant` has other ids, keys and an Instant ladder of LOW only (as
/// on www.kimi.com), so tests prove the server reads the catalogue. Anything else is `standard`.
fn catalogue(name: &str) -> Value {
    let entries = if name == "variant" {
        [
            instant_entry("k2d7-chat", "k2d7", &[("REASONING_EFFORT_LOW", "Thinking")]),
            agent_entry("k28-agent", "k28", "K2.8", false),
            agent_entry("k3-agent-v2", "k3", "K3", false),
            agent_entry("k3-agent-swarm-v2", "k3-agent-ultra", "K3 Swarm", true),
        ]
    } else {
        let instant = [("REASONING_EFFORT_NONE", "Standard"), ("REASONING_EFFORT_LOW", "High")];
        [
            instant_entry("k2d6-chat", "k2d6", &instant),
            agent_entry("k28-agent-preview", "k28-preview", "K2.8 (Preview)", false),
            agent_entry("k3-agent", "k3", "K3", false),
            agent_entry("k3-agent-swarm", "k3-agent-ultra", "K3 Swarm", true),
        ]
    };
    let default = entries[0]["id"].clone();
    json!({"availableModels": entries, "defaultScenario": {"scenario": "SCENARIO_CHAT", "model": default}})
}

/// `ConfigService/GetAvailableModels`: the account's catalogue, or a 500 when it is `fail`.
fn available_models(state: &Mutex<State>, request: Request) -> Flow {
    state.lock().unwrap().stats.catalogue_calls += 1;
    if connect_identity(state, &request).is_err() {
        return connect_error(request, 401, "unauthenticated");
    }
    let name = catalogue_name(&state.lock().unwrap(), &mock_claim(&request));
    if name == "fail" {
        return json_response(request, 500, json!({"code": "internal", "message": "mock catalogue down"}));
    }
    json_response(request, 200, catalogue(&name))
}

/// Checks a chat request against the catalogue as Kimi does since September 2026
/// (`docs/kimi-protocol.md` §7.1, §7.2): the entry whose rules it met, or what is wrong.
/// Deep research follows the K3 entry's rules.
fn validate_chat(catalogue: &Value, body: &Value) -> Result<Value, String> {
    let entries = catalogue["availableModels"].as_array().cloned().unwrap_or_default();
    let model = body["options"]["model"].as_str().ok_or("options.model is missing")?;
    let mut entry = entries.iter().find(|e| e["id"] == model).ok_or(format!("unknown model {model}"))?;
    let kimiplus = kimiplus_id(body);
    if kimiplus == Some("deep-researcher") {
        entry = entries.iter().find(|e| e["key"] == "k3").ok_or("no K3 model for deep research")?;
        if entry["id"] != model {
            return Err(format!("deep research runs on {}, not {model}", entry["id"].as_str().unwrap_or("")));
        }
    }
    let scenario = entry["scenario"].as_str().unwrap_or_default();
    for (field, sent) in [("scenario", &body["scenario"]), ("message.scenario", &body["message"]["scenario"])]
    {
        if sent != scenario {
            let sent = sent.as_str().unwrap_or("(none)");
            return Err(format!("{field} {sent} does not match model {model} ({scenario})"));
        }
    }
    if is_agent_scenario(scenario) {
        match kimiplus {
            None => return Err(format!("kimiplus_id is required by {scenario}")),
            Some(id) if id != "deep-researcher" && entry["kimiPlusId"] != id => {
                return Err(format!("kimiplus_id {id} is not offered by {model}"));
            }
            Some(_) => {}
        }
    }
    let options = &body["options"];
    if let Some(effort) = options.get("reasoning_effort").or_else(|| options.get("reasoningEffort")) {
        let offered = entry["reasoningEffortOptions"]
            .as_array()
            .is_some_and(|l| l.iter().any(|o| &o["effort"] == effort));
        if !offered {
            let effort = effort.as_str().map_or_else(|| effort.to_string(), str::to_string);
            return Err(format!(
                "reasoning effort {effort} is not offered by {}",
                entry["id"].as_str().unwrap_or("")
            ));
        }
    }
    Ok(entry.clone())
}

/// A credit balance (`docs/kimi-protocol.md` §7.7) with this share used.
fn credit_balance(used: f64) -> Value {
    json!({"id": "sb-1", "feature": "FEATURE_OMNI", "type": "SUBSCRIPTION", "unit": "UNIT_CREDIT",
        "amountUsedRatio": used, "expireTime": "2026-12-31T00:00:00Z", "domain": "DOMAIN_NEXUS"})
}

/// The share of credits used: the token's `mock.credits_used`, else the script's.
fn credits_used(state: &Mutex<State>, request: &Request) -> f64 {
    mock_claim(request)["credits_used"].as_f64().unwrap_or_else(|| state.lock().unwrap().script.credits_used)
}

/// `MembershipService/GetSubscriptionStats` (`docs/kimi-protocol.md` §7.7); 404 with `stats_missing`.
fn subscription_stats(state: &Mutex<State>, request: Request) -> Flow {
    let missing = {
        let mut st = state.lock().unwrap();
        st.stats.stats_calls += 1;
        st.script.stats_missing
    };
    if connect_identity(state, &request).is_err() {
        return connect_error(request, 401, "unauthenticated");
    }
    if missing {
        return json_response(request, 404, json!({"code": "not_found"}));
    }
    let used = credits_used(state, &request);
    json_response(request, 200, json!({"subscriptionBalance": credit_balance(used)}))
}
