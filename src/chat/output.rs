//! Structured output on a web chat that has no response format switch: the model is told once
//! what to answer ([`prepare`]), and its answer is unfenced, parsed and checked against the
//! schema ([`check`], [`validate`]). A streamed answer goes through [`Unfenced`], which drops a
//! Markdown fence around the JSON as it streams. No dialect and no backend knows of it.

use serde_json::Value;

use crate::chat::{self, Answer, Conversation, Event, Finish, Flow, Message, Part, Role, Sink, Stop};

/// What shape the answer must have.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Output {
    /// Whatever the model writes.
    #[default]
    Text,
    /// One JSON value.
    Json,
    /// One JSON value valid against this JSON Schema.
    JsonSchema { name: String, schema: Value },
}

impl Output {
    pub fn is_json(&self) -> bool {
        *self != Output::Text
    }
}

/// The one instruction every JSON request gets (with its schema, when there is one).
const INSTRUCTION: &str = "Reply with one valid JSON value only: no prose, no Markdown, no code fences.";

/// How deep `$ref`s and nested schemas are followed before the validator gives up.
const MAX_DEPTH: usize = 64;

/// What the model is told: the instruction, and the schema once.
pub fn instruction(output: &Output) -> Option<String> {
    match output {
        Output::Text => None,
        Output::Json => Some(INSTRUCTION.to_string()),
        Output::JsonSchema { name, schema } => {
            let named = if name.is_empty() { String::new() } else { format!(" (\"{name}\")") };
            Some(format!("{INSTRUCTION} It must be valid against this JSON Schema{named}: {schema}"))
        }
    }
}

/// The request with the instruction as the last part of its newest turn (a new user turn when
/// the newest is the assistant's), where the model reads it last, as the tool layer does.
pub fn prepare(mut request: chat::Request) -> chat::Request {
    if let Some(text) = instruction(&request.output) {
        chat::tools::newest_turn(&mut request.messages).parts.push(Part::Text(text));
    }
    request
}

/// The JSON a model wrote, without what it may have wrapped around it: a Markdown code fence
/// (` ```json `), or prose before and after the outermost object or array.
pub fn unfence(text: &str) -> &str {
    let trimmed = text.trim();
    if let Some(start) = trimmed.find("```") {
        let after = &trimmed[start + 3..];
        let body = after.find('\n').map_or("", |line_end| &after[line_end + 1..]);
        let inner = body.find("```").map_or(body, |end| &body[..end]);
        return inner.trim();
    }
    let start = trimmed.find(['{', '[']);
    let end = trimmed.rfind(['}', ']']);
    match (start, end) {
        (Some(start), Some(end)) if start < end => &trimmed[start..=end],
        _ => trimmed,
    }
}

/// The JSON value in an answer and its text: as written, or else once unfenced.
pub fn parse(text: &str) -> Result<(Value, &str), String> {
    let trimmed = text.trim();
    if let Ok(value) = serde_json::from_str(trimmed) {
        return Ok((value, trimmed));
    }
    let inner = unfence(text);
    serde_json::from_str(inner)
        .map(|value| (value, inner))
        .map_err(|e| format!("the answer is not JSON: {e}"))
}

/// The answer's JSON text when it is what `output` asks for; otherwise what is wrong with it.
pub fn check<'t>(text: &'t str, output: &Output) -> Result<&'t str, Vec<String>> {
    let (value, json) = parse(text).map_err(|problem| vec![problem])?;
    let problems = match output {
        Output::JsonSchema { schema, .. } => validate(&value, schema),
        Output::Json | Output::Text => Vec::new(),
    };
    if problems.is_empty() { Ok(json) } else { Err(problems) }
}

/// Checks a whole answer: a good one keeps only its JSON as its text; an answer with tool calls
/// is left as it is. `Err` holds the problems of one that does not pass.
pub fn settle(answer: &mut Answer, output: &Output) -> Result<(), Vec<String>> {
    if !output.is_json() || !answer.calls.is_empty() {
        return Ok(());
    }
    let json = check(&answer.text, output)?.to_string();
    answer.text = json;
    Ok(())
}

/// A short explanation, for the dialect's marker of an answer that is not the JSON asked for.
pub fn explanation(problems: &[String]) -> String {
    format!("The model's answer is not the JSON that was asked for: {}", problems.join("; "))
}

