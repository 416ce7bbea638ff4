//! Google Gemini `generateContent` (`client-apis.md` §4): camelCase and snake_case requests,
//! `streamGenerateContent` as `data: …\r\n\r\n` SSE (`alt=sse`) or a JSON array, thought parts
//! when asked for, JSON mode, `countTokens`, models and errors.

use serde_json::{Value, json};

use super::{Aggregator, Answer, StreamRenderer};
use crate::chat::{self, Conversation, ErrorKind, Event, Finish, Message, Mode, Part, Role, estimate_tokens};

/// Added to the prompt in JSON mode: Kimi has no response format switch.
const JSON_INSTRUCTION: &str = "Reply with one valid JSON value only: no prose, no Markdown, no code fences.";

pub struct ParsedRequest {
    pub chat: chat::Request,
    /// Send `thought: true` parts (`thinkingConfig.includeThoughts`).
    pub include_thoughts: bool,
    /// `responseMimeType: application/json`.
    pub json_mode: bool,
    /// `alt=sse` framing rather than a JSON array.
    pub sse: bool,
}

/// A field under its camelCase or its snake_case name.
fn get<'a>(value: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    value.get(camel).or_else(|| value.get(snake)).filter(|v| !v.is_null())
}

/// Parses a `generateContent` / `streamGenerateContent` / `countTokens` body for `model`.
pub fn parse(model: &str, body: &[u8], stream: bool, sse: bool) -> Result<ParsedRequest, chat::Error> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| chat::Error::invalid(format!("Invalid JSON payload: {e}")))?;
    if !body.is_object() {
        return Err(chat::Error::invalid("Invalid JSON payload: expected an object"));
    }
    // countTokens may wrap the request: {"generateContentRequest": {...}}.
    let body = get(&body, "generateContentRequest", "generate_content_request").unwrap_or(&body);
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| chat::Error::invalid("contents is not specified"))?;
    let mut messages = Vec::new();
    if let Some(system) = get(body, "systemInstruction", "system_instruction") {
        let parts = parts(system);
        if !parts.is_empty() {
            messages.push(Message { role: Role::System, parts });
        }
    }
    for (index, content) in contents.iter().enumerate() {
        let role = match content.get("role").and_then(Value::as_str) {
            None | Some("user") => Role::User,
            Some("model") => Role::Assistant,
            Some(other) => {
                return Err(chat::Error::invalid(format!("contents[{index}].role: unknown role {other:?}")));
            }
        };
        messages.push(Message { role, parts: parts(content) });
    }
    let config = get(body, "generationConfig", "generation_config");
    let thinking = config.and_then(|c| get(c, "thinkingConfig", "thinking_config"));
    let include_thoughts =
        thinking.and_then(|t| get(t, "includeThoughts", "include_thoughts")).and_then(Value::as_bool)
            == Some(true);
    let json_mode =
        config.and_then(|c| get(c, "responseMimeType", "response_mime_type")).and_then(Value::as_str)
            == Some("application/json");
    if json_mode {
        let schema = config.and_then(|c| {
            get(c, "responseJsonSchema", "response_json_schema")
                .or_else(|| get(c, "responseSchema", "response_schema"))
        });
        let instruction = match schema {
            Some(schema) => format!("{JSON_INSTRUCTION} It must match this JSON schema: {schema}"),
            None => JSON_INSTRUCTION.to_string(),
        };
        messages.push(Message::text(Role::System, instruction));
    }
    let model = model.strip_prefix("models/").unwrap_or(model).to_string();
    let mut mode = Mode::from_model_name(&model);
    mode.thinking |= include_thoughts;
    Ok(ParsedRequest {
        chat: chat::Request { model, mode, messages, conversation: Conversation::Ephemeral, stream },
        include_thoughts,
        json_mode,
        sse,
    })
}

