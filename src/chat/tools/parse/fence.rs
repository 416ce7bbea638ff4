//! A Markdown fence, in the prose, and the one that holds nothing but calls. Models sometimes
//! put their calls in a fence, as markup or as JSON (`json_calls.rs`):
//!
//! ````text
//! ```json
//! {"name": "read", "arguments": {"path": "a.rs"}}
//! ```
//! ````
//!
//! Only a fence whose language is none, `json` or `xml` may hold calls, and only if it holds
//! nothing else: its calls go out at its closing fence, within [`MAX_FENCE`](super::MAX_FENCE) bytes of its
//! opening. Any other fence, or one that turns out to show an example, is a code block, and
//! markup inside a code block is only shown, never a call. Fences open and close at the start of
//! a line (the front door knows where lines start).

use super::arguments::Tools;
use super::json_calls::{JsonEnd, json_call_start, json_calls};
use super::scan::{Seen, skip_whitespace};
use super::{Block, Event, Marker, ParsedCall, Verdict, block_opening};

/// A fence's opening line at the start of a line: three backticks or more, then its language.
/// One that cannot be a call's (`rust`) is decided at its first letter; a call's waits for the end
/// of its line.
pub(super) fn fence_opening(text: &str) -> Verdict {
    let ticks = text.bytes().take_while(|&b| b == b'`').count();
    let rest = &text[ticks..];
    if rest.is_empty() {
        return Verdict::Undecided;
    }
    if ticks < 3 {
        return Verdict::Text;
    }
    let (line, complete) = match rest.find('\n') {
        Some(end) => (&rest[..end], true),
        None => (rest, false),
    };
    let language = line.trim_matches([' ', '\t', '\r']);
    let call_language = ["", "json", "xml"].iter().any(|word| word.eq_ignore_ascii_case(language));
    let may_become_one = ["json", "xml"]
        .iter()
        .any(|word| word.get(..language.len()).is_some_and(|w| w.eq_ignore_ascii_case(language)));
    match (complete, call_language, may_become_one) {
        (true, true, _) => Verdict::Marker(Marker::CallFence { ticks, len: ticks + line.len() + 1 }),
        (false, _, true) => Verdict::Undecided,
        _ => Verdict::Marker(Marker::CodeFence { ticks }),
    }
}

/// A code block's closing fence: at least as many backticks as its opening, alone on its line.
pub(super) fn fence_end(text: &str, ticks: usize) -> Verdict {
    let run = text.bytes().take_while(|&b| b == b'`').count();
    let rest = &text[run..];
    if rest.is_empty() {
        return Verdict::Undecided;
    }
    if run < ticks {
        return Verdict::Text;
    }
    match rest.trim_start_matches([' ', '\t']).bytes().next() {
        None => Verdict::Undecided,
        Some(b'\n' | b'\r') => Verdict::Marker(Marker::FenceEnd(run)),
        Some(_) => Verdict::Text,
    }
}

/// A fence that may hold nothing but calls, read from its opening line on.
pub(super) struct Fence {
    pub(super) ticks: usize,
    /// Where its content begins, after the opening line.
    pub(super) content: usize,
    at: usize,
    phase: FencePhase,
}

enum FencePhase {
    /// Before the content: blanks, then `{`, `[` or a call block's opening.
    Start,
    /// In JSON call objects, which began at `at`.
    Json(JsonEnd),
    /// In a call block, with its declared calls so far.
    Block(Block, Vec<ParsedCall>),
    /// After the calls: only blanks and the closing fence may follow.
    End(Vec<ParsedCall>),
}

/// What a fence came to.
pub(super) enum Fenced {
    Wait,
    Calls(Vec<ParsedCall>),
    /// Not a fence of calls only: a code block, an example.
    Text,
}

impl Fence {
    pub(super) fn new(ticks: usize, content: usize) -> Self {
        Self { ticks, content, at: content, phase: FencePhase::Start }
    }

    pub(super) fn read(&mut self, text: &str, tools: &Tools) -> Fenced {
        loop {
            let fenced = match std::mem::replace(&mut self.phase, FencePhase::Start) {
                FencePhase::Start => self.start(text, tools.has_shell()),
                FencePhase::Json(scan) => self.json(text, scan, tools),
                FencePhase::Block(block, calls) => self.block(text, block, calls, tools),
                FencePhase::End(calls) => self.end(text, calls),
            };
            if let Some(fenced) = fenced {
                return fenced;
            }
        }
    }