/// The request once more, with the model's answer and what is wrong with it as a new user turn:
/// one corrective follow-up. A kept conversation continues in the chat that answered.
pub fn correction(original: &chat::Request, answer: &Answer, problems: &[String]) -> chat::Request {
    let mut request = original.clone();
    request.messages.push(Message::text(Role::Assistant, answer.text.clone()));
    let list: Vec<String> = problems.iter().map(|p| format!("- {p}")).collect();
    let text =
        format!("Your answer is not valid:\n{}\nReply again with the corrected JSON only.", list.join("\n"));
    request.messages.push(Message::text(Role::User, text));
    if let (Conversation::Keep | Conversation::Continue(_), Some(id)) =
        (&original.conversation, &answer.conversation_id)
    {
        request.conversation = Conversation::Continue(id.clone());
    }
    request
}

/// The problems of `value` against a JSON Schema (a small subset: types, `required`,
/// `properties`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`, `oneOf`, `allOf`,
/// `nullable`, local `$ref`s); empty when it is valid. Unknown keywords are ignored.
pub fn validate(value: &Value, schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    Validator { root: schema }.check(value, schema, "$", 0, &mut problems);
    problems
}

struct Validator<'s> {
    root: &'s Value,
}

impl Validator<'_> {
    fn check(&self, value: &Value, schema: &Value, at: &str, depth: usize, out: &mut Vec<String>) {
        let Some(rules) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                out.push(format!("{at}: no value is allowed here"));
            }
            return;
        };
        if depth > MAX_DEPTH {
            return out.push(format!("{at}: the schema nests too deeply to check"));
        }
        if let Some(target) = rules.get("$ref").and_then(Value::as_str) {
            match self.resolve(target) {
                Some(target) => self.check(value, target, at, depth + 1, out),
                None => out.push(format!("{at}: the schema's $ref {target:?} cannot be followed")),
            }
        }
        let before = out.len();
        self.check_type(value, schema, at, out);
        if out.len() > before {
            return;
        }
        check_enum(value, schema, at, out);
        self.check_combinations(value, schema, at, depth, out);
        match value {
            Value::Object(map) => self.check_object(map, schema, at, depth, out),
            Value::Array(items) => self.check_items(items, schema, at, depth, out),
            _ => {}
        }
    }

    /// `#`, `#/$defs/Name`, `#/definitions/Name`: a JSON pointer into the root schema.
    fn resolve(&self, target: &str) -> Option<&Value> {
        let pointer = target.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn check_type(&self, value: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
        let nullable = schema.get("nullable") == Some(&Value::Bool(true));
        let allowed: Vec<&str> = match schema.get("type") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => return,
        };
        if (nullable && value.is_null()) || allowed.iter().any(|kind| has_type(value, kind)) {
            return;
        }
        out.push(format!("{at}: expected {}, got {}", allowed.join(" or "), type_name(value)));
    }

    fn check_combinations(
        &self,
        value: &Value,
        schema: &Value,
        at: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        let branches = |key: &str| schema.get(key).and_then(Value::as_array);
        let passes = |branch: &Value| {
            let mut problems = Vec::new();
            self.check(value, branch, at, depth + 1, &mut problems);
            problems.is_empty()
        };
        if let Some(all) = branches("allOf") {
            all.iter().for_each(|branch| self.check(value, branch, at, depth + 1, out));
        }
        if let Some(any) = branches("anyOf").filter(|any| !any.iter().any(passes)) {
            out.push(format!("{at}: matches none of the {} anyOf schemas", any.len()));
        }
        if let Some(one) = branches("oneOf") {
            let matching = one.iter().filter(|branch| passes(branch)).count();
            if matching != 1 {
                out.push(format!("{at}: matches {matching} of the oneOf schemas, not exactly one"));
            }
        }
    }

    fn check_object(
        &self,
        map: &serde_json::Map<String, Value>,
        schema: &Value,
        at: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(name) = name.as_str().filter(|name| !map.contains_key(*name)) {
                out.push(format!("{at}: the required property {name:?} is missing"));
            }
        }
        let additional = schema.get("additionalProperties");
        for (name, item) in map {
            let path = format!("{at}.{name}");
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(property), _) => self.check(item, property, &path, depth + 1, out),
                (None, Some(Value::Bool(false))) => {
                    out.push(format!("{at}: the property {name:?} is not allowed"));
                }
                (None, Some(extra @ Value::Object(_))) => self.check(item, extra, &path, depth + 1, out),
                (None, _) => {}
            }
        }
    }

    fn check_items(&self, items: &[Value], schema: &Value, at: &str, depth: usize, out: &mut Vec<String>) {
        let Some(each) = schema.get("items").filter(|each| each.is_object()) else { return };
        for (index, item) in items.iter().enumerate() {
            self.check(item, each, &format!("{at}[{index}]"), depth + 1, out);
        }
    }
}

fn check_enum(value: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array).filter(|all| !all.contains(value)) {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.push(format!("{at}: must be one of {}", listed.join(", ")));
    }
    if let Some(constant) = schema.get("const").filter(|constant| *constant != value) {
        out.push(format!("{at}: must be {constant}"));
    }
}

