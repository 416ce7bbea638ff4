//! JSON arguments as the model mistypes them, mended before they are read: Kimi's markers and the
//! `<tool>` form carry a JSON object the model wrote by hand, and it sometimes writes
//!
//! ```text
//! {“command”: “pwd”}                     smart quotes as the quotes       ->  {"command": "pwd"}
//! {‘path’: ‘notes.txt’}                  single smart quotes too          ->  {"path": "notes.txt"}
//! {"path": "C:\Users\me\a.txt"}          Windows paths, backslashes bare  ->  {"path": "C:\\Users\\me\\a.txt"}
//! {"text": "two
//! lines"}                                a raw line break in a string     ->  {"text": "two\nlines"}
//! ```
//!
//! Only text that is no JSON object as it stands is mended ([`repaired_object`]), and what is
//! still none after that is no call. The mending, string by string:
//!
//! - outside strings, `“ ” ‘ ’` open a string as `"` does; a string opened by one closes at a
//!   smart quote (or `"`) that a `,`, `:`, `}`, `]` or the end follows, so `‘it’s’` keeps its
//!   apostrophe; a `"` inside such a string is escaped;
//! - a string with a backslash that begins no JSON escape (`\U`, `\m`, a lone `\` at its end)
//!   was written with bare backslashes: each of its backslashes is doubled, except one before
//!   `"`. A string whose backslashes all look like escapes is left alone, so `"C:\new"` stays
//!   a line break: nothing can tell;
//! - raw control characters in a string are escaped.

use serde_json::{Map, Value};

use super::arguments::json_object;

/// `text` as a JSON object, mended if it is none as it stands.
pub(super) fn repaired_object(text: &str) -> Option<Map<String, Value>> {
    json_object(text).or_else(|| json_object(&repair(text)))
}

const SMART: [char; 4] = ['“', '”', '‘', '’'];

/// The mended text ([module docs](self)).
fn repair(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        at += 1;
        if c != '"' && !SMART.contains(&c) {
            out.push(c);
            continue;
        }
        let smart = c != '"';
        let (content, next) = string(&chars, at, smart);
        out.push('"');
        out.push_str(&mended(content, smart));
        out.push('"');
        at = next;
    }
    out
}

/// The raw content of a string that opens before `at`, and where the text after its closing
/// quote begins.
fn string(chars: &[char], from: usize, smart: bool) -> (&[char], usize) {
    let mut at = from;
    while at < chars.len() {
        match chars[at] {
            '\\' => at += 2,
            '"' if !smart => return (&chars[from..at], at + 1),
            c if smart && (c == '"' || SMART.contains(&c)) && closes(&chars[at + 1..]) => {
                return (&chars[from..at], at + 1);
            }
            _ => at += 1,
        }
    }
    (&chars[from..chars.len().min(at)], chars.len())
}

/// Whether a smart quote followed by `after` ends its string.
fn closes(after: &[char]) -> bool {
    match after.iter().find(|c| !c.is_whitespace()) {
        None => true,
        Some(c) => matches!(c, ',' | ':' | '}' | ']'),
    }
}

/// A string's content as JSON string content.
fn mended(content: &[char], smart: bool) -> String {
    let bare = bare_backslashes(content);
    let mut out = String::with_capacity(content.len() + 4);
    let mut at = 0;
    while at < content.len() {
        let c = content[at];
        at += 1;
        match c {
            '\\' if bare && content.get(at) != Some(&'"') => out.push_str("\\\\"),
            '\\' => {
                out.push('\\');
                if let Some(&next) = content.get(at) {
                    out.push(next);
                    at += 1;
                }
            }
            '"' if smart => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Whether a string's backslashes were written bare: one of them begins no JSON escape.
fn bare_backslashes(content: &[char]) -> bool {
    let mut at = 0;
    while at < content.len() {
        if content[at] != '\\' {
            at += 1;
            continue;
        }
        let valid = match content.get(at + 1) {
            Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') => true,
            Some('u') => {
                content.get(at + 2..at + 6).is_some_and(|hex| hex.iter().all(char::is_ascii_hexdigit))
            }
            _ => false,
        };
        if !valid {
            return true;
        }
        at += 2;
    }
    false
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mended(text: &str) -> Option<Value> {
        repaired_object(text).map(Value::Object)
    }

    #[test]
    fn smart_quotes_and_bare_backslashes_are_mended() {
        let cases = [
            ("{“command”: “pwd”}", Some(json!({"command": "pwd"}))),
            ("{‘path’: ‘notes.txt’, ‘n’: 2}", Some(json!({"path": "notes.txt", "n": 2}))),
            ("{“text”: “it’s “quoted” here”}", Some(json!({"text": "it’s “quoted” here"}))),
            ("{‘text’: ‘it’s a \"test\"’}", Some(json!({"text": "it’s a \"test\""}))),
            ("{\"path\": \"C:\\Users\\me\\a.txt\"}", Some(json!({"path": "C:\\Users\\me\\a.txt"}))),
            ("{\"path\": \"C:\\Users\\new\\t.txt\"}", Some(json!({"path": "C:\\Users\\new\\t.txt"}))),
            ("{“path”: “D:\\data\\x”, “ok”: true}", Some(json!({"path": "D:\\data\\x", "ok": true}))),
            ("{\"text\": \"two\nlines\ttab\"}", Some(json!({"text": "two\nlines\ttab"}))),
            ("{\"ok\": \"a \\\"b\\\" \\n c\"}", Some(json!({"ok": "a \"b\" \n c"}))),
            ("{\"text\": \"he said “hi”\"}", Some(json!({"text": "he said “hi”"}))),
            ("{\"list\": [“a”, “b”]}", Some(json!({"list": ["a", "b"]}))),
            ("{command: “pwd”}", None),
            ("{“command”: “pwd”", None),
            ("[“a”]", None),
            ("“just text”", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(mended(text), expected, "{text}");
        }
    }

    #[test]
    fn valid_json_is_read_as_it_is() {
        assert_eq!(mended("{\"path\": \"C:\\new\"}"), Some(json!({"path": "C:\new"})), "nothing can tell");
        assert_eq!(mended("{\"q\": \"‘x’\"}"), Some(json!({"q": "‘x’"})));
    }
}
