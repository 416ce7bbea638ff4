//! What an agent session compares of a conversation (`sessions.rs`): one digest per turn, never
//! the text itself. A turn is a run of messages of one side: the assistant's (text and tool
//! calls), or everything else that is not a system message (the user's text, attachments, tool
//! results). Texts are compared with their white space collapsed, tool calls by name and
//! arguments (as canonical JSON), tool results by content and error flag; call ids and
//! reasoning are left out, since clients do not echo them alike. The system messages, the
//! declared tools and the model make the session's frame: a change of it starts a new session.
//!
//! [`Recorder`] keeps what the layers passed to the dialect (the answer the client will echo
//! back as its next history's assistant turn). Pure but for the sink.

use serde_json::{Value, json};

use crate::chat::{self, Event, Flow, Message, Part, Role, Sink, ToolCall};
use crate::kimi::sha256;

pub type Digest = [u8; 32];

/// A conversation's turns: each one's digest, whether it is the assistant's, and the index of
/// its first message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turns {
    pub digests: Vec<Digest>,
    pub assistant: Vec<bool>,
    pub starts: Vec<usize>,
}

/// The turns of `messages` (system messages left out: they belong to the frame).
pub fn turns(messages: &[Message]) -> Turns {
    let mut turns = Turns::default();
    let mut current: Option<(bool, Vec<Value>)> = None;
    for (index, message) in messages.iter().enumerate() {
        if message.role == Role::System {
            continue;
        }
        let assistant = message.role == Role::Assistant;
        match &mut current {
            Some((side, parts)) if *side == assistant => parts.extend(message.parts.iter().map(part)),
            _ => {
                if let Some((side, parts)) = current.take() {
                    turns.push(side, &parts);
                }
                turns.starts.push(index);
                current = Some((assistant, message.parts.iter().map(part).collect()));
            }
        }
    }
    if let Some((side, parts)) = current {
        turns.push(side, &parts);
    }
    turns
}

impl Turns {
    fn push(&mut self, assistant: bool, parts: &[Value]) {
        let parts = if assistant { assistant_parts(parts) } else { parts.to_vec() };
        self.digests.push(digest(&json!([assistant, parts])));
        self.assistant.push(assistant);
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }
}

/// An assistant turn as its text (all text parts, in one) and its calls, in order: a client
/// may echo one answer as several text blocks or messages.
fn assistant_parts(parts: &[Value]) -> Vec<Value> {
    let text: Vec<&str> = parts.iter().filter_map(|p| p["t"].as_str()).collect();
    let mut out = vec![json!({"t": collapse(&text.join(" "))})];
    out.extend(parts.iter().filter(|p| p.get("c").is_some()).cloned());
    out
}

/// One part as compared: its kind and what identifies it.
fn part(part: &Part) -> Value {
    match part {
        Part::Text(text) => json!({"t": collapse(text)}),
        Part::Image(url) => json!({"i": digest_hex(url)}),
        Part::File(url) => json!({"f": digest_hex(url)}),
        Part::ToolCall(call) => call_value(call),
        Part::ToolResult(result) => json!({"r": collapse(&result.content), "e": result.is_error}),
    }
}

fn call_value(call: &ToolCall) -> Value {
    // serde_json's maps are ordered by key: the arguments' JSON is canonical.
    json!({"c": call.name, "a": Value::Object(call.arguments.clone()).to_string()})
}

/// The text with every run of white space as one space, trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn digest(value: &Value) -> Digest {
    sha256::digest(value.to_string().as_bytes())
}

fn digest_hex(text: &str) -> String {
    sha256::hex(&sha256::digest(text.as_bytes()))
}

/// The digest of what a session's chat was started with and does not receive again: the model,
/// the system messages and the declared tools.
pub fn frame(request: &chat::Request) -> Digest {
    let system: Vec<String> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| collapse(&m.joined_text()))
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!([t.name, t.description, t.parameters.to_string(), t.deferred, t.freeform]))
        .collect();
    digest(&json!([request.model, system, tools]))
}

/// The digest of the assistant turn an answer made: what the client will send back.
pub fn answer_turn(text: &str, calls: &[ToolCall]) -> Digest {
    let mut parts = vec![json!({"t": text})];
    parts.extend(calls.iter().map(call_value));
    let mut turns = Turns::default();
    turns.push(true, &parts);
    turns.digests[0]
}

/// Tool results without a tool name get it from their call earlier in the history, so that a
/// tail cut from it still names its tools (the tool layer finds names only in what it is given).
pub fn name_results(messages: &mut [Message]) {
    let mut names: Vec<(String, String)> = Vec::new();
    for message in messages {
        for part in &mut message.parts {
            match part {
                Part::ToolCall(call) => names.push((call.id.clone(), call.name.clone())),
                Part::ToolResult(result) if result.name.is_empty() => {
                    let found = names.iter().rev().find(|(id, _)| *id == result.call_id && !id.is_empty());
                    if let Some((_, name)) = found {
                        result.name = name.clone();
                    }
                }
                _ => {}
            }
        }
    }
}

/// What a [`Recorder`] kept of one answer.
#[derive(Debug, Default)]
pub struct Record {
    /// The conversation id the backend gave (marked with its account when it had a choice).
    pub conversation: Option<String>,
    pub text: String,
    pub calls: Vec<ToolCall>,
    /// Whether any content reached the dialect (then a request cannot be run again).
    pub delivered: bool,
}

/// A sink between the layers and the dialect's sink that keeps what passes.
pub struct Recorder<'r, S> {
    record: &'r mut Record,
    inner: S,
}

impl<'r, S: Sink> Recorder<'r, S> {
    pub fn new(record: &'r mut Record, inner: S) -> Self {
        Recorder { record, inner }
    }
}

impl<S: Sink> Sink for Recorder<'_, S> {
    fn send(&mut self, event: Event) -> Flow {
        match &event {
            Event::ConversationId(id) => self.record.conversation = Some(id.clone()),
            Event::Text(text) => {
                self.record.text.push_str(text);
                self.record.delivered = true;
            }
            Event::ToolCall(call) => {
                self.record.calls.push(call.clone());
                self.record.delivered = true;
            }
            Event::Thinking(_) | Event::Citation { .. } | Event::Finish(_) => self.record.delivered = true,
            Event::Heartbeat | Event::ToolsOffered(_) => {}
        }
        self.inner.send(event)
    }

    fn flush(&mut self) -> Flow {
        self.inner.flush()
    }
}

#[cfg(test)]
#[path = "transcript_tests.rs"]
mod tests;
