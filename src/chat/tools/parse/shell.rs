//! Shell shorthands: a command in a tag named after its shell, as Kimi's model was seen writing
//! its shell calls (September 2026):
//!
//! ```text
//! <bash>ls -la src &amp;&amp; cat Cargo.toml</bash>
//! <powershell>Get-ChildItem C:\Users</powershell>
//! <sh>
//! echo done
//! </sh>
//! ```
//!
//! Each is a call of the one declared shell-like tool (`arguments.rs`: the one tool whose schema
//! requires exactly one parameter, a string named `command` or `cmd`, as Claude Code's `Bash`,
//! Gemini CLI's `run_shell_command` or Codex's `exec_command`), its command the tag's text
//! without the blanks around it, XML entities unescaped (a shell gives `&amp;` and `&lt;` no
//! meaning, and the model escapes `&&` and `>` in its tags). When no tool or more than one is so,
//! a shorthand is no call: the front door does not even open it, it stays text. Several
//! shorthands in a row are parallel calls; the block ends where no other follows. A command
//! closes within [`MAX_FENCE`] bytes or is text (a shorthand in prose would hold the answer).
//! The tag is not told apart by its shell: `<powershell>` calls `Bash` if `Bash` is the one.

use super::arguments::Arguments;
use super::function_calls::unescape;
use super::scan::{Seen, find_from, literal};
use super::{Block, Call, Event, MAX_FENCE};

/// The shorthands' tags, opening and closing.
pub(super) const SHELLS: [(&str, &str); 3] =
    [("<bash>", "</bash>"), ("<powershell>", "</powershell>"), ("<sh>", "</sh>")];

/// Where a call block's reader is in a shorthand: in its command, which runs from `at` to its
/// closing tag `end`; the search for it resumes at `scan`.
pub(super) struct Phase {
    start: usize,
    end: &'static str,
    scan: usize,
}

impl From<Phase> for super::Phase {
    fn from(phase: Phase) -> Self {
        super::Phase::Shell(phase)
    }
}

impl Block {
    /// Between calls: the next shorthand, or the end of the block (anything else).
    pub(super) fn shell_between(&mut self, rest: &str) -> Option<Event> {
        let mut partial = false;
        for (open, end) in SHELLS {
            match literal(rest, open) {
                Seen::Match(len) => {
                    self.phase = Phase { start: self.at, end, scan: self.at + len }.into();
                    self.at += len;
                    return None;
                }
                Seen::Partial => partial = true,
                Seen::NoMatch => {}
            }
        }
        Some(if partial { Event::Wait } else { Event::Closed(self.at) })
    }

