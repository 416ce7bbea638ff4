//! Anthropic Messages (`client-apis.md` §3): request parsing (system blocks, `role: system`
//! messages, images, tool turns, thinking), the `message_start` … `message_stop` event stream,
//! the aggregated message, and errors. What Claude Code sends is the reference.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Aggregator, Answer, StreamRenderer};
use crate::chat::{self, Conversation, ErrorKind, Event, Finish, Message, Mode, Part, Role, estimate_tokens};

/// Claude Code's first system block is billing metadata for Anthropic, not a prompt.
const BILLING_HEADER: &str = "x-anthropic-billing-header:";
/// How long a stream may stay silent before a `ping` tells the client Kimi is still working.
const PING_AFTER: std::time::Duration = std::time::Duration::from_secs(10);
/// Signature of the thinking blocks this server issues; clients send it back and it is ignored.
const SIGNATURE: &str = "a2ltaS1mcmVlLWFwaQ==";

pub struct ParsedRequest {
    pub chat: chat::Request,
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

/// Parses a `POST /v1/messages` (or `count_tokens`) body.
pub fn parse(body: &[u8]) -> Result<ParsedRequest, chat::Error> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| chat::Error::invalid(format!("invalid JSON body: {e}")))?;
    if !body.is_object() {
        return Err(chat::Error::invalid("the body must be a JSON object"));
    }
    let model = field(&body, "model")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| chat::Error::invalid("model: field required"))?
        .to_string();
    let raw_messages = field(&body, "messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| chat::Error::invalid("messages: a non-empty array is required"))?;
    let mut messages = Vec::new();
    if let Some(system) = field(&body, "system") {
        let text = system_text(system);
        if !text.is_empty() {
            messages.push(Message::text(Role::System, text));
        }
    }
    for (index, raw) in raw_messages.iter().enumerate() {
        let role = match raw.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("system") => Role::System,
            other => {
                return Err(chat::Error::invalid(format!(
                    "messages.{index}.role: unexpected value {other:?}"
                )));
            }
        };
        let parts = match raw.get("content") {
            Some(Value::String(text)) => vec![Part::Text(text.clone())],
            Some(Value::Array(blocks)) => blocks.iter().filter_map(block_part).collect(),
            _ => {
                return Err(chat::Error::invalid(format!(
                    "messages.{index}.content: a string or blocks are required"
                )));
            }
        };
        messages.push(Message { role, parts });
    }
    let mut mode = Mode::from_model_name(&model);
    let thinking = field(&body, "thinking").and_then(|t| t.get("type")).and_then(Value::as_str);
    mode.thinking |= matches!(thinking, Some("enabled" | "adaptive"));
    let stream = field(&body, "stream").and_then(Value::as_bool).unwrap_or(false);
    Ok(ParsedRequest {
        chat: chat::Request { model, mode, messages, conversation: Conversation::Ephemeral, stream },
    })
}

/// The system prompt, from a string or text blocks, without Claude Code's billing block.
fn system_text(system: &Value) -> String {
    match system {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .filter(|t| !t.starts_with(BILLING_HEADER))
                .collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

/// One content block as a neutral part; thinking blocks echoed back are dropped.
fn block_part(block: &Value) -> Option<Part> {
    let text_of = |v: &Value| v.as_str().map(str::to_string);
    match block.get("type")?.as_str()? {
        "text" => text_of(block.get("text")?).map(Part::Text),
        "image" | "document" => {
            let source = block.get("source")?;
            let url = match source.get("type").and_then(Value::as_str)? {
                "base64" => {
                    let media = source
                        .get("media_type")
                        .and_then(Value::as_str)
                        .unwrap_or("application/octet-stream");
                    format!("data:{media};base64,{}", source.get("data")?.as_str()?)
                }
                "url" => source.get("url")?.as_str()?.to_string(),
                "text" => return text_of(source.get("data")?).map(Part::Text),
                _ => return None,
            };
            Some(if block["type"] == "image" { Part::Image(url) } else { Part::File(url) })
        }
        "tool_use" => {
            let name = block.get("name").and_then(Value::as_str).unwrap_or_default();
            Some(Part::Text(format!("[called {name}({})]", block.get("input").unwrap_or(&Value::Null))))
        }
        "tool_result" => {
            let content = match block.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(items)) => {
                    let texts: Vec<String> = items
                        .iter()
                        .filter_map(|item| match item.get("type").and_then(Value::as_str) {
                            Some("text") => item.get("text").and_then(Value::as_str).map(str::to_string),
                            Some("tool_reference") => item
                                .get("tool_name")
                                .and_then(Value::as_str)
                                .map(|n| format!("Loaded tool: {n}")),
                            _ => None,
                        })
                        .collect();
                    texts.join("\n")
                }
                _ => String::new(),
            };
            let error =
                if block.get("is_error").and_then(Value::as_bool) == Some(true) { " (error)" } else { "" };
            Some(Part::Text(format!("[tool result{error}: {content}]")))
        }
        _ => None,
    }
}

