//! Tools as text for a model that has none (`docs/tools.md`): the tool list and the call
//! grammar rendered from a replaceable template, earlier calls re-rendered in the grammar,
//! and tool results as `<tool_result>` blocks in a user turn, so that the model sees the whole
//! loop. Pure: a neutral request in, a neutral request with only text and attachments out.

use serde_json::{Map, Value};

use crate::chat::{Message, Part, Role, Tool, ToolCall, ToolChoice, ToolResult};

/// The template for the newest user turn shipped with the server (`--tool-prompt FILE`
/// replaces it).
pub const DEFAULT_TEMPLATE: &str = include_str!("prompt.txt");
/// The template for Kimi's system prompt field shipped with the server
/// (`--native-tool-prompt FILE` replaces it).
pub const NATIVE_TEMPLATE: &str = include_str!("native.txt");

/// The tool block for the newest turn: the template with the tools, an example built from one
/// of them, and the rules that follow from `tool_choice` and the parallel flag.
pub fn render(template: &str, tools: &[Tool], choice: &ToolChoice, parallel: bool) -> String {
    let parallel = if parallel {
        "To run several functions at once, put several <invoke> blocks in one <tool_calls> block."
    } else {
        "Call one function at a time: one <invoke> block per answer."
    };
    let choice = match choice {
        ToolChoice::Required => "- You must call at least one function in this answer.".to_string(),
        ToolChoice::Named(name) => format!("- You must call the function {name} in this answer."),
        ToolChoice::Auto | ToolChoice::None => String::new(),
    };
    template
        .replace("{{TOOLS}}", &list(tools))
        .replace("{{EXAMPLE}}", &example(tools))
        .replace("{{PARALLEL}}", parallel)
        .replace("{{CHOICE}}", &choice)
        .trim_end()
        .to_string()
}

/// Each tool with its description and compact parameter schema; deferred tools by name only.
fn list(tools: &[Tool]) -> String {
    let mut text = String::new();
    for tool in tools.iter().filter(|t| !t.deferred) {
        text.push_str(&format!("## {}\n", tool.name));
        if !tool.description.trim().is_empty() {
            text.push_str(tool.description.trim());
            text.push('\n');
        }
        if tool.freeform {
            text.push_str("Parameters: input (text): the whole input, as it is.\n\n");
        } else {
            text.push_str(&format!("Parameters (JSON Schema): {}\n\n", compact(&tool.parameters)));
        }
    }
    let deferred: Vec<&str> = tools.iter().filter(|t| t.deferred).map(|t| t.name.as_str()).collect();
    if !deferred.is_empty() {
        text.push_str(&format!(
            "These functions exist too but must be loaded through the tool search function before use \
             (their descriptions come once loaded): {}\n",
            deferred.join(", ")
        ));
    }
    text.trim_end().to_string()
}

/// A schema without what only a validator needs (`$schema`, `additionalProperties: false`,
/// titles), as one line: Claude Code sends dozens of tools on every turn.
fn compact(schema: &Value) -> String {
    if schema.is_null() { "{}".to_string() } else { strip(schema).to_string() }
}

