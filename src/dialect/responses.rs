//! OpenAI Responses API (`POST /v1/responses`, `docs/clients.md`): Codex CLI and
//! `client.responses.create`. Input items become the neutral messages; answers stream as the
//! typed `response.*` events (each with its `sequence_number`) or come whole as one `response`.
//! Both take the shapes of OpenAI's published OpenAPI document (its Responses schemas are
//! pinned in `tests/openapi/`, and every answer the tests produce is checked against them).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Aggregator, Lenient, StreamRenderer, unique_id, unix_now};
use crate::chat::Answer;
use crate::chat::{
    self, Conversation, Event, Finish, Message, Mode, Part, Role, ToolCall, ToolChoice, ToolResult,
    estimate_tokens,
};

#[derive(Deserialize)]
struct Body {
    model: Option<String>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    reasoning: Lenient<Reasoning>,
    #[serde(default)]
    text: Lenient<TextConfig>,
    #[serde(default)]
    previous_response_id: Option<String>,
}

#[derive(Deserialize)]
struct Reasoning {
    #[serde(default)]
    effort: Option<String>,
}

/// `text`: its `format` is `{"type": "text" | "json_object"}` or
/// `{"type": "json_schema", "name", "schema", "strict"}`.
#[derive(Deserialize)]
struct TextConfig {
    #[serde(default)]
    format: Value,
}

/// One input item; which fields matter depends on `type` (absent with a `role`: a message).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Item {
    #[serde(rename = "type")]
    kind: Option<String>,
    role: Option<String>,
    content: Value,
    call_id: String,
    name: String,
    arguments: String,
    input: String,
    output: Value,
}

/// The flat Responses tool shape: `{"type": "function", "name", "parameters"}` or Codex's
/// `{"type": "custom", "name", "format"}`; other types (web_search, local_shell, …) are skipped.
#[derive(Deserialize)]
struct RawTool {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parameters: Value,
}

/// A parsed Responses request: the neutral request plus what only this renderer needs.
pub struct ParsedRequest {
    pub chat: chat::Request,
    /// Names of the freeform tools, whose calls render as `custom_tool_call` items.
    freeform: Vec<String>,
    /// The client's `text.format`, echoed in the response object.
    format: Value,
    /// Echoed in the response object, as the API does.
    tools: Vec<Value>,
    tool_choice: Value,
    instructions: Option<String>,
}

/// Parses a `POST /v1/responses` body.
pub fn parse(body: &[u8]) -> Result<ParsedRequest, chat::Error> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| chat::Error::invalid(format!("invalid JSON body: {e}")))?;
    if let Some(id) = body.previous_response_id.filter(|id| !id.is_empty()) {
        return Err(chat::Error::invalid(format!(
            "previous_response_id {id:?}: this server keeps no responses; send the full conversation in `input` (and `store: false`)"
        )));
    }
    let model = body
        .model
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| chat::Error::invalid("`model` is required"))?;
    let mut messages: Vec<Message> =
        body.instructions.iter().map(|i| Message::text(Role::System, i)).collect();
    input(body.input, &mut messages)?;
    if messages.iter().all(|m| m.role == Role::System) {
        return Err(chat::Error::invalid("`input` must be a non-empty string or list of items"));
    }
    let format = body.text.ok().map(|t| t.format).filter(Value::is_object);
    let format = format.unwrap_or_else(|| json!({"type": "text"}));
    let output = super::openai_output(&format, &format);
    let effort = body.reasoning.ok().and_then(|r| r.effort);
    let mut mode = Mode::from_model_name(&model);
    super::openai_effort(&mut mode, effort.as_deref());
    let tools: Vec<chat::Tool> = body.tools.iter().filter_map(tool).collect();
    Ok(ParsedRequest {
        freeform: tools.iter().filter(|t| t.freeform).map(|t| t.name.clone()).collect(),
        format,
        tool_choice: body.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        instructions: body.instructions,
        tools: body.tools.into_iter().map(echoed_tool).collect(),
        chat: chat::Request {
            model,
            mode,
            messages,
            conversation: Conversation::Ephemeral,
            stream: body.stream.unwrap_or(false),
            tools,
            tool_choice: tool_choice(body.tool_choice.as_ref()),
            parallel_tool_calls: body.parallel_tool_calls.unwrap_or(true),
            output,
            tool_prompt: None,
        },
    })
}

