//! The events of the Connect `Chat` stream (`docs/kimi-protocol.md` §4.4, §7.5), parsed from
//! one data frame's JSON, and the end-of-stream message. Pure: bytes in, [`ConnectEvent`] out.
//! What a frame carries that this server does not know is named by [`unknown_names`], so that
//! Kimi's next change shows in `/metrics` before it breaks anything.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectEvent {
    /// The chat's id (first frame of a new or continued chat).
    Chat { id: String },
    /// The assistant message being written; its id is the next turn's `parent_id`.
    AssistantMessage { id: String },
    /// A piece of the answer.
    Text(String),
    /// A piece of the reasoning.
    Thinking(String),
    /// Web search sources: (title, url).
    Citations(Vec<(String, String)>),
    /// A step of a tool Kimi runs on its side (`block.tool`): its block, and what the frame
    /// says of it. Arguments come in fragments (`append`) and then whole (`set`).
    Tool { block: String, name: String, args: String, append: bool, running: bool },
    /// The chat's status changed (`STATUS_ASK_USER_QUESTION`: deep research waits for the user).
    Status(String),
    /// The end of the events; an error may still follow.
    Done,
    /// An error, in a data frame or the end-of-stream message; `reason` is Kimi's
    /// `REASON_…` name when it gave one.
    Error { code: String, reason: String, message: String },
    /// A keep-alive.
    Heartbeat,
    /// Titles, statuses, echoes: nothing to do.
    Ignored,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    mask: String,
    op: String,
    chat: Option<RawChat>,
    message: Option<RawMessage>,
    block: Option<RawBlock>,
    done: Option<IgnoredAny>,
    heartbeat: Option<IgnoredAny>,
    error: Option<RawError>,
    exception: Option<RawException>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawChat {
    id: String,
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMessage {
    id: String,
    role: String,
    refs: Option<RawRefs>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawRefs {
    search_chunks: Vec<RawChunk>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawChunk {
    base: RawBase,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawBase {
    title: String,
    url: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawBlock {
    id: String,
    text: Option<RawContent>,
    think: Option<RawContent>,
    tool: Option<RawTool>,
    exception: Option<RawException>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContent {
    content: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTool {
    name: String,
    args: String,
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawError {
    code: String,
    message: String,
    details: Vec<RawDetail>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDetail {
    debug: RawDebug,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawDebug {
    reason: String,
    localized_message: RawLocalized,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLocalized {
    message: String,
}

/// `block.exception` (§7.5): a reason and a message, no code.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawException {
    error: RawDebug,
}

impl RawError {
    /// The most human message the error carries, and its reason.
    fn into_event(self) -> ConnectEvent {
        let debug =
            self.details.into_iter().map(|d| d.debug).find(|d| !d.localized_message.message.is_empty());
        let (reason, message) = match debug {
            Some(debug) if debug.reason.is_empty() => (String::new(), debug.localized_message.message),
            Some(debug) => {
                let message = format!("{} ({})", debug.localized_message.message, debug.reason);
                (debug.reason, message)
            }
            None if !self.message.is_empty() => (String::new(), self.message),
            None => (String::new(), format!("Kimi stopped with `{}`", self.code)),
        };
        ConnectEvent::Error { code: self.code, reason, message }
    }
}

impl RawException {
    fn into_event(self) -> ConnectEvent {
        let RawDebug { reason, localized_message } = self.error;
        let message = match (localized_message.message.is_empty(), reason.is_empty()) {
            (false, true) => localized_message.message,
            (false, false) => format!("{} ({reason})", localized_message.message),
            (true, false) => format!("Kimi stopped the answer: {reason}"),
            (true, true) => "Kimi stopped the answer without saying why".to_string(),
        };
        ConnectEvent::Error { code: String::new(), reason, message }
    }
}

/// Parses one data frame.
pub fn parse(payload: &[u8]) -> Result<ConnectEvent, serde_json::Error> {
    let raw: Raw = serde_json::from_slice(payload)?;
    if let Some(error) = raw.error {
        return Ok(error.into_event());
    }
    if let Some(exception) = raw.exception {
        return Ok(exception.into_event());
    }
    if raw.done.is_some() {
        return Ok(ConnectEvent::Done);
    }
    if raw.heartbeat.is_some() {
        return Ok(ConnectEvent::Heartbeat);
    }
    if let Some(block) = raw.block {
        return Ok(block_event(block, &raw.mask, &raw.op));
    }
    if let Some(message) = raw.message {
        return Ok(message_event(message, &raw.mask));
    }
    match raw.chat {
        Some(chat) if !chat.status.is_empty() && raw.mask.contains("chat.status") => {
            Ok(ConnectEvent::Status(chat.status))
        }
        Some(chat) if !chat.id.is_empty() => Ok(ConnectEvent::Chat { id: chat.id }),
        _ => Ok(ConnectEvent::Ignored),
    }
}

fn block_event(block: RawBlock, mask: &str, op: &str) -> ConnectEvent {
    if let Some(text) = block.text.filter(|_| mask.starts_with("block.text")) {
        return ConnectEvent::Text(text.content);
    }
    if let Some(think) = block.think.filter(|_| mask.starts_with("block.think")) {
        return ConnectEvent::Thinking(think.content);
    }
    if let Some(exception) = block.exception {
        return exception.into_event();
    }
    match block.tool {
        Some(tool) => ConnectEvent::Tool {
            block: block.id,
            name: tool.name,
            args: tool.args,
            append: op == "append",
            running: tool.status == "STATUS_RUNNING",
        },
        None => ConnectEvent::Ignored,
    }
}

fn message_event(message: RawMessage, mask: &str) -> ConnectEvent {
    if let Some(refs) = message.refs.filter(|_| mask.contains("refs.searchChunks")) {
        let sources = refs
            .search_chunks
            .into_iter()
            .filter(|c| !c.base.url.is_empty())
            .map(|c| (c.base.title, c.base.url))
            .collect();
        return ConnectEvent::Citations(sources);
    }
    if message.role == "assistant" && !message.id.is_empty() && mask == "message" {
        return ConnectEvent::AssistantMessage { id: message.id };
    }
    ConnectEvent::Ignored
}

/// The error carried by an end-of-stream message, if any (`{}` is success).
pub fn end_stream_error(payload: &[u8]) -> Result<Option<ConnectEvent>, serde_json::Error> {
    let raw: Raw = serde_json::from_slice(payload)?;
    Ok(raw.error.map(RawError::into_event))
}

/// The top-level keys of a frame this server knows (§4.4, §7.5).
const KNOWN_KEYS: &[&str] =
    &["op", "mask", "eventOffset", "chat", "message", "block", "done", "heartbeat", "error", "exception"];
/// The block kinds it knows: those it reads, and those seen and deliberately passed over
/// (agent and research blocks, §7.5).
const KNOWN_BLOCKS: &[&str] = &[
    "id",
    "parentId",
    "messageId",
    "text",
    "think",
    "tool",
    "exception",
    "agentMessage",
    "stage",
    "multiStage",
    "artifact",
    "aippt",
    "slidesView",
    "memory",
    "explorerResearch",
    "search",
    "file",
];
/// The roots of the masks it knows (a mask is a comma-separated list of field paths).
const KNOWN_MASKS: &[&str] =
    &["message", "chat", "block.text", "block.think", "block.tool", "block.exception"];
/// Connect's error codes.
pub const KNOWN_CODES: &[&str] = &[
    "canceled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
];

/// What a frame carries that this server does not know: (kind, name) pairs for the drift
/// counter. Only frames that gave nothing to do are looked at this closely.
pub fn unknown_names(payload: &[u8]) -> Vec<(&'static str, String)> {
    let Ok(Value::Object(frame)) = serde_json::from_slice::<Value>(payload) else { return Vec::new() };
    let mut unknown = Vec::new();
    for key in frame.keys().filter(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        unknown.push(("event", key.clone()));
    }
    if let Some(Value::Object(block)) = frame.get("block") {
        for key in block.keys().filter(|k| !KNOWN_BLOCKS.contains(&k.as_str())) {
            unknown.push(("block", key.clone()));
        }
    }
    let mask = frame.get("mask").and_then(Value::as_str).unwrap_or_default();
    for part in mask.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let known = KNOWN_MASKS.iter().any(|root| part == *root || part.starts_with(&format!("{root}.")));
        if !known {
            unknown.push(("mask", part.to_string()));
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> ConnectEvent {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn parses_the_captured_sequence() {
        let cases = [
            (
                r#"{"op":"set","eventOffset":1,"chat":{"id":"d2i70l0l3dcesrju6ur0","name":"未命名会话"}}"#,
                ConnectEvent::Chat { id: "d2i70l0l3dcesrju6ur0".into() },
            ),
            (r#"{"eventOffset":1,"heartbeat":{}}"#, ConnectEvent::Heartbeat),
            (
                r#"{"op":"set","mask":"message","message":{"id":"u1","role":"user","blocks":[{"text":{"content":"1+1="}}]}}"#,
                ConnectEvent::Ignored,
            ),
            (
                r#"{"op":"set","mask":"message","message":{"id":"a1","parentId":"u1","role":"assistant","status":"MESSAGE_STATUS_GENERATING"}}"#,
                ConnectEvent::AssistantMessage { id: "a1".into() },
            ),
            (r#"{"op":"set","mask":"chat.name","chat":{"name":"1+1="}}"#, ConnectEvent::Ignored),
            (
                r#"{"op":"set","mask":"block.text","block":{"id":"0","text":{}}}"#,
                ConnectEvent::Text(String::new()),
            ),
            (
                r#"{"op":"append","mask":"block.text.content","block":{"id":"0_0","text":{"content":" +"}}}"#,
                ConnectEvent::Text(" +".into()),
            ),
            (
                r#"{"op":"append","mask":"block.think.content","block":{"id":"1","think":{"content":"Alright"}}}"#,
                ConnectEvent::Thinking("Alright".into()),
            ),
            (
                r#"{"op":"set","mask":"message.status","message":{"id":"a1","status":"MESSAGE_STATUS_COMPLETED"}}"#,
                ConnectEvent::Ignored,
            ),
            (r#"{"eventOffset":13,"done":{}}"#, ConnectEvent::Done),
        ];
        for (json, expected) in cases {
            assert_eq!(event(json), expected, "{json}");
        }
    }

    #[test]
    fn search_refs_become_citations() {
        let json = r#"{"op":"append","mask":"message.refs.searchChunks","message":{"refs":{"searchChunks":[
            {"id":"1","base":{"title":"T","url":"https://u","siteName":"s"},"refIndex":"web_search:1#0"},
            {"id":"2","base":{"title":"no url"}}]}}}"#;
        assert_eq!(event(json), ConnectEvent::Citations(vec![("T".into(), "https://u".into())]));
    }

    #[test]
    fn errors_carry_the_most_human_message() {
        let json = r#"{"error":{"code":"resource_exhausted","details":[{"debug":{"reason":"REASON_SERVER_OVERLOADED_FOR_FREE_USER",
            "localizedMessage":{"locale":"en-US","message":"Too many people are chatting with Kimi right now."}}}]}}"#;
        let ConnectEvent::Error { code, reason, message } = event(json) else { panic!() };
        assert_eq!(
            (code.as_str(), reason.as_str()),
            ("resource_exhausted", "REASON_SERVER_OVERLOADED_FOR_FREE_USER")
        );
        assert!(message.starts_with("Too many people") && message.contains("OVERLOADED"));
        assert_eq!(
            end_stream_error(br#"{"error":{"code":"unauthenticated","message":"token expired"}}"#).unwrap(),
            Some(ConnectEvent::Error {
                code: "unauthenticated".into(),
                reason: String::new(),
                message: "token expired".into()
            })
        );
        assert_eq!(end_stream_error(b"{}").unwrap(), None);
        assert!(parse(b"{not json").is_err());
    }

    #[test]
    fn an_error_message_is_the_most_human_one_it_carries() {
        let error = |json: &str| match end_stream_error(json.as_bytes()).unwrap() {
            Some(ConnectEvent::Error { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        let localized = r#"{"error":{"code":"x","message":"raw","details":[{"debug":{"reason":"",
            "localizedMessage":{"message":"Slow down"}}}]}}"#;
        assert_eq!(error(localized), "Slow down", "no empty reason in brackets");
        assert_eq!(error(r#"{"error":{"code":"internal","message":""}}"#), "Kimi stopped with `internal`");
        assert_eq!(error(r#"{"error":{"code":"internal","message":"boom"}}"#), "boom");
    }

    #[test]
    fn several_text_blocks_each_carry_their_content() {
        let cases = [
            (
                r#"{"op":"set","mask":"block.text","block":{"id":"0","text":{"content":"Let me compute."}}}"#,
                "Let me compute.",
            ),
            (
                r#"{"op":"append","mask":"block.text.content","block":{"id":"0","text":{"content":" One moment."}}}"#,
                " One moment.",
            ),
            (
                r#"{"op":"set","mask":"block.text","block":{"id":"6","parentId":"0","text":{"content":"It is 391."}}}"#,
                "It is 391.",
            ),
            (
                r#"{"op":"append","mask":"block.text.content","block":{"id":"6","text":{"content":" Done."}}}"#,
                " Done.",
            ),
        ];
        for (json, text) in cases {
            assert_eq!(event(json), ConnectEvent::Text(text.into()), "{json}");
        }
    }

    #[test]
    fn a_block_exception_is_an_error_with_its_reason() {
        let json = r#"{"op":"set","mask":"block.exception","block":{"id":"3","exception":{"error":{
            "reason":"REASON_TOKEN_LENGTH_TOO_LONG","localizedMessage":{"locale":"en-US",
            "message":"Your conversation with Kimi is getting too long. Try starting a new session."}}}}}"#;
        let ConnectEvent::Error { code, reason, message } = event(json) else { panic!("{json}") };
        assert_eq!((code.as_str(), reason.as_str()), ("", "REASON_TOKEN_LENGTH_TOO_LONG"));
        assert!(message.starts_with("Your conversation with Kimi is getting too long."), "{message}");
        let bare = r#"{"op":"set","mask":"block.exception","block":{"exception":{"error":{"reason":"REASON_NEW"}}}}"#;
        let ConnectEvent::Error { message, .. } = event(bare) else { panic!() };
        assert_eq!(message, "Kimi stopped the answer: REASON_NEW");
        let top = r#"{"exception":{"error":{"reason":"R","localizedMessage":{"message":"m"}}}}"#;
        assert_eq!(
            event(top),
            ConnectEvent::Error { code: String::new(), reason: "R".into(), message: "m (R)".into() }
        );
    }

    #[test]
    fn the_chat_status_is_read() {
        let json =
            r#"{"op":"set","mask":"chat.status","chat":{"id":"c1","status":"STATUS_ASK_USER_QUESTION"}}"#;
        assert_eq!(event(json), ConnectEvent::Status("STATUS_ASK_USER_QUESTION".into()));
    }

    #[test]
    fn unknown_keys_blocks_and_masks_are_named() {
        let cases: [(&str, &[(&str, &str)]); 5] = [
            (
                r#"{"op":"set","mask":"block.hologram","block":{"id":"9","hologram":{"x":1}}}"#,
                &[("block", "hologram"), ("mask", "block.hologram")],
            ),
            (r#"{"op":"set","mask":"weather","weather":{}}"#, &[("event", "weather"), ("mask", "weather")]),
            (r#"{"op":"set","mask":"block.tool.args,block.tool.status","block":{"id":"1","tool":{}}}"#, &[]),
            (r#"{"op":"set","mask":"message.status","message":{"id":"a"},"eventOffset":3}"#, &[]),
            (r#"{"op":"set","block":{"id":"1","stage":{"name":"plan"}}}"#, &[]),
        ];
        for (json, expected) in cases {
            let names = unknown_names(json.as_bytes());
            let names: Vec<(&str, &str)> = names.iter().map(|(w, n)| (*w, n.as_str())).collect();
            assert_eq!(names, expected, "{json}");
        }
        assert!(unknown_names(b"not json").is_empty());
    }

    #[test]
    fn server_side_tool_rounds_are_tool_steps() {
        let pending = r#"{"op":"set","block":{"id":"4","tool":{"toolCallId":"ask_user:0","name":"ask_user","status":"STATUS_PENDING"}}}"#;
        let fragment =
            r#"{"op":"append","mask":"block.tool.args","block":{"id":"4","tool":{"args":"{\"q"}}}"#;
        let running = r#"{"op":"set","mask":"block.tool.args,block.tool.status","block":{"id":"4","tool":{"args":"{}","status":"STATUS_RUNNING"}}}"#;
        let tool = |name: &str, args: &str, append, running| ConnectEvent::Tool {
            block: "4".into(),
            name: name.into(),
            args: args.into(),
            append,
            running,
        };
        assert_eq!(event(pending), tool("ask_user", "", false, false));
        assert_eq!(event(fragment), tool("", "{\"q", true, false));
        assert_eq!(event(running), tool("", "{}", false, true));
    }

    #[test]
    fn server_side_tool_rounds_carry_no_answer_text() {
        let frames = [
            r#"{"op":"set","eventOffset":9,"block":{"id":"4","parentId":"0","tool":{"toolCallId":"ipython_0","name":"ipython","status":"STATUS_PENDING"}}}"#,
            r#"{"op":"append","mask":"block.tool.args","eventOffset":10,"block":{"id":"4","tool":{"args":"{\"code\": \"17"}}}"#,
            r#"{"op":"append","mask":"block.tool.args","eventOffset":11,"block":{"id":"4","tool":{"args":" * 23\"}"}}}"#,
            r#"{"op":"set","mask":"block.tool.args,block.tool.status,block.tool.toolCallId","eventOffset":12,
                "block":{"id":"4","tool":{"toolCallId":"ipython:1","args":"{\"code\": \"17 * 23\"}","status":"STATUS_RUNNING"}}}"#,
            r#"{"op":"set","mask":"block.tool.contents,block.tool.status","eventOffset":13,
                "block":{"id":"4","tool":{"contents":[{"text":"391"}],"status":"STATUS_DONE"}}}"#,
            r#"{"op":"set","mask":"block.tool.contents,block.tool.status","eventOffset":14,"block":{"id":"5","tool":{"contents":[
                {"searchResult":{"base":{"title":"T","url":"https://u"},"refIndex":"web_search:1#0"}}],"status":"STATUS_DONE","isError":false}}}"#,
            r#"{"op":"set","mask":"block.tool.contents,block.tool.status","eventOffset":15,
                "block":{"id":"7","tool":{"contents":[],"status":"STATUS_DONE","isError":true,"errorCode":"TIMEOUT"}}}"#,
        ];
        for json in frames {
            assert!(matches!(event(json), ConnectEvent::Tool { .. }), "{json}");
        }
    }
}
