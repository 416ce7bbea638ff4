//! Client dialects: each turns its JSON into a [`chat::Request`](crate::chat::Request) and
//! renders [`chat::Event`](crate::chat::Event)s back in its own wire format, streamed or
//! aggregated. No dialect knows a Kimi type.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod responses;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::chat::{self, Answer, Event};

/// A value of the expected shape, or anything else (null, another type, an unknown block or
/// part), which reads as absent rather than failing the request: clients send blocks, parts and
/// fields this
/// server does not know.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Expected(T),
    Other(IgnoredAny),
}

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient::Other(IgnoredAny)
    }
}

impl<T> Lenient<T> {
    fn ok(self) -> Option<T> {
        match self {
            Lenient::Expected(value) => Some(value),
            Lenient::Other(_) => None,
        }
    }
}

/// OpenAI's `reasoning_effort` (chat completions) and `reasoning.effort` (Responses): `none` and
/// `minimal` leave thinking as the model name says, any other effort turns it on, and the top
/// one, `xhigh`, asks for the model's top effort too.
fn openai_effort(mode: &mut chat::Mode, effort: Option<&str>) {
    let Some(effort) = effort else { return };
    mode.thinking |= effort != "none" && effort != "minimal";
    if effort == "xhigh" {
        mode.max_effort = true;
    }
}

/// OpenAI's output format (Chat Completions' `response_format`, the Responses API's
/// `text.format`): `json_object`, or `json_schema` with the `name` and `schema` found in `spec`
/// (`response_format.json_schema`, or the format itself); anything else is text.
fn openai_output(format: &Value, spec: &Value) -> chat::Output {
    match format.get("type").and_then(Value::as_str) {
        Some("json_object") => chat::Output::Json,
        Some("json_schema") => match spec.get("schema").filter(|schema| schema.is_object()) {
            Some(schema) => chat::Output::JsonSchema {
                name: spec.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                schema: schema.clone(),
            },
            None => chat::Output::Json,
        },
        _ => chat::Output::Text,
    }
}

/// The client APIs the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
    /// OpenAI's Responses API (Codex CLI).
    Responses,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
            Dialect::Responses => "responses",
        }
    }

    /// The status and body of an error in this dialect's shape.
    pub fn error_response(self, error: &chat::Error) -> (u16, Vec<u8>) {
        match self {
            Dialect::OpenAi => openai::error_response(error),
            Dialect::Anthropic => anthropic::error_response(error),
            Dialect::Gemini => gemini::error_response(error),
            Dialect::Responses => responses::error_response(error),
        }
    }
}

/// Renders a live stream: bytes to write for each event, flushed by the server at once.
pub trait StreamRenderer {
    /// The response's content type.
    fn content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }

    /// Appends to `out` what `event` becomes on the wire (possibly nothing).
    fn event(&mut self, event: Event, out: &mut Vec<u8>);
    /// Appends the frames that end a stream which failed after it began.
    fn error(&mut self, error: &chat::Error, out: &mut Vec<u8>);
}

/// Renders a whole answer as a dialect's non-streaming response body.
pub trait Aggregator {
    fn body(&self, answer: &Answer) -> Vec<u8>;
}

/// An answer made of these events (for the dialects' tests).
#[cfg(test)]
pub fn answer_of(events: impl IntoIterator<Item = Event>) -> Answer {
    use crate::chat::Sink;
    let mut answer = Answer::default();
    for event in events {
        let _ = answer.send(event);
    }
    answer
}

/// A tool call's arguments from the JSON text a client sent back: an object as it is; anything
/// else (or text that is not JSON) kept under `input`, so nothing the client sent is lost.
pub fn arguments_of(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) if text.trim().is_empty() => Map::new(),
        Ok(other) => Map::from_iter([("input".to_string(), other)]),
        Err(_) if text.trim().is_empty() => Map::new(),
        Err(_) => Map::from_iter([("input".to_string(), Value::String(text.to_string()))]),
    }
}

/// An id unique in this process (`prefix` + time + a counter), for responses and tool calls:
/// ids made from the clock alone collide between concurrent requests.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}{:x}{n:06x}", nanos as u64 & 0xffff_ffff_ffff)
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
