//! Google Gemini `generateContent` (`docs/clients.md` §4): camelCase and snake_case requests,
//! `streamGenerateContent` as `data: …\r\n\r\n` SSE (`alt=sse`) or a JSON array, thought parts
//! when asked for, JSON mode, `countTokens`, models and errors.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Aggregator, Lenient, StreamRenderer};
use crate::chat::Answer;
use crate::chat::{
    self, Conversation, ErrorKind, Event, Finish, Message, Mode, Part, Role, ToolCall, ToolChoice,
    ToolResult, estimate_tokens,
};

pub struct ParsedRequest {
    pub chat: chat::Request,
    /// Send `thought: true` parts (`thinkingConfig.includeThoughts`).
    pub include_thoughts: bool,
    /// `alt=sse` framing rather than a JSON array.
    pub sse: bool,
}

/// A `GenerateContentRequest`; every field also under its snake_case name.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Body {
    /// countTokens may wrap the request: `{"generateContentRequest": {...}}`.
    #[serde(alias = "generate_content_request")]
    generate_content_request: Option<Lenient<Box<Body>>>,
    contents: Lenient<Vec<Lenient<RawContent>>>,
    #[serde(alias = "system_instruction")]
    system_instruction: Lenient<RawContent>,
    #[serde(alias = "generation_config")]
    generation_config: Lenient<GenerationConfig>,
    tools: Lenient<Vec<Lenient<RawTool>>>,
    #[serde(alias = "tool_config")]
    tool_config: Lenient<ToolConfig>,
}

