//! The `<tool>` form: the tool's name in one tag, its arguments as a JSON object in the next.
//!
//! ```text
//! <tool>read</tool><parameter>{"path": "src/main.rs"}</parameter>
//! <tool>run</tool>
//! <parameter>{“command”: “ls”}</parameter>
//! ```
//!
//! The name (letters, digits, `_ . : -`, spaces around them) closes within [`MAX_TAG`] bytes;
//! the arguments run to the first `</parameter>` and are mended as `json_repair.rs` says. Several
//! in a row are parallel calls; the block ends where no other `<tool>` follows. The front door
//! finds the first `<tool>`.

use super::arguments::Arguments;
use super::json_repair::repaired_object;
use super::scan::{Seen, find_from, literal, skip_whitespace};
use super::{Block, Call, Event, MAX_TAG};

pub(super) const TOOL: &str = "<tool>";
const TOOL_END: &str = "</tool>";
const PARAMETER: &str = "<parameter>";
const PARAMETER_END: &str = "</parameter>";

/// Where a call block's reader is in a `<tool>` call (which began at `start`).
pub(super) enum Phase {
    /// In its name, after `<tool>`.
    Name { start: usize },
    /// After `</tool>`: blanks, then `<parameter>`.
    Parameter { start: usize, name: String },
    /// In its JSON arguments, which run from `at` to the first `</parameter>`.
    Arguments { start: usize, name: String, scan: usize },
}

impl From<Phase> for super::Phase {
    fn from(phase: Phase) -> Self {
        super::Phase::Tool(phase)
    }
}

impl Block {
    /// Between calls: the next `<tool>`, or the end of the block (anything else).
    pub(super) fn tool_between(&mut self, rest: &str) -> Option<Event> {
        match literal(rest, TOOL) {
            Seen::Match(len) => {
                self.phase = Phase::Name { start: self.at }.into();
                self.at += len;
                None
            }
            Seen::Partial => Some(Event::Wait),
            Seen::NoMatch => Some(Event::Closed(self.at)),
        }
    }

    /// Reads one step in a call: `None` when it moved on (having set the next phase), else what
    /// it came to.
    pub(super) fn tool(&mut self, text: &str, phase: Phase) -> Option<Event> {
        match phase {
            Phase::Name { start } => self.tool_name(text, start),
            Phase::Parameter { start, name } => self.tool_parameter(text, start, name),
            Phase::Arguments { start, name, scan } => self.tool_arguments(text, start, name, scan),
        }
    }

    fn tool_name(&mut self, text: &str, start: usize) -> Option<Event> {
        let rest = &text[self.at..];
        let blanks = |from: usize| from + rest[from..].bytes().take_while(|&b| b == b' ').count();
        let from = blanks(0);
        let to = from
            + rest[from..].bytes().take_while(|&b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)).count();
        let len = blanks(to);
        if len > MAX_TAG {
            return Some(Event::Broken(start));
        }
        match literal(&rest[len..], TOOL_END) {
            Seen::Match(end) if to > from => {
                let name = rest[from..to].to_string();
                self.at += len + end;
                self.phase = Phase::Parameter { start, name }.into();
                None
            }
            Seen::Partial => {
                self.phase = Phase::Name { start }.into();
                Some(Event::Wait)
            }
            _ => Some(Event::Broken(start)),
        }
    }

    fn tool_parameter(&mut self, text: &str, start: usize, name: String) -> Option<Event> {
        let at = skip_whitespace(text, self.at);
        match literal(&text[at..], PARAMETER) {
            Seen::Match(len) => {
                self.at = at + len;
                self.phase = Phase::Arguments { start, name, scan: self.at }.into();
                None
            }
            Seen::Partial => {
                self.phase = Phase::Parameter { start, name }.into();
                Some(Event::Wait)
            }
            Seen::NoMatch => Some(Event::Broken(start)),
        }
    }

    fn tool_arguments(&mut self, text: &str, start: usize, name: String, scan: usize) -> Option<Event> {
        let end = match find_from(text, scan, PARAMETER_END) {
            Ok(end) => end,
            Err(scan) => {
                self.phase = Phase::Arguments { start, name, scan }.into();
                return Some(Event::Wait);
            }
        };
        let Some(arguments) = repaired_object(&text[self.at..end]) else { return Some(Event::Broken(start)) };
        self.at = end + PARAMETER_END.len();
        Some(Event::Call(Call { name, arguments: Arguments::Json(arguments), span: start..self.at }))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use crate::chat::tools::parse::tests::{as_text, call, push, read, text, tool_parser};
    use crate::chat::tools::parse::{MAX_TAG, Output};

    /// The `<tool>` form.
    pub(in super::super) fn cases() -> Vec<(String, Vec<Output>)> {
        let tool = |name: &str, json: &str| format!("<tool>{name}</tool><parameter>{json}</parameter>");
        vec![
            (tool("read", "{\"path\": \"a\"}"), vec![read("a")]),
            (
                format!(
                    "Reading both.\n{}\n<tool> Read </tool>\n<parameter>\n{{“path”: “C:\\dir”}}\n</parameter>\nfake result",
                    tool("read", "{\"path\": \"a\"}")
                ),
                vec![text("Reading both.\n"), read("a"), read("C:\\dir"), Output::Done],
            ),
            (
                tool("run", "{\"command\": \"echo </tool>\", \"timeout\": \"5\"}"),
                vec![call("run", json!({"command": "echo </tool>", "timeout": 5}))],
            ),
            (
                format!("{}{}", tool("read", "{\"path\": \"a\"}"), tool("rm", "{}")),
                vec![read("a"), text(&tool("rm", "{}"))],
            ),
            as_text(&tool("SSH", "{\"host\": \"h\"}")),
            as_text(&tool("read", "{path: a}")),
            as_text(&tool("read", "[1]")),
            as_text(&tool("", "{}")),
            as_text("<tool>read</tool> is the tool to use"),
            as_text("<tool>read</tool><parameter name=\"path\">a</parameter>"),
            as_text("use the <tool> tag, then <parameter>"),
            as_text("<tool>read</tool><parameter>{\"path\": \"a\"}"),
        ]
    }

    #[test]
    fn a_tool_tag_streams_and_its_name_is_bounded() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "So: <to"), [text("So: ")]);
        assert_eq!(push(&mut parser, "ol>functions.read</tool>\n<param"), []);
        assert_eq!(push(&mut parser, "eter>{\"path\": \"a\"}</parameter"), []);
        assert_eq!(push(&mut parser, ">"), [read("a")]);
        assert_eq!(push(&mut parser, "\n\n<tool_result>x"), [Output::Done]);

        let long = format!("<tool>{}</tool><parameter>{{}}</parameter>", "n".repeat(MAX_TAG + 1));
        assert_eq!(push(&mut tool_parser(), &long), [text(&long)]);
    }
}