/// The parts of a content (or of a system instruction) as neutral parts; earlier thoughts are
/// dropped, function calls and responses become text.
fn parts(content: &Value) -> Vec<Part> {
    let Some(parts) = content.get("parts").and_then(Value::as_array) else { return Vec::new() };
    parts
        .iter()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|part| {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                return Some(Part::Text(text.to_string()));
            }
            if let Some(inline) = get(part, "inlineData", "inline_data") {
                let mime = get(inline, "mimeType", "mime_type")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream");
                let url = format!("data:{mime};base64,{}", inline.get("data")?.as_str()?);
                return Some(if mime.starts_with("image/") { Part::Image(url) } else { Part::File(url) });
            }
            if let Some(file) = get(part, "fileData", "file_data") {
                let mime = get(file, "mimeType", "mime_type").and_then(Value::as_str).unwrap_or("");
                let url = get(file, "fileUri", "file_uri")?.as_str()?.to_string();
                return Some(if mime.starts_with("image/") { Part::Image(url) } else { Part::File(url) });
            }
            if let Some(call) = get(part, "functionCall", "function_call") {
                let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
                return Some(Part::Text(format!(
                    "[called {name}({})]",
                    call.get("args").unwrap_or(&Value::Null)
                )));
            }
            if let Some(response) = get(part, "functionResponse", "function_response") {
                let name = response.get("name").and_then(Value::as_str).unwrap_or_default();
                let result = response.get("response").unwrap_or(&Value::Null);
                return Some(Part::Text(format!("[result of {name}: {result}]")));
            }
            None
        })
        .collect()
}

/// `countTokens`: `{"totalTokens": N}`.
pub fn count_tokens(request: &ParsedRequest) -> Vec<u8> {
    json!({"totalTokens": request.chat.estimated_prompt_tokens()}).to_string().into_bytes()
}

fn status_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::PayloadTooLarge => "INVALID_ARGUMENT",
        ErrorKind::Authentication => "UNAUTHENTICATED",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::MethodNotAllowed => "UNIMPLEMENTED",
        ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
        ErrorKind::Overloaded => "UNAVAILABLE",
        ErrorKind::Timeout => "DEADLINE_EXCEEDED",
        ErrorKind::Upstream | ErrorKind::Internal => "INTERNAL",
    }
}

fn error_value(error: &chat::Error) -> Value {
    let mut body = json!({"error": {"code": error.kind.status(), "message": error.message, "status": status_name(error.kind)}});
    if error.kind == ErrorKind::RateLimited {
        // Gemini CLI waits as long as RetryInfo says before it retries.
        body["error"]["details"] =
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]);
    }
    body
}

/// The Gemini error body and status.
pub fn error_response(error: &chat::Error) -> (u16, Vec<u8>) {
    (error.kind.status(), error_value(error).to_string().into_bytes())
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "STOP",
        Finish::Length => "MAX_TOKENS",
    }
}

/// Token counts for `usageMetadata`.
#[derive(Default)]
struct Counts {
    candidates: u64,
    thoughts: u64,
}

impl Counts {
    fn metadata(&self, prompt: u64) -> Value {
        let candidates = self.candidates.max(1);
        let mut usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + self.thoughts});
        if self.thoughts > 0 {
            usage["thoughtsTokenCount"] = json!(self.thoughts);
        }
        usage
    }
}

/// Streams `GenerateContentResponse` increments; the last one carries `finishReason` and
/// `usageMetadata`. With `alt=sse` each is exactly `data: <json>\r\n\r\n` (no `event:`, no
/// comments, no `[DONE]`: Google's parsers reject them); otherwise a JSON array.
pub struct Stream {
    model: String,
    response_id: String,
    include_thoughts: bool,
    sse: bool,
    prompt_tokens: u64,
    counts: Counts,
    started: bool,
}

impl Stream {
    pub fn new(request: &ParsedRequest) -> Self {
        Stream {
            model: request.chat.model.clone(),
            response_id: format!("resp-{}", super::unix_now()),
            include_thoughts: request.include_thoughts,
            sse: request.sse,
            prompt_tokens: request.chat.estimated_prompt_tokens(),
            counts: Counts::default(),
            started: false,
        }
    }

