//! Anthropic Messages (`docs/clients.md` §3): request parsing (system blocks, `role: system`
//! messages, images, tool turns, thinking), the `message_start` … `message_stop` event stream,
//! the aggregated message, and errors. What Claude Code sends is the reference.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Aggregator, Lenient, StreamRenderer};
use crate::chat::Answer;
use crate::chat::{
    self, Conversation, ErrorKind, Event, Finish, Message, Mode, Part, Role, ToolCall, ToolChoice,
    ToolResult, estimate_tokens,
};

/// Claude Code's first system block is billing metadata for Anthropic, not a prompt.
const BILLING_HEADER: &str = "x-anthropic-billing-header:";
/// How long a stream may stay silent before a `ping` tells the client Kimi is still working.
const PING_AFTER: std::time::Duration = std::time::Duration::from_secs(10);
/// Signature of the thinking blocks this server issues; clients send it back and it is ignored.
const SIGNATURE: &str = "a2ltaS1mcmVlLWFwaQ==";

pub struct ParsedRequest {
    pub chat: chat::Request,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Body {
    model: Lenient<String>,
    messages: Lenient<Vec<Lenient<RawMessage>>>,
    system: Lenient<Content<TextBlock>>,
    thinking: Lenient<Thinking>,
    stream: Lenient<bool>,
    tools: Lenient<Vec<Lenient<RawTool>>>,
    tool_choice: Lenient<RawToolChoice>,
    output_config: Lenient<OutputConfig>,
}

/// `output_config`: only its `effort` matters here (Claude Code sends `"high"`).
#[derive(Deserialize)]
struct OutputConfig {
    #[serde(default)]
    effort: Lenient<String>,
}

/// A client tool. Anthropic's own server tools carry a `type` (`web_search_…`, `bash_…`)
/// and are not the client's to run: skipped.
#[derive(Deserialize)]
struct RawTool {
    name: String,
    #[serde(default)]
    description: Lenient<String>,
    #[serde(default)]
    input_schema: Value,
    #[serde(default)]
    defer_loading: Lenient<bool>,
    #[serde(default, rename = "type")]
    kind: Lenient<String>,
}

/// Claude Code's stand-in for tools not loaded yet: never shown to the model.
const DEFERRED_PLACEHOLDER: &str = "DeferredToolPlaceholder";

#[derive(Deserialize)]
struct RawToolChoice {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Lenient<String>,
    #[serde(default)]
    disable_parallel_tool_use: Lenient<bool>,
}

/// A message; one that is not an object has no role, and is refused for it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMessage {
    role: Lenient<String>,
    content: Lenient<Content<RawBlock>>,
}

/// A `content` (or `system`) field: a string, or blocks of which those of another shape are
/// skipped.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content<T> {
    Text(String),
    Blocks(Vec<Lenient<T>>),
}

/// A system block: only its text matters.
#[derive(Deserialize)]
struct TextBlock {
    text: String,
}

/// The content blocks that become parts; any other type (echoed `thinking` blocks included)
/// is skipped.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawBlock {
    Text {
        text: String,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
    },
    ToolUse {
        #[serde(default)]
        id: Lenient<String>,
        #[serde(default)]
        name: Lenient<String>,
        /// Whatever the tool takes.
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        #[serde(default)]
        tool_use_id: Lenient<String>,
        #[serde(default)]
        content: Lenient<Content<ResultItem>>,
        #[serde(default)]
        is_error: Lenient<bool>,
    },
}

/// Where an image or a document comes from.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source {
    Base64 {
        #[serde(default)]
        media_type: Lenient<String>,
        data: String,
    },
    Url {
        url: String,
    },
    Text {
        data: String,
    },
}

/// What a tool result holds that the prompt can show.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResultItem {
    Text { text: String },
    ToolReference { tool_name: String },
}

/// The `thinking` types that turn thinking on; `disabled` is another shape.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Thinking {
    Enabled,
    Adaptive,
}

/// Reads the body: a syntax error or a value other than an object is refused (serde alone
/// would read a struct from an array too).
fn read(raw: &[u8]) -> Result<Body, chat::Error> {
    let object = raw.trim_ascii_start().starts_with(b"{");
    match serde_json::from_slice(raw) {
        Ok(body) if object => Ok(body),
        Err(e) if object || !e.is_data() => Err(chat::Error::invalid(format!("invalid JSON body: {e}"))),
        _ => Err(chat::Error::invalid("the body must be a JSON object")),
    }
}

