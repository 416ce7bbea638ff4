//! Tool calls in the answer text. Kimi's web chat takes no tool definitions, so the prompt
//! describes the tools and asks the model to write each call in one fixed markup:
//!
//! ```text
//! <tool_calls>
//! <invoke name="TOOL_NAME">
//! <parameter name="PARAM">value</parameter>
//! </invoke>
//! </tool_calls>
//! ```
//!
//! Models drift from the markup, so [`ToolParser`] takes every form a call comes in, each read by
//! its own file:
//!
//! - `tool_calls.rs`: the markup above, its `<tool_call>` wrapper and bare `<invoke>`s;
//! - `function_calls.rs`: the same in a `<function_calls>` wrapper, values XML-escaped;
//! - `shell.rs`: `<bash>ls</bash>`, `<powershell>`, `<sh>`, calls of the one shell-like tool;
//! - `tool_tag.rs`: `<tool>read</tool><parameter>{"path": "a"}</parameter>`;
//! - `k2_markers.rs`: Kimi's own markers, `<|tool_calls_section_begin|><|tool_call_begin|>`
//!   `functions.read:0<|tool_call_argument_begin|>{"path": "a"}<|tool_call_end|>...`;
//! - `json_repair.rs`: the JSON of those two, mended (smart quotes, bare backslashes);
//! - `notes.rs`: `<antThinking>` notes, dropped;
//! - `fence.rs`: a Markdown fence that holds nothing but calls (```` ```json ````, ```` ```xml ````),
//!   and the code blocks in which markup is only shown;
//! - `json_calls.rs`: the JSON in such a fence, `{"name": "read", "arguments": {"path": "a"}}`
//!   or a list of those;
//! - `arguments.rs`: a call's arguments read by its tool's schema (`"5"` for an integer is 5);
//! - `names.rs`: a called name matched to a declared tool (`bridge_read_file`, `FileRead`);
//! - `scan.rs`: the small matchers they share.
//!
//! This file is the front door. It reads the answer as it streams: text flows on at once and only
//! what may begin a call is held back ([`verdict`] tells which form opens there); a call block is
//! read by its form's grammar ([`Block`]), and a call comes out as soon as it closes; the end of
//! the block ends the answer, since what a model writes after its calls is an invented result.
//! What is not a complete call of a declared tool stays text, unchanged.
//! Pure: text pieces in, [`Output`]s out.

mod arguments;
mod fence;
mod function_calls;
mod json_calls;
mod json_repair;
mod k2_markers;
mod names;
mod notes;
mod scan;
mod shell;
#[cfg(test)]
mod tests;
mod tool_calls;
mod tool_tag;

use std::ops::Range;

use serde_json::{Map, Value};

use arguments::{Arguments, Tools};
use fence::{Fence, Fenced, fence_end, fence_opening};
use function_calls::FUNCTION_CALLS;
use k2_markers::SECTION_BEGIN;
use notes::{NOTES, Notes, read_notes};
use scan::{Seen, bounded, literal, skip_whitespace};
use shell::SHELLS;
use tool_calls::{INVOKE, WRAPPERS, element};
use tool_tag::TOOL;

/// One call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    pub name: String,
    pub arguments: Map<String, Value>,
}

/// What the answer turned out to be, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Answer text, unchanged.
    Text(String),
    /// A complete call of a declared tool.
    Call(ParsedCall),
    /// The call block closed: nothing after it matters (the caller stops reading Kimi).
    Done,
}

/// Finds the tool calls in an answer as it streams ([module docs](self)).
///
/// Text goes out at once; only a tail that may still begin a marker is held, at most
/// [`MAX_MARKER`] bytes. A call block is held whole until each call closes (calls may carry long
/// file contents, so without bound); a fence that may hold a call, until its closing fence, at
/// most [`MAX_FENCE`] bytes.
pub struct ToolParser {
    tools: Tools,
    /// Read but not decided: from the start of a possible marker, call block or fence on.
    held: String,
    state: State,
    /// Whether the text given out so far ends at the start of a line, blanks aside: a Markdown
    /// fence opens and closes only there.
    line_start: bool,
    /// The form of each call given out, in order (for `/metrics`).
    forms: Vec<&'static str>,
}

