//! A call's arguments as they go out, read by the declared tools' schemas. The markup gives each
//! parameter as raw text, Kimi's markers and a fence's JSON give a JSON object; either way a
//! parameter is read by the type its schema gives it, where that is unambiguous:
//!
//! ```text
//! <parameter name="timeout">"5"</parameter>     (schema: integer)  ->  "timeout": 5
//! <parameter name="command"> 42 </parameter>     (schema: string)   ->  "command": " 42 "
//! {"background": "true"}                         (schema: boolean)  ->  "background": true
//! ```
//!
//! A `string` parameter is raw text up to the first `</parameter>`, so code needs no escaping;
//! any other is JSON (the raw text when it does not parse). A call's name is matched to a
//! declared tool by `names.rs`; a call of a tool that was not declared is no call. A shell
//! shorthand (`shell.rs`) calls the one declared shell-like tool, if there is exactly one.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ParsedCall;
use super::names::resolve;

/// A call's arguments as its form wrote them, not yet read by the schema.
pub(super) enum Arguments {
    /// Parameters of the markup, by name, with their raw text.
    Tagged(Vec<(String, String)>),
    /// Arguments already in JSON (Kimi's markers, a fence's JSON).
    Json(Map<String, Value>),
    /// The command of a shell shorthand, for the shell-like tool.
    Command(String),
}

/// A JSON object's text as its map; anything else is none.
pub(super) fn json_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// The declared tools: the kind of each parameter, by tool and parameter name; and the one
/// shell-like tool, with its command parameter, if there is exactly one.
pub(super) struct Tools {
    params: HashMap<String, HashMap<String, Kind>>,
    shell: Option<(String, String)>,
}

impl Tools {
    /// `tools`: (name, JSON Schema of the arguments object) of every declared tool.
    pub(super) fn new<'a>(tools: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Self {
        let tools: Vec<(&str, &Value)> = tools.into_iter().collect();
        let params = tools.iter().map(|(name, schema)| (name.to_string(), params(schema))).collect();
        Tools { params, shell: shell_tool(&tools) }
    }

    /// Whether the shell shorthands call a tool: exactly one shell-like tool is declared.
    pub(super) fn has_shell(&self) -> bool {
        self.shell.is_some()
    }

    /// The call as it goes out, if its name calls a declared tool (`names.rs`), each argument
    /// read by its parameter's kind (a parameter the schema does not name has none: JSON if it
    /// parses).
    pub(super) fn call(&self, name: String, arguments: Arguments) -> Option<ParsedCall> {
        if let Arguments::Command(command) = arguments {
            let (tool, param) = self.shell.clone()?;
            return Some(ParsedCall {
                name: tool,
                arguments: Map::from_iter([(param, Value::String(command))]),
            });
        }
        let declared: Vec<&str> = self.params.keys().map(String::as_str).collect();
        let name = resolve(&name, &declared)?.to_string();
        let params = &self.params[&name];
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
            Arguments::Command(_) => return None,
        };
        Some(ParsedCall { name, arguments })
    }
}

/// The command parameters a shell-like tool may name.
const COMMAND_PARAMS: [&str; 2] = ["command", "cmd"];

/// The one declared tool whose schema requires exactly one parameter, a string named `command`
/// or `cmd` (Claude Code's `Bash`, Gemini CLI's `run_shell_command`, Codex's `exec_command`),
/// with that parameter's name; none when no tool or more than one is so.
fn shell_tool(tools: &[(&str, &Value)]) -> Option<(String, String)> {
    let mut shells = tools.iter().filter_map(|(name, schema)| {
        let required = schema.get("required")?.as_array()?;
        let [Value::String(param)] = required.as_slice() else { return None };
        let property = schema.get("properties")?.get(param)?;
        (COMMAND_PARAMS.contains(&param.as_str()) && kind(property) == Kind::Text)
            .then(|| (name.to_string(), param.clone()))
    });
    match (shells.next(), shells.next()) {
        (Some(shell), None) => Some(shell),
        _ => None,
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
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::tools::parse::Output;
    use crate::chat::tools::parse::tests::call;

    const CODE: &str = "<div class=\"x\">\n  if (a < b && b > c) { say(\"hi\", 'there'); }\n</div>\n\
                        </invoke> </tool_calls>\n";

    /// Raw text, JSON and coercion by the schema.
    pub(in super::super) fn parameters() -> Vec<(String, Vec<Output>)> {
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