/// Parses a `POST /v1/messages` (or `count_tokens`) body.
pub fn parse(body: &[u8]) -> Result<ParsedRequest, chat::Error> {
    let body = read(body)?;
    let model = body
        .model
        .ok()
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| chat::Error::invalid("model: field required"))?;
    let raw_messages = body
        .messages
        .ok()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| chat::Error::invalid("messages: a non-empty array is required"))?;
    let mut messages = Vec::new();
    let system = body.system.ok().map(system_text).unwrap_or_default();
    if !system.is_empty() {
        messages.push(Message::text(Role::System, system));
    }
    let mut loaded = Vec::new();
    for (index, raw) in raw_messages.into_iter().enumerate() {
        messages.push(message(index, raw.ok().unwrap_or_default(), &mut loaded)?);
    }
    let mut mode = Mode::from_model_name(&model);
    mode.thinking |= body.thinking.ok().is_some();
    // `max` is the top effort; `high` (Claude Code's) and lower leave the effort to the model.
    if body.output_config.ok().and_then(|c| c.effort.ok()).is_some_and(|e| e == "max") {
        mode.thinking = true;
        mode.max_effort = true;
    }
    let stream = body.stream.ok().unwrap_or(false);
    let choice = body.tool_choice.ok();
    let parallel_tool_calls =
        !choice.as_ref().is_some_and(|c| matches!(c.disable_parallel_tool_use, Lenient::Expected(true)));
    let tools =
        body.tools.ok().unwrap_or_default().into_iter().filter_map(|t| tool(t.ok()?, &loaded)).collect();
    Ok(ParsedRequest {
        chat: chat::Request {
            model,
            mode,
            messages,
            conversation: Conversation::Ephemeral,
            stream,
            tools,
            tool_choice: choice.map_or(ToolChoice::Auto, tool_choice),
            parallel_tool_calls,
            // Anthropic has no response format: a forced tool whose input is the schema is its
            // structured output, and the tool layer serves it (`docs/clients.md`).
            output: chat::Output::Text,
            tool_prompt: None,
        },
    })
}

/// A client tool; a deferred one (tool search) stays deferred until a `tool_reference` in the
/// history has loaded it.
fn tool(raw: RawTool, loaded: &[String]) -> Option<chat::Tool> {
    let kind = raw.kind.ok().unwrap_or_default();
    if !(kind.is_empty() || kind == "custom") || raw.name == DEFERRED_PLACEHOLDER {
        return None;
    }
    let deferred = raw.defer_loading.ok() == Some(true) && !loaded.contains(&raw.name);
    Some(chat::Tool {
        description: raw.description.ok().unwrap_or_default(),
        parameters: raw.input_schema,
        deferred,
        freeform: false,
        name: raw.name,
    })
}

/// `auto`, `any` (some tool must be called), `tool` (that one), `none`.
fn tool_choice(choice: RawToolChoice) -> ToolChoice {
    match choice.kind.as_str() {
        "none" => ToolChoice::None,
        "any" => ToolChoice::Required,
        "tool" => choice.name.ok().map_or(ToolChoice::Required, ToolChoice::Named),
        _ => ToolChoice::Auto,
    }
}

fn message(index: usize, raw: RawMessage, loaded: &mut Vec<String>) -> Result<Message, chat::Error> {
    let role = match raw.role.ok().as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system") => Role::System,
        other => {
            return Err(chat::Error::invalid(format!("messages.{index}.role: unexpected value {other:?}")));
        }
    };
    let parts = match raw.content.ok() {
        Some(Content::Text(text)) => vec![Part::Text(text)],
        Some(Content::Blocks(blocks)) => {
            blocks.into_iter().filter_map(|b| b.ok().map(|b| b.part(loaded))).collect()
        }
        None => {
            return Err(chat::Error::invalid(format!(
                "messages.{index}.content: a string or blocks are required"
            )));
        }
    };
    Ok(Message { role, parts })
}

/// The system prompt, from a string or text blocks, without Claude Code's billing block.
fn system_text(system: Content<TextBlock>) -> String {
    match system {
        Content::Text(text) => text,
        Content::Blocks(blocks) => {
            let texts: Vec<String> = blocks
                .into_iter()
                .filter_map(|b| b.ok().map(|b| b.text))
                .filter(|t| !t.starts_with(BILLING_HEADER))
                .collect();
            texts.join("\n")
        }
    }
}