    fn write(&mut self, out: &mut Vec<u8>, value: &Value) {
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

    fn chunk(&self, parts: Value, finish: Option<Finish>) -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        let mut chunk = json!({"modelVersion": self.model, "responseId": self.response_id});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish_reason(finish));
            chunk["usageMetadata"] = self.counts.metadata(self.prompt_tokens);
        }
        chunk["candidates"] = json!([candidate]);
        chunk
    }
}

impl StreamRenderer for Stream {
    fn content_type(&self) -> &'static str {
        if self.sse { "text/event-stream" } else { "application/json" }
    }

    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        match event {
            Event::Text(text) => {
                self.counts.candidates += estimate_tokens(&text);
                let chunk = self.chunk(json!([{"text": text}]), None);
                self.write(out, &chunk);
            }
            Event::Thinking(text) => {
                self.counts.thoughts += estimate_tokens(&text);
                if self.include_thoughts {
                    let chunk = self.chunk(json!([{"text": text, "thought": true}]), None);
                    self.write(out, &chunk);
                }
            }
            Event::Finish(finish) => {
                let chunk = self.chunk(json!([{"text": ""}]), Some(finish));
                self.write(out, &chunk);
                if !self.sse {
                    out.push(b']');
                }
            }
            Event::ConversationId(_) | Event::Citation { .. } | Event::Heartbeat => {}
        }
    }

    fn error(&mut self, error: &chat::Error, out: &mut Vec<u8>) {
        self.write(out, &error_value(error));
        if !self.sse {
            out.push(b']');
        }
    }
}

/// Renders a whole `GenerateContentResponse`.
pub struct Complete {
    model: String,
    include_thoughts: bool,
    json_mode: bool,
    prompt_tokens: u64,
}

impl Complete {
    pub fn new(request: &ParsedRequest) -> Self {
        Complete {
            model: request.chat.model.clone(),
            include_thoughts: request.include_thoughts,
            json_mode: request.json_mode,
            prompt_tokens: request.chat.estimated_prompt_tokens(),
        }
    }
}

/// The JSON inside a Markdown code fence, if the model wrapped its answer in one.
fn unfenced(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(inner) = trimmed.strip_prefix("```") else { return text };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").map_or(text, str::trim)
}

impl Aggregator for Complete {
    fn body(&self, answer: &Answer) -> Vec<u8> {
        let mut parts = Vec::new();
        if self.include_thoughts && !answer.thinking.is_empty() {
            parts.push(json!({"text": answer.thinking, "thought": true}));
        }
        let text = if self.json_mode { unfenced(&answer.text) } else { &answer.text };
        parts.push(json!({"text": text}));
        let counts = Counts {
            candidates: estimate_tokens(text),
            thoughts: if answer.thinking.is_empty() { 0 } else { estimate_tokens(&answer.thinking) },
        };
        json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish_reason(answer.finish),
               "index": 0}],
               "usageMetadata": counts.metadata(self.prompt_tokens), "modelVersion": self.model,
               "responseId": format!("resp-{}", super::unix_now())})
        .to_string()
        .into_bytes()
    }
}

