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
//! Several `<invoke>`s in one block are parallel calls, in order. A parameter whose schema type
//! is `string` is raw text up to the first `</parameter>`, so code needs no escaping; any other
//! is JSON (the raw text when it does not parse), coerced by the schema where that is
//! unambiguous (`"5"` for an integer is 5).
//!
//! Models drift from the markup, so [`ToolParser`] also takes a bare `<invoke>`, a `<tool_call>`
//! wrapper, Kimi's own tool-call markers, and a Markdown fence that holds nothing but a call
//! (the markup, or JSON `{"name": ..., "arguments": {...}}`, or a list of those). What is not a
//! complete call of a declared tool stays text, unchanged. It reads the answer as it streams:
//! text flows on at once, a call comes out as soon as it closes, and the end of the block ends
//! the answer, since what a model writes after its calls is an invented result.
//! Pure: text pieces in, [`Output`]s out.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Value};

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
}

/// A marker's start that has not become one within this many bytes is text. Kimi's markers are
/// 28 bytes at most; a fence's opening line may carry a few blanks more.
const MAX_MARKER: usize = 64;
/// The most an `<invoke>` or `<parameter>` tag (or a Kimi call's name) may take: names are short.
const MAX_TAG: usize = 256;
/// A fence is a call only if it closes within this many bytes. Unlike a call block, whose
/// opening says what it is, a fence may be anything, and holding it back keeps the client waiting.
const MAX_FENCE: usize = 64 * 1024;

const INVOKE: &str = "<invoke";
const INVOKE_END: &str = "</invoke>";
const PARAMETER: &str = "<parameter";
const PARAMETER_END: &str = "</parameter>";
/// The wrapper of the markup and its singular drift; either closer ends either.
const WRAPPERS: [&str; 2] = ["<tool_calls>", "<tool_call>"];
const WRAPPER_ENDS: [&str; 2] = ["</tool_calls>", "</tool_call>"];
/// Kimi's own markers, which the model sometimes falls back to.
const SECTION_BEGIN: &str = "<|tool_calls_section_begin|>";
const SECTION_END: &str = "<|tool_calls_section_end|>";
const CALL_BEGIN: &str = "<|tool_call_begin|>";
const ARGUMENT_BEGIN: &str = "<|tool_call_argument_begin|>";
const CALL_END: &str = "<|tool_call_end|>";

/// Where the parser is in the answer.
enum State {
    /// Answer text. `code`: the backtick count of the Markdown code block the text is in, where
    /// markup is only shown, never a call.
    Text { code: Option<usize> },
    /// In a call block, held from its start (from after its last call given out, once one was).
    Block(Open),
    /// In a fence that may hold nothing but calls, held whole from its opening line.
    Fence(Fence),
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
        let tools =
            Tools(tools.into_iter().map(|(name, schema)| (name.to_string(), params(schema))).collect());
        Self { tools, held: String::new(), state: State::Text { code: None }, line_start: true }
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
                _ => verdict(&held[at..], code, at_end),
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
}

/// Decides the text at a possible marker from its first [`MAX_MARKER`] bytes; at the end of the
/// answer nothing can complete it any more.
fn verdict(candidate: &str, code: Option<usize>, at_end: bool) -> Verdict {
    let window = bounded(candidate, MAX_MARKER);
    let verdict = match code {
        Some(ticks) => fence_end(window, ticks),
        None if window.starts_with('<') => match block_opening(window) {
            Seen::Match((form, len)) => Verdict::Marker(Marker::Block(form, len)),
            Seen::Partial => Verdict::Undecided,
            Seen::NoMatch => Verdict::Text,
        },
        None => fence_opening(window),
    };
    match verdict {
        Verdict::Undecided if at_end || window.len() < candidate.len() => Verdict::Text,
        verdict => verdict,
    }
}