/// `count_tokens`: `{"input_tokens": N}`.
pub fn count_tokens(request: &ParsedRequest) -> Vec<u8> {
    json!({"input_tokens": request.chat.estimated_prompt_tokens()}).to_string().into_bytes()
}

/// The Anthropic error body and status; a busy Kimi is `529 overloaded_error`, never a 401
/// (Claude Code retries 401s for minutes).
pub fn error_response(error: &chat::Error) -> (u16, Vec<u8>) {
    let (status, kind) = error_kind(error.kind);
    let body = json!({"type": "error", "error": {"type": kind, "message": error.message}});
    (status, body.to_string().into_bytes())
}

fn error_kind(kind: ErrorKind) -> (u16, &'static str) {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed => (kind.status(), "invalid_request_error"),
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
    }
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

/// Which content block is open in the stream.
#[derive(Clone, Copy, PartialEq)]
enum Block {
    None,
    Thinking,
    Text,
}

/// Streams the events of §3.5, each with its `event:` line: `message_start` and a `ping`,
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
            id: format!("msg_{}", super::unix_now()),
            model: request.chat.model.clone(),
            input_tokens: request.chat.estimated_prompt_tokens(),
            output_tokens: 0,
            started: false,
            open: Block::None,
            index: 0,
            last_output: std::time::Instant::now(),
        }
    }

    fn write(&mut self, out: &mut Vec<u8>, name: &str, data: &Value) {
        self.last_output = std::time::Instant::now();
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let _ = serde_json::to_writer(&mut *out, data);
        out.extend_from_slice(b"\n\n");
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({"id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}});
        self.write(out, "message_start", &json!({"type": "message_start", "message": message}));
        self.write(out, "ping", &json!({"type": "ping"}));
    }

    /// Makes `block` the open block, closing the previous one.
    fn open(&mut self, block: Block, out: &mut Vec<u8>) {
        if self.open == block {
            return;
        }
        self.close(out);
        let content_block = match block {
            Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            _ => json!({"type": "text", "text": ""}),
        };
        self.write(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.index, "content_block": content_block}),
        );
        self.open = block;
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open == Block::None {
            return;
        }
        if self.open == Block::Thinking {
            let delta = json!({"type": "signature_delta", "signature": SIGNATURE});
            self.write(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
            );
        }
        self.write(out, "content_block_stop", &json!({"type": "content_block_stop", "index": self.index}));
        self.open = Block::None;
        self.index += 1;
    }

    fn delta(&mut self, block: Block, text: &str, out: &mut Vec<u8>) {
        self.start(out);
        self.open(block, out);
        self.output_tokens += estimate_tokens(text);
        let delta = match block {
            Block::Thinking => json!({"type": "thinking_delta", "thinking": text}),
            _ => json!({"type": "text_delta", "text": text}),
        };
        self.write(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        );
    }
}

impl StreamRenderer for Stream {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        match event {
            Event::Text(text) => self.delta(Block::Text, &text, out),
            Event::Thinking(text) => self.delta(Block::Thinking, &text, out),
            Event::Heartbeat if self.started && self.last_output.elapsed() >= PING_AFTER => {
                self.write(out, "ping", &json!({"type": "ping"}))
            }
            Event::Finish(finish) => {
                self.start(out);
                if self.index == 0 && self.open == Block::None {
                    // Clients expect at least one content block.
                    self.open(Block::Text, out);
                }
                self.close(out);
                let delta = json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason(finish), "stop_sequence": null},
                    "usage": {"output_tokens": self.output_tokens.max(1)}});
                self.write(out, "message_delta", &delta);
                self.write(out, "message_stop", &json!({"type": "message_stop"}));
            }
            Event::ConversationId(_) | Event::Citation { .. } | Event::Heartbeat => {}
        }
    }

    fn error(&mut self, error: &chat::Error, out: &mut Vec<u8>) {
        let (_, kind) = error_kind(error.kind);
        self.write(
            out,
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": error.message}}),
        );
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
        let mut content = Vec::new();
        if !answer.thinking.is_empty() {
            content.push(json!({"type": "thinking", "thinking": answer.thinking, "signature": SIGNATURE}));
        }
        content.push(json!({"type": "text", "text": answer.text}));
        let output = estimate_tokens(&answer.text)
            + if answer.thinking.is_empty() { 0 } else { estimate_tokens(&answer.thinking) };
        let usage = Usage {
            input_tokens: self.input_tokens,
            output_tokens: output,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        };
        json!({"id": format!("msg_{}", super::unix_now()), "type": "message", "role": "assistant", "model": self.model,
            "content": content, "stop_reason": stop_reason(answer.finish), "stop_sequence": null, "usage": usage})
        .to_string()
        .into_bytes()
    }
}

