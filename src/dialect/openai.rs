//! OpenAI Chat Completions (`docs/clients.md` §2): request parsing, `chat.completion.chunk`
//! streaming with `reasoning_content` deltas, the aggregated `chat.completion`, and errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Aggregator, Lenient, StreamRenderer, unix_now};
use crate::chat::Answer;
use crate::chat::{
    self, Conversation, ErrorKind, Event, Finish, Message, Mode, Part, Role, ToolCall, ToolChoice,
    ToolResult, estimate_tokens,
};

#[derive(Deserialize)]
struct Body {
    model: Option<String>,
    messages: Option<Vec<RawMessage>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// The original project's native multi-turn: `"none"` keeps the new chat, an id continues one.
    #[serde(default)]
    conversation_id: Option<String>,
    /// The original project's switch, same as a `search` model.
    #[serde(default)]
    use_search: Option<bool>,
    #[serde(default)]
    tools: Vec<RawTool>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    /// `none` … `xhigh`: thinking, and with `xhigh` the model's top effort.
    #[serde(default)]
    reasoning_effort: Lenient<String>,
    /// `{"type": "json_object"}` or `{"type": "json_schema", "json_schema": {name, schema, strict}}`.
    #[serde(default)]
    response_format: Value,
}

/// `{"type": "function", "function": {...}}`; other tool types are not functions and are skipped.
#[derive(Deserialize)]
struct RawTool {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    function: Option<RawFunctionDef>,
}

#[derive(Deserialize)]
struct RawFunctionDef {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parameters: Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct RawMessage {
    role: String,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    tool_calls: Vec<RawToolCall>,
    /// `role: tool`: the call it answers.
    #[serde(default)]
    tool_call_id: String,
    /// `role: function` (the older form): the function's name.
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct RawToolCall {
    #[serde(default)]
    id: String,
    #[serde(default)]
    function: RawFunction,
}

#[derive(Deserialize, Default)]
struct RawFunction {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

/// A parsed OpenAI request: the neutral request plus what only the OpenAI renderer needs.
pub struct ParsedRequest {
    pub chat: chat::Request,
    pub include_usage: bool,
}

/// Parses a `POST /v1/chat/completions` body.
pub fn parse(body: &[u8]) -> Result<ParsedRequest, chat::Error> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| chat::Error::invalid(format!("invalid JSON body: {e}")))?;
    let model = body
        .model
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| chat::Error::invalid("`model` is required"))?;
    let raw_messages = body.messages.unwrap_or_default();
    if raw_messages.is_empty() {
        return Err(chat::Error::invalid("`messages` must be a non-empty array"));
    }
    let messages =
        raw_messages.into_iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<_, _>>()?;
    let mut mode = Mode::from_model_name(&model);
    mode.search |= body.use_search.unwrap_or(false);
    super::openai_effort(&mut mode, body.reasoning_effort.ok().as_deref());
    let conversation = match body.conversation_id.as_deref().map(str::trim) {
        None | Some("") => Conversation::Ephemeral,
        Some(id) if id.eq_ignore_ascii_case("none") => Conversation::Keep,
        Some(id) => Conversation::Continue(id.to_string()),
    };
    Ok(ParsedRequest {
        include_usage: body.stream_options.is_some_and(|o| o.include_usage),
        chat: chat::Request {
            model,
            mode,
            messages,
            conversation,
            stream: body.stream.unwrap_or(false),
            tools: body.tools.into_iter().filter_map(tool).collect(),
            tool_choice: tool_choice(body.tool_choice.as_ref()),
            parallel_tool_calls: body.parallel_tool_calls.unwrap_or(true),
            output: super::openai_output(&body.response_format, &body.response_format["json_schema"]),
            tool_prompt: None,
        },
    })
}

fn tool(raw: RawTool) -> Option<chat::Tool> {
    let function = raw.function.filter(|_| raw.kind.is_empty() || raw.kind == "function")?;
    Some(chat::Tool {
        name: function.name,
        description: function.description,
        parameters: function.parameters,
        deferred: false,
        freeform: false,
    })
}

/// `"auto" | "none" | "required"` or `{"type": "function", "function": {"name": ...}}`.
fn tool_choice(value: Option<&Value>) -> ToolChoice {
    match value {
        Some(Value::String(choice)) if choice == "none" => ToolChoice::None,
        Some(Value::String(choice)) if choice == "required" => ToolChoice::Required,
        Some(Value::Object(choice)) => {
            match choice.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
                Some(name) => ToolChoice::Named(name.to_string()),
                None => ToolChoice::Auto,
            }
        }
        _ => ToolChoice::Auto,
    }
}