/// A `Tool`: only its function declarations are the client's (search and code execution are
/// Google's own tools).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawTool {
    #[serde(alias = "function_declarations")]
    function_declarations: Lenient<Vec<Lenient<FunctionDeclaration>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration {
    name: String,
    #[serde(default)]
    description: Lenient<String>,
    /// A JSON Schema (Gemini CLI) or an OpenAPI-style schema.
    #[serde(default, alias = "parameters_json_schema")]
    parameters_json_schema: Option<Value>,
    #[serde(default)]
    parameters: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ToolConfig {
    #[serde(alias = "function_calling_config")]
    function_calling_config: Lenient<FunctionCallingConfig>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct FunctionCallingConfig {
    mode: Lenient<String>,
    #[serde(alias = "allowed_function_names")]
    allowed_function_names: Lenient<Vec<String>>,
}

/// A content; one that is not an object is a user turn with nothing in it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContent {
    role: Lenient<String>,
    parts: Lenient<Vec<Lenient<RawPart>>>,
}

/// A part: the first of its fields that is set says what it is. A field set to something
/// malformed still claims the part (which is then skipped, or for a call, nameless).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawPart {
    thought: Lenient<bool>,
    text: Lenient<String>,
    #[serde(alias = "inline_data")]
    inline_data: Option<Lenient<Blob>>,
    #[serde(alias = "file_data")]
    file_data: Option<Lenient<FileData>>,
    #[serde(alias = "function_call")]
    function_call: Option<Lenient<FunctionCall>>,
    #[serde(alias = "function_response")]
    function_response: Option<Lenient<FunctionResponse>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Blob {
    #[serde(default, alias = "mime_type")]
    mime_type: Lenient<String>,
    data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileData {
    #[serde(default, alias = "mime_type")]
    mime_type: Lenient<String>,
    #[serde(alias = "file_uri")]
    file_uri: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FunctionCall {
    id: Lenient<String>,
    name: Lenient<String>,
    /// Whatever the function takes.
    args: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FunctionResponse {
    id: Lenient<String>,
    name: Lenient<String>,
    /// Whatever the function returned (Gemini CLI: `{"output": ...}` or `{"error": ...}`).
    response: Value,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(alias = "thinking_config")]
    thinking_config: Lenient<ThinkingConfig>,
    #[serde(alias = "response_mime_type")]
    response_mime_type: Lenient<String>,
    /// The JSON schema an answer in JSON mode must match, shown to the model as it is.
    #[serde(alias = "response_json_schema")]
    response_json_schema: Option<Value>,
    /// The OpenAPI-style schema, used when there is no `responseJsonSchema`.
    #[serde(alias = "response_schema")]
    response_schema: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ThinkingConfig {
    #[serde(alias = "include_thoughts")]
    include_thoughts: Lenient<bool>,
}

/// Reads the body: a syntax error or a value other than an object is refused (serde alone
/// would read a struct from an array too).
fn read(raw: &[u8]) -> Result<Body, chat::Error> {
    let object = raw.trim_ascii_start().starts_with(b"{");
    match serde_json::from_slice(raw) {
        Ok(body) if object => Ok(body),
        Err(e) if object || !e.is_data() => Err(chat::Error::invalid(format!("Invalid JSON payload: {e}"))),
        _ => Err(chat::Error::invalid("Invalid JSON payload: expected an object")),
    }
}

/// Parses a `generateContent` / `streamGenerateContent` / `countTokens` body for `model`.
pub fn parse(model: &str, body: &[u8], stream: bool, sse: bool) -> Result<ParsedRequest, chat::Error> {
    let mut body = read(body)?;
    if let Some(wrapped) = body.generate_content_request {
        // A wrapper that is not a request has no contents.
        body = wrapped.ok().map_or_else(Body::default, |wrapped| *wrapped);
    }
    let contents = body
        .contents
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| chat::Error::invalid("contents is not specified"))?;
    let mut messages = Vec::new();
    let system = parts(body.system_instruction.ok().unwrap_or_default().parts);
    if !system.is_empty() {
        messages.push(Message { role: Role::System, parts: system });
    }
    for (index, content) in contents.into_iter().enumerate() {
        let content = content.ok().unwrap_or_default();
        let role = match content.role.ok().as_deref() {
            None | Some("user") => Role::User,
            Some("model") => Role::Assistant,
            Some(other) => {
                return Err(chat::Error::invalid(format!("contents[{index}].role: unknown role {other:?}")));
            }
        };
        messages.push(Message { role, parts: parts(content.parts) });
    }
    let config = body.generation_config.ok().unwrap_or_default();
    let include_thoughts = config.thinking_config.ok().and_then(|t| t.include_thoughts.ok()) == Some(true);
    let output = output(
        config.response_mime_type.ok().as_deref(),
        config.response_json_schema,
        config.response_schema,
    );
    let model = model.strip_prefix("models/").unwrap_or(model).to_string();
    let mut mode = Mode::from_model_name(&model);
    mode.thinking |= include_thoughts;
    let calling = body.tool_config.ok().and_then(|c| c.function_calling_config.ok()).unwrap_or_default();
    let tools =
        body.tools.ok().unwrap_or_default().into_iter().filter_map(Lenient::ok).flat_map(declarations);
    Ok(ParsedRequest {
        chat: chat::Request {
            model,
            mode,
            messages,
            conversation: Conversation::Ephemeral,
            stream,
            tools: tools.collect(),
            tool_choice: tool_choice(calling),
            parallel_tool_calls: true,
            output,
            tool_prompt: None,
        },
        include_thoughts,
        sse,
    })
}

/// `responseMimeType: application/json`, with `responseJsonSchema` (a JSON Schema) or
/// `responseSchema` (Google's OpenAPI subset, made a JSON Schema).
fn output(mime: Option<&str>, json_schema: Option<Value>, openapi: Option<Value>) -> chat::Output {
    if mime != Some("application/json") {
        return chat::Output::Text;
    }
    let schema = json_schema.or_else(|| openapi.map(json_schema_of)).filter(Value::is_object);
    match schema {
        Some(schema) => chat::Output::JsonSchema { name: String::new(), schema },
        None => chat::Output::Json,
    }
}

/// An OpenAPI-style schema as a JSON Schema: upper-case types (`OBJECT`) in lower case, and
/// `nullable: true` as a `null` type, at every level.
fn json_schema_of(schema: Value) -> Value {
    match schema {
        Value::Object(map) => {
            let nullable = map.get("nullable") == Some(&Value::Bool(true));
            let mut map: Map<String, Value> = map.into_iter().map(|(k, v)| (k, json_schema_of(v))).collect();
            if let Some(Value::String(kind)) = map.get("type") {
                let kind = Value::String(kind.to_ascii_lowercase());
                let kind = if nullable { Value::Array(vec![kind, "null".into()]) } else { kind };
                map.insert("type".into(), kind);
            }
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(json_schema_of).collect()),
        other => other,
    }
}

fn declarations(tool: RawTool) -> impl Iterator<Item = chat::Tool> {
    let declared = tool.function_declarations.ok().unwrap_or_default();
    declared.into_iter().filter_map(Lenient::ok).map(|f| chat::Tool {
        parameters: f.parameters_json_schema.or(f.parameters).unwrap_or_default(),
        description: f.description.ok().unwrap_or_default(),
        name: f.name,
        deferred: false,
        freeform: false,
    })
}

/// `AUTO`, `ANY` (with one allowed name: that function), `NONE`.
fn tool_choice(config: FunctionCallingConfig) -> ToolChoice {
    let allowed = config.allowed_function_names.ok().unwrap_or_default();
    match config.mode.ok().as_deref() {
        Some("NONE") => ToolChoice::None,
        Some("ANY") if allowed.len() == 1 => ToolChoice::Named(allowed[0].clone()),
        Some("ANY") => ToolChoice::Required,
        _ => ToolChoice::Auto,
    }
}

/// The parts of a content (or of a system instruction) as neutral parts; earlier thoughts are
/// dropped.
fn parts(parts: Lenient<Vec<Lenient<RawPart>>>) -> Vec<Part> {
    parts.ok().unwrap_or_default().into_iter().filter_map(|part| part.ok().and_then(RawPart::part)).collect()
}

impl RawPart {
    /// The part as a neutral part; function calls and responses become text.
    fn part(self) -> Option<Part> {
        if self.thought.ok() == Some(true) {
            return None;
        }
        if let Some(text) = self.text.ok() {
            return Some(Part::Text(text));
        }
        if let Some(inline) = self.inline_data {
            let inline = inline.ok()?;
            let mime = inline.mime_type.ok().unwrap_or_else(|| "application/octet-stream".to_string());
            let url = format!("data:{mime};base64,{}", inline.data);
            return Some(attachment(&mime, url));
        }
        if let Some(file) = self.file_data {
            let file = file.ok()?;
            return Some(attachment(&file.mime_type.ok().unwrap_or_default(), file.file_uri));
        }
        if let Some(call) = self.function_call {
            let FunctionCall { id, name, args } = call.ok().unwrap_or_default();
            let arguments = match args {
                Value::Object(map) => map,
                other => super::arguments_of(&other.to_string()),
            };
            let (id, name) = (id.ok().unwrap_or_default(), name.ok().unwrap_or_default());
            return Some(Part::ToolCall(ToolCall { id, name, arguments }));
        }
        let FunctionResponse { id, name, response } = self.function_response?.ok().unwrap_or_default();
        Some(Part::ToolResult(response_result(
            id.ok().unwrap_or_default(),
            name.ok().unwrap_or_default(),
            response,
        )))
    }
}

/// A `functionResponse` as a tool result: Gemini CLI's `{"output": text}` as the text, its
/// `{"error": ...}` as an error, anything else as JSON.
fn response_result(call_id: String, name: String, response: Value) -> ToolResult {
    let (content, is_error) = match response {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("output") => {
            (text_of(map.remove("output")), false)
        }
        Value::Object(mut map) if map.len() == 1 && map.contains_key("error") => {
            (text_of(map.remove("error")), true)
        }
        other => (other.to_string(), false),
    };
    ToolResult { call_id, name, content, is_error }
}

fn text_of(value: Option<Value>) -> String {
    match value {
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// An image or, for any other MIME type, a file.
fn attachment(mime: &str, url: String) -> Part {
    if mime.starts_with("image/") { Part::Image(url) } else { Part::File(url) }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenCount {
    total_tokens: u64,
}

/// `countTokens`: `{"totalTokens": N}`.
pub fn count_tokens(request: &ParsedRequest) -> Vec<u8> {
    serde_json::to_vec(&TokenCount { total_tokens: request.chat.estimated_prompt_tokens() })
        .unwrap_or_default()
}

fn status_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::PayloadTooLarge | ErrorKind::ContextLength => {
            "INVALID_ARGUMENT"
        }
        ErrorKind::Authentication => "UNAUTHENTICATED",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::MethodNotAllowed => "UNIMPLEMENTED",
        ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
        ErrorKind::Overloaded => "UNAVAILABLE",
        ErrorKind::Timeout | ErrorKind::RequestTimeout => "DEADLINE_EXCEEDED",
        ErrorKind::Upstream | ErrorKind::Internal => "INTERNAL",
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    details: &'static [RetryInfo],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetryInfo {
    #[serde(rename = "@type")]
    kind: &'static str,
    retry_delay: &'static str,
}

impl<'a> From<&'a chat::Error> for ErrorBody<'a> {
    fn from(error: &'a chat::Error) -> Self {
        // Gemini CLI waits as long as RetryInfo says before it retries.
        let details: &[RetryInfo] = match error.kind {
            ErrorKind::RateLimited if error.retryable => {
                &[RetryInfo { kind: "type.googleapis.com/google.rpc.RetryInfo", retry_delay: "2s" }]
            }
            _ => &[],
        };
        let status = status_name(error.kind);
        ErrorBody {
            error: ErrorDetail { code: error.kind.status(), message: &error.message, status, details },
        }
    }
}

/// The Gemini error body and status.
pub fn error_response(error: &chat::Error) -> (u16, Vec<u8>) {
    (error.kind.status(), serde_json::to_vec(&ErrorBody::from(error)).unwrap_or_default())
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "STOP",
        Finish::Length => "MAX_TOKENS",
        // Gemini ends a turn of function calls with STOP too.
        Finish::ToolCalls => "STOP",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u64>,
}

/// Token counts for `usageMetadata`.
#[derive(Default)]
struct Counts {
    candidates: u64,
    thoughts: u64,
}

impl Counts {
    fn metadata(&self, prompt: u64) -> UsageMetadata {
        let candidates = self.candidates.max(1);
        UsageMetadata {
            prompt_token_count: prompt,
            candidates_token_count: candidates,
            total_token_count: prompt + candidates + self.thoughts,
            thoughts_token_count: (self.thoughts > 0).then_some(self.thoughts),
        }
    }
}

/// A `GenerateContentResponse`: one increment of a stream, or the whole answer. Only the last
/// increment has `finishReason` and `usageMetadata`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    candidates: [Candidate<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<UsageMetadata>,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_message: Option<&'a str>,
    index: u32,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: &'a [OutPart<'a>],
    role: &'static str,
}

/// A part of an answer: text (or a thought), or a function call with its whole arguments.
#[derive(Serialize)]
#[serde(untagged)]
enum OutPart<'a> {
    Text(TextPart<'a>),
    Call {
        #[serde(rename = "functionCall")]
        function_call: CallOut<'a>,
    },
}

#[derive(Serialize)]
struct CallOut<'a> {
    name: &'a str,
    args: &'a Map<String, Value>,
}

/// A text part; `thought: true` marks reasoning, and is left out of answer parts.
#[derive(Serialize)]
struct TextPart<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    thought: bool,
}

