//! The markup the prompt asks for (`prompt.txt`), and its two drifts: the singular wrapper
//! `<tool_call>` (either closer ends either wrapper) and bare `<invoke>`s with no wrapper at all.
//!
//! ```text
//! <tool_calls>
//! <invoke name="read">
//! <parameter name="path">src/main.rs</parameter>
//! </invoke>
//! <invoke name="run"><parameter name="command">ls -l</parameter></invoke>
//! </tool_calls>
//! ```
//!
//! Several `<invoke>`s in one block are parallel calls, in order. A parameter's value is its raw
//! text up to the first `</parameter>` (`arguments.rs` reads it by its schema). A bare block
//! (`<invoke name="read">...</invoke>` written straight into the prose) ends where no other
//! `<invoke` follows. Tags take one attribute, `name`, in double or single quotes, and close
//! within [`MAX_TAG`] bytes. The block's opening is found by the front door (`block_opening`).
//! The same grammar reads `<function_calls>` (`function_calls.rs`), whose values are escaped.

use super::arguments::Arguments;
use super::function_calls::{FUNCTION_CALLS_END, unescape};
use super::scan::{Seen, bounded, find_from, literal, skip_whitespace};
use super::{Block, Call, Event, Form, MAX_TAG};

pub(super) const INVOKE: &str = "<invoke";
const INVOKE_END: &str = "</invoke>";
const PARAMETER: &str = "<parameter";
const PARAMETER_END: &str = "</parameter>";
/// The wrapper of the markup and its singular drift; either closer ends either.
pub(super) const WRAPPERS: [&str; 2] = ["<tool_calls>", "<tool_call>"];
const WRAPPER_ENDS: [&str; 2] = ["</tool_calls>", "</tool_call>"];

/// Where a call block's reader is in a call of the markup.
pub(super) enum Phase {
    /// In an `<invoke>` after its tag and any complete parameters: the next one or `</invoke>`.
    Invoke(Invoke),
    /// In a parameter's value, which runs from `at` to the first `</parameter>`; the search for it
    /// resumes at `scan`.
    Value { invoke: Invoke, param: String, scan: usize },
}

impl From<Phase> for super::Phase {
    fn from(phase: Phase) -> Self {
        super::Phase::Markup(phase)
    }
}

/// An `<invoke>` being read: where its tag began, its name and its parameters' raw values.
pub(super) struct Invoke {
    start: usize,
    name: String,
    params: Vec<(String, String)>,
}

/// Whether `text` starts with the tag `open` (`<invoke`), which must be followed by a blank.
pub(super) fn element(text: &str, open: &str) -> Seen<()> {
    let Some(after) = text.strip_prefix(open) else {
        return if open.starts_with(text) { Seen::Partial } else { Seen::NoMatch };
    };
    match after.bytes().next() {
        None => Seen::Partial,
        Some(b) if b.is_ascii_whitespace() => Seen::Match(()),
        Some(_) => Seen::NoMatch,
    }
}

/// An `<invoke name="...">` or `<parameter name="...">` tag at the start of a text.
enum Tag {
    /// The tag, with its name, takes this many bytes.
    Named(String, usize),
    Partial,
    /// It opens as the tag but is no well-formed one.
    Malformed,
    /// Something else.
    Other,
}

/// Reads the tag `open` (`<invoke`, `<parameter`) at the start of `text`: its `>` must come within
/// [`MAX_TAG`] bytes.
fn tag(text: &str, open: &str) -> Tag {
    match element(text, open) {
        Seen::Match(()) => {}
        Seen::Partial => return Tag::Partial,
        Seen::NoMatch => return Tag::Other,
    }
    let window = bounded(text, MAX_TAG);
    match window.find('>') {
        Some(end) => match name_attribute(&window[open.len()..end]) {
            Some(name) => Tag::Named(name, end + 1),
            None => Tag::Malformed,
        },
        None if window.len() < text.len() => Tag::Malformed,
        None => Tag::Partial,
    }
}

/// The value of a tag's only attribute, `name`, in double or single quotes.
fn name_attribute(attributes: &str) -> Option<String> {
    let value = attributes.trim().strip_prefix("name")?.trim_start().strip_prefix('=')?.trim_start();
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let (name, after) = value[1..].split_once(quote)?;
    (!name.is_empty() && after.trim().is_empty()).then(|| name.to_string())
}

impl Block {
    /// Between calls: the next `<invoke>`, or the end of the block (its wrapper's closer; for a
    /// bare block, anything else).
    pub(super) fn markup_between(&mut self, rest: &str) -> Option<Event> {
        match tag(rest, INVOKE) {
            Tag::Named(name, len) => {
                self.phase = Phase::Invoke(Invoke { start: self.at, name, params: Vec::new() }).into();
                self.at += len;
                None
            }
            Tag::Partial => Some(Event::Wait),
            Tag::Malformed => Some(Event::Broken(self.at)),
            Tag::Other if self.form == Form::Bare => Some(Event::Closed(self.at)),
            Tag::Other => Some(self.wrapper_end(rest)),
        }
    }

    /// Reads one step in a call: `None` when it moved on (having set the next phase), else what
    /// it came to.
    pub(super) fn markup(&mut self, text: &str, phase: Phase) -> Option<Event> {
        match phase {
            Phase::Invoke(invoke) => self.invoke(text, invoke),
            Phase::Value { invoke, param, scan } => self.value(text, invoke, param, scan),
        }
    }

    fn wrapper_end(&self, rest: &str) -> Event {
        let mut event = Event::Broken(self.at);
        let ends: &[&str] = if self.form == Form::Escaped { &FUNCTION_CALLS_END } else { &WRAPPER_ENDS };
        for end in ends {
            match literal(rest, end) {
                Seen::Match(len) => return Event::Closed(self.at + len),
                Seen::Partial => event = Event::Wait,
                Seen::NoMatch => {}
            }
        }
        event
    }

