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

use super::siphash::Keyed;
use crate::chat::{self, Event, Flow, Message, Part, Role, Sink, ToolCall};

/// A turn's or a frame's digest (keyed per process: `siphash.rs`).
pub type Digest = u64;

/// A conversation's turns: each one's digest, whether it is the assistant's, and the index of
/// its first message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turns {
    pub digests: Vec<Digest>,
    pub assistant: Vec<bool>,
    pub starts: Vec<usize>,
}

/// The turns of `messages` (system messages left out: they belong to the frame). Each turn is
/// hashed as it is read: a long history is neither copied nor serialised for it.
pub fn turns(messages: &[Message]) -> Turns {
    let sides: Vec<(usize, bool)> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role != Role::System)
        .map(|(index, m)| (index, m.role == Role::Assistant))
        .collect();
    let mut turns = Turns::default();
    for run in sides.chunk_by(|a, b| a.1 == b.1) {
        let (start, assistant) = run[0];
        let parts = run.iter().flat_map(|&(index, _)| &messages[index].parts);
        let digest = if assistant {
            assistant_turn(parts.clone().filter_map(Part::as_text), parts.filter_map(Part::as_call))
        } else {
            other_turn(parts)
        };
        turns.digests.push(digest);
        turns.assistant.push(assistant);
        turns.starts.push(start);
    }
    turns
}

impl Turns {
    pub fn len(&self) -> usize {
        self.digests.len()
    }
}

/// An assistant turn as its text (all text parts, in one) and its calls, in order: a client
/// may echo one answer as several text blocks or messages.
fn assistant_turn<'a>(
    texts: impl Iterator<Item = &'a str>,
    calls: impl Iterator<Item = &'a ToolCall>,
) -> Digest {
    let mut turn = AnswerTurn::default();
    texts.for_each(|text| turn.text(text));
    turn.finish(calls)
}

/// Any other turn, part by part: its kind and what identifies it.
fn other_turn<'a>(parts: impl Iterator<Item = &'a Part>) -> Digest {
    let mut turn = TurnHasher::new(false);
    for part in parts {
        match part {
            Part::Text(text) => turn.words(b't', text),
            Part::Image(url) => turn.field(b'i', url.as_bytes()),
            Part::File(url) => turn.field(b'f', url.as_bytes()),
            Part::ToolCall(call) => turn.call(call),
            Part::ToolResult(result) => {
                turn.words(b'r', &result.content);
                turn.0.update(&[u8::from(result.is_error)]);
            }
        }
    }
    turn.0.finish()
}

/// One turn's digest as it is fed: its side, then each part as a tag and its fields, so that
/// two different turns never feed the same bytes: a field has its length before it, a text
/// ends with a line feed (its words are joined by one space, and no word holds a line feed).
/// Call ids are left out; a call's arguments go in as canonical JSON (serde_json's maps are
/// ordered by key, and a JSON object delimits itself).
#[derive(Debug, Clone)]
struct TurnHasher(Keyed);

impl TurnHasher {
    fn new(assistant: bool) -> Self {
        let mut hasher = Keyed::keyed();
        hasher.update(&[u8::from(assistant)]);
        TurnHasher(hasher)
    }

    fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.0.update(&[tag]);
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn words(&mut self, tag: u8, text: &str) {
        self.0.update(&[tag]);
        Words::default().feed(&mut self.0, text);
        self.0.update(b"\n");
    }

    fn call(&mut self, call: &ToolCall) {
        self.field(b'c', call.name.as_bytes());
        serde_json::to_writer(&mut self.0, &call.arguments).expect("a map of JSON values serialises");
    }
}

/// A text fed in pieces with its white space collapsed: the words, one space between them, as
/// `split_whitespace` would find them in the whole text (a word may straddle two pieces).
#[derive(Debug, Clone, Default)]
struct Words {
    /// A word was fed.
    started: bool,
    /// White space came after the last word fed.
    gap: bool,
}

impl Words {
    fn feed(&mut self, hasher: &mut Keyed, text: &str) {
        for (index, piece) in text.split(char::is_whitespace).enumerate() {
            self.gap |= index > 0;
            if piece.is_empty() {
                continue;
            }
            if self.started && self.gap {
                hasher.update(b" ");
            }
            hasher.update(piece.as_bytes());
            (self.started, self.gap) = (true, false);
        }
    }
}

/// The assistant turn an answer makes, hashed as its text streams (the text is not kept: a
/// long answer costs no memory), its calls added at the end.
#[derive(Debug, Clone)]
pub struct AnswerTurn {
    turn: TurnHasher,
    words: Words,
}

impl Default for AnswerTurn {
    fn default() -> Self {
        let mut turn = TurnHasher::new(true);
        turn.0.update(b"t");
        AnswerTurn { turn, words: Words::default() }
    }
}

impl AnswerTurn {
    pub fn text(&mut self, text: &str) {
        self.words.feed(&mut self.turn.0, text);
    }

    pub fn finish<'a>(mut self, calls: impl Iterator<Item = &'a ToolCall>) -> Digest {
        self.turn.0.update(b"\n");
        calls.for_each(|call| self.turn.call(call));
        self.turn.0.finish()
    }
}

/// The text with every run of white space as one space, trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
    let mut hasher = Keyed::keyed();
    serde_json::to_writer(&mut hasher, &json!([request.model, system, tools])).expect("JSON serialises");
    hasher.finish()
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
    /// The answer as the client will echo it: its text hashed as it passed, and its calls.
    pub answer: AnswerTurn,
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
                self.record.answer.text(text);
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