/// A tool as the response object echoes it: a function tool always says `strict` and
/// `parameters` (`null` when the request did not), which the document requires.
fn echoed_tool(mut tool: Value) -> Value {
    if tool["type"] == "function"
        && let Some(fields) = tool.as_object_mut()
    {
        fields.entry("strict").or_insert(Value::Null);
        fields.entry("parameters").or_insert(Value::Null);
    }
    tool
}

fn tool(raw: &Value) -> Option<chat::Tool> {
    let raw = RawTool::deserialize(raw).ok()?;
    let freeform = match raw.kind.as_str() {
        "function" => false,
        "custom" => true,
        _ => return None,
    };
    let parameters = if freeform { Value::Null } else { raw.parameters };
    Some(chat::Tool { name: raw.name, description: raw.description, parameters, deferred: false, freeform })
}

/// `"auto" | "none" | "required"` or `{"type": "function" | "custom", "name": ...}`.
fn tool_choice(value: Option<&Value>) -> ToolChoice {
    match value {
        Some(Value::String(choice)) if choice == "none" => ToolChoice::None,
        Some(Value::String(choice)) if choice == "required" => ToolChoice::Required,
        Some(Value::Object(choice)) => match choice.get("name").and_then(Value::as_str) {
            Some(name) => ToolChoice::Named(name.to_string()),
            None => ToolChoice::Auto,
        },
        _ => ToolChoice::Auto,
    }
}

/// `input` as a string (one user turn) or a list of items, appended to `messages`.
fn input(value: Value, messages: &mut Vec<Message>) -> Result<(), chat::Error> {
    let items = match value {
        Value::Null => Vec::new(),
        Value::String(text) => {
            messages.push(Message::text(Role::User, text));
            return Ok(());
        }
        Value::Array(items) => items,
        _ => return Err(chat::Error::invalid("`input` must be a string or a list of items")),
    };
    for (index, raw) in items.into_iter().enumerate() {
        let item = Item::deserialize(&raw)
            .map_err(|e| chat::Error::invalid(format!("input[{index}] is not an input item: {e}")))?;
        if let Some(message) = item_message(index, item)? {
            push(messages, message);
        }
    }
    Ok(())
}

/// Calls in a row join the assistant turn before them, as one answer with several calls.
fn push(messages: &mut Vec<Message>, message: Message) {
    let joins = message.parts.iter().all(|p| matches!(p, Part::ToolCall(_)));
    match messages.last_mut() {
        Some(last) if joins && last.role == Role::Assistant => last.parts.extend(message.parts),
        _ => messages.push(message),
    }
}

fn item_message(index: usize, item: Item) -> Result<Option<Message>, chat::Error> {
    let kind = item.kind.as_deref().unwrap_or(if item.role.is_some() { "message" } else { "" });
    let message = match kind {
        "message" => message(index, item)?,
        "function_call" => call(item.call_id, item.name, super::arguments_of(&item.arguments)),
        "custom_tool_call" => {
            let arguments = Map::from_iter([("input".to_string(), Value::String(item.input))]);
            call(item.call_id, item.name, arguments)
        }
        "function_call_output" | "custom_tool_call_output" => {
            let content = output_text(&item.output);
            let result = ToolResult { call_id: item.call_id, name: item.name, content, is_error: false };
            Message { role: Role::Tool, parts: vec![Part::ToolResult(result)] }
        }
        // Reasoning (and items this server does not know) carry nothing Kimi can use.
        _ => return Ok(None),
    };
    Ok(Some(message))
}

fn call(id: String, name: String, arguments: Map<String, Value>) -> Message {
    Message { role: Role::Assistant, parts: vec![Part::ToolCall(ToolCall { id, name, arguments })] }
}

