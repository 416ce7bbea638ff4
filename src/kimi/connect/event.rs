//! The events of the Connect `Chat` stream (`docs/kimi-protocol.md` §4.4), parsed from one data
//! frame's JSON, and the end-of-stream message. Pure: bytes in, [`ConnectEvent`] out.

use serde::Deserialize;
use serde::de::IgnoredAny;

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
    /// The end of the events; an error may still follow.
    Done,
    /// An error, in a data frame or the end-of-stream message.
    Error { code: String, message: String },
    /// A keep-alive.
    Heartbeat,
    /// Heartbeats, titles, statuses, echoes, tool progress: nothing to do.
    Ignored,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    mask: String,
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
    text: Option<RawContent>,
    think: Option<RawContent>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContent {
    content: String,
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

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawException {
    error: RawDebugLike,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawDebugLike {
    reason: String,
    localized_message: RawLocalized,
}

impl RawError {
    /// The most human message the error carries.
    fn into_event(self) -> ConnectEvent {
        let debug =
            self.details.into_iter().map(|d| d.debug).find(|d| !d.localized_message.message.is_empty());
        let message = match debug {
            Some(debug) if debug.reason.is_empty() => debug.localized_message.message,
            Some(debug) => format!("{} ({})", debug.localized_message.message, debug.reason),
            None if !self.message.is_empty() => self.message,
            None => format!("Kimi stopped with `{}`", self.code),
        };
        ConnectEvent::Error { code: self.code, message }
    }
}

/// Parses one data frame.
pub fn parse(payload: &[u8]) -> Result<ConnectEvent, serde_json::Error> {
    let raw: Raw = serde_json::from_slice(payload)?;
    if let Some(error) = raw.error {
        return Ok(error.into_event());
    }
    if let Some(exception) = raw.exception {
        let e = exception.error;
        let message = format!("{} ({})", e.localized_message.message, e.reason);
        return Ok(ConnectEvent::Error { code: "unavailable".into(), message });
    }
    if raw.done.is_some() {
        return Ok(ConnectEvent::Done);
    }
    if raw.heartbeat.is_some() {
        return Ok(ConnectEvent::Heartbeat);
    }
    if let Some(block) = raw.block {
        if let Some(text) = block.text.filter(|_| raw.mask.starts_with("block.text")) {
            return Ok(ConnectEvent::Text(text.content));
        }
        if let Some(think) = block.think.filter(|_| raw.mask.starts_with("block.think")) {
            return Ok(ConnectEvent::Thinking(think.content));
        }
        return Ok(ConnectEvent::Ignored);
    }
    if let Some(message) = raw.message {
        if let Some(refs) = message.refs.filter(|_| raw.mask.contains("refs.searchChunks")) {
            let sources = refs
                .search_chunks
                .into_iter()
                .filter(|c| !c.base.url.is_empty())
                .map(|c| (c.base.title, c.base.url))
                .collect();
            return Ok(ConnectEvent::Citations(sources));
        }
        if message.role == "assistant" && !message.id.is_empty() && raw.mask == "message" {
            return Ok(ConnectEvent::AssistantMessage { id: message.id });
        }
        return Ok(ConnectEvent::Ignored);
    }
    if let Some(chat) = raw.chat.filter(|c| !c.id.is_empty()) {
        return Ok(ConnectEvent::Chat { id: chat.id });
    }
    Ok(ConnectEvent::Ignored)
}

/// The error carried by an end-of-stream message, if any (`{}` is success).
pub fn end_stream_error(payload: &[u8]) -> Result<Option<ConnectEvent>, serde_json::Error> {
    let raw: Raw = serde_json::from_slice(payload)?;
    Ok(raw.error.map(RawError::into_event))
}

/// Removes Kimi's private-use citation markers (`\u{E3A0}…\u{E3A8}`) from answer text; a
/// marker may span several frames.
#[derive(Debug, Default)]
pub struct CitationMarkers {
    inside: bool,
}

const MARKER_OPEN: char = '\u{E3A0}';
const MARKER_CLOSE: char = '\u{E3A8}';

impl CitationMarkers {
    pub fn strip(&mut self, text: &str) -> String {
        if !self.inside && !text.contains(MARKER_OPEN) {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match (self.inside, c) {
                (false, MARKER_OPEN) => self.inside = true,
                (false, c) => out.push(c),
                (true, MARKER_CLOSE) => self.inside = false,
                (true, _) => {}
            }
        }
        out
    }
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
        let ConnectEvent::Error { code, message } = event(json) else { panic!() };
        assert_eq!(code, "resource_exhausted");
        assert!(message.starts_with("Too many people") && message.contains("OVERLOADED"));
        assert_eq!(
            end_stream_error(br#"{"error":{"code":"unauthenticated","message":"token expired"}}"#).unwrap(),
            Some(ConnectEvent::Error { code: "unauthenticated".into(), message: "token expired".into() })
        );
        assert_eq!(end_stream_error(b"{}").unwrap(), None);
        assert!(parse(b"{not json").is_err());
    }

    #[test]
    fn citation_markers_are_stripped_across_frames() {
        let mut markers = CitationMarkers::default();
        assert_eq!(markers.strip("Sunny \u{E3A0}cite\u{E3A3}web_search:1#2\u{E3A8}today."), "Sunny today.");
        assert_eq!(markers.strip("a\u{E3A0}cite\u{E3A3}web"), "a");
        assert_eq!(markers.strip("_search:1#0\u{E3A8}b"), "b");
        assert_eq!(markers.strip("plain"), "plain");
    }
}
