//! The `Chat` request body, as the browser sends it since September 2026
//! (`docs/kimi-protocol.md` §7.2): the catalogue entry the model name picks, its scenario in
//! both places, its effort from its own ladder, its agent fields, the tools the composer
//! sends, the system prompt in Kimi's own field (§7.3), and the client's tools declared by name
//! with their section in that field when they go natively (§7.4). Pure: request in, JSON out.

use serde_json::{Value, json};

use super::models::{Catalogue, DEEP_RESEARCHER, Entry};
use crate::chat::{self, Mode};
use crate::kimi::prompt;

/// The tool type by which a client declares its own tools (§7.4).
pub const DEVICE_TOOL: &str = "TOOL_TYPE_DEVICE_TOOL";
/// The agent mode of K3 and K2.8, which the browser leaves out of the request.
const AGENT_MODE_NORMAL: &str = "TYPE_NORMAL";

/// What one chat runs on: a catalogue entry, and the Kimi+ agent it runs as, if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target<'c> {
    pub entry: &'c Entry,
    pub kimiplus_id: Option<&'c str>,
    pub research: bool,
}

impl<'c> Target<'c> {
    /// The entry and agent a request asks for: deep research runs on K3's entry as the
    /// `deep-researcher` agent; an agent model as its own Kimi+ id; a Kimi+ agent id named as
    /// the model runs on the default model.
    pub fn of(catalogue: &'c Catalogue, request: &'c chat::Request) -> Target<'c> {
        let mode = &request.mode;
        if mode.research {
            return Target {
                entry: catalogue.research(),
                kimiplus_id: Some(DEEP_RESEARCHER),
                research: true,
            };
        }
        if let Some(agent) = &mode.agent {
            return Target { entry: catalogue.default_entry(), kimiplus_id: Some(agent), research: false };
        }
        let entry = catalogue.pick(&request.model);
        let kimiplus_id = Some(entry.kimi_plus_id.as_str()).filter(|id| !id.is_empty());
        Target { entry, kimiplus_id, research: false }
    }

    /// What the caller is told the request ran on (in refusals).
    pub fn name(&self) -> &'c str {
        match self.research {
            true => "deep research",
            false if self.entry.display_name.is_empty() => &self.entry.id,
            false => &self.entry.display_name,
        }
    }

    /// Whether Kimi runs it as an agent (its own tools, minutes long, refused to free plans).
    pub fn is_agent(&self) -> bool {
        self.research || self.entry.is_agent()
    }
}

/// Where a turn goes: a new chat, or after `parent_id` in a kept one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Turn<'a> {
    pub chat_id: Option<&'a str>,
    pub parent_id: Option<&'a str>,
    /// Uploaded attachments' file ids.
    pub files: &'a [String],
    /// Send the system prompt in `options.systemPrompt` (else it stays in the text).
    pub system_field: bool,
    /// Declare the request's tools to Kimi, their section in the system prompt (§7.4; the
    /// request's tool section is otherwise already in its newest turn).
    pub native_tools: bool,
    /// The turn's text, instead of the request's (a follow-up in the same chat).
    pub text: Option<&'a str>,
}

/// The `Chat` request for the neutral request on `target`.
pub fn chat_body(request: &chat::Request, target: &Target<'_>, turn: &Turn<'_>) -> Value {
    let entry = target.entry;
    let own = turn.system_field.then(|| prompt::system_prompt(&request.messages)).flatten();
    let content = match (turn.text, turn.chat_id, &own) {
        (Some(text), _, _) => text.to_string(),
        (None, Some(_), _) => prompt::new_turn(&request.messages),
        (None, None, Some(_)) => prompt::merge_conversation(&request.messages),
        (None, None, None) => prompt::merge_history(&request.messages),
    };
    let tool_section =
        request.tool_prompt.as_ref().filter(|p| turn.native_tools && !p.in_chat).map(|p| p.system.as_str());
    let system = match (own, tool_section) {
        (Some(own), Some(section)) => Some(format!("{own}\n\n{section}")),
        (own, section) => own.or(section.map(str::to_string)),
    };
    let mut blocks = vec![json!({"message_id": "", "text": {"content": content}})];
    blocks
        .extend(turn.files.iter().map(|id| json!({"file": {"id": id, "status": "PROCESS_STATUS_SUCCESS"}})));
    let mut message = json!({"role": "user", "blocks": blocks, "scenario": entry.scenario, "is_goal": false});
    if let Some(parent_id) = turn.parent_id {
        message["parent_id"] = json!(parent_id);
    }
    let mut body = json!({
        "scenario": entry.scenario,
        "tools": tools(request, target, turn.native_tools),
        "message": message,
        "options": options(&request.mode, target, system),
        "project_id": "",
    });
    if let Some(id) = target.kimiplus_id {
        body["kimiplus_id"] = json!(id);
    }
    if !entry.agent_mode.is_empty() && entry.agent_mode != AGENT_MODE_NORMAL {
        body["agent_mode"] = json!(entry.agent_mode);
    }
    if let Some(chat_id) = turn.chat_id {
        body["chat_id"] = json!(chat_id);
    }
    body
}

/// The composer's tools: web search when asked; agents may ask the user, chat models carry the
/// scheduled-task tool the browser always sends; then the client's tools, each declared by its
/// name alone when they go natively (§7.4).
fn tools(request: &chat::Request, target: &Target<'_>, native: bool) -> Value {
    let mode = &request.mode;
    let mut tools = Vec::new();
    if mode.search || mode.research {
        tools.push(json!({"type": "TOOL_TYPE_SEARCH", "search": {}}));
    }
    if target.is_agent() {
        tools.push(json!({"type": "TOOL_TYPE_ASK_USER"}));
    } else {
        tools.push(json!({"type": "TOOL_TYPE_CRON_JOB"}));
    }
    if native && request.tool_prompt.is_some() {
        tools.extend(request.tools.iter().map(|t| json!({"type": DEVICE_TOOL, "name": t.name})));
    }
    Value::Array(tools)
}

/// `options`: thinking is always on, as in the browser; the effort decides how much.
fn options(mode: &Mode, target: &Target<'_>, system: Option<String>) -> Value {
    let entry = target.entry;
    let mut options = json!({"thinking": true, "enable_plugin": true, "model": entry.id});
    if let Some(effort) = entry.effort(mode) {
        options["reasoning_effort"] = json!(effort);
    }
    if target.is_agent() && !entry.default_context_length.is_empty() {
        options["context_length"] = json!(entry.default_context_length);
    }
    if let Some(system) = system {
        options["systemPrompt"] = json!(system);
    }
    options
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