impl<'a> Response<'a> {
    fn new(parts: &'a [OutPart<'a>], model: &'a str, response_id: &'a str) -> Self {
        Response {
            candidates: [Candidate {
                content: Content { parts, role: "model" },
                finish_reason: None,
                finish_message: None,
                index: 0,
            }],
            usage_metadata: None,
            model_version: model,
            response_id,
        }
    }

    /// The last increment (or the whole answer): why it ended, and what the answer used.
    fn finished(mut self, finish: Finish, usage: UsageMetadata) -> Self {
        self.candidates[0].finish_reason = Some(finish_reason(finish));
        self.usage_metadata = Some(usage);
        self
    }
}

/// How increments are framed: `data:` lines (`alt=sse`), or the items of one JSON array.
struct Framing {
    sse: bool,
    started: bool,
}

impl Framing {
    fn write(&mut self, out: &mut Vec<u8>, value: &impl Serialize) {
        // Serializing these plain structs cannot fail.
        if self.sse {
            out.extend_from_slice(b"data: ");
            let _ = serde_json::to_writer(&mut *out, value);
            out.extend_from_slice(b"\r\n\r\n");
        } else {
            out.extend_from_slice(if self.started { b",\r\n" } else { b"[" });
            let _ = serde_json::to_writer(&mut *out, value);
        }
        self.started = true;
    }