/// A tool's output: a string, or a list of content parts whose texts count.
fn output_text(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        Value::Array(parts) => chat::text_of(&parts.iter().filter_map(content_part).collect::<Vec<_>>()),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn message(index: usize, item: Item) -> Result<Message, chat::Error> {
    let role = match item.role.as_deref().unwrap_or("user") {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(chat::Error::invalid(format!("input[{index}].role {other:?} is not a known role")));
        }
    };
    let parts = match item.content {
        Value::Null => Vec::new(),
        Value::String(text) => vec![Part::Text(text)],
        Value::Array(parts) => parts.iter().filter_map(content_part).collect(),
        _ => {
            return Err(chat::Error::invalid(format!("input[{index}].content must be a string or an array")));
        }
    };
    Ok(Message { role, parts })
}

/// One content part; unknown part types are skipped, not rejected.
fn content_part(part: &Value) -> Option<Part> {
    let text = |name: &str| part.get(name).and_then(Value::as_str).map(str::to_string);
    match part.get("type").and_then(Value::as_str)? {
        "input_text" | "output_text" | "text" | "refusal" => {
            text("text").or_else(|| text("refusal")).map(Part::Text)
        }
        "input_image" => text("image_url").map(Part::Image),
        "input_file" => text("file_data").or_else(|| text("file_url")).map(Part::File),
        _ => None,
    }
}

/// The OpenAI error body and status, as for Chat Completions.
pub fn error_response(error: &chat::Error) -> (u16, Vec<u8>) {
    super::openai::error_response(error)
}

/// One output item of a response, as it ends up in `output`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputItem {
    Message { id: String, status: &'static str, role: &'static str, content: Vec<TextPart> },
    Reasoning { id: String, summary: Vec<SummaryPart> },
    FunctionCall { id: String, status: &'static str, call_id: String, name: String, arguments: String },
    CustomToolCall { id: String, status: &'static str, call_id: String, name: String, input: String },
}

/// A part of a message: its text, or a refusal.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TextPart {
    OutputText { text: String, annotations: [(); 0], logprobs: [(); 0] },
    Refusal { refusal: String },
}

impl TextPart {
    fn new(text: &str) -> Self {
        TextPart::OutputText { text: text.to_string(), annotations: [], logprobs: [] }
    }

    /// Structured output that failed its check: a refusal part with why and the model's text
    /// as it is (`responses.parse()` would raise on an `output_text` that is not the JSON).
    fn refused(why: &str, text: &str) -> Self {
        TextPart::Refusal { refusal: format!("{why}. The model answered:\n{text}") }
    }
}