fn message(index: usize, raw: RawMessage) -> Result<Message, chat::Error> {
    let role = match raw.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "function" => Role::Tool,
        other => {
            return Err(chat::Error::invalid(format!(
                "messages[{index}].role {other:?} is not a known role"
            )));
        }
    };
    let mut parts = match raw.content {
        Value::Null => Vec::new(),
        Value::String(text) => vec![Part::Text(text)],
        Value::Array(items) => items.iter().filter_map(content_part).collect(),
        _ => {
            return Err(chat::Error::invalid(format!(
                "messages[{index}].content must be a string or an array"
            )));
        }
    };
    for call in raw.tool_calls {
        let arguments = super::arguments_of(&call.function.arguments);
        parts.push(Part::ToolCall(ToolCall { id: call.id, name: call.function.name, arguments }));
    }
    if role == Role::Tool {
        let content = chat::text_of(&parts);
        let result = ToolResult { call_id: raw.tool_call_id, name: raw.name, content, is_error: false };
        parts = vec![Part::ToolResult(result)];
    }
    Ok(Message { role, parts })
}

/// One content part; unknown part types are skipped, not rejected.
fn content_part(item: &Value) -> Option<Part> {
    let url_of = |v: &Value| match v {
        Value::String(url) => Some(url.clone()),
        other => other.get("url").and_then(Value::as_str).map(str::to_string),
    };
    match item.get("type").and_then(Value::as_str)? {
        "text" | "input_text" => Some(Part::Text(item.get("text")?.as_str()?.to_string())),
        "image_url" => url_of(item.get("image_url")?).map(Part::Image),
        "file" => {
            let file = item.get("file_url").or_else(|| item.get("file"))?;
            url_of(file)
                .or_else(|| file.get("file_data").and_then(Value::as_str).map(str::to_string))
                .map(Part::File)
        }
        _ => None,
    }
}

/// The OpenAI error body and status for a failure.
pub fn error_response(error: &chat::Error) -> (u16, Vec<u8>) {
    (error.kind.status(), serde_json::to_vec(&ErrorBody::from(error)).unwrap_or_default())
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: &'static str,
}

impl<'a> From<&'a chat::Error> for ErrorBody<'a> {
    fn from(error: &'a chat::Error) -> Self {
        let (kind, code) = match error.kind {
            ErrorKind::InvalidRequest => ("invalid_request_error", "invalid_request"),
            ErrorKind::ContextLength => ("invalid_request_error", "context_length_exceeded"),
            ErrorKind::Authentication => ("authentication_error", "invalid_api_key"),
            ErrorKind::NotFound => ("invalid_request_error", "not_found"),
            ErrorKind::MethodNotAllowed => ("invalid_request_error", "method_not_allowed"),
            ErrorKind::PayloadTooLarge => ("invalid_request_error", "request_too_large"),
            ErrorKind::RateLimited => ("rate_limit_exceeded", "rate_limit_exceeded"),
            ErrorKind::Overloaded => ("server_error", "overloaded"),
            ErrorKind::Upstream => ("server_error", "upstream_error"),
            ErrorKind::Timeout => ("server_error", "upstream_timeout"),
            ErrorKind::Internal => ("server_error", "internal_error"),
            ErrorKind::RequestTimeout => ("invalid_request_error", "request_timeout"),
        };
        ErrorBody { error: ErrorDetail { message: &error.message, kind, param: None, code } }
    }
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
    }
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    completion_tokens_details: UsageDetails,
}

#[derive(Serialize)]
struct UsageDetails {
    reasoning_tokens: u64,
}

/// Counts what the answer held, for an honest usage estimate.
#[derive(Default)]
struct Counter {
    text: u64,
    reasoning: u64,
}