/// A fence's opening line at the start of a line: three backticks or more, then its language.
/// One that cannot be a call's (`rust`) is decided at its first letter; a call's waits for the end
/// of its line.
fn fence_opening(text: &str) -> Verdict {
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
fn fence_end(text: &str, ticks: usize) -> Verdict {
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

/// How a text's start compares with what is looked for.
enum Seen<T> {
    Match(T),
    /// The text ends before it can tell: it is the start of what is looked for.
    Partial,
    NoMatch,
}

/// Whether `text` starts with `word` (and its length).
fn literal(text: &str, word: &str) -> Seen<usize> {
    if text.starts_with(word) {
        Seen::Match(word.len())
    } else if word.starts_with(text) {
        Seen::Partial
    } else {
        Seen::NoMatch
    }
}

/// Whether `text` starts with the opening of a call block, and how many bytes that takes.
fn block_opening(text: &str) -> Seen<(Form, usize)> {
    let mut partial = false;
    let openings = WRAPPERS.map(|open| (open, Form::Wrapped));
    for (open, form) in openings.into_iter().chain([(SECTION_BEGIN, Form::Native)]) {
        match literal(text, open) {
            Seen::Match(len) => return Seen::Match((form, len)),
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

/// Whether `text` starts with the tag `open` (`<invoke`), which must be followed by a blank.
fn element(text: &str, open: &str) -> Seen<()> {
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

fn skip_whitespace(text: &str, at: usize) -> usize {
    at + text[at..].bytes().take_while(u8::is_ascii_whitespace).count()
}

/// Where `needle` (ASCII) first occurs in `text` from `from` on, or else where to search again
/// once more text has come: before the tail that may be its start.
fn find_from(text: &str, from: usize, needle: &str) -> Result<usize, usize> {
    match text[from..].find(needle) {
        Some(found) => Ok(from + found),
        None => Err(text.floor_char_boundary(text.len().saturating_sub(needle.len() - 1).max(from))),
    }
}

/// The first `max` bytes of `text`, or fewer so as to end on a character.
fn bounded(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// The kinds of call block.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    /// In `<tool_calls>` or `<tool_call>`.
    Wrapped,
    /// `<invoke>`s without a wrapper: the block ends where no other `<invoke` follows.
    Bare,
    /// Kimi's own markers.
    Native,
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

enum Phase {
    /// Between calls: blanks, then the next call or the end of the block.
    Between,
    /// In an `<invoke>` after its tag and any complete parameters: the next one or `</invoke>`.
    Invoke(Invoke),
    /// In a parameter's value, which runs from `at` to the first `</parameter>`; the search for it
    /// resumes at `scan`.
    Value { invoke: Invoke, param: String, scan: usize },
    /// In a Kimi call's name (its call began at `start`).
    NativeName { start: usize },
    /// In a Kimi call's JSON arguments, which run from `at` to the first `<|tool_call_end|>`.
    NativeArguments { start: usize, name: String, scan: usize },
}

/// An `<invoke>` being read: where its tag began, its name and its parameters' raw values.
struct Invoke {
    start: usize,
    name: String,
    params: Vec<(String, String)>,
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

enum Arguments {
    /// Parameters of the markup, by name, with their raw text.
    Tagged(Vec<(String, String)>),
    /// Arguments already in JSON (Kimi's markers, a fence's JSON).
    Json(Map<String, Value>),
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
                Phase::Invoke(invoke) => self.invoke(text, invoke),
                Phase::Value { invoke, param, scan } => self.value(text, invoke, param, scan),
                Phase::NativeName { start } => self.native_name(text, start),
                Phase::NativeArguments { start, name, scan } => {
                    self.native_arguments(text, start, name, scan)
                }
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
        if self.form == Form::Native {
            return self.native_between(rest);
        }
        match tag(rest, INVOKE) {
            Tag::Named(name, len) => {
                self.phase = Phase::Invoke(Invoke { start: self.at, name, params: Vec::new() });
                self.at += len;
                None
            }
            Tag::Partial => Some(Event::Wait),
            Tag::Malformed => Some(Event::Broken(self.at)),
            Tag::Other if self.form == Form::Bare => Some(Event::Closed(self.at)),
            Tag::Other => Some(self.wrapper_end(rest)),
        }
    }

    fn wrapper_end(&self, rest: &str) -> Event {
        let mut event = Event::Broken(self.at);
        for end in WRAPPER_ENDS {
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
                self.phase = Phase::Value { invoke, param, scan: self.at };
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
                self.phase = Phase::Invoke(invoke);
                Some(Event::Wait)
            }
            Seen::NoMatch => Some(Event::Broken(self.at)),
        }
    }

    fn value(&mut self, text: &str, mut invoke: Invoke, param: String, scan: usize) -> Option<Event> {
        match find_from(text, scan, PARAMETER_END) {
            Ok(end) => {
                invoke.params.push((param, text[self.at..end].to_string()));
                self.at = end + PARAMETER_END.len();
                self.phase = Phase::Invoke(invoke);
                None
            }
            Err(scan) => {
                self.phase = Phase::Value { invoke, param, scan };
                Some(Event::Wait)
            }
        }
    }

    fn native_between(&mut self, rest: &str) -> Option<Event> {
        match (literal(rest, CALL_BEGIN), literal(rest, SECTION_END)) {
            (Seen::Match(len), _) => {
                self.phase = Phase::NativeName { start: self.at };
                self.at += len;
                None
            }
            (_, Seen::Match(len)) => Some(Event::Closed(self.at + len)),
            (Seen::Partial, _) | (_, Seen::Partial) => Some(Event::Wait),
            _ => Some(Event::Broken(self.at)),
        }
    }

    fn native_name(&mut self, text: &str, start: usize) -> Option<Event> {
        let rest = &text[self.at..];
        let window = bounded(rest, MAX_TAG);
        let Some(end) = window.find(ARGUMENT_BEGIN) else {
            if window.len() < rest.len() {
                return Some(Event::Broken(self.at));
            }
            self.phase = Phase::NativeName { start };
            return Some(Event::Wait);
        };
        let Some(name) = native_name(&rest[..end]) else { return Some(Event::Broken(self.at)) };
        self.at += end + ARGUMENT_BEGIN.len();
        self.phase = Phase::NativeArguments { start, name, scan: self.at };
        None
    }

    fn native_arguments(&mut self, text: &str, start: usize, name: String, scan: usize) -> Option<Event> {
        let end = match find_from(text, scan, CALL_END) {
            Ok(end) => end,
            Err(scan) => {
                self.phase = Phase::NativeArguments { start, name, scan };
                return Some(Event::Wait);
            }
        };
        let Some(arguments) = json_object(&text[self.at..end]) else { return Some(Event::Broken(self.at)) };
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

fn json_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// A fence that may hold nothing but calls, read from its opening line on.
struct Fence {
    ticks: usize,
    /// Where its content begins, after the opening line.
    content: usize,
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
enum Fenced {
    Wait,
    Calls(Vec<ParsedCall>),
    /// Not a fence of calls only: a code block, an example.
    Text,
}

impl Fence {
    fn new(ticks: usize, content: usize) -> Self {
        Self { ticks, content, at: content, phase: FencePhase::Start }
    }

    fn read(&mut self, text: &str, tools: &Tools) -> Fenced {
        loop {
            let fenced = match std::mem::replace(&mut self.phase, FencePhase::Start) {
                FencePhase::Start => self.start(text),
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
    fn start(&mut self, text: &str) -> Option<Fenced> {
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
            Some(b'<') => match block_opening(rest) {
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

/// Finds where a JSON value ends as its text grows, without parsing it again and again: brackets
/// outside strings. Whether it is valid JSON is for the one parse at its end.
struct JsonEnd {
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonEnd {
    fn new(start: usize) -> Self {
        Self { scanned: start, depth: 0, in_string: false, escaped: false }
    }

    /// Where the value that began at the start given ends, once it has.
    fn end(&mut self, text: &str) -> Option<usize> {
        for (at, &b) in text.as_bytes().iter().enumerate().skip(self.scanned) {
            if self.in_string {
                match b {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(at + 1);
                    }
                }
                _ => {}
            }
        }
        self.scanned = text.len();
        None
    }
}

/// The keys of a call object: its name and its arguments, under either name.
const CALL_KEYS: [&str; 3] = ["name", "arguments", "parameters"];

/// Whether JSON text may begin call objects: `{` or `[{`, then a key a call object has. Most JSON
/// shown in an answer (a configuration, a response) is decided at its first key.
fn json_call_start(text: &str) -> Seen<()> {
    let window = bounded(text, MAX_MARKER);
    let seen = first_key(window.strip_prefix('[').map_or(window, str::trim_start));
    match seen {
        Seen::Partial if window.len() < text.len() => Seen::NoMatch,
        seen => seen,
    }
}

fn first_key(text: &str) -> Seen<()> {
    let Some(object) = text.strip_prefix('{') else {
        return if text.is_empty() { Seen::Partial } else { Seen::NoMatch };
    };
    let object = object.trim_start();
    let Some(key) = object.strip_prefix('"') else {
        return if object.is_empty() { Seen::Partial } else { Seen::NoMatch };
    };
    match key.find('"') {
        Some(end) if CALL_KEYS.contains(&&key[..end]) => Seen::Match(()),
        None if CALL_KEYS.iter().any(|call_key| call_key.starts_with(key)) => Seen::Partial,
        _ => Seen::NoMatch,
    }
}

/// A fence's JSON as calls: one call object or a list of them, every one of a declared tool.
fn json_calls(text: &str, tools: &Tools) -> Option<Vec<ParsedCall>> {
    let objects = match serde_json::from_str(text).ok()? {
        Value::Array(objects) => objects,
        object => vec![object],
    };
    if objects.is_empty() {
        return None;
    }
    objects.into_iter().map(|object| json_call(object, tools)).collect()
}

/// `{"name": ..., "arguments": {...}}` and nothing else; also `"parameters"`, and arguments as a
/// JSON string, as the OpenAI API carries them.
fn json_call(object: Value, tools: &Tools) -> Option<ParsedCall> {
    let Value::Object(mut object) = object else { return None };
    let Some(Value::String(name)) = object.remove("name") else { return None };
    let arguments = match object.remove("arguments").or_else(|| object.remove("parameters"))? {
        Value::Object(arguments) => arguments,
        Value::String(arguments) => json_object(&arguments)?,
        _ => return None,
    };
    if !object.is_empty() {
        return None;
    }
    tools.call(name, Arguments::Json(arguments))
}

/// The declared tools: the kind of each parameter, by tool and parameter name.
struct Tools(HashMap<String, HashMap<String, Kind>>);

impl Tools {
    /// The call as it goes out, if its tool is declared, each argument read by its parameter's
    /// kind (a parameter the schema does not name has none: JSON if it parses).
    fn call(&self, name: String, arguments: Arguments) -> Option<ParsedCall> {
        let params = self.0.get(&name)?;
        let kind = |param: &str| params.get(param).copied().unwrap_or(Kind::Json);
        let arguments = match arguments {
            Arguments::Tagged(params) => params
                .into_iter()
                .map(|(param, raw)| {
                    let value = kind(&param).read(raw);
                    (param, value)
                })
                .collect(),
            Arguments::Json(arguments) => arguments
                .into_iter()
                .map(|(param, value)| {
                    let value = kind(&param).coerce(value);
                    (param, value)
                })
                .collect(),
        };
        Some(ParsedCall { name, arguments })
    }
}

/// How a parameter's text becomes its value, by the type its schema gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `string`, alone or among others: the raw text.
    Text,
    Integer,
    Number,
    Boolean,
    /// Any other type, or none known: JSON.
    Json,
}

/// The kinds of the parameters an arguments schema names.
fn params(schema: &Value) -> HashMap<String, Kind> {
    let properties = schema.get("properties").and_then(Value::as_object);
    properties.into_iter().flatten().map(|(param, schema)| (param.clone(), kind(schema))).collect()
}

fn kind(schema: &Value) -> Kind {
    let types = match schema.get("type") {
        Some(Value::Array(many)) => many.as_slice(),
        Some(one) => std::slice::from_ref(one),
        None => &[],
    };
    let types = types.iter().filter_map(Value::as_str);
    if types.clone().any(|name| name == "string") {
        return Kind::Text;
    }
    let mut typed = types.filter(|name| *name != "null");
    match (typed.next(), typed.next()) {
        (Some("integer"), None) => Kind::Integer,
        (Some("number"), None) => Kind::Number,
        (Some("boolean"), None) => Kind::Boolean,
        _ => Kind::Json,
    }
}

impl Kind {
    /// A parameter's raw text as its value.
    fn read(self, raw: String) -> Value {
        if self == Kind::Text {
            return Value::String(raw);
        }
        match serde_json::from_str(raw.trim()) {
            Ok(value) => self.coerce(value),
            Err(_) => Value::String(raw),
        }
    }

    /// A JSON value as the type wants it, where that is unambiguous: a number or boolean written
    /// as a string.
    fn coerce(self, value: Value) -> Value {
        let Value::String(text) = value else { return value };
        let parsed = match self {
            Kind::Integer => {
                serde_json::from_str(text.trim()).ok().filter(|n: &Value| n.is_i64() || n.is_u64())
            }
            Kind::Number => serde_json::from_str(text.trim()).ok().filter(Value::is_number),
            Kind::Boolean => match text.trim() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            Kind::Text | Kind::Json => None,
        };
        parsed.unwrap_or(Value::String(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared() -> Vec<(&'static str, Value)> {
        let string = json!({"type": "string"});
        vec![
            ("read", json!({"type": "object", "properties": {"path": string}})),
            ("write", json!({"type": "object", "properties": {"path": string, "content": string}})),
            (
                "run",
                json!({"type": "object", "properties": {
                    "command": string,
                    "timeout": {"type": "integer"},
                    "ratio": {"type": "number"},
                    "background": {"type": "boolean"},
                    "args": {"type": "array", "items": string},
                    "env": {"type": "object"},
                    "note": {"type": ["string", "null"]},
                    "retries": {"type": ["integer", "null"]},
                }}),
            ),
        ]
    }

    /// Built once: the split tests make hundreds of thousands of parsers.
    static DECLARED: std::sync::LazyLock<Vec<(&str, Value)>> = std::sync::LazyLock::new(declared);

    fn tool_parser() -> ToolParser {
        ToolParser::new(DECLARED.iter().map(|(name, schema)| (*name, schema)))
    }

    fn text(text: &str) -> Output {
        Output::Text(text.to_string())
    }

    fn call(name: &str, arguments: Value) -> Output {
        let Value::Object(arguments) = arguments else { panic!("arguments are an object") };
        Output::Call(ParsedCall { name: name.to_string(), arguments })
    }

    fn read(path: &str) -> Output {
        call("read", json!({"path": path}))
    }

    fn invoke_read(path: &str) -> String {
        format!("<invoke name=\"read\">\n<parameter name=\"path\">{path}</parameter>\n</invoke>")
    }

    fn block(invokes: &[String]) -> String {
        format!("<tool_calls>\n{}\n</tool_calls>", invokes.join("\n"))
    }

    const CODE: &str = "<div class=\"x\">\n  if (a < b && b > c) { say(\"hi\", 'there'); }\n</div>\n\
                        </invoke> </tool_calls>\n";

    fn compact(path: &str) -> String {
        format!("<invoke name=\"read\"><parameter name=\"path\">{path}</parameter></invoke>")
    }

    fn as_text(input: &str) -> (String, Vec<Output>) {
        (input.to_string(), vec![text(input)])
    }

    /// Every input, and what it must come to however it is cut.
    fn cases() -> Vec<(String, Vec<Output>)> {
        [markup(), parameters(), drift(), fences(), not_calls()].concat()
    }

    /// The asked-for markup.
    fn markup() -> Vec<(String, Vec<Output>)> {
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

    /// Raw text, JSON and coercion by the schema.
    fn parameters() -> Vec<(String, Vec<Output>)> {
        let run = |params: &str| format!("<tool_calls><invoke name=\"run\">{params}</invoke></tool_calls>");
        let param = |name: &str, value: &str| format!("<parameter name=\"{name}\">{value}</parameter>");
        vec![
            (
                format!(
                    "<tool_calls>\n<invoke name=\"write\">\n{}\n{}\n</invoke>\n</tool_calls>",
                    param("path", "index.html"),
                    param("content", CODE)
                ),
                vec![call("write", json!({"path": "index.html", "content": CODE})), Output::Done],
            ),
            (
                run(&[
                    param("command", "ls -l"),
                    param("timeout", "30"),
                    param("ratio", "\"2.5\""),
                    param("background", "\"true\""),
                    param("args", "[\"-l\", \"-a\"]"),
                    param("env", "{\"LANG\": \"C\"}"),
                    param("note", "null"),
                    param("retries", "\"3\""),
                    param("extra", "{\"k\": [1]}"),
                    param("label", "hello there"),
                ]
                .concat()),
                vec![
                    call(
                        "run",
                        json!({"command": "ls -l", "timeout": 30, "ratio": 2.5, "background": true,
                            "args": ["-l", "-a"], "env": {"LANG": "C"}, "note": "null", "retries": 3,
                            "extra": {"k": [1]}, "label": "hello there"}),
                    ),
                    Output::Done,
                ],
            ),
            (
                run(&[param("timeout", "\"9\""), param("background", "false"), param("ratio", " 2 ")]
                    .concat()),
                vec![call("run", json!({"timeout": 9, "background": false, "ratio": 2})), Output::Done],
            ),
            (
                run(&[param("args", "[1, 2"), param("timeout", "soon"), param("env", "{\"a\": }")].concat()),
                vec![
                    call("run", json!({"args": "[1, 2", "timeout": "soon", "env": "{\"a\": }"})),
                    Output::Done,
                ],
            ),
            (
                run(&[param("retries", "2.5"), param("command", " 42 ")].concat()),
                vec![call("run", json!({"retries": 2.5, "command": " 42 "})), Output::Done],
            ),
        ]
    }

    /// Bare invokes, the singular wrapper, Kimi's markers.
    fn drift() -> Vec<(String, Vec<Output>)> {
        let native = |calls: &str| format!("<|tool_calls_section_begin|>{calls}<|tool_calls_section_end|>");
        let native_call = |id: &str, arguments: &str| {
            format!("<|tool_call_begin|>{id}<|tool_call_argument_begin|>{arguments}<|tool_call_end|>")
        };
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

    /// Fences that hold calls, and fences that show them.
    fn fences() -> Vec<(String, Vec<Output>)> {
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

    /// What looks like markup but is no call: text, unchanged.
    fn not_calls() -> Vec<(String, Vec<Output>)> {
        vec![
            as_text(
                "<tool_calls>\n<invoke name=\"rm\">\n<parameter name=\"path\">/</parameter>\n</invoke>\n\
                 </tool_calls>",
            ),
            as_text("<tool_calls>\n</tool_calls> and\n```xml\n<tool_calls></tool_calls>\n```"),
            as_text(
                "<tool_calls>\n<invoke name=\"read\">\n<param name=\"path\">a</param>\n</invoke>\n\
                 </tool_calls> end",
            ),
            as_text("<invoke name=read><parameter name=\"path\">a</parameter></invoke>"),
            as_text("<invoke name=\"read\" id=\"1\"><parameter name=\"path\">a</parameter></invoke>"),
            as_text("Sure.\n<tool_calls>\n<invoke name=\"read\">\n<parameter name=\"path\">a"),
            as_text("a <"),
            as_text("tail `"),
            as_text("```"),
            as_text("see <tool_ca"),
            as_text("<|tool_calls_sec"),
            as_text(
                "a < b and <b>bold</b>, <i>it</i>, <invoked>, <tool>x</tool>, <|im_end|>, \
                 </tool_calls>, <tool_calls>é",
            ),
            as_text(&"<".repeat(40)),
        ]
    }

    /// What `input` comes to when pushed in pieces cut at these byte offsets, adjacent text merged.
    fn outputs(input: &str, cuts: &[usize]) -> Vec<Output> {
        let mut parser = tool_parser();
        let mut all = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([input.len()].iter()) {
            let mut out = Vec::new();
            parser.push(&input[from..cut], &mut out);
            all.append(&mut out);
            from = cut;
        }
        parser.finish(&mut all);
        merged(all)
    }

    fn merged(outputs: Vec<Output>) -> Vec<Output> {
        let mut merged: Vec<Output> = Vec::new();
        for output in outputs {
            match (merged.last_mut(), output) {
                (_, Output::Text(text)) if text.is_empty() => {}
                (Some(Output::Text(last)), Output::Text(text)) => last.push_str(&text),
                (_, output) => merged.push(output),
            }
        }
        merged
    }

    fn boundaries(input: &str) -> Vec<usize> {
        input.char_indices().map(|(at, _)| at).chain([input.len()]).collect()
    }

    /// Inputs this short are also cut in three pieces at every pair of boundaries.
    const THREE_PIECES: usize = 120;

    #[test]
    fn every_input_in_one_piece() {
        for (input, expected) in cases() {
            assert_eq!(outputs(&input, &[]), expected, "{input:?}");
        }
    }

    #[test]
    fn every_split_in_two_pieces() {
        for (input, expected) in cases() {
            for cut in boundaries(&input) {
                assert_eq!(outputs(&input, &[cut]), expected, "{input:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn every_split_in_three_pieces_of_the_shorter_inputs() {
        for (input, expected) in cases().into_iter().filter(|(input, _)| input.len() <= THREE_PIECES) {
            let points = boundaries(&input);
            for (n, &a) in points.iter().enumerate() {
                for &b in &points[n..] {
                    assert_eq!(outputs(&input, &[a, b]), expected, "{input:?} cut at {a} and {b}");
                }
            }
        }
    }

    /// A fixed-seed xorshift: a number below `bound`.
    fn random(seed: u64) -> impl FnMut(usize) -> usize {
        let mut state = seed;
        move |bound| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        }
    }

    #[test]
    fn random_splits() {
        let cases = cases();
        let mut next = random(0x2545_F491_4F6C_DD1D);
        for _ in 0..4000 {
            let (input, expected) = &cases[next(cases.len())];
            let points = boundaries(input);
            let mut cuts: Vec<usize> = (0..next(16)).map(|_| points[next(points.len())]).collect();
            cuts.sort_unstable();
            assert_eq!(&outputs(input, &cuts), expected, "{input:?} cut at {cuts:?}");
        }
    }

    /// Pieces of markup, put together at random: whatever they make, every cut gives what the
    /// whole gives, and an answer of no call comes out as it went in.
    #[test]
    fn random_markup_gives_the_same_however_cut() {
        let pieces = [
            "<tool_calls>",
            "</tool_calls>",
            "<tool_call>",
            "</tool_call>",
            "<invoke name=\"read\">",
            "<invoke name=\"rm\">",
            "<invoke ",
            "</invoke>",
            "<parameter name=\"path\">",
            "</parameter>",
            "<parameter name=\"timeout\">",
            "```",
            "```json\n",
            "```xml\n",
            "```rust\n",
            "`",
            "\n",
            " ",
            "{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "\\",
            SECTION_BEGIN,
            CALL_BEGIN,
            "functions.read:0",
            ARGUMENT_BEGIN,
            CALL_END,
            SECTION_END,
            "<|",
            "a",
            "é",
            "<",
            ">",
            "<b>",
            "name",
            "=",
            "5",
        ];
        let mut next = random(0xDEAD_BEEF_CAFE_F00D);
        for _ in 0..5000 {
            let input: String = (0..next(32)).map(|_| pieces[next(pieces.len())]).collect();
            let whole = outputs(&input, &[]);
            let points = boundaries(&input);
            let mut cuts: Vec<usize> = (0..next(8)).map(|_| points[next(points.len())]).collect();
            cuts.sort_unstable();
            assert_eq!(outputs(&input, &cuts), whole, "{input:?} cut at {cuts:?}");
            if let [Output::Text(text)] = &whole[..] {
                assert_eq!(text, &input);
            }
            if whole.is_empty() {
                assert_eq!(input, "");
            }
        }
    }

    /// Pushes one piece and returns what came out of it.
    fn push(parser: &mut ToolParser, piece: &str) -> Vec<Output> {
        let mut out = Vec::new();
        parser.push(piece, &mut out);
        out
    }

    #[test]
    fn text_before_a_marker_goes_out_before_the_marker_ends() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "Let me look. <tool_ca"), [text("Let me look. ")]);
        assert_eq!(push(&mut parser, "lls>\n<invoke name=\"read\">\n"), []);
        assert_eq!(push(&mut parser, "<parameter name=\"path\">a.rs</parameter>\n</invoke"), []);
        assert_eq!(push(&mut parser, ">"), [read("a.rs")], "the call goes out as its </invoke> closes");
        assert_eq!(push(&mut parser, "\n<invoke name=\"read\"><parameter name=\"path\">b</parameter>"), []);
        assert_eq!(push(&mut parser, "</invoke>\n</tool_"), [read("b")]);
        assert_eq!(push(&mut parser, "calls>"), [Output::Done]);
        assert_eq!(push(&mut parser, "\n<tool_result>made up</tool_result> and more"), []);
        assert_eq!(push(&mut parser, &block(&[invoke_read("c")])), []);
        let mut out = Vec::new();
        parser.finish(&mut out);
        assert_eq!(out, [], "nothing pushed after Done comes out");
    }

    #[test]
    fn kimi_markers_and_bare_invokes_stream_the_same_way() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "Ok <|tool_calls"), [text("Ok ")]);
        assert_eq!(push(&mut parser, "_section_begin|><|tool_call_begin|>functions.read:0"), []);
        assert_eq!(
            push(&mut parser, "<|tool_call_argument_begin|>{\"path\": \"a\"}<|tool_call_end|>"),
            [read("a")]
        );
        assert_eq!(push(&mut parser, " <|tool_calls_section_end|>"), [Output::Done]);

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
    fn plain_text_passes_at_once() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "no marker here"), [text("no marker here")]);
        assert_eq!(
            push(&mut parser, "a < b"),
            [text("a < b")],
            "a `<` that is no marker's start waits for nothing"
        );
        assert_eq!(push(&mut parser, " and <"), [text(" and ")]);
        assert_eq!(push(&mut parser, "b>"), [text("<b>")], "a held tail comes out unchanged");
        assert_eq!(
            push(&mut parser, "`x` and `"),
            [text("`x` and `")],
            "a backtick inside a line starts no fence"
        );
        assert_eq!(push(&mut parser, "\n`"), [text("\n")]);
        assert_eq!(push(&mut parser, "`"), []);
        assert_eq!(push(&mut parser, "x"), [text("``x")]);
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

    /// Feeds `input` in pieces of `size` bytes (cut back to characters), checking what is held.
    fn pushed_in_pieces(input: &str, size: usize, max_held: usize) -> Vec<Output> {
        let mut parser = tool_parser();
        let mut out = Vec::new();
        let mut from = 0;
        while from < input.len() {
            let to = input.floor_char_boundary(from + size).max(from + 1);
            let to = input.ceil_char_boundary(to);
            parser.push(&input[from..to], &mut out);
            assert!(parser.held.len() <= max_held, "{input:.40?}: held {} at {to}", parser.held.len());
            from = to;
        }
        parser.finish(&mut out);
        merged(out)
    }

    #[test]
    fn what_may_begin_a_marker_is_held_for_a_bounded_length() {
        for input in [
            format!("```{} json\n{{}}", " ".repeat(4 * MAX_MARKER)),
            format!("x\n{}", "`".repeat(4 * MAX_MARKER)),
            format!("<|tool_calls_section_begin{}", "|".repeat(4 * MAX_MARKER)),
        ] {
            assert_eq!(pushed_in_pieces(&input, 1, MAX_MARKER), [text(&input)], "{input:.40?}");
        }
        for (opening, tag) in [
            ("", format!("<invoke {}>", "x".repeat(4 * MAX_TAG))),
            (
                "<tool_calls><invoke name=\"read\">",
                format!("<parameter name=\"{}\">", "p".repeat(4 * MAX_TAG)),
            ),
            ("<|tool_calls_section_begin|><|tool_call_begin|>", "n".repeat(4 * MAX_TAG)),
        ] {
            let input = format!("{opening}{tag}");
            assert_eq!(pushed_in_pieces(&input, 1, opening.len() + MAX_TAG), [text(&input)], "{input:.40?}");
        }
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

    #[test]
    fn parameter_kinds_come_from_the_schema() {
        let kinds = |schema: Value| kind(&schema);
        assert_eq!(kinds(json!({"type": "string"})), Kind::Text);
        assert_eq!(kinds(json!({"type": ["string", "null"]})), Kind::Text);
        assert_eq!(kinds(json!({"type": ["null", "integer"]})), Kind::Integer);
        assert_eq!(kinds(json!({"type": "number"})), Kind::Number);
        assert_eq!(kinds(json!({"type": "boolean"})), Kind::Boolean);
        assert_eq!(kinds(json!({"type": ["integer", "boolean"]})), Kind::Json);
        assert_eq!(kinds(json!({"type": "array"})), Kind::Json);
        assert_eq!(kinds(json!({"enum": ["a", "b"]})), Kind::Json);
        assert_eq!(Kind::Integer.read("\"7\"".into()), json!(7));
        assert_eq!(Kind::Integer.read("7.5".into()), json!(7.5), "no integer: left as it is");
        assert_eq!(Kind::Number.read("\"1e3\"".into()), json!(1000.0));
        assert_eq!(Kind::Boolean.read("\"yes\"".into()), json!("yes"));
        assert_eq!(Kind::Json.read(" [1] ".into()), json!([1]));
        assert_eq!(Kind::Text.read(" [1] ".into()), json!(" [1] "));
    }
}