#[derive(Serialize)]
struct SummaryPart {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

impl SummaryPart {
    fn new(text: &str) -> Self {
        SummaryPart { kind: "summary_text", text: text.to_string() }
    }
}

/// A call as its output item: `custom_tool_call` with the raw text for a freeform tool.
fn call_item(call: &ToolCall, freeform: &[String], status: &'static str) -> OutputItem {
    let (id, call_id, name) = (unique_id("fc_"), unique_id("call_"), call.name.clone());
    if freeform.contains(&call.name) {
        let input = call.arguments.get("input").and_then(Value::as_str).unwrap_or_default().to_string();
        return OutputItem::CustomToolCall { id, status, call_id, name, input };
    }
    let arguments = Value::Object(call.arguments.clone()).to_string();
    OutputItem::FunctionCall { id, status, call_id, name, arguments }
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

/// Tokens read from and written to the prompt cache: none (Kimi's web chat reports no usage).
#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

fn usage(input_tokens: u64, text: u64, reasoning: u64) -> Usage {
    let output_tokens = (text + reasoning).max(1);
    Usage {
        input_tokens,
        input_tokens_details: CachedTokens { cached_tokens: 0, cache_write_tokens: 0 },
        output_tokens,
        output_tokens_details: ReasoningTokens { reasoning_tokens: reasoning },
        total_tokens: input_tokens + output_tokens,
    }
}

/// What every response object repeats of its request.
struct Echo {
    id: String,
    created_at: u64,
    model: String,
    tools: Vec<Value>,
    tool_choice: Value,
    parallel_tool_calls: bool,
    instructions: Option<String>,
    freeform: Vec<String>,
    format: Value,
    prompt_tokens: u64,
}

impl Echo {
    fn new(request: &ParsedRequest) -> Self {
        Echo {
            id: unique_id("resp_"),
            created_at: unix_now(),
            model: request.chat.model.clone(),
            tools: request.tools.clone(),
            tool_choice: request.tool_choice.clone(),
            parallel_tool_calls: request.chat.parallel_tool_calls,
            instructions: request.instructions.clone(),
            freeform: request.freeform.clone(),
            format: request.format.clone(),
            prompt_tokens: request.chat.estimated_prompt_tokens(),
        }
    }

    fn response<'a>(&'a self, status: &'static str, output: &'a [OutputItem]) -> ResponseObject<'a> {
        ResponseObject {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status,
            model: &self.model,
            output,
            parallel_tool_calls: self.parallel_tool_calls,
            tool_choice: &self.tool_choice,
            tools: &self.tools,
            instructions: self.instructions.as_deref(),
            text: json!({"format": self.format}),
            error: None,
            incomplete_details: None,
            metadata: Map::new(),
            temperature: None,
            top_p: None,
            usage: None,
        }
    }
}

#[derive(Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    model: &'a str,
    output: &'a [OutputItem],
    parallel_tool_calls: bool,
    tool_choice: &'a Value,
    tools: &'a [Value],
    instructions: Option<&'a str>,
    text: Value,
    error: Option<ErrorObject<'a>>,
    incomplete_details: Option<Value>,
    metadata: Map<String, Value>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: &'static str,
    message: &'a str,
}

/// The delta and done events of a function call's arguments and of a custom tool call's input.
const ARGUMENTS: (&str, &str) =
    ("response.function_call_arguments.delta", "response.function_call_arguments.done");
const INPUT: (&str, &str) = ("response.custom_tool_call_input.delta", "response.custom_tool_call_input.done");

/// The item being streamed: text and thinking arrive in pieces, calls whole.
enum Open {
    None,
    Message { id: String, text: String },
    Reasoning { id: String, text: String },
}

/// Renders the `response.*` event stream.
pub struct Stream {
    echo: Echo,
    sequence: u64,
    started: bool,
    open: Open,
    done: Vec<OutputItem>,
    text_tokens: u64,
    reasoning_tokens: u64,
}

impl Stream {
    pub fn new(request: &ParsedRequest) -> Self {
        Stream {
            echo: Echo::new(request),
            sequence: 0,
            started: false,
            open: Open::None,
            done: Vec::new(),
            text_tokens: 0,
            reasoning_tokens: 0,
        }
    }