impl Counter {
    fn usage(&self, prompt_tokens: u64) -> Usage {
        let completion = (self.text + self.reasoning).max(1);
        Usage {
            prompt_tokens,
            completion_tokens: completion,
            total_tokens: prompt_tokens + completion,
            completion_tokens_details: UsageDetails { reasoning_tokens: self.reasoning },
        }
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[CallDelta<'a>; 1]>,
}

/// A piece of a streamed tool call: the first carries the id and name, the next the arguments.
#[derive(Serialize)]
struct CallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Streams `chat.completion.chunk`s: a role chunk, content and reasoning deltas, a finish
/// chunk, the usage chunk when asked for, and `[DONE]`.
pub struct Stream {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    prompt_tokens: u64,
    started: bool,
    counter: Counter,
    /// Tool calls streamed so far (the next one's `index`).
    calls: u32,
}

impl Stream {
    pub fn new(request: &ParsedRequest) -> Self {
        Stream {
            id: super::unique_id("chatcmpl-"),
            model: request.chat.model.clone(),
            created: unix_now(),
            include_usage: request.include_usage,
            prompt_tokens: request.chat.estimated_prompt_tokens(),
            started: false,
            counter: Counter::default(),
            calls: 0,
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish: Option<&'static str>) {
        let choices = [ChunkChoice { index: 0, delta, logprobs: None, finish_reason: finish }];
        self.write(out, &choices, None);
    }

    fn write(&self, out: &mut Vec<u8>, choices: &[ChunkChoice<'_>], usage: Option<Usage>) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        out.extend_from_slice(b"data: ");
        // Serializing these plain structs cannot fail.
        let _ = serde_json::to_writer(&mut *out, &chunk);
        out.extend_from_slice(b"\n\n");
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.chunk(out, Delta { role: Some("assistant"), content: Some(""), ..Delta::default() }, None);
        }
    }
}

impl Stream {
    /// A call in two chunks: id and name with empty arguments, then the arguments.
    fn tool_call(&mut self, call: &ToolCall, out: &mut Vec<u8>) {
        self.start(out);
        let (index, id, arguments) =
            (self.calls, super::unique_id("call_"), Value::Object(call.arguments.clone()));
        let arguments = arguments.to_string();
        self.calls += 1;
        self.counter.text += estimate_tokens(&arguments);
        let head = CallDelta {
            index,
            id: Some(&id),
            kind: Some("function"),
            function: FunctionDelta { name: Some(&call.name), arguments: "" },
        };
        self.chunk(out, Delta { tool_calls: Some([head]), ..Delta::default() }, None);
        let body = CallDelta {
            index,
            id: None,
            kind: None,
            function: FunctionDelta { name: None, arguments: &arguments },
        };
        self.chunk(out, Delta { tool_calls: Some([body]), ..Delta::default() }, None);
    }
}

impl StreamRenderer for Stream {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        match event {
            Event::ConversationId(id) => self.id = id,
            Event::Text(text) => {
                self.start(out);
                self.counter.text += estimate_tokens(&text);
                self.chunk(out, Delta { content: Some(&text), ..Delta::default() }, None);
            }
            Event::Thinking(text) => {
                self.start(out);
                self.counter.reasoning += estimate_tokens(&text);
                self.chunk(out, Delta { reasoning_content: Some(&text), ..Delta::default() }, None);
            }
            Event::ToolCall(call) => self.tool_call(&call, out),
            // Citations reach this renderer as text (see `chat::CitationText`).
            Event::Citation { .. } | Event::Heartbeat | Event::ToolsOffered(_) => {}
            Event::Finish(finish) => {
                self.start(out);
                self.chunk(out, Delta::default(), Some(finish_reason(finish)));
                if self.include_usage {
                    self.write(out, &[], Some(self.counter.usage(self.prompt_tokens)));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
        }
    }

    fn error(&mut self, error: &chat::Error, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: ");
        let _ = serde_json::to_writer(&mut *out, &ErrorBody::from(error));
        out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    }
}

/// Renders a whole `chat.completion`.
pub struct Complete {
    model: String,
    prompt_tokens: u64,
}

impl Complete {
    pub fn new(request: &ParsedRequest) -> Self {
        Complete { model: request.chat.model.clone(), prompt_tokens: request.chat.estimated_prompt_tokens() }
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    /// Null when the answer is only tool calls, as OpenAI sends it.
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<MessageCall<'a>>,
}

#[derive(Serialize)]
struct MessageCall<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: MessageFunction<'a>,
}

#[derive(Serialize)]
struct MessageFunction<'a> {
    name: &'a str,
    arguments: String,
}

fn message_call(call: &ToolCall) -> MessageCall<'_> {
    MessageCall {
        id: super::unique_id("call_"),
        kind: "function",
        function: MessageFunction {
            name: &call.name,
            arguments: Value::Object(call.arguments.clone()).to_string(),
        },
    }
}

impl Aggregator for Complete {
    fn body(&self, answer: &Answer) -> Vec<u8> {
        let counter = Counter {
            text: if answer.text.is_empty() { 0 } else { estimate_tokens(&answer.text) },
            reasoning: if answer.thinking.is_empty() { 0 } else { estimate_tokens(&answer.thinking) },
        };
        let fallback_id = super::unique_id("chatcmpl-");
        let completion = Completion {
            id: answer.conversation_id.as_deref().unwrap_or(&fallback_id),
            object: "chat.completion",
            created: unix_now(),
            model: &self.model,
            choices: [Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: (!answer.text.is_empty() || answer.calls.is_empty())
                        .then_some(answer.text.as_str()),
                    // Structured output that failed its check: the text as it is, and why. The
                    // SDKs' `parse()` then gives `parsed: None` rather than raising.
                    refusal: answer.invalid_output.as_deref(),
                    reasoning_content: (!answer.thinking.is_empty()).then_some(answer.thinking.as_str()),
                    tool_calls: answer.calls.iter().map(message_call).collect(),
                },
                logprobs: None,
                finish_reason: finish_reason(answer.finish),
            }],
            usage: counter.usage(self.prompt_tokens),
        };
        serde_json::to_vec(&completion).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    description: &'a str,
}

impl<'a> Model<'a> {
    fn new(id: &'a str, description: &'a str) -> Self {
        Model { id, object: "model", created: 1_700_000_000, owned_by: "kimi-free-api", description }
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

/// `GET /v1/models` in the OpenAI shape: the list, or the model `one` (which may carry
/// Gemini's `models/` prefix, as a path under `/v1/models/` can).
pub fn models(one: Option<&str>, list: &[(String, String)]) -> Vec<u8> {
    let body = match one {
        Some(id) => {
            let id = id.strip_prefix("models/").unwrap_or(id);
            let description = chat::model_description(list, id);
            serde_json::to_vec(&Model::new(id, description))
        }
        None => {
            let data = list.iter().map(|(id, description)| Model::new(id, description)).collect();
            serde_json::to_vec(&ModelList { object: "list", data })
        }
    };
    body.unwrap_or_default()
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