    fn invoke(&mut self, text: &str, mut invoke: Invoke) -> Option<Event> {
        self.at = skip_whitespace(text, self.at);
        let rest = &text[self.at..];
        let end = match tag(rest, PARAMETER) {
            Tag::Named(param, len) => {
                self.at += len;
                self.phase = Phase::Value { invoke, param, scan: self.at }.into();
                return None;
            }
            Tag::Malformed => return Some(Event::Broken(self.at)),
            Tag::Partial => Seen::Partial,
            Tag::Other => literal(rest, INVOKE_END),
        };
        match end {
            Seen::Match(len) => {
                self.at += len;
                let span = invoke.start..self.at;
                let arguments = Arguments::Tagged(std::mem::take(&mut invoke.params));
                Some(Event::Call(Call { name: invoke.name, arguments, span }))
            }
            Seen::Partial => {
                self.phase = Phase::Invoke(invoke).into();
                Some(Event::Wait)
            }
            Seen::NoMatch => Some(Event::Broken(self.at)),
        }
    }

    fn value(&mut self, text: &str, mut invoke: Invoke, param: String, scan: usize) -> Option<Event> {
        match find_from(text, scan, PARAMETER_END) {
            Ok(end) => {
                let value = &text[self.at..end];
                let value = if self.form == Form::Escaped { unescape(value) } else { value.into() };
                invoke.params.push((param, value.into_owned()));
                self.at = end + PARAMETER_END.len();
                self.phase = Phase::Invoke(invoke).into();
                None
            }
            Err(scan) => {
                self.phase = Phase::Value { invoke, param, scan }.into();
                Some(Event::Wait)
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use crate::chat::tools::parse::Output;
    use crate::chat::tools::parse::tests::{
        as_text, block, call, compact, invoke_read, push, pushed_in_pieces, read, text, tool_parser,
    };

    /// The asked-for markup.
    pub(in super::super) fn markup() -> Vec<(String, Vec<Output>)> {
        let one = block(&[invoke_read("src/main.rs")]);
        vec![
            as_text("Plain prose: 3 > 2, `inline` code, an ``odd`` span, ü ünicode 🎉.\nA new line."),
            (one.clone(), vec![read("src/main.rs"), Output::Done]),
            (block(&[compact("a"), compact("b")]), vec![read("a"), read("b"), Output::Done]),
            (
                format!("Let me look first.\n\n{one}"),
                vec![text("Let me look first.\n\n"), read("src/main.rs"), Output::Done],
            ),
            (
                format!("{one}\n<tool_result>x</tool_result>\nIt is empty. <tool_calls>"),
                vec![read("src/main.rs"), Output::Done],
            ),
            (
                format!(
                    "<tool_calls>\n<invoke name=\"rm\"></invoke>\n{}\n<invoke name=\"x\"></invoke>\n\
                     </tool_calls>",
                    compact("a")
                ),
                vec![
                    text("<invoke name=\"rm\"></invoke>"),
                    read("a"),
                    text("<invoke name=\"x\"></invoke>"),
                    Output::Done,
                ],
            ),
            (
                format!("<tool_calls>\n{}\n<invoke name=\"read\">\n<parameter", invoke_read("a")),
                vec![read("a"), text("<invoke name=\"read\">\n<parameter")],
            ),
        ]
    }

    /// Bare invokes and the singular wrapper.
    pub(in super::super) fn drift() -> Vec<(String, Vec<Output>)> {
        vec![
            (
                format!("Reading it.\n{}\nNow I wait for it.", invoke_read("a.rs")),
                vec![text("Reading it.\n"), read("a.rs"), Output::Done],
            ),
            (
                format!(
                    "{}\n\n<invoke name='read'><parameter name = 'path'>b</parameter></invoke>\n",
                    compact("a")
                ),
                vec![read("a"), read("b")],
            ),
            (
                "<invoke name=\"run\"><parameter name=\"env\">{\"a\": </parameter></invoke>".to_string(),
                vec![call("run", json!({"env": "{\"a\": "}))],
            ),
            (
                format!("<tool_call>\n{}\n</tool_call>\n<tool_call>", invoke_read("c")),
                vec![read("c"), Output::Done],
            ),
            (format!("<tool_call>{}</tool_calls>", compact("c")), vec![read("c"), Output::Done]),
        ]
    }

    #[test]
    fn bare_invokes_stream_like_the_markup() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, &invoke_read("a")), [read("a")]);
        assert_eq!(push(&mut parser, "\n\n"), [], "another <invoke> may follow");
        assert_eq!(push(&mut parser, "<inv"), []);
        assert_eq!(
            push(&mut parser, "oke name=\"read\"><parameter name=\"path\">b</parameter></invoke>"),
            [read("b")]
        );
        assert_eq!(push(&mut parser, "\nThe"), [Output::Done]);
        assert_eq!(push(&mut parser, " file says"), []);
    }

    #[test]
    fn a_call_block_is_held_whole_however_long() {
        let content = "line <with> \"quotes\" and </param> of a long file\n".repeat(6000);
        let input = format!(
            "Writing.\n<tool_calls>\n<invoke name=\"write\">\n<parameter name=\"path\">big.txt</parameter>\n\
             <parameter name=\"content\">{content}</parameter>\n</invoke>\n</tool_calls>"
        );
        let expected =
            [text("Writing.\n"), call("write", json!({"path": "big.txt", "content": content})), Output::Done];
        assert_eq!(pushed_in_pieces(&input, 7, input.len()), expected);
    }
}