    /// Closes the array; SSE has no end marker.
    fn end(&self, out: &mut Vec<u8>) {
        if !self.sse {
            out.push(b']');
        }
    }
}

/// Streams `GenerateContentResponse` increments; the last one carries `finishReason` and
/// `usageMetadata`. With `alt=sse` each is exactly `data: <json>\r\n\r\n` (no `event:`, no
/// comments, no `[DONE]`: Google's parsers reject them); otherwise a JSON array.
pub struct Stream {
    model: String,
    response_id: String,
    include_thoughts: bool,
    framing: Framing,
    prompt_tokens: u64,
    counts: Counts,
}

impl Stream {
    pub fn new(request: &ParsedRequest) -> Self {
        Stream {
            model: request.chat.model.clone(),
            response_id: super::unique_id("resp-"),
            include_thoughts: request.include_thoughts,
            framing: Framing { sse: request.sse, started: false },
            prompt_tokens: request.chat.estimated_prompt_tokens(),
            counts: Counts::default(),
        }
    }

    fn chunk(&mut self, out: &mut Vec<u8>, part: OutPart<'_>, finish: Option<Finish>) {
        let parts = [part];
        let mut response = Response::new(&parts, &self.model, &self.response_id);
        if let Some(finish) = finish {
            response = response.finished(finish, self.counts.metadata(self.prompt_tokens));
        }
        self.framing.write(out, &response);
    }
}