    /// One `event: type` frame; `fields` gain `type` and `sequence_number`.
    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut fields: Value) {
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(format!("event: {kind}\ndata: {fields}\n\n").as_bytes());
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let response = json!(self.echo.response("in_progress", &[]));
            self.emit(out, "response.created", json!({"response": response}));
            self.emit(out, "response.in_progress", json!({"response": response}));
        }
    }

    fn index(&self) -> usize {
        self.done.len()
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Open::Message { .. }) {
            self.close(out);
            let id = unique_id("msg_");
            let item = OutputItem::Message {
                id: id.clone(),
                status: "in_progress",
                role: "assistant",
                content: vec![],
            };
            self.emit(out, "response.output_item.added", json!({"output_index": self.index(), "item": item}));
            let part = TextPart::new("");
            let fields =
                json!({"item_id": id, "output_index": self.index(), "content_index": 0, "part": part});
            self.emit(out, "response.content_part.added", fields);
            self.open = Open::Message { id, text: String::new() };
        }
        let Open::Message { id, text: all } = &mut self.open else { return };
        all.push_str(text);
        let fields = json!({"item_id": id, "output_index": self.done.len(), "content_index": 0, "delta": text, "logprobs": []});
        self.emit(out, "response.output_text.delta", fields);
    }

    fn thinking(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Open::Reasoning { .. }) {
            self.close(out);
            let id = unique_id("rs_");
            let item = OutputItem::Reasoning { id: id.clone(), summary: vec![] };
            self.emit(out, "response.output_item.added", json!({"output_index": self.index(), "item": item}));
            let fields = json!({"item_id": id, "output_index": self.index(), "summary_index": 0, "part": SummaryPart::new("")});
            self.emit(out, "response.reasoning_summary_part.added", fields);
            self.open = Open::Reasoning { id, text: String::new() };
        }
        let Open::Reasoning { id, text: all } = &mut self.open else { return };
        all.push_str(text);
        let fields =
            json!({"item_id": id, "output_index": self.done.len(), "summary_index": 0, "delta": text});
        self.emit(out, "response.reasoning_summary_text.delta", fields);
    }

    /// Ends the item being streamed with its `.done` events.
    fn close(&mut self, out: &mut Vec<u8>) {
        let index = self.index();
        let item = match std::mem::replace(&mut self.open, Open::None) {
            Open::None => return,
            Open::Message { id, text } => {
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                self.emit(out, "response.output_text.done", with(&at, json!({"text": text, "logprobs": []})));
                self.emit(
                    out,
                    "response.content_part.done",
                    with(&at, json!({"part": TextPart::new(&text)})),
                );
                OutputItem::Message {
                    id,
                    status: "completed",
                    role: "assistant",
                    content: vec![TextPart::new(&text)],
                }
            }
            Open::Reasoning { id, text } => {
                let at = json!({"item_id": id, "output_index": index, "summary_index": 0});
                self.emit(out, "response.reasoning_summary_text.done", with(&at, json!({"text": text})));
                let part = SummaryPart::new(&text);
                self.emit(out, "response.reasoning_summary_part.done", with(&at, json!({"part": part})));
                OutputItem::Reasoning { id, summary: vec![part] }
            }
        };
        self.finish_item(item, out);
    }

    fn finish_item(&mut self, item: OutputItem, out: &mut Vec<u8>) {
        self.emit(out, "response.output_item.done", json!({"output_index": self.index(), "item": item}));
        self.done.push(item);
    }

    /// A call as an item: added empty, its arguments (or raw input) in one delta, then done.
    fn tool_call(&mut self, call: &ToolCall, out: &mut Vec<u8>) {
        self.close(out);
        let item = call_item(call, &self.echo.freeform, "completed");
        let (id, body, (delta, done), key) = match &item {
            OutputItem::FunctionCall { id, arguments, .. } => {
                (id.clone(), arguments.clone(), ARGUMENTS, "arguments")
            }
            OutputItem::CustomToolCall { id, input, .. } => (id.clone(), input.clone(), INPUT, "input"),
            _ => return,
        };
        let mut added = json!(item);
        added["status"] = json!("in_progress");
        added[key] = json!("");
        self.text_tokens += estimate_tokens(&body);
        let index = self.index();
        self.emit(out, "response.output_item.added", json!({"output_index": index, "item": added}));
        let at = json!({"item_id": id, "output_index": index});
        self.emit(out, delta, with(&at, json!({"delta": body})));
        self.emit(out, done, with(&at, json!({ key: body, "name": call.name })));
        self.finish_item(item, out);
    }

    fn completed(&mut self, finish: Finish, out: &mut Vec<u8>) {
        self.close(out);
        let status = if finish == Finish::Length { "incomplete" } else { "completed" };
        let mut response = self.echo.response(status, &self.done);
        response.usage = Some(usage(self.echo.prompt_tokens, self.text_tokens, self.reasoning_tokens));
        if finish == Finish::Length {
            response.incomplete_details = Some(json!({"reason": "max_output_tokens"}));
        }
        let kind = if finish == Finish::Length { "response.incomplete" } else { "response.completed" };
        let response = json!(response);
        self.emit(out, kind, json!({"response": response}));
    }
}

