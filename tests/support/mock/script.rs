//! What a test asks of the mock ([`Script`], [`Fault`]) and what the mock saw ([`Stats`],
//! [`Upload`]); the answer pieces a script makes and the faults that strike mid-answer.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Now in microseconds since the Unix epoch (`Stats::starts_by_user`).
pub fn micros_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

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
    /// A Connect chat that declares `TOOL_TYPE_DEVICE_TOOL` entries is refused with
    /// `invalid_argument` naming the tool type: Kimi may stop taking client tools
    /// (`docs/kimi-protocol.md` §7.4).
    pub refuse_device_tools: bool,
    /// Answer the doctor's tool probe like any prompt (no call); by default a prompt holding
    /// [`PROBE_MARKER`] is answered with the probe's call, as a model that follows it would.
    pub ignore_probe: bool,
    /// `CancelChat` answers after this pause (a turn of a kept chat then ends after its answer
    /// reached the client).
    pub cancel_delay_ms: u64,
    /// Legacy: search results only when the request asks for search (`use_search`) and thinking
    /// only when it asks for the K1 agent (`kimiplus_id`; `docs/kimi-protocol.md` §3.3, §3.4), as Kimi
    /// does; otherwise the script's are sent whatever was asked. Connect always checks.
    pub as_asked: bool,
}

/// A stamped answer piece: the send time, a space, and padding.
pub(super) fn stamp_piece(pad: usize) -> String {
    format!("{:016} {}", now_micros(), "x".repeat(pad))
}

impl Stats {
    /// What the model was given to read in the last chat: on Connect the system prompt has a
    /// field of its own (`docs/kimi-protocol.md` §7.3), shown as the `system:` line it replaces.
    pub fn sent_prompt(&self) -> String {
        let prompt = self.last_prompt.clone().unwrap_or_default();
        let system = self.last_completion.as_ref().and_then(|c| c["options"]["systemPrompt"].as_str());
        match system {
            Some(system) => format!("system:{system}\n{prompt}"),
            None => prompt,
        }
    }
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
            refuse_device_tools: false,
            ignore_probe: false,
            cancel_delay_ms: 0,
            as_asked: false,
        }
    }
}

impl Script {
    /// What `make demo` answers (`examples/demo.rs`): an answer paced like Kimi's, with thinking
    /// and citations when the model asks for them (`-thinking`, `-search`) and only then.
    pub fn demo() -> Script {
        let words = "This is the mock Kimi of `make demo`: nothing leaves this machine. Give the \
                     server your own Kimi token for real answers.";
        Script {
            text: words.split_inclusive(' ').map(String::from).collect(),
            thinking: ["The user ", "wants to see ", "the server work ", "without a Kimi account."]
                .map(String::from)
                .to_vec(),
            search: vec![
                ("The Rust Programming Language".into(), "https://www.rust-lang.org/".into()),
                ("Rust Blog".into(), "https://blog.rust-lang.org/".into()),
            ],
            delay_ms: 40,
            as_asked: true,
            ..Script::default()
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
    /// When each user's chat turns arrived, in microseconds since the Unix epoch, in order.
    pub starts_by_user: BTreeMap<String, Vec<u64>>,
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
    /// Every chat turn in order, whichever protocol carried it: its chat, and what it sent.
    pub turns: Vec<TurnSeen>,
    /// `ChatService/CancelChat` calls: (chat id, message id) (`docs/kimi-protocol.md` §7.5).
    pub cancels: Vec<(String, String)>,
    /// Every request, in order (the newest 4096): where it came from and with which credential
    /// (the proxy tests tell by its peer address which proxy carried it, or none). Not in
    /// `/_mock/stats`: the SDK suites do not need it.
    #[serde(skip)]
    pub requests: Vec<Seen>,
}

/// One chat turn as the mock received it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TurnSeen {
    /// The chat it went to (a new one's id once created).
    pub chat_id: String,
    /// Whether it continued a chat (`chat_id` sent, or the legacy chat had turns before).
    pub continued: bool,
    /// The prompt text (the first text block, or the legacy message's content).
    pub prompt: String,
    /// Connect: the system prompt field, if sent.
    pub system: Option<String>,
    pub parent_id: Option<String>,
}

/// One request as the mock received it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Seen {
    /// `METHOD /path` (without the query string).
    pub route: String,
    /// The address it came from, `127.0.0.1:PORT`.
    pub peer: String,
    /// Its `Authorization` header, if any.
    pub authorization: Option<String>,
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

/// What a prompt line `MOCK-REPLY: text` asks the answer to be: a file the client's tool read
/// (and fed back as a tool result) scripts the final answer of a real CLI's agent loop.
const REPLY_MARKER: &str = "MOCK-REPLY:";

/// The words by which the doctor's tool probe asks for its call (`src/doctor`), and the call a
/// model that follows it writes, in the `<function_calls>` form Kimi's model was seen answering
/// in (`docs/kimi-protocol.md` §7.4).
const PROBE_MARKER: &str = "kimi-free-api tool probe";
const PROBE_CALL: &str = "<function_calls>\n<invoke name=\"get_time\">\n<parameter name=\"timezone\">UTC</parameter>\n</invoke>\n</function_calls>";

/// The answer of completion number `turn` (1 for the first) to `prompt`: a `MOCK-REPLY:` line,
/// the turn's pieces, the script's text, the prompt (echo), or placeholders to be stamped.
pub(super) fn answer_pieces(script: &Script, prompt: &str, turn: usize) -> Vec<String> {
    if !script.ignore_probe && prompt.contains(PROBE_MARKER) && !prompt.contains("<tool_result name=") {
        return vec![PROBE_CALL.to_string()];
    }
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

/// What an answer-event fault does to the stream at this point.
pub(super) enum Strike {
    Nothing,
    /// An error event (legacy) or end-of-stream error (Connect): type or code, message.
    Error(String, String),
    Cut,
    Malformed,
}

/// The fault striking before answer event number `answered` (a stall just sleeps here).
pub(super) fn strike(fault: &Option<Fault>, answered: usize) -> Strike {
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