impl StreamRenderer for Stream {
    fn content_type(&self) -> &'static str {
        if self.framing.sse { "text/event-stream" } else { "application/json" }
    }

    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        match event {
            Event::Text(text) => {
                self.counts.candidates += estimate_tokens(&text);
                self.chunk(out, OutPart::Text(TextPart { text: &text, thought: false }), None);
            }
            Event::Thinking(text) => {
                self.counts.thoughts += estimate_tokens(&text);
                if self.include_thoughts {
                    self.chunk(out, OutPart::Text(TextPart { text: &text, thought: true }), None);
                }
            }
            Event::ToolCall(call) => {
                self.counts.candidates += estimate_tokens(&Value::Object(call.arguments.clone()).to_string());
                let function_call = CallOut { name: &call.name, args: &call.arguments };
                self.chunk(out, OutPart::Call { function_call }, None);
            }
            Event::Finish(finish) => {
                self.chunk(out, OutPart::Text(TextPart { text: "", thought: false }), Some(finish));
                self.framing.end(out);
            }
            Event::ConversationId(_) | Event::Citation { .. } | Event::Heartbeat | Event::ToolsOffered(_) => {
            }
        }
    }

    fn error(&mut self, error: &chat::Error, out: &mut Vec<u8>) {
        self.framing.write(out, &ErrorBody::from(error));
        self.framing.end(out);
    }
}

/// Renders a whole `GenerateContentResponse`.
pub struct Complete {
    model: String,
    include_thoughts: bool,
    prompt_tokens: u64,
}

impl Complete {
    pub fn new(request: &ParsedRequest) -> Self {
        Complete {
            model: request.chat.model.clone(),
            include_thoughts: request.include_thoughts,
            prompt_tokens: request.chat.estimated_prompt_tokens(),
        }
    }
}

impl Aggregator for Complete {
    fn body(&self, answer: &Answer) -> Vec<u8> {
        let mut parts = Vec::with_capacity(2 + answer.calls.len());
        if self.include_thoughts && !answer.thinking.is_empty() {
            parts.push(OutPart::Text(TextPart { text: &answer.thinking, thought: true }));
        }
        let text = answer.text.as_str();
        if !text.is_empty() || answer.calls.is_empty() {
            parts.push(OutPart::Text(TextPart { text, thought: false }));
        }
        for call in &answer.calls {
            parts.push(OutPart::Call { function_call: CallOut { name: &call.name, args: &call.arguments } });
        }
        let counts = Counts {
            candidates: estimate_tokens(text),
            thoughts: if answer.thinking.is_empty() { 0 } else { estimate_tokens(&answer.thinking) },
        };
        let response_id = super::unique_id("resp-");
        let mut response = Response::new(&parts, &self.model, &response_id)
            .finished(answer.finish, counts.metadata(self.prompt_tokens));
        if let Some(why) = &answer.invalid_output {
            // Structured output that failed its check: the text as it is, `OTHER` and why.
            response.candidates[0].finish_reason = Some("OTHER");
            response.candidates[0].finish_message = Some(why);
        }
        serde_json::to_vec(&response).unwrap_or_default()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Model<'a> {
    /// The id with the `models/` prefix.
    name: String,
    base_model_id: &'a str,
    version: &'static str,
    display_name: &'a str,
    description: &'a str,
    input_token_limit: u32,
    output_token_limit: u32,
    supported_generation_methods: [&'static str; 3],
}

impl<'a> Model<'a> {
    fn new(id: &'a str, description: &'a str) -> Self {
        Model {
            name: format!("models/{id}"),
            base_model_id: id,
            version: "1",
            display_name: id,
            description,
            input_token_limit: 131072,
            output_token_limit: 32768,
            supported_generation_methods: ["generateContent", "streamGenerateContent", "countTokens"],
        }
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    models: Vec<Model<'a>>,
}

/// `GET /v1beta/models` in the Gemini shape: the list, or the model `one` (with or without
/// its `models/` prefix).
pub fn models(one: Option<&str>, list: &[(String, String)]) -> Vec<u8> {
    let body = match one {
        Some(id) => {
            let id = id.strip_prefix("models/").unwrap_or(id);
            let description = chat::model_description(list, id);
            serde_json::to_vec(&Model::new(id, description))
        }
        None => {
            serde_json::to_vec(&ModelList { models: list.iter().map(|(id, d)| Model::new(id, d)).collect() })
        }
    };
    body.unwrap_or_default()
}

#[cfg(test)]
#[path = "gemini_tests.rs"]
mod tests;