/// `GET /v1/models` in the Anthropic shape.
pub fn models(ids: &[&str]) -> Vec<u8> {
    let data: Vec<Value> = ids
        .iter()
        .map(
            |id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}),
        )
        .collect();
    json!({"data": data, "has_more": false, "first_id": ids.first(), "last_id": ids.last()})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: Value) -> ParsedRequest {
        parse(body.to_string().as_bytes()).unwrap()
    }

    fn events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        text.split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (event, data) = f.split_once('\n').unwrap();
                let name = event.strip_prefix("event: ").unwrap().to_string();
                (name, serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap())
            })
            .collect()
    }

    #[test]
    fn parses_what_claude_code_sends() {
        let request = parsed(json!({
            "model": "claude-opus-5-5", "max_tokens": 64000, "stream": true,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2"},
                       {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "<system-reminder>r</system-reminder>"},
                                             {"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}}]},
                {"role": "system", "content": "deferred tools: WebFetch"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                                  {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "a"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "hello"},
                                             {"type": "tool_result", "tool_use_id": "toolu_2",
                                              "content": [{"type": "tool_reference", "tool_name": "WebFetch"}]},
                                             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]}
            ],
            "thinking": {"type": "adaptive", "display": "omitted"},
            "context_management": {"edits": []}, "metadata": {"user_id": "{}"}, "output_config": {"effort": "high"}
        }));
        let messages = &request.chat.messages;
        assert_eq!(messages[0], Message::text(Role::System, "You are Claude Code."));
        assert_eq!(messages[2], Message::text(Role::System, "deferred tools: WebFetch"));
        assert_eq!(messages[3].parts, vec![Part::Text(r#"[called Read({"file_path":"a"})]"#.into())]);
        assert_eq!(messages[4].parts[0], Part::Text("[tool result: hello]".into()));
        assert_eq!(messages[4].parts[1], Part::Text("[tool result: Loaded tool: WebFetch]".into()));
        assert_eq!(messages[4].parts[2], Part::Image("data:image/png;base64,AA==".into()));
        assert!(request.chat.mode.thinking && request.chat.stream);
    }

    #[test]
    fn bad_requests_are_named() {
        for (body, needle) in [
            (json!({"messages": [{"role": "user", "content": "x"}]}), "model"),
            (json!({"model": "m", "messages": []}), "messages"),
            (json!({"model": "m", "messages": [{"role": "bot", "content": "x"}]}), "role"),
        ] {
            let error = parse(body.to_string().as_bytes()).err().unwrap();
            assert!(error.message.contains(needle), "{}", error.message);
        }
    }

    #[test]
    fn stream_event_order() {
        let request = parsed(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        let mut stream = Stream::new(&request);
        let mut out = Vec::new();
        for event in [
            Event::ConversationId("c".into()),
            Event::Thinking("hmm".into()),
            Event::Text("Hel".into()),
            Event::Heartbeat,
        ] {
            stream.event(event, &mut out);
        }
        // A heartbeat right after output says nothing; after a long silence, it is a ping.
        stream.last_output -= PING_AFTER;
        stream.event(Event::Heartbeat, &mut out);
        stream.event(Event::Text("lo".into()), &mut out);
        stream.event(Event::Finish(Finish::Stop), &mut out);
        let names: Vec<String> = events(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let events = events(&out);
        assert!(events.iter().all(|(name, data)| data["type"] == name.as_str()));
        assert_eq!(events[2].1["content_block"]["type"], "thinking");
        assert_eq!(events[4].1["delta"]["type"], "signature_delta");
        assert_eq!(events[6].1["index"], 1);
        assert_eq!(events[11].1["delta"]["stop_reason"], "end_turn");
    }

    #[test]
    fn errors_never_say_401_for_a_busy_kimi() {
        let (status, body) = error_response(&chat::Error::new(ErrorKind::Overloaded, "busy"));
        assert_eq!(status, 529);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}));
    }

    #[test]
    fn aggregated_message() {
        let request = parsed(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        let answer = crate::dialect::answer_of([
            Event::Thinking("t".into()),
            Event::Text("answer".into()),
            Event::Finish(Finish::Length),
        ]);
        let body: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
        assert_eq!(body["content"][0]["type"], "thinking");
        assert_eq!(body["content"][1], json!({"type": "text", "text": "answer"}));
        assert_eq!(body["stop_reason"], "max_tokens");
        assert_eq!(body["usage"]["cache_read_input_tokens"], 0);
    }
}