/// One model object, `name` keeping the `models/` prefix.
pub fn model_object(id: &str, description: &str) -> Value {
    json!({"name": format!("models/{id}"), "baseModelId": id, "version": "1", "displayName": id,
           "description": description, "inputTokenLimit": 131072, "outputTokenLimit": 32768,
           "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: Value, stream: bool, sse: bool) -> ParsedRequest {
        parse("models/gemini-3.1-pro-preview", body.to_string().as_bytes(), stream, sse).unwrap()
    }

    #[test]
    fn camel_and_snake_case() {
        let camel = parsed(
            json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
                   "contents": [{"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]},
                                {"role": "user", "parts": [{"text": "again"}]}],
                   "generationConfig": {"thinkingConfig": {"includeThoughts": true, "thinkingLevel": "HIGH"}}}),
            false,
            false,
        );
        let snake = parsed(
            json!({"system_instruction": {"role": "user", "parts": [{"text": "be brief"}]},
                   "contents": [{"role": "user", "parts": [{"text": "hi"}, {"inline_data": {"mime_type": "image/png", "data": "AA=="}}]},
                                {"role": "user", "parts": [{"text": "again"}]}],
                   "generation_config": {"thinking_config": {"include_thoughts": true, "thinking_budget": 100}}}),
            false,
            false,
        );
        for request in [camel, snake] {
            assert_eq!(request.chat.model, "gemini-3.1-pro-preview");
            assert!(request.include_thoughts && request.chat.mode.thinking);
            assert_eq!(request.chat.messages[0], Message::text(Role::System, "be brief"));
            assert_eq!(request.chat.messages[1].parts[1], Part::Image("data:image/png;base64,AA==".into()));
            assert_eq!(request.chat.messages.len(), 3);
        }
    }

    #[test]
    fn function_turns_and_thoughts() {
        let request = parsed(
            json!({"contents": [
                {"role": "user", "parts": [{"text": "read it"}]},
                {"role": "model", "parts": [{"text": "plan", "thought": true},
                    {"functionCall": {"id": "read_file_1", "name": "read_file", "args": {"file_path": "a"}},
                     "thoughtSignature": "skip_thought_signature_validator"}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "read_file", "response": {"output": "x"}}}]}]}),
            false,
            false,
        );
        let messages = &request.chat.messages;
        assert_eq!(messages[1].parts, vec![Part::Text(r#"[called read_file({"file_path":"a"})]"#.into())]);
        assert_eq!(messages[2].parts, vec![Part::Text(r#"[result of read_file: {"output":"x"}]"#.into())]);
    }

    #[test]
    fn json_mode_instructs_and_unfences() {
        let request = parsed(
            json!({"contents": [{"parts": [{"text": "classify"}]}],
                   "generationConfig": {"responseMimeType": "application/json",
                                        "responseJsonSchema": {"type": "OBJECT"}}}),
            false,
            false,
        );
        assert!(request.json_mode);
        let last = request.chat.messages.last().unwrap().joined_text();
        assert!(last.contains("valid JSON") && last.contains("OBJECT"));
        let answer = crate::dialect::answer_of([
            Event::Text("```json\n{\"a\": 1}\n```".into()),
            Event::Finish(Finish::Stop),
        ]);
        let body: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
        assert_eq!(body["candidates"][0]["content"]["parts"][0]["text"], "{\"a\": 1}");
    }

    #[test]
    fn sse_framing_is_exactly_data_lines() {
        let request = parsed(json!({"contents": [{"parts": [{"text": "hi"}]}]}), true, true);
        let mut stream = Stream::new(&request);
        let mut out = Vec::new();
        for event in [
            Event::Thinking("t".into()),
            Event::Text("Hello".into()),
            Event::Heartbeat,
            Event::Finish(Finish::Stop),
        ] {
            stream.event(event, &mut out);
        }
        let text = String::from_utf8(out).unwrap();
        let frames: Vec<&str> = text.split_terminator("\r\n\r\n").collect();
        assert_eq!(frames.len(), 2, "thoughts are hidden unless asked for: {text}");
        assert!(frames.iter().all(|f| f.starts_with("data: {") && !f.contains('\n')));
        let last: Value = serde_json::from_str(&frames[1][6..]).unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert!(last["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    }

    #[test]
    fn array_stream_is_valid_json() {
        let request = parsed(json!({"contents": [{"parts": [{"text": "hi"}]}]}), true, false);
        let mut stream = Stream::new(&request);
        let mut out = Vec::new();
        stream.event(Event::Text("a".into()), &mut out);
        stream.event(Event::Text("b".into()), &mut out);
        stream.event(Event::Finish(Finish::Stop), &mut out);
        let array: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(array.as_array().unwrap().len(), 3);
    }

    #[test]
    fn rate_limit_error_carries_retry_info() {
        let (status, body) = error_response(&chat::Error::new(ErrorKind::RateLimited, "slow"));
        assert_eq!(status, 429);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["details"][0]["retryDelay"], "2s");
    }
}
