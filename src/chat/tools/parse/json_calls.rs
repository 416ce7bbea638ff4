//! JSON call objects, which a model sometimes writes in a fence instead of the markup: one
//! object, or a list of them, each with the tool's name and its arguments and nothing else.
//!
//! ```text
//! {"name": "run", "arguments": {"command": "ls", "timeout": 5}}
//! [{"name": "read", "parameters": {"path": "a"}}, {"name": "read", "arguments": "{\"path\": \"b\"}"}]
//! ```
//!
//! The arguments may be called `parameters`, and may be a JSON string, as the OpenAI API carries
//! them. Most JSON shown in an answer (a configuration, a response) is told apart at its first
//! key. Where the fence around them opens and closes is `fence.rs`'s.

use serde_json::Value;

use super::arguments::{Arguments, Tools, json_object};
use super::scan::{Seen, bounded};
use super::{MAX_MARKER, ParsedCall};

/// Finds where a JSON value ends as its text grows, without parsing it again and again: brackets
/// outside strings. Whether it is valid JSON is for the one parse at its end.
pub(super) struct JsonEnd {
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonEnd {
    pub(super) fn new(start: usize) -> Self {
        Self { scanned: start, depth: 0, in_string: false, escaped: false }
    }

    /// Where the value that began at the start given ends, once it has.
    pub(super) fn end(&mut self, text: &str) -> Option<usize> {
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
pub(super) fn json_call_start(text: &str) -> Seen<()> {
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
pub(super) fn json_calls(text: &str, tools: &Tools) -> Option<Vec<ParsedCall>> {
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