/// A marker's start that has not become one within this many bytes is text. Kimi's markers are
/// 28 bytes at most; a fence's opening line may carry a few blanks more.
const MAX_MARKER: usize = 64;
/// The most an `<invoke>` or `<parameter>` tag (or a Kimi call's name) may take: names are short.
const MAX_TAG: usize = 256;
/// A fence is a call only if it closes within this many bytes. Unlike a call block, whose
/// opening says what it is, a fence may be anything, and holding it back keeps the client waiting.
const MAX_FENCE: usize = 64 * 1024;

/// Where the parser is in the answer.
enum State {
    /// Answer text. `code`: the backtick count of the Markdown code block the text is in, where
    /// markup is only shown, never a call.
    Text { code: Option<usize> },
    /// In a call block, held from its start (from after its last call given out, once one was).
    Block(Open),
    /// In a fence that may hold nothing but calls, held whole from its opening line.
    Fence(Fence),
    /// In the model's notes (`notes.rs`), held from their opening; their end is searched for
    /// from `scan` on.
    Notes { scan: usize },
    /// The call block closed; the rest of the answer is ignored.
    Done,
}

/// What reading in one state leaves: the state to go on in, and whether the held text must be
/// read again in it.
enum Next {
    Wait(State),
    Again(State),
}