    /// In a shorthand's command: the call once its closing tag comes.
    pub(super) fn shell(&mut self, text: &str, phase: Phase) -> Option<Event> {
        let Phase { start, end, scan } = phase;
        match find_from(text, scan, end) {
            Ok(close) if close - self.at <= MAX_FENCE => {
                let command = unescape(text[self.at..close].trim()).into_owned();
                if command.is_empty() {
                    return Some(Event::Broken(start));
                }
                self.at = close + end.len();
                let arguments = Arguments::Command(command);
                Some(Event::Call(Call { name: String::new(), arguments, span: start..self.at }))
            }
            Err(scan) if scan - self.at <= MAX_FENCE => {
                self.phase = Phase { start, end, scan }.into();
                Some(Event::Wait)
            }
            _ => Some(Event::Broken(start)),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::{Value, json};

    use crate::chat::tools::parse::tests::{
        as_text, call, outputs_of, push, text, tool_parser, tool_parser_with,
    };
    use crate::chat::tools::parse::{MAX_FENCE, Output, ToolParser};

    fn bash(command: &str) -> Output {
        call("run", json!({"command": command}))
    }

    /// Shorthands with one shell-like tool declared (`run` requires only `command`).
    pub(in super::super) fn cases() -> Vec<(String, Vec<Output>)> {
        vec![
            ("<bash>echo NATIVE_OK</bash>".into(), vec![bash("echo NATIVE_OK")]),
            (
                "Listing.\n<bash>\nls -la &amp;&amp; cat a &gt; b\n</bash>\nThe files are: a, b.".into(),
                vec![text("Listing.\n"), bash("ls -la && cat a > b"), Output::Done],
            ),
            (
                "<powershell>Get-ChildItem C:\\Users</powershell>\n<sh>echo é</sh> and".into(),
                vec![bash("Get-ChildItem C:\\Users"), bash("echo é"), Output::Done],
            ),
            (
                "<antThinking>The user wants the date; <bash>date</bash> shows it.</antThinking>\n<bash>date</bash>".into(),
                vec![text("\n"), bash("date")],
            ),
            (
                "<antThinking>never closed <bash>pwd</bash>".into(),
                vec![text("<antThinking>never closed "), bash("pwd")],
            ),
            ("<bash>a</bash><bash> </bash>".into(), vec![bash("a"), text("<bash> </bash>")]),
            as_text("<bash>  \n </bash>"),
            as_text("<bash>ls"),
            as_text("<bash"),
            as_text("<bashful> <shell>x</shell> <sh >y</sh> <Bash>z</Bash>"),
            as_text("<antThinking>"),
            ("<antThinking></antThinking>ok".into(), vec![text("ok")]),
        ]
    }

    fn shell_tool(name: &str, param: &str) -> (String, Value) {
        let schema = json!({"type": "object", "properties": {param: {"type": "string"}, "timeout": {"type": "number"}},
            "required": [param]});
        (name.to_string(), schema)
    }

    fn parser_of(tools: &[(String, Value)]) -> ToolParser {
        tool_parser_with(tools)
    }

    #[test]
    fn a_shorthand_calls_the_one_shell_like_tool_or_is_text() {
        let input = "<bash>pwd</bash>\nmade up output";
        let bash = shell_tool("Bash", "command");
        let exec = shell_tool("exec_command", "cmd");
        let read = (
            "Read".to_string(),
            json!({"type": "object", "properties": {"file_path": {"type": "string"}},
            "required": ["file_path"]}),
        );
        let optional =
            ("shell".to_string(), json!({"type": "object", "properties": {"command": {"type": "string"}}}));
        let array = (
            "shell".to_string(),
            json!({"type": "object", "properties": {"command": {"type": "array"}},
            "required": ["command"]}),
        );
        let two = (
            "run".to_string(),
            json!({"type": "object", "properties": {"command": {"type": "string"},
            "cwd": {"type": "string"}}, "required": ["command", "cwd"]}),
        );
        let called = |name: &str, param: &str| vec![call(name, json!({param: "pwd"})), Output::Done];
        let cases = [
            (vec![], vec![text(input)]),
            (vec![read.clone()], vec![text(input)]),
            (vec![read.clone(), optional, array, two], vec![text(input)]),
            (vec![bash.clone()], called("Bash", "command")),
            (vec![read.clone(), exec.clone()], called("exec_command", "cmd")),
            (vec![bash, read, exec], vec![text(input)]),
        ];
        for (tools, expected) in cases {
            let names: Vec<&str> = tools.iter().map(|(name, _)| name.as_str()).collect();
            for cut in 0..=input.len() {
                assert_eq!(outputs_of(parser_of(&tools), input, &[cut]), expected, "{names:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_shorthand_streams_and_is_bounded() {
        let mut parser = tool_parser();
        assert_eq!(push(&mut parser, "Ok <ba"), [text("Ok ")]);
        assert_eq!(push(&mut parser, "sh>ls</bas"), []);
        assert_eq!(push(&mut parser, "h>"), [call("run", json!({"command": "ls"}))]);
        assert_eq!(push(&mut parser, "\n"), [], "another shorthand may follow");
        assert_eq!(push(&mut parser, "Output: a.rs"), [Output::Done]);

        let long = format!("<bash>{}</bash>", "x".repeat(MAX_FENCE + 1));
        assert_eq!(outputs_of(tool_parser(), &long, &[]), [text(&long)]);
        let fits = format!("<bash>{}</bash>", "x".repeat(MAX_FENCE));
        let command = "x".repeat(MAX_FENCE);
        assert_eq!(outputs_of(tool_parser(), &fits, &[MAX_FENCE / 2]), [bash(&command)]);
    }
}