    /// Each phase reads one step: `None` when it moved on (having set the next phase), else what
    /// it came to.
    fn start(&mut self, text: &str, shell: bool) -> Option<Fenced> {
        self.at = skip_whitespace(text, self.at);
        let rest = &text[self.at..];
        match rest.bytes().next() {
            None => Some(Fenced::Wait),
            Some(b'{' | b'[') => match json_call_start(rest) {
                Seen::Match(()) => {
                    self.phase = FencePhase::Json(JsonEnd::new(self.at));
                    None
                }
                Seen::Partial => Some(Fenced::Wait),
                Seen::NoMatch => Some(Fenced::Text),
            },
            Some(b'<') => match block_opening(rest, shell) {
                Seen::Match((form, len)) => {
                    self.phase = FencePhase::Block(Block::new(form, self.at + len), Vec::new());
                    None
                }
                Seen::Partial => Some(Fenced::Wait),
                Seen::NoMatch => Some(Fenced::Text),
            },
            Some(_) => Some(Fenced::Text),
        }
    }

    fn json(&mut self, text: &str, mut scan: JsonEnd, tools: &Tools) -> Option<Fenced> {
        let Some(end) = scan.end(text) else {
            self.phase = FencePhase::Json(scan);
            return Some(Fenced::Wait);
        };
        let Some(calls) = json_calls(&text[self.at..end], tools) else { return Some(Fenced::Text) };
        self.at = end;
        self.phase = FencePhase::End(calls);
        None
    }

    fn block(
        &mut self,
        text: &str,
        mut block: Block,
        mut calls: Vec<ParsedCall>,
        tools: &Tools,
    ) -> Option<Fenced> {
        match block.read(text) {
            Event::Call(call) => {
                let Some(call) = tools.call(call.name, call.arguments) else { return Some(Fenced::Text) };
                calls.push(call);
                self.phase = FencePhase::Block(block, calls);
                None
            }
            Event::Closed(end) if !calls.is_empty() => {
                self.at = end;
                self.phase = FencePhase::End(calls);
                None
            }
            Event::Wait => {
                self.phase = FencePhase::Block(block, calls);
                Some(Fenced::Wait)
            }
            Event::Closed(_) | Event::Broken(_) => Some(Fenced::Text),
        }
    }

