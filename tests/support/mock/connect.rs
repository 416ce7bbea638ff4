//! The Connect RPC chat (`docs/kimi-protocol.md` §4, §7): a request checked against the
//! account's catalogue, refused as Kimi refuses, or answered frame by frame (text, thinking,
//! searches, server-side tool rounds, exceptions), and deep research parked on its question.

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::auth::{connect_identity, mock_claim};
use super::catalogue::{catalogue, catalogue_name};
use super::http::{
    Chunked, Flow, Request, bearer, connect_error, json_response, json_response_with, request_header,
    retry_after_header,
};
use super::script::{Fault, Script, Strike, TurnSeen, answer_pieces, micros_now, stamp_piece, strike};
use super::state::{State, Streaming, account_fault, delete_chat, fault_applies};

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

/// `ChatService/Chat`: the identity, the envelope, the catalogue's rules and the faults checked in
/// Kimi's order, then the turn's frames.
pub(super) fn chat(state: &Mutex<State>, request: Request) -> Flow {
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
    st.stats.starts_by_user.entry(sub.clone()).or_default().push(micros_now());
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
    if st.script.refuse_device_tools && declares_device_tools(&body) {
        drop(st);
        return refuse(
            request,
            "invalid_argument",
            "REASON_MOCK",
            "unsupported tool type TOOL_TYPE_DEVICE_TOOL",
        );
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
    let options = &body["options"];
    st.stats.turns.push(TurnSeen {
        chat_id: chat_id.clone(),
        continued: body.get("chat_id").or_else(|| body.get("chatId")).is_some(),
        prompt: prompt.clone(),
        system: options["systemPrompt"]
            .as_str()
            .or_else(|| options["system_prompt"].as_str())
            .map(str::to_string),
        parent_id: body["message"]["parent_id"].as_str().map(str::to_string),
    });
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
    let streaming = Streaming::begin(state, &mut st, &sub);
    drop(st);
    let turn = Turn { chat_id, message_id, prompt, body, entry, research, free, too_long, number };
    let (events, ending) = chat_events(&script, &turn, &fault);
    let Ok(out) = Chunked::open(request) else { return Flow::Close };
    send_chat(state, out, &script, &fault, events, ending, streaming)
}

/// `ChatService/DeleteChat`.
pub(super) fn delete(state: &Mutex<State>, request: Request, body: Value) -> Flow {
    if connect_identity(state, &request).is_err() {
        return connect_error(request, 401, "unauthenticated");
    }
    if delete_chat(state, body["chat_id"].as_str().unwrap_or_default()) {
        json_response(request, 200, json!({}))
    } else {
        connect_error(request, 404, "not_found")
    }
}

/// `ChatService/CancelChat` `{"chat_id", "message_id"}` (`docs/kimi-protocol.md` §7.5): counted.
pub(super) fn cancel(state: &Mutex<State>, request: Request, body: Value) -> Flow {
    if connect_identity(state, &request).is_err() {
        return connect_error(request, 401, "unauthenticated");
    }
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    let delay = {
        let mut st = state.lock().unwrap();
        st.stats.cancels.push((field("chat_id"), field("message_id")));
        st.script.cancel_delay_ms
    };
    thread::sleep(Duration::from_millis(delay));
    json_response(request, 200, json!({}))
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

/// Writes a turn's frames and its ending. The answer stops counting as streaming before the
/// stream's last envelope (a parked one when the park ends): a client that has read the end of
/// one answer may start the next at once, as on Kimi.
fn send_chat(
    state: &Mutex<State>,
    mut out: Chunked,
    script: &Script,
    fault: &Option<Fault>,
    events: Vec<(bool, Value)>,
    ending: Ending,
    streaming: Streaming<'_>,
) -> Flow {
    let sent = write_frames(&mut out, script, fault, events);
    if !matches!(ending, Ending::Park) || !matches!(sent, Sent::All) {
        drop(streaming);
    }
    match sent {
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

/// Whether a scenario is one of the agent's (K3, K2.8, Swarm: `docs/kimi-protocol.md` §7.1).
fn is_agent_scenario(scenario: &str) -> bool {
    scenario.starts_with("SCENARIO_OK_COMPUTER")
}

/// `kimiplus_id` (or `kimiplusId`: Kimi takes both spellings, `docs/kimi-protocol.md` §7.2).
fn kimiplus_id(body: &Value) -> Option<&str> {
    body["kimiplus_id"].as_str().or_else(|| body["kimiplusId"].as_str()).filter(|id| !id.is_empty())
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
    check_tools(body)?;
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

/// The tool types the browser sends, and a client's device tools: `{"type", "name"}` only, each
/// name once (`docs/kimi-protocol.md` §7.2, §7.4).
fn check_tools(body: &Value) -> Result<(), String> {
    const KNOWN: [&str; 4] = ["TOOL_TYPE_SEARCH", "TOOL_TYPE_CRON_JOB", "TOOL_TYPE_ASK_USER", DEVICE_TOOL];
    let mut names = Vec::new();
    for tool in body["tools"].as_array().into_iter().flatten() {
        let kind = tool["type"].as_str().unwrap_or_default();
        if !KNOWN.contains(&kind) {
            return Err(format!("unknown tool type {kind:?}"));
        }
        if kind != DEVICE_TOOL {
            continue;
        }
        let name = tool["name"].as_str().unwrap_or_default();
        let fields = tool.as_object().map_or(0, |o| o.len());
        if name.is_empty() || fields != 2 || names.contains(&name) {
            return Err(format!("a device tool is {{\"type\", \"name\"}}, each name once: {tool}"));
        }
        names.push(name);
    }
    Ok(())
}

const DEVICE_TOOL: &str = "TOOL_TYPE_DEVICE_TOOL";

fn declares_device_tools(body: &Value) -> bool {
    body["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["type"] == DEVICE_TOOL))
}
