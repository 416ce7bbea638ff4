//! Kimi's own tool-call markers, which the model sometimes falls back to (they are what Kimi K2
//! writes when tools are native to it). A section holds calls, each a call id and JSON arguments:
//!
//! ```text
//! <|tool_calls_section_begin|>
//! <|tool_call_begin|>functions.read:0<|tool_call_argument_begin|>{"path": "a.rs"}<|tool_call_end|>
//! <|tool_call_begin|>run:1<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|>
//! <|tool_calls_section_end|>
//! ```
//!
//! The tool's name is the call id without its `functions.` prefix and `:INDEX` suffix, and comes
//! within [`MAX_TAG`] bytes; the arguments must be one JSON object, mended as `json_repair.rs`
//! says when it is none as written (smart quotes, bare Windows backslashes). The section's opening
//! is found by the front door (`block_opening`).

use super::arguments::Arguments;
use super::json_repair::repaired_object;
use super::scan::{Seen, bounded, find_from, literal};
use super::{Block, Call, Event, MAX_TAG};

/// Kimi's own markers, which the model sometimes falls back to.
pub(super) const SECTION_BEGIN: &str = "<|tool_calls_section_begin|>";
pub(super) const SECTION_END: &str = "<|tool_calls_section_end|>";
pub(super) const CALL_BEGIN: &str = "<|tool_call_begin|>";
pub(super) const ARGUMENT_BEGIN: &str = "<|tool_call_argument_begin|>";
pub(super) const CALL_END: &str = "<|tool_call_end|>";

/// Where a call block's reader is in a call of Kimi's markers (the call began at `start`).
pub(super) enum Phase {
    /// In its name.
    Name { start: usize },
    /// In its JSON arguments, which run from `at` to the first `<|tool_call_end|>`.
    Arguments { start: usize, name: String, scan: usize },
}

impl From<Phase> for super::Phase {
    fn from(phase: Phase) -> Self {
        super::Phase::Native(phase)
    }
}

impl Block {
    /// Between calls: the next `<|tool_call_begin|>`, or the section's end.
    pub(super) fn native_between(&mut self, rest: &str) -> Option<Event> {
        match (literal(rest, CALL_BEGIN), literal(rest, SECTION_END)) {
            (Seen::Match(len), _) => {
                self.phase = Phase::Name { start: self.at }.into();
                self.at += len;
                None
            }
            (_, Seen::Match(len)) => Some(Event::Closed(self.at + len)),
            (Seen::Partial, _) | (_, Seen::Partial) => Some(Event::Wait),
            _ => Some(Event::Broken(self.at)),
        }
    }

    /// Reads one step in a call: `None` when it moved on (having set the next phase), else what
    /// it came to.
    pub(super) fn native(&mut self, text: &str, phase: Phase) -> Option<Event> {
        match phase {
            Phase::Name { start } => self.native_name(text, start),
            Phase::Arguments { start, name, scan } => self.native_arguments(text, start, name, scan),
        }
    }

    fn native_name(&mut self, text: &str, start: usize) -> Option<Event> {
        let rest = &text[self.at..];
        let window = bounded(rest, MAX_TAG);
        let Some(end) = window.find(ARGUMENT_BEGIN) else {
            if window.len() < rest.len() {
                return Some(Event::Broken(self.at));
            }
            self.phase = Phase::Name { start }.into();
            return Some(Event::Wait);
        };
        let Some(name) = native_name(&rest[..end]) else { return Some(Event::Broken(self.at)) };
        self.at += end + ARGUMENT_BEGIN.len();
        self.phase = Phase::Arguments { start, name, scan: self.at }.into();
        None
    }

    fn native_arguments(&mut self, text: &str, start: usize, name: String, scan: usize) -> Option<Event> {
        let end = match find_from(text, scan, CALL_END) {
            Ok(end) => end,
            Err(scan) => {
                self.phase = Phase::Arguments { start, name, scan }.into();
                return Some(Event::Wait);
            }
        };
        let Some(arguments) = repaired_object(&text[self.at..end]) else {
            return Some(Event::Broken(self.at));
        };
        self.at = end + CALL_END.len();
        Some(Event::Call(Call { name, arguments: Arguments::Json(arguments), span: start..self.at }))
    }
}

/// The tool's name in Kimi's call id `functions.NAME:INDEX`.
fn native_name(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id.strip_prefix("functions.").unwrap_or(id);
    let name = match id.rsplit_once(':') {
        Some((name, index)) if index.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => id,
    };
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use crate::chat::tools::parse::Output;
    use crate::chat::tools::parse::tests::{as_text, call, push, read, text, tool_parser};

    /// Kimi's markers.
    pub(in super::super) fn cases() -> Vec<(String, Vec<Output>)> {
        let native = |calls: &str| format!("<|tool_calls_section_begin|>{calls}<|tool_calls_section_end|>");
        let native_call = |id: &str, arguments: &str| {
            format!("<|tool_call_begin|>{id}<|tool_call_argument_begin|>{arguments}<|tool_call_end|>")
        };
        vec![
            (native(&native_call("functions.read:0", "{\"path\": \"a\"}")), vec![read("a"), Output::Done]),
            (
                format!(
                    "Checking.{}more",
                    native(&format!(
                        "\n{}\n{} \n",
                        native_call("functions.read:0", "{\"path\": \"a.rs\"}"),
                        native_call(" run:1 ", " {\"command\": \"ls\", \"timeout\": \"5\"} ")
                    ))
                ),
                vec![
                    text("Checking."),
                    read("a.rs"),
                    call("run", json!({"command": "ls", "timeout": 5})),
                    Output::Done,
                ],
            ),
            as_text(&native(&native_call("functions.nope:0", "{}"))),
            as_text(&native(&native_call("functions.read:0", "{path: a}"))),
        ]
    }

    /// Kimi's markers with JSON as the model mistypes it (`json_repair.rs`).
    pub(in super::super) fn repaired() -> Vec<(String, Vec<Output>)> {
        let one = |id: &str, arguments: &str| {
            format!(
                "<|tool_calls_section_begin|><|tool_call_begin|>{id}<|tool_call_argument_begin|>{arguments}\
                 <|tool_call_end|><|tool_calls_section_end|>"
            )
        };
        vec![
            (
                one("functions.run:0", "{“command”: “pwd”}") + "\n[TOOL_RESULT] /home",
                vec![call("run", json!({"command": "pwd"})), Output::Done],
            ),
            (
                one("functions.read:0", "{\"path\": \"C:\\Users\\me\\notes.txt\"}"),
                vec![read("C:\\Users\\me\\notes.txt"), Output::Done],
            ),
            (
                one("functions.write:0", "{‘path’: ‘a’, ‘content’: ‘it’s “done”\n’}"),
                vec![call("write", json!({"path": "a", "content": "it’s “done”\n"})), Output::Done],
            ),
            as_text(&one("functions.read:0", "{“path: “a”}")),
            as_text(&one("functions.read:0", "{path: ‘a’}")),
        ]
    }

    #[test]
    fn kimi_markers_stream_like_the_markup() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "Ok <|tool_calls"), [text("Ok ")]);
        assert_eq!(push(&mut parser, "_section_begin|><|tool_call_begin|>functions.read:0"), []);
        assert_eq!(
            push(&mut parser, "<|tool_call_argument_begin|>{\"path\": \"a\"}<|tool_call_end|>"),
            [read("a")]
        );
        assert_eq!(push(&mut parser, " <|tool_calls_section_end|>"), [Output::Done]);
    }
}