    fn end(&mut self, text: &str, calls: Vec<ParsedCall>) -> Option<Fenced> {
        self.at = skip_whitespace(text, self.at);
        let rest = &text[self.at..];
        let run = rest.bytes().take_while(|&b| b == b'`').count();
        if run >= self.ticks {
            return Some(Fenced::Calls(calls));
        }
        if run < rest.len() {
            return Some(Fenced::Text);
        }
        self.phase = FencePhase::End(calls);
        Some(Fenced::Wait)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use crate::chat::tools::parse::tests::{
        as_text, block, call, compact, invoke_read, push, pushed_in_pieces, read, text, tool_parser,
    };
    use crate::chat::tools::parse::{MAX_FENCE, MAX_MARKER, Output};

    /// Fences that hold calls, and fences that show them.
    pub(in super::super) fn cases() -> Vec<(String, Vec<Output>)> {
        let run = "{\"name\": \"run\", \"arguments\": {\"command\": \"ls\", \"timeout\": 5}}";
        let list = "[{\"name\": \"read\", \"parameters\": {\"path\": \"a\"}},\n \
                    {\"arguments\": \"{\\\"path\\\": \\\"b]\\\"}\", \"name\": \"read\"}]";
        let unicode = "{\"name\": \"read\", \"arguments\": {\"path\": \"日本語/ファイル.txt\"}}";
        let example = block(&[invoke_read("x")]);
        vec![
            (
                format!("Running it:\n```json\n{run}\n```\nThen I read."),
                vec![
                    text("Running it:\n"),
                    call("run", json!({"command": "ls", "timeout": 5})),
                    Output::Done,
                ],
            ),
            (format!("```\n{list}\n```"), vec![read("a"), read("b]"), Output::Done]),
            (format!("```JSON\r\n{unicode}\r\n```\r\n"), vec![read("日本語/ファイル.txt"), Output::Done]),
            (format!("```xml\n{example}\n```"), vec![read("x"), Output::Done]),
            (format!("  ```xml\n{}\n```\n", invoke_read("y")), vec![text("  "), read("y"), Output::Done]),
            (
                format!("```\nan example\n```\n{}", block(&[invoke_read("z")])),
                vec![text("```\nan example\n```\n"), read("z"), Output::Done],
            ),
            as_text(&format!("For example:\n```xml\n{example}\nwould read x.\n```\nShall I?")),
            as_text(&format!("```json\n{run}\n// and more\n```")),
            as_text("```json\n{\"name\": \"run\", \"arguments\": {}, \"id\": 1}\n```"),
            as_text(&format!("```\nExample: {}\n```\n", invoke_read("x"))),
            as_text(&format!("```json\n{{\"a\": [1, 2]}}\n```\nand ```json\n{run}\n```")),
            as_text(&format!("```json\n[1, {run}]\n```\n")),
            as_text(&format!(
                "Here:\n```rust\nfn lt(a: i32, b: i32) -> bool {{ a < b }}\nlet s = \"<tool_calls>\";\n\
                 ```json\n{run}\n```\nDone."
            )),
            as_text(&format!("````md\n```\n{}\n```\n````", block(&[compact("a")]))),
            as_text(&format!("```rust\nx\n```not a closing fence\n{}", block(&[compact("a")]))),
            as_text("```json\n{\"name\": \"rm\", \"arguments\": {}}\n```"),
            as_text("```json\n{\"name\": \"run\", \"arguments\": {}}"),
        ]
    }

    #[test]
    fn a_fence_is_held_only_while_it_may_be_a_call() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "```rust\n"), [text("```rust\n")], "a code block is text at once");
        assert_eq!(
            push(&mut parser, "if a < b { x = \"<tool_calls>\"; }\n"),
            [text("if a < b { x = \"<tool_calls>\"; }\n")]
        );
        assert_eq!(push(&mut parser, "``"), []);
        assert_eq!(push(&mut parser, "`\n"), [text("```\n")]);
        assert_eq!(push(&mut parser, "```js"), [], "may still be ```json");
        assert_eq!(push(&mut parser, "on\n{\"name\": \"run\""), []);
        assert_eq!(
            push(&mut parser, ", \"x\": 1}"),
            [text("```json\n{\"name\": \"run\", \"x\": 1}")],
            "no call object"
        );
        assert_eq!(push(&mut parser, "\n```\n"), [text("\n```\n")]);
        assert_eq!(push(&mut parser, "```\n"), []);
        assert_eq!(push(&mut parser, "Output:"), [text("```\nOutput:")], "prose in a fence is no call");
        assert_eq!(
            push(&mut parser, " <tool_calls>"),
            [text(" <tool_calls>")],
            "markup in a code block is text"
        );
        assert_eq!(push(&mut parser, "\n```\n<tool_calls>"), [text("\n```\n")]);

        let json = "```json\n{\"compilerOptions\"";
        assert_eq!(push(&mut tool_parser(), json), [text(json)], "no call object has that key");
        let blanks = format!("```json\n[{}", " ".repeat(MAX_MARKER));
        assert_eq!(push(&mut tool_parser(), &blanks), [text(&blanks)], "held for a bounded length");
    }

    #[test]
    fn a_fence_of_calls_waits_for_its_closing_fence() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "Run:\n```xml\n"), [text("Run:\n")]);
        assert_eq!(push(&mut parser, &invoke_read("a")), [], "an example may go on after the call");
        assert_eq!(push(&mut parser, "\n``"), []);
        assert_eq!(push(&mut parser, "`"), [read("a"), Output::Done]);
        assert_eq!(push(&mut parser, "\nmore"), []);
    }

    #[test]
    fn a_fence_is_a_call_only_within_its_bound() {
        let fence = |len: usize| {
            let head = "```json\n{\"name\": \"write\", \"arguments\": {\"path\": \"p\", \"content\": \"";
            let tail = "\"}}\n```";
            let pad = len - head.len() - tail.len();
            format!("{head}{}{}{tail}", "x".repeat(pad % 2), "é".repeat(pad / 2))
        };
        let fits = fence(MAX_FENCE);
        assert_eq!(fits.len(), MAX_FENCE);
        let written = |input: &str| {
            let content = &input[input.find("content").unwrap() + 11..input.len() - 7];
            vec![call("write", json!({"path": "p", "content": content})), Output::Done]
        };
        for size in [1000, 4096, MAX_FENCE] {
            assert_eq!(pushed_in_pieces(&fits, size, MAX_FENCE), written(&fits));
        }
        let long = fence(MAX_FENCE + 2);
        for size in [1000, 4096, MAX_FENCE + 2] {
            assert_eq!(pushed_in_pieces(&long, size, MAX_FENCE), [text(&long)], "pieces of {size}");
        }
        let endless = format!(
            "```json\n{{\"name\": \"run\", \"arguments\": {{\"command\": \"{}",
            "x".repeat(3 * MAX_FENCE)
        );
        assert_eq!(pushed_in_pieces(&endless, 999, MAX_FENCE), [text(&endless)]);
    }
}
