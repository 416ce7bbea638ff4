use serde_json::json;

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
    let arguments = json!({"file_path": "a"}).as_object().unwrap().clone();
    let call = ToolCall { id: "read_file_1".into(), name: "read_file".into(), arguments };
    assert_eq!(messages[1].parts, vec![Part::ToolCall(call)]);
    let result =
        ToolResult { call_id: String::new(), name: "read_file".into(), content: "x".into(), is_error: false };
    assert_eq!(messages[2].parts, vec![Part::ToolResult(result)]);
}

#[test]
fn json_mode_sets_the_output_with_a_json_schema() {
    let request = parsed(
        json!({"contents": [{"parts": [{"text": "classify"}]}],
               "generationConfig": {"responseMimeType": "application/json",
                                    "responseSchema": {"type": "OBJECT", "properties": {
                                        "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
                                        "note": {"type": "STRING", "nullable": true}}}}}),
        false,
        false,
    );
    let schema = json!({"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": ["string", "null"], "nullable": true}}});
    assert_eq!(request.chat.output, chat::Output::JsonSchema { name: String::new(), schema });
    let raw = json!({"type": "object", "required": ["a"]});
    let request = parsed(
        json!({"contents": [{"parts": [{"text": "x"}]}],
               "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": raw,
                                    "responseSchema": {"type": "STRING"}}}),
        false,
        false,
    );
    assert_eq!(request.chat.output, chat::Output::JsonSchema { name: String::new(), schema: raw });
    let json = json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseMimeType": "application/json"}});
    assert_eq!(parsed(json, false, false).chat.output, chat::Output::Json);
    let text = json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseSchema": {"type": "STRING"}}});
    assert_eq!(parsed(text, false, false).chat.output, chat::Output::Text);
}

#[test]
fn a_failed_check_ends_with_other_and_says_why() {
    let request = parsed(json!({"contents": [{"parts": [{"text": "x"}]}]}), false, false);
    let mut answer = crate::dialect::answer_of([Event::Text("No.".into()), Event::Finish(Finish::Stop)]);
    answer.invalid_output = Some("not JSON".into());
    let body: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
    let candidate = &body["candidates"][0];
    assert_eq!(candidate["content"]["parts"][0]["text"], "No.");
    assert_eq!(
        (candidate["finishReason"].as_str(), candidate["finishMessage"].as_str()),
        (Some("OTHER"), Some("not JSON"))
    );
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

#[test]
fn models_list_and_one() {
    let list: Value = serde_json::from_slice(&models(None, &chat::listed_models())).unwrap();
    let list = list["models"].as_array().unwrap();
    assert_eq!(list.len(), chat::MODELS.len());
    assert_eq!(
        list[0],
        json!({"name": "models/kimi", "baseModelId": "kimi", "version": "1", "displayName": "kimi",
               "description": chat::MODELS[0].1, "inputTokenLimit": 131072, "outputTokenLimit": 32768,
               "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]})
    );
    let search = list.iter().find(|m| m["baseModelId"] == "kimi-search").unwrap();
    for id in ["kimi-search", "models/kimi-search"] {
        let one: Value = serde_json::from_slice(&models(Some(id), &chat::listed_models())).unwrap();
        assert_eq!(&one, search);
    }
    let unknown: Value =
        serde_json::from_slice(&models(Some("gemini-2.5-pro"), &chat::listed_models())).unwrap();
    assert_eq!(unknown["name"], "models/gemini-2.5-pro");
    assert_eq!(unknown["description"], "");
}