/// Whether `value` is of the JSON Schema type `kind` (an integer is a number without a
/// fraction, `1.0` included; a type this validator does not know lets everything through).
fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|n| n.fract() == 0.0),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where the unfencing of a streamed answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    /// Nothing but white space yet: the answer may still open with a fence.
    Start,
    /// In the JSON; `fenced` when a fence was opened (a closing one ends what is sent).
    Body { fenced: bool },
    /// After the closing fence: the rest is not sent.
    Closed,
}

/// Streams a JSON answer as it comes, without the Markdown fence a model may wrap it in: a
/// leading ` ```json ` line and the closing fence are not sent (only what may begin a fence is
/// held back). At the end the text sent is checked; a failure is kept for the log
/// ([`Unfenced::problems`]), and the stream ends normally: it has been sent.
pub struct Unfenced<S> {
    inner: S,
    output: Output,
    fence: Fence,
    held: String,
    sent: String,
    calls: bool,
    problems: Vec<String>,
}

impl<S: Sink> Unfenced<S> {
    pub fn new(output: &Output, inner: S) -> Self {
        let fence = if output.is_json() { Fence::Start } else { Fence::Closed };
        Unfenced {
            inner,
            output: output.clone(),
            fence,
            held: String::new(),
            sent: String::new(),
            calls: false,
            problems: Vec::new(),
        }
    }

    /// What was wrong with the streamed JSON (empty when it passed, or when no JSON was asked).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    fn pass(&mut self, text: &str) -> Result<(), Stop> {
        if text.is_empty() {
            return Ok(());
        }
        self.sent.push_str(text);
        self.inner.send(Event::Text(text.to_string())).go()
    }

    /// Sends what is sure not to be a fence; `end` sends everything still held.
    fn release(&mut self, end: bool) -> Result<(), Stop> {
        if self.fence == Fence::Start && !self.leave_start(end) {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        match self.fence {
            Fence::Body { fenced: true } => match closing_fence(&held) {
                Some(at) => {
                    self.fence = Fence::Closed;
                    self.pass(&held[..at])
                }
                None => {
                    let keep = if end { 0 } else { fence_prefix(&held) };
                    self.held = held[held.len() - keep..].to_string();
                    self.pass(&held[..held.len() - keep])
                }
            },
            Fence::Body { fenced: false } => self.pass(&held),
            Fence::Start | Fence::Closed => Ok(()),
        }
    }

    /// Decides, once enough has arrived, whether the answer opens with a fence (whose first
    /// line is dropped); `false` while it cannot tell yet.
    fn leave_start(&mut self, end: bool) -> bool {
        let trimmed = self.held.trim_start();
        if trimmed.starts_with("```") {
            let Some(line_end) = trimmed.find('\n') else { return end && self.open_plain() };
            self.held = trimmed[line_end + 1..].to_string();
            self.fence = Fence::Body { fenced: true };
            return true;
        }
        if !end && "```".starts_with(trimmed) {
            return false;
        }
        self.open_plain()
    }

    fn open_plain(&mut self) -> bool {
        self.held = self.held.trim_start().to_string();
        self.fence = Fence::Body { fenced: false };
        true
    }

    fn finish(&mut self, reason: Finish) -> Result<(), Stop> {
        if self.output.is_json() {
            self.release(true)?;
            if !self.calls && reason != Finish::ToolCalls {
                self.problems = check(&self.sent, &self.output).err().unwrap_or_default();
            }
        }
        self.inner.send(Event::Finish(reason)).go()
    }
}

/// Where a closing fence begins (at a line start), if `text` holds one.
fn closing_fence(text: &str) -> Option<usize> {
    if text.starts_with("```") {
        return Some(0);
    }
    text.find("\n```")
}

/// How many bytes at the end of `text` may begin a closing fence (`\n`, `\n``, …).
fn fence_prefix(text: &str) -> usize {
    (1..=3).rev().find(|&n| text.ends_with(&"\n```"[..n])).unwrap_or(0)
}

impl<S: Sink> Sink for Unfenced<S> {
    fn send(&mut self, event: Event) -> Flow {
        match event {
            Event::Text(text) if self.output.is_json() => {
                if self.fence != Fence::Closed {
                    self.held.push_str(&text);
                }
                self.release(false).into()
            }
            Event::ToolCall(call) => {
                self.calls = true;
                self.inner.send(Event::ToolCall(call))
            }
            Event::Finish(reason) => self.finish(reason).into(),
            other => self.inner.send(other),
        }
    }

    fn flush(&mut self) -> Flow {
        self.inner.flush()
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