impl RawBlock {
    /// The block as a neutral part; the names of tools a `tool_reference` loaded are noted.
    fn part(self, loaded: &mut Vec<String>) -> Part {
        match self {
            RawBlock::Text { text } => Part::Text(text),
            RawBlock::Image { source } => source.part(Part::Image),
            RawBlock::Document { source } => source.part(Part::File),
            RawBlock::ToolUse { id, name, input } => Part::ToolCall(ToolCall {
                id: id.ok().unwrap_or_default(),
                name: name.ok().unwrap_or_default(),
                arguments: match input {
                    Value::Object(map) => map,
                    other => super::arguments_of(&other.to_string()),
                },
            }),
            RawBlock::ToolResult { tool_use_id, content, is_error } => Part::ToolResult(ToolResult {
                call_id: tool_use_id.ok().unwrap_or_default(),
                name: String::new(),
                content: content.ok().map(|c| tool_result_text(c, loaded)).unwrap_or_default(),
                is_error: is_error.ok() == Some(true),
            }),
        }
    }
}

impl Source {
    /// The source as `attachment` (an image or a file), but a text source as text.
    fn part(self, attachment: fn(String) -> Part) -> Part {
        match self {
            Source::Base64 { media_type, data } => {
                let media = media_type.ok().unwrap_or_else(|| "application/octet-stream".to_string());
                attachment(format!("data:{media};base64,{data}"))
            }
            Source::Url { url } => attachment(url),
            Source::Text { data } => Part::Text(data),
        }
    }
}

/// A tool result's text; a `tool_reference` (tool search) reads "Loaded tool: NAME".
fn tool_result_text(content: Content<ResultItem>, loaded: &mut Vec<String>) -> String {
    match content {
        Content::Text(text) => text,
        Content::Blocks(items) => {
            let texts: Vec<String> = items
                .into_iter()
                .filter_map(|item| match item.ok()? {
                    ResultItem::Text { text } => Some(text),
                    ResultItem::ToolReference { tool_name } => {
                        let text = format!("Loaded tool: {tool_name}");
                        loaded.push(tool_name);
                        Some(text)
                    }
                })
                .collect();
            texts.join("\n")
        }
    }
}

#[derive(Serialize)]
struct TokenCount {
    input_tokens: u64,
}

/// `count_tokens`: `{"input_tokens": N}`.
pub fn count_tokens(request: &ParsedRequest) -> Vec<u8> {
    serde_json::to_vec(&TokenCount { input_tokens: request.chat.estimated_prompt_tokens() })
        .unwrap_or_default()
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: Cow<'a, str>,
}

impl<'a> From<&'a chat::Error> for ErrorDetail<'a> {
    fn from(error: &'a chat::Error) -> Self {
        let message = match error.kind {
            // Claude Code compacts the conversation when the message starts so.
            ErrorKind::ContextLength => Cow::Owned(format!("prompt is too long: {}", error.message)),
            _ => Cow::Borrowed(error.message.as_str()),
        };
        ErrorDetail { kind: error_kind(error.kind).1, message }
    }
}

/// The Anthropic error body and status; a busy Kimi is `529 overloaded_error`, never a 401
/// (Claude Code retries 401s for minutes).
pub fn error_response(error: &chat::Error) -> (u16, Vec<u8>) {
    let body = StreamEvent::Error { error: error.into() };
    (error_kind(error.kind).0, serde_json::to_vec(&body).unwrap_or_default())
}

fn error_kind(kind: ErrorKind) -> (u16, &'static str) {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed | ErrorKind::ContextLength => {
            (kind.status(), "invalid_request_error")
        }
        ErrorKind::RequestTimeout => (408, "timeout_error"),
        ErrorKind::Authentication => (401, "authentication_error"),
        ErrorKind::NotFound => (404, "not_found_error"),
        ErrorKind::PayloadTooLarge => (413, "request_too_large"),
        ErrorKind::RateLimited => (429, "rate_limit_error"),
        ErrorKind::Overloaded => (529, "overloaded_error"),
        ErrorKind::Upstream | ErrorKind::Timeout | ErrorKind::Internal => (kind.status(), "api_error"),
    }
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
    }
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

impl Usage {
    fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage { input_tokens, output_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
    }
}