/// `base` with the fields of `extra` added.
fn with(base: &Value, extra: Value) -> Value {
    let mut merged = base.clone();
    for (key, value) in extra.as_object().into_iter().flatten() {
        merged[key] = value.clone();
    }
    merged
}

impl StreamRenderer for Stream {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        // The response starts with its first content: a refusal before any (a model the plan
        // does not include, a conversation too long) is still an error status, not a 200.
        if !matches!(
            event,
            Event::ConversationId(_) | Event::Citation { .. } | Event::Heartbeat | Event::ToolsOffered(_)
        ) {
            self.start(out);
        }
        match event {
            Event::Text(text) => {
                self.text_tokens += estimate_tokens(&text);
                self.text(&text, out);
            }
            Event::Thinking(text) => {
                self.reasoning_tokens += estimate_tokens(&text);
                self.thinking(&text, out);
            }
            Event::ToolCall(call) => self.tool_call(&call, out),
            Event::Finish(finish) => self.completed(finish, out),
            // Citations reach this renderer as text (see `chat::CitationText`).
            Event::ConversationId(_) | Event::Citation { .. } | Event::Heartbeat | Event::ToolsOffered(_) => {
            }
        }
    }

    /// `error`, then `response.failed`: the stream never ends as if it had completed.
    fn error(&mut self, error: &chat::Error, out: &mut Vec<u8>) {
        self.start(out);
        let (_, body) = error_response(error);
        let detail: Value = serde_json::from_slice::<Value>(&body).unwrap_or_default()["error"].take();
        let code = detail["code"].as_str().unwrap_or("server_error").to_string();
        self.emit(out, "error", json!({"code": code, "message": error.message, "param": null}));
        let mut response = json!(self.echo.response("failed", &self.done));
        response["error"] = json!({"code": response_error_code(error.kind), "message": error.message});
        self.emit(out, "response.failed", json!({"response": response}));
    }
}

/// A failed response's `error.code`, one of the few the document allows (`ResponseErrorCode`);
/// the `error` event before it carries the precise code.
fn response_error_code(kind: chat::ErrorKind) -> &'static str {
    match kind {
        chat::ErrorKind::RateLimited => "rate_limit_exceeded",
        chat::ErrorKind::InvalidRequest | chat::ErrorKind::ContextLength => "invalid_prompt",
        _ => "server_error",
    }
}

/// Renders a whole `response` object.
pub struct Complete {
    echo: Echo,
}

impl Complete {
    pub fn new(request: &ParsedRequest) -> Self {
        Complete { echo: Echo::new(request) }
    }
}

impl Aggregator for Complete {
    fn body(&self, answer: &Answer) -> Vec<u8> {
        let mut output = Vec::new();
        if !answer.thinking.is_empty() {
            output.push(OutputItem::Reasoning {
                id: unique_id("rs_"),
                summary: vec![SummaryPart::new(&answer.thinking)],
            });
        }
        let text = &answer.text;
        if !text.is_empty() || answer.calls.is_empty() {
            let content = match &answer.invalid_output {
                Some(why) => vec![TextPart::refused(why, text)],
                None => vec![TextPart::new(text)],
            };
            output.push(OutputItem::Message {
                id: unique_id("msg_"),
                status: "completed",
                role: "assistant",
                content,
            });
        }
        output.extend(answer.calls.iter().map(|call| call_item(call, &self.echo.freeform, "completed")));
        let counted = |t: &str| if t.is_empty() { 0 } else { estimate_tokens(t) };
        let calls: u64 = answer
            .calls
            .iter()
            .map(|c| estimate_tokens(&Value::Object(c.arguments.clone()).to_string()))
            .sum();
        let status = if answer.finish == Finish::Length { "incomplete" } else { "completed" };
        let mut response = self.echo.response(status, &output);
        response.usage =
            Some(usage(self.echo.prompt_tokens, counted(text) + calls, counted(&answer.thinking)));
        serde_json::to_vec(&response).unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;