impl ToolParser {
    /// `tools`: (name, JSON Schema of the arguments object) of every declared tool.
    pub fn new<'a>(tools: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Self {
        Self {
            tools: Tools::new(tools),
            held: String::new(),
            state: State::Text { code: None },
            line_start: true,
            forms: Vec::new(),
        }
    }

    /// The forms of the calls given out so far ([`Form::name`], or `fence`).
    pub fn forms(&self) -> &[&'static str] {
        &self.forms
    }

    /// Feeds a piece of the answer text; appends what is decided to `out` (text to a text piece
    /// already last there).
    pub fn push(&mut self, text: &str, out: &mut Vec<Output>) {
        match self.state {
            State::Done => return,
            State::Text { .. } if self.held.is_empty() && !text.bytes().any(|b| b == b'<' || b == b'`') => {
                return give(out, &mut self.line_start, text);
            }
            _ => {}
        }
        self.held.push_str(text);
        self.run(false, out);
    }

    /// The answer ended: whatever is still held comes out (as text if it is no complete call).
    /// Calls already given out stand; `Done` comes only from a block's end in the text.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        self.run(true, out);
    }

    fn run(&mut self, at_end: bool, out: &mut Vec<Output>) {
        loop {
            let next = match std::mem::replace(&mut self.state, State::Done) {
                State::Text { code } => self.scan_text(code, at_end, out),
                State::Block(open) => self.read_block(open, at_end, out),
                State::Fence(fence) => self.read_fence(fence, at_end, out),
                State::Notes { scan } => self.read_notes(scan, at_end, out),
                State::Done => {
                    self.held.clear();
                    Next::Wait(State::Done)
                }
            };
            match next {
                Next::Wait(state) => return self.state = state,
                Next::Again(state) => self.state = state,
            }
        }
    }

    /// Gives out the held text up to the first marker that opens a block or fence, or up to a
    /// tail that may still begin one.
    fn scan_text(&mut self, mut code: Option<usize>, at_end: bool, out: &mut Vec<Output>) -> Next {
        let mut held = std::mem::take(&mut self.held);
        let (mut from, mut search) = (0, 0);
        while let Some(found) = next_candidate(&held[search..], code) {
            let at = search + found;
            give(out, &mut self.line_start, &held[from..at]);
            from = at;
            let verdict = match held.as_bytes()[at] {
                b'`' if !self.line_start => Verdict::Text,
                _ => verdict(&held[at..], code, at_end, self.tools.has_shell()),
            };
            let opened = match verdict {
                Verdict::Text => {
                    search = at + 1;
                    continue;
                }
                Verdict::Undecided => Next::Wait(State::Text { code }),
                Verdict::Marker(Marker::Block(form, len)) => Next::Again(State::Block(Open::new(form, len))),
                Verdict::Marker(Marker::CallFence { ticks, len }) => {
                    Next::Again(State::Fence(Fence::new(ticks, len)))
                }
                Verdict::Marker(Marker::Notes) => Next::Again(State::Notes { scan: NOTES.len() }),
                Verdict::Marker(Marker::CodeFence { ticks }) => {
                    (code, from, search) = (Some(ticks), at + ticks, at + ticks);
                    give(out, &mut self.line_start, &held[at..from]);
                    continue;
                }
                Verdict::Marker(Marker::FenceEnd(len)) => {
                    (code, from, search) = (None, at + len, at + len);
                    give(out, &mut self.line_start, &held[at..from]);
                    continue;
                }
            };
            held.drain(..at);
            self.held = held;
            return opened;
        }
        give(out, &mut self.line_start, &held[from..]);
        Next::Wait(State::Text { code })
    }

    /// Reads a call block on: each call goes out as it closes.
    fn read_block(&mut self, mut open: Open, at_end: bool, out: &mut Vec<Output>) -> Next {
        loop {
            match open.block.read(&self.held) {
                Event::Call(call) => self.block_call(&mut open, call, out),
                Event::Wait if !at_end => return Next::Wait(State::Block(open)),
                Event::Wait => return self.release(&open, self.held.len(), out),
                Event::Closed(_) if open.committed => {
                    out.push(Output::Done);
                    self.held.clear();
                    return Next::Wait(State::Done);
                }
                Event::Closed(end) | Event::Broken(end) => return self.release(&open, end, out),
            }
        }
    }

    /// A call of a declared tool goes out; one of an undeclared tool is the text it was, which
    /// waits while the block has given out nothing (a block of no call is text as a whole).
    fn block_call(&mut self, open: &mut Open, call: Call, out: &mut Vec<Output>) {
        let span = call.span;
        match self.tools.call(call.name, call.arguments) {
            Some(parsed) => {
                for undeclared in open.undeclared.drain(..) {
                    give(out, &mut self.line_start, &self.held[undeclared]);
                }
                open.committed = true;
                self.forms.push(open.block.form.name());
                out.push(Output::Call(parsed));
            }
            None if open.committed => give(out, &mut self.line_start, &self.held[span.clone()]),
            None => return open.undeclared.push(span),
        }
        self.held.drain(..span.end);
        open.block.rebase(span.end);
    }

    /// The block is no (more) calls from `end` on: what is held before is text and the rest is
    /// read again as text. Before its first call that is the block's whole text from its opening,
    /// at least its first character, so that the reading moves on.
    fn release(&mut self, open: &Open, end: usize, out: &mut Vec<Output>) -> Next {
        let end = if open.committed { end } else { end.max(1) };
        let text = &self.held[..end];
        give(out, &mut self.line_start, if open.committed { text.trim_start() } else { text });
        self.held.drain(..end);
        Next::Again(State::Text { code: None })
    }

    /// Reads a fence on. Its calls go out only at its closing fence; one that turns out to be no
    /// call is a code block, read again as text in it.
    fn read_fence(&mut self, mut fence: Fence, at_end: bool, out: &mut Vec<Output>) -> Next {
        let view = bounded(&self.held, MAX_FENCE);
        let whole = view.len() == self.held.len();
        match fence.read(view, &self.tools) {
            Fenced::Calls(calls) => {
                self.forms.extend(calls.iter().map(|_| "fence"));
                out.extend(calls.into_iter().map(Output::Call));
                out.push(Output::Done);
                self.held.clear();
                Next::Wait(State::Done)
            }
            Fenced::Wait if !at_end && whole => Next::Wait(State::Fence(fence)),
            Fenced::Wait | Fenced::Text => {
                give(out, &mut self.line_start, &self.held[..fence.content]);
                self.held.drain(..fence.content);
                Next::Again(State::Text { code: Some(fence.ticks) })
            }
        }
    }
}

impl ToolParser {
    /// Reads the model's notes on: dropped once they close, their opening text if they do not.
    fn read_notes(&mut self, scan: usize, at_end: bool, out: &mut Vec<Output>) -> Next {
        match read_notes(&self.held, scan, at_end) {
            Notes::Wait(scan) => return Next::Wait(State::Notes { scan }),
            Notes::Dropped(len) => drop(self.held.drain(..len)),
            Notes::Text(len) => {
                give(out, &mut self.line_start, &self.held[..len]);
                self.held.drain(..len);
            }
        }
        Next::Again(State::Text { code: None })
    }
}

