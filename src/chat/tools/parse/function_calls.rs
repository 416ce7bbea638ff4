//! The `<function_calls>` form: the markup of `tool_calls.rs` in another wrapper, with its
//! parameter values XML-escaped, as Kimi's model was seen writing calls (September 2026, under a
//! system prompt that asked for Anthropic's style):
//!
//! ```text
//! <function_calls>
//! <invoke name="Bash">
//! <parameter name="command">cd src &amp;&amp; ls &gt; files.txt</parameter>
//! <parameter name="timeout">60000</parameter>
//! </invoke>
//! </function_calls>
//! ```
//!
//! Each value is unescaped ([`unescape`]: `&amp; &lt; &gt; &quot; &apos;`, `&#NN;`, `&#xNN;`)
//! before `arguments.rs` reads it by its schema, so a number or JSON value is read as in the
//! markup. Only `</function_calls>` ends the block. The grammar is `tool_calls.rs`'s; the front
//! door finds the opening.

use std::borrow::Cow;

pub(super) const FUNCTION_CALLS: &str = "<function_calls>";
pub(super) const FUNCTION_CALLS_END: [&str; 1] = ["</function_calls>"];

/// The longest entity unescaped: `&#x10FFFF;`.
const MAX_ENTITY: usize = 10;

/// XML-escaped text as it was meant: the five named entities and numeric references; any other
/// `&` (an unknown entity, one that names no character) stays as it is.
pub(super) fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.bytes().take(MAX_ENTITY + 1).position(|b| b == b';');
        match end.and_then(|end| entity(&rest[1..end]).map(|c| (c, end))) {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character an entity's name (between `&` and `;`) stands for.
fn entity(name: &str) -> Option<char> {
    let code = match name {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        _ => name.strip_prefix('#')?,
    };
    let number = match code.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => code.parse().ok()?,
    };
    char::from_u32(number).filter(|c| *c != '\0')
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::tools::parse::Output;
    use crate::chat::tools::parse::tests::{as_text, call, push, read, text, tool_parser};

    fn calls(invokes: &str) -> String {
        format!("<function_calls>\n{invokes}\n</function_calls>")
    }

    /// The `<function_calls>` form.
    pub(in super::super) fn cases() -> Vec<(String, Vec<Output>)> {
        let run = "<invoke name=\"run\">\n<parameter name=\"command\">cd a &amp;&amp; ls &gt; f &lt; g</parameter>\n\
                   <parameter name=\"timeout\">30</parameter>\n<parameter name=\"env\">{&quot;A&quot;: &quot;&#x41;&#66;&quot;}</parameter>\n\
                   </invoke>";
        let read_a = "<invoke name=\"read\"><parameter name=\"path\">a&apos;s &amp;amp; &copy; &#0; & b</parameter></invoke>";
        vec![
            (
                format!("I will run it.\n{}", calls(run)),
                vec![
                    text("I will run it.\n"),
                    call("run", json!({"command": "cd a && ls > f < g", "timeout": 30, "env": {"A": "AB"}})),
                    Output::Done,
                ],
            ),
            (
                format!("{}\n[result] made up\n{}", calls(&format!("{read_a}\n{read_a}")), calls(read_a)),
                vec![read("a's &amp; &copy; &#0; & b"), read("a's &amp; &copy; &#0; & b"), Output::Done],
            ),
            (
                calls("<invoke name=\"Read\"><parameter name=\"path\">x</parameter></invoke>"),
                vec![read("x"), Output::Done],
            ),
            (
                format!("<function_calls>{read_a}</tool_calls> and on"),
                vec![read("a's &amp; &copy; &#0; & b"), text("</tool_calls> and on")],
            ),
            as_text(&calls("<invoke name=\"delete\"><parameter name=\"path\">x</parameter></invoke>")),
            as_text("<function_calls>\n</function_calls>"),
            as_text("<function_calls"),
            as_text("<function_call>x</function_call>"),
        ]
    }

    #[test]
    fn entities_are_unescaped() {
        assert_eq!(unescape("a &amp;&amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;"), "a && b <c> \"d\" 'e'");
        assert_eq!(unescape("&#65;&#x42;&#X43;&#x1F600;"), "ABC😀");
        assert_eq!(
            unescape("&amp;lt; &nbsp; & &; &#; &#xZZ; &#xD800; &#1114112;"),
            "&lt; &nbsp; & &; &#; &#xZZ; &#xD800; &#1114112;"
        );
        assert_eq!(unescape("tail &am"), "tail &am");
        assert_eq!(unescape("ünï &lt; cödé"), "ünï < cödé");
    }

    #[test]
    fn function_calls_stream_like_the_markup() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "Ok <function_"), [text("Ok ")]);
        assert_eq!(push(&mut parser, "calls>\n<invoke name=\"read\"><parameter name=\"path\">a&amp;"), []);
        assert_eq!(push(&mut parser, "b</parameter></invoke>"), [read("a&b")]);
        assert_eq!(push(&mut parser, "\n</function_calls"), []);
        assert_eq!(push(&mut parser, ">"), [Output::Done]);
        assert_eq!(push(&mut parser, "\n<function_results>made up</function_results>"), []);
    }
}