/// A message: the aggregated answer, or the empty one `message_start` announces.
#[derive(Serialize)]
#[serde(tag = "type", rename = "message")]
struct MessageObject<'a> {
    id: &'a str,
    role: &'static str,
    model: &'a str,
    content: &'a [ContentBlock<'a>],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock<'a> {
    Thinking { thinking: &'a str, signature: &'a str },
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: &'a Map<String, Value> },
}

/// A `content_block_delta`'s delta: `thinking_delta`, `signature_delta` or `text_delta`.
#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct MessageDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

/// One event of the stream (`docs/clients.md` §3.2); its `type` is also its `event:` name. `Error` is also the
/// body of an error response.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent<'a> {
    MessageStart { message: MessageObject<'a> },
    Ping,
    ContentBlockStart { index: usize, content_block: ContentBlock<'a> },
    ContentBlockDelta { index: usize, delta: Delta<'a> },
    ContentBlockStop { index: usize },
    MessageDelta { delta: MessageDelta, usage: OutputUsage },
    MessageStop,
    Error { error: ErrorDetail<'a> },
}

impl StreamEvent<'_> {
    /// The `event:` name: the `type` serde writes in the data.
    fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::Ping => "ping",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// Which content block is open in the stream.
#[derive(Clone, Copy, PartialEq)]
enum Block {
    None,
    Thinking,
    Text,
}

/// Appends one event with its `event:` line.
fn write(out: &mut Vec<u8>, event: &StreamEvent<'_>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.name().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing these plain structs cannot fail.
    let _ = serde_json::to_writer(&mut *out, event);
    out.extend_from_slice(b"\n\n");
}

/// Streams the events of `docs/clients.md` §3.2, each with its `event:` line: `message_start` and a `ping`,
/// a thinking block (closed by a `signature_delta`), a text block, `message_delta` with the
/// stop reason and usage, `message_stop`.
pub struct Stream {
    id: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    started: bool,
    open: Block,
    index: usize,
    /// When the stream last carried something.
    last_output: std::time::Instant,
}

impl Stream {
    pub fn new(request: &ParsedRequest) -> Self {
        Stream {
            id: super::unique_id("msg_"),
            model: request.chat.model.clone(),
            input_tokens: request.chat.estimated_prompt_tokens(),
            output_tokens: 0,
            started: false,
            open: Block::None,
            index: 0,
            last_output: std::time::Instant::now(),
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = MessageObject {
            id: &self.id,
            role: "assistant",
            model: &self.model,
            content: &[],
            stop_reason: None,
            stop_sequence: None,
            usage: Usage::new(self.input_tokens, 1),
        };
        write(out, &StreamEvent::MessageStart { message });
        write(out, &StreamEvent::Ping);
    }

    /// Makes `block` the open block, closing the previous one.
    fn open(&mut self, block: Block, out: &mut Vec<u8>) {
        if self.open == block {
            return;
        }
        self.close(out);
        let content_block = match block {
            Block::Thinking => ContentBlock::Thinking { thinking: "", signature: "" },
            _ => ContentBlock::Text { text: "" },
        };
        write(out, &StreamEvent::ContentBlockStart { index: self.index, content_block });
        self.open = block;
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open == Block::None {
            return;
        }
        if self.open == Block::Thinking {
            let delta = Delta::Signature { signature: SIGNATURE };
            write(out, &StreamEvent::ContentBlockDelta { index: self.index, delta });
        }
        write(out, &StreamEvent::ContentBlockStop { index: self.index });
        self.open = Block::None;
        self.index += 1;
    }

    fn delta(&mut self, block: Block, text: &str, out: &mut Vec<u8>) {
        self.start(out);
        self.open(block, out);
        self.output_tokens += estimate_tokens(text);
        let delta = match block {
            Block::Thinking => Delta::Thinking { thinking: text },
            _ => Delta::Text { text },
        };
        write(out, &StreamEvent::ContentBlockDelta { index: self.index, delta });
    }

    /// A `tool_use` block: started with an empty input, the input as one `input_json_delta`.
    fn tool_use(&mut self, call: &ToolCall, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let (id, empty) = (super::unique_id("toolu_"), Map::new());
        let content_block = ContentBlock::ToolUse { id: &id, name: &call.name, input: &empty };
        write(out, &StreamEvent::ContentBlockStart { index: self.index, content_block });
        let json = Value::Object(call.arguments.clone()).to_string();
        self.output_tokens += estimate_tokens(&json);
        let delta = Delta::InputJson { partial_json: &json };
        write(out, &StreamEvent::ContentBlockDelta { index: self.index, delta });
        write(out, &StreamEvent::ContentBlockStop { index: self.index });
        self.index += 1;
    }

    fn finish(&mut self, finish: Finish, out: &mut Vec<u8>) {
        self.start(out);
        if self.index == 0 && self.open == Block::None {
            // Clients expect at least one content block.
            self.open(Block::Text, out);
        }
        self.close(out);
        let delta = MessageDelta { stop_reason: stop_reason(finish), stop_sequence: None };
        let usage = OutputUsage { output_tokens: self.output_tokens.max(1) };
        write(out, &StreamEvent::MessageDelta { delta, usage });
        write(out, &StreamEvent::MessageStop);
    }
}

impl StreamRenderer for Stream {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        let before = out.len();
        match event {
            Event::Text(text) => self.delta(Block::Text, &text, out),
            Event::Thinking(text) => self.delta(Block::Thinking, &text, out),
            Event::Heartbeat if self.started && self.last_output.elapsed() >= PING_AFTER => {
                write(out, &StreamEvent::Ping)
            }
            Event::Finish(finish) => self.finish(finish, out),
            Event::ToolCall(call) => self.tool_use(&call, out),
            Event::ConversationId(_) | Event::Citation { .. } | Event::Heartbeat | Event::ToolsOffered(_) => {
            }
        }
        if out.len() > before {
            self.last_output = std::time::Instant::now();
        }
    }

    fn error(&mut self, error: &chat::Error, out: &mut Vec<u8>) {
        write(out, &StreamEvent::Error { error: error.into() });
    }
}

/// Renders a whole message: a thinking block (if any) and a text block.
pub struct Complete {
    model: String,
    input_tokens: u64,
}

impl Complete {
    pub fn new(request: &ParsedRequest) -> Self {
        Complete { model: request.chat.model.clone(), input_tokens: request.chat.estimated_prompt_tokens() }
    }
}

impl Aggregator for Complete {
    fn body(&self, answer: &Answer) -> Vec<u8> {
        let ids: Vec<String> = answer.calls.iter().map(|_| super::unique_id("toolu_")).collect();
        let mut content = Vec::with_capacity(2 + ids.len());
        if !answer.thinking.is_empty() {
            content.push(ContentBlock::Thinking { thinking: &answer.thinking, signature: SIGNATURE });
        }
        if !answer.text.is_empty() || answer.calls.is_empty() {
            content.push(ContentBlock::Text { text: &answer.text });
        }
        for (call, id) in answer.calls.iter().zip(&ids) {
            content.push(ContentBlock::ToolUse { id, name: &call.name, input: &call.arguments });
        }
        let output = estimate_tokens(&answer.text)
            + if answer.thinking.is_empty() { 0 } else { estimate_tokens(&answer.thinking) };
        let id = super::unique_id("msg_");
        let message = MessageObject {
            id: &id,
            role: "assistant",
            model: &self.model,
            content: &content,
            stop_reason: Some(stop_reason(answer.finish)),
            stop_sequence: None,
            usage: Usage::new(self.input_tokens, output),
        };
        serde_json::to_vec(&message).unwrap_or_default()
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "model")]
struct Model<'a> {
    id: &'a str,
    display_name: &'a str,
    created_at: &'static str,
}

impl<'a> Model<'a> {
    fn new(id: &'a str) -> Self {
        Model { id, display_name: id, created_at: "2025-01-01T00:00:00Z" }
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    data: Vec<Model<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

/// `GET /v1/models` in the Anthropic shape: the list, or the model `one` (which may carry
/// Gemini's `models/` prefix, as a path under `/v1/models/` can).
pub fn models(one: Option<&str>, list: &[(String, String)]) -> Vec<u8> {
    let body = match one {
        Some(id) => serde_json::to_vec(&Model::new(id.strip_prefix("models/").unwrap_or(id))),
        None => serde_json::to_vec(&ModelList {
            data: list.iter().map(|(id, _)| Model::new(id)).collect(),
            has_more: false,
            first_id: list.first().map(|m| m.0.as_str()),
            last_id: list.last().map(|m| m.0.as_str()),
        }),
    };
    body.unwrap_or_default()
}

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