/// Appends decided text to `out`, to the text piece already last there if there is one.
fn give(out: &mut Vec<Output>, line_start: &mut bool, text: &str) {
    if text.is_empty() {
        return;
    }
    *line_start = match text.rfind('\n') {
        Some(newline) => is_blank(&text[newline + 1..]),
        None => *line_start && is_blank(text),
    };
    match out.last_mut() {
        Some(Output::Text(last)) => last.push_str(text),
        _ => out.push(Output::Text(text.to_string())),
    }
}

/// Spaces and tabs only: what may indent a fence.
fn is_blank(text: &str) -> bool {
    text.bytes().all(|b| b == b' ' || b == b'\t')
}

/// Where the next character that may begin a marker is: `<` or a backtick, in a code block only a
/// backtick (its closing fence).
fn next_candidate(text: &str, code: Option<usize>) -> Option<usize> {
    match code {
        Some(_) => text.find('`'),
        None => text.bytes().position(|b| b == b'<' || b == b'`'),
    }
}

/// What the text from a possible marker's first character on is.
enum Verdict {
    Text,
    Undecided,
    Marker(Marker),
}

/// A marker, and how many bytes of the text it takes.
enum Marker {
    /// A call block opens; its opening takes this many bytes (none for a bare `<invoke>`, which
    /// the block reads as its first call).
    Block(Form, usize),
    /// A fence whose opening line (`len` bytes) says it may hold calls: ```` ``` ````,
    /// ```` ```json ```` or ```` ```xml ````.
    CallFence { ticks: usize, len: usize },
    /// A fence of any other language: a code block, whose backticks open it.
    CodeFence { ticks: usize },
    /// The closing fence of a code block, up to the end of its line.
    FenceEnd(usize),
    /// The model's notes open (`notes.rs`).
    Notes,
}

/// Decides the text at a possible marker from its first [`MAX_MARKER`] bytes; at the end of the
/// answer nothing can complete it any more. `shell`: whether the shell shorthands are calls.
fn verdict(candidate: &str, code: Option<usize>, at_end: bool, shell: bool) -> Verdict {
    let window = bounded(candidate, MAX_MARKER);
    let verdict = match code {
        Some(ticks) => fence_end(window, ticks),
        None if window.starts_with('<') => match (block_opening(window, shell), literal(window, NOTES)) {
            (Seen::Match((form, len)), _) => Verdict::Marker(Marker::Block(form, len)),
            (_, Seen::Match(_)) => Verdict::Marker(Marker::Notes),
            (Seen::Partial, _) | (_, Seen::Partial) => Verdict::Undecided,
            (Seen::NoMatch, Seen::NoMatch) => Verdict::Text,
        },
        None => fence_opening(window),
    };
    match verdict {
        Verdict::Undecided if at_end || window.len() < candidate.len() => Verdict::Text,
        verdict => verdict,
    }
}

/// Whether `text` starts with the opening of a call block, and how many bytes that takes (none
/// for a form whose block reads its first call's tag itself). `shell`: whether the shell
/// shorthands are calls (exactly one shell-like tool is declared).
fn block_opening(text: &str, shell: bool) -> Seen<(Form, usize)> {
    let mut partial = false;
    let wrappers = WRAPPERS.map(|open| (open, Form::Wrapped, true));
    let others = [
        (FUNCTION_CALLS, Form::Escaped, true),
        (SECTION_BEGIN, Form::Native, true),
        (TOOL, Form::Tagged, false),
    ];
    let shells = SHELLS.map(|(open, _)| (open, Form::Shell, false));
    let shells = shells.into_iter().filter(|_| shell);
    for (open, form, consumed) in wrappers.into_iter().chain(others).chain(shells) {
        match literal(text, open) {
            Seen::Match(len) => return Seen::Match((form, if consumed { len } else { 0 })),
            Seen::Partial => partial = true,
            Seen::NoMatch => {}
        }
    }
    match element(text, INVOKE) {
        Seen::Match(()) => Seen::Match((Form::Bare, 0)),
        Seen::Partial => Seen::Partial,
        Seen::NoMatch if partial => Seen::Partial,
        Seen::NoMatch => Seen::NoMatch,
    }
}