/// A schema without its validator-only keywords, recursively; the names under `properties` are
/// parameter names, not keywords, and are all kept.
fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, v)| !validator_only(key, v))
                .map(|(key, v)| match (key.as_str(), v) {
                    ("properties", Value::Object(properties)) => {
                        let kept = properties.iter().map(|(name, schema)| (name.clone(), strip(schema)));
                        (key.clone(), Value::Object(kept.collect()))
                    }
                    _ => (key.clone(), strip(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

fn validator_only(key: &str, value: &Value) -> bool {
    matches!(key, "$schema" | "title") || (key == "additionalProperties" && *value == Value::Bool(false))
}

/// One call of a real tool of the request (the first that has parameters), with a placeholder
/// value of the right type for each required parameter.
fn example(tools: &[Tool]) -> String {
    let visible: Vec<&Tool> = tools.iter().filter(|t| !t.deferred).collect();
    let Some(tool) = visible.iter().find(|t| !properties(t).is_empty()).or(visible.first()) else {
        return String::new();
    };
    let mut arguments = Map::new();
    if tool.freeform {
        arguments.insert("input".into(), Value::String("the input text".into()));
    }
    for (name, schema) in properties(tool).into_iter().take(3) {
        arguments.insert(name.clone(), placeholder(schema));
    }
    calls(&[ToolCall { id: String::new(), name: tool.name.clone(), arguments }])
}

/// The parameters that are required (or all, when none is marked required).
fn properties(tool: &Tool) -> Vec<(&String, &Value)> {
    let Some(Value::Object(properties)) = tool.parameters.get("properties") else { return Vec::new() };
    let required: Vec<&str> = tool
        .parameters
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    properties.iter().filter(|(name, _)| required.is_empty() || required.contains(&name.as_str())).collect()
}

fn placeholder(schema: &Value) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") | Some("number") => Value::from(1),
        Some("boolean") => Value::Bool(true),
        Some("array") => Value::Array(Vec::new()),
        Some("object") => Value::Object(Map::new()),
        _ => Value::String("...".into()),
    }
}

/// Calls in the grammar: strings as they are, anything else as JSON.
pub fn calls(calls: &[ToolCall]) -> String {
    let mut text = String::from("<tool_calls>\n");
    for call in calls {
        text.push_str(&format!("<invoke name=\"{}\">\n", call.name));
        for (name, value) in &call.arguments {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.push_str(&format!("<parameter name=\"{name}\">{value}</parameter>\n"));
        }
        text.push_str("</invoke>\n");
    }
    text.push_str("</tool_calls>");
    text
}

/// A tool result as the model reads it.
fn result(result: &ToolResult, name: &str) -> String {
    let error = if result.is_error { " error=\"true\"" } else { "" };
    format!(
        "<tool_result name=\"{name}\" id=\"{}\"{error}>\n{}\n</tool_result>",
        result.call_id, result.content
    )
}

/// The history with tool parts as text: an assistant's calls in the grammar, results in a user
/// turn (a result's tool name is found from its call when the client did not send it).
pub fn lower(messages: Vec<Message>) -> Vec<Message> {
    let mut names: Vec<(String, String)> = Vec::new();
    messages
        .into_iter()
        .map(|message| {
            let role = if message.role == Role::Tool { Role::User } else { message.role };
            let mut parts = Vec::with_capacity(message.parts.len());
            let mut pending = Vec::new();
            for part in message.parts {
                match part {
                    Part::ToolCall(call) => {
                        names.push((call.id.clone(), call.name.clone()));
                        pending.push(call);
                    }
                    Part::ToolResult(r) => {
                        let name =
                            if r.name.is_empty() { name_of(&names, &r.call_id) } else { r.name.clone() };
                        parts.push(Part::Text(result(&r, &name)));
                    }
                    other => parts.push(other),
                }
            }
            if !pending.is_empty() {
                parts.push(Part::Text(calls(&pending)));
            }
            Message { role, parts }
        })
        .collect()
}

fn name_of(names: &[(String, String)], call_id: &str) -> String {
    names.iter().rev().find(|(id, _)| id == call_id).map(|(_, name)| name.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &str, parameters: Value) -> Tool {
        Tool {
            name: name.into(),
            description: format!("{name} does things"),
            parameters,
            deferred: false,
            freeform: false,
        }
    }

    fn read_tool() -> Tool {
        tool(
            "Read",
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
                   "properties": {"file_path": {"type": "string", "description": "absolute path"}, "limit": {"type": "integer"}},
                   "required": ["file_path"]}),
        )
    }

    #[test]
    fn the_block_lists_tools_compactly_with_an_example_of_a_real_one() {
        let mut search = tool("WebFetch", json!({}));
        search.deferred = true;
        let text = render(DEFAULT_TEMPLATE, &[read_tool(), search], &ToolChoice::Auto, true);
        assert!(text.contains("## Read\nRead does things\n"), "{text}");
        assert!(text.contains(r#"{"properties":{"file_path":{"description":"absolute path","type":"string"},"limit":{"type":"integer"}},"required":["file_path"],"type":"object"}"#), "{text}");
        assert!(!text.contains("$schema") && !text.contains("additionalProperties"));
        let titled = tool(
            "Note",
            json!({"title": "Note args", "properties": {"title": {"type": "string", "title": "T"}}}),
        );
        assert_eq!(
            compact(&titled.parameters),
            r#"{"properties":{"title":{"type":"string"}}}"#,
            "a parameter named title stays"
        );
        assert!(
            text.contains("<invoke name=\"Read\">\n<parameter name=\"file_path\">...</parameter>\n</invoke>"),
            "{text}"
        );
        assert!(text.contains("loaded through the tool search function before use (their descriptions come once loaded): WebFetch"));
        assert!(!text.contains("## WebFetch"), "a deferred tool is listed by name only");
        assert!(text.contains("several <invoke> blocks") && !text.contains("{{"), "{text}");
    }

    #[test]
    fn choice_and_parallel_rules() {
        let named = render(DEFAULT_TEMPLATE, &[read_tool()], &ToolChoice::Named("Read".into()), false);
        assert!(
            named.contains("You must call the function Read")
                && named.contains("one <invoke> block per answer")
        );
        let required = render(DEFAULT_TEMPLATE, &[read_tool()], &ToolChoice::Required, true);
        assert!(required.contains("at least one function"));
        let custom = render("tools: {{TOOLS}}", &[read_tool()], &ToolChoice::Auto, true);
        assert!(custom.starts_with("tools: ## Read"), "a template of the operator's own: {custom}");
    }

    #[test]
    fn history_calls_and_results_become_the_grammar_and_result_blocks() {
        let call = ToolCall {
            id: "toolu_1".into(),
            name: "Read".into(),
            arguments: json!({"file_path": "/a/b.txt", "limit": 5}).as_object().unwrap().clone(),
        };
        let messages = vec![
            Message {
                role: Role::Assistant,
                parts: vec![Part::Text("Let me look.".into()), Part::ToolCall(call)],
            },
            Message {
                role: Role::Tool,
                parts: vec![Part::ToolResult(ToolResult {
                    call_id: "toolu_1".into(),
                    name: String::new(),
                    content: "hello <b>".into(),
                    is_error: true,
                })],
            },
        ];
        let lowered = lower(messages);
        assert_eq!(
            lowered[0].joined_text(),
            "Let me look.\n<tool_calls>\n<invoke name=\"Read\">\n<parameter name=\"file_path\">/a/b.txt</parameter>\n\
             <parameter name=\"limit\">5</parameter>\n</invoke>\n</tool_calls>"
        );
        assert_eq!(lowered[1].role, Role::User);
        assert_eq!(
            lowered[1].joined_text(),
            "<tool_result name=\"Read\" id=\"toolu_1\" error=\"true\">\nhello <b>\n</tool_result>"
        );
    }
}