/// The kinds of call block.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    /// In `<tool_calls>` or `<tool_call>`.
    Wrapped,
    /// In `<function_calls>`: the markup with XML-escaped values.
    Escaped,
    /// `<invoke>`s without a wrapper: the block ends where no other `<invoke` follows.
    Bare,
    /// Kimi's own markers.
    Native,
    /// Shell shorthands, `<bash>...</bash>`: the block ends where no other follows.
    Shell,
    /// `<tool>NAME</tool><parameter>{json}</parameter>`: the block ends where no other follows.
    Tagged,
}

impl Form {
    /// The form's name in `/metrics` and the doctor's `tools` line.
    fn name(self) -> &'static str {
        match self {
            Form::Wrapped => "tool_calls",
            Form::Escaped => "function_calls",
            Form::Bare => "invoke",
            Form::Native => "k2_markers",
            Form::Shell => "shell",
            Form::Tagged => "tool_tag",
        }
    }
}

/// A call block outside a fence: its calls go out as they close.
struct Open {
    block: Block,
    /// Whether a call of the block has gone out: then the block is calls, not text.
    committed: bool,
    /// The calls of undeclared tools read before the first declared one, as text to give out.
    undeclared: Vec<Range<usize>>,
}

impl Open {
    fn new(form: Form, opening: usize) -> Self {
        Self { block: Block::new(form, opening), committed: false, undeclared: Vec::new() }
    }
}

/// The grammar of a call block, read from a text that grows: how far it is read and what is open
/// there. Offsets are into that text.
struct Block {
    form: Form,
    at: usize,
    phase: Phase,
}

/// Where a block's reader is: between calls, or in a call, in the phases of its form's grammar.
enum Phase {
    /// Between calls: blanks, then the next call or the end of the block.
    Between,
    /// In a call of the markup (`tool_calls.rs`).
    Markup(tool_calls::Phase),
    /// In a call of Kimi's markers (`k2_markers.rs`).
    Native(k2_markers::Phase),
    /// In a shell shorthand (`shell.rs`).
    Shell(shell::Phase),
    /// In a `<tool>` call (`tool_tag.rs`).
    Tool(tool_tag::Phase),
}

/// What reading a call block came to.
enum Event {
    /// More text is needed.
    Wait,
    /// A complete call, not yet checked against the declared tools.
    Call(Call),
    /// The block ended; its text (its closer included) ends here.
    Closed(usize),
    /// The text breaks the grammar here.
    Broken(usize),
}

/// A call as written: its tool's name, its arguments and where its text is.
struct Call {
    name: String,
    arguments: Arguments,
    span: Range<usize>,
}

impl Block {
    /// A block whose opening ends at `at`.
    fn new(form: Form, at: usize) -> Self {
        Self { form, at, phase: Phase::Between }
    }

    /// The text before `len` was dropped. Only between calls, where `at` is the only offset held.
    fn rebase(&mut self, len: usize) {
        self.at -= len;
    }

    /// Reads on until something is decided or more text is needed.
    fn read(&mut self, text: &str) -> Event {
        loop {
            let event = match std::mem::replace(&mut self.phase, Phase::Between) {
                Phase::Between => self.between(text),
                Phase::Markup(phase) => self.markup(text, phase),
                Phase::Native(phase) => self.native(text, phase),
                Phase::Shell(phase) => self.shell(text, phase),
                Phase::Tool(phase) => self.tool(text, phase),
            };
            if let Some(event) = event {
                return event;
            }
        }
    }

    /// Each phase reads one step: `None` when it moved on (having set the next phase), else what
    /// it came to.
    fn between(&mut self, text: &str) -> Option<Event> {
        self.at = skip_whitespace(text, self.at);
        let rest = &text[self.at..];
        if rest.is_empty() {
            return Some(Event::Wait);
        }
        match self.form {
            Form::Native => self.native_between(rest),
            Form::Wrapped | Form::Escaped | Form::Bare => self.markup_between(rest),
            Form::Shell => self.shell_between(rest),
            Form::Tagged => self.tool_between(rest),
        }
    }
}
