use super::*;

fn parsed(body: &str) -> ParsedRequest {
    parse(body.as_bytes()).unwrap()
}

fn frames(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let data = f.strip_prefix("data: ").unwrap();
            if data == "[DONE]" {
                Value::String("[DONE]".into())
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

#[test]
fn parses_messages_parts_and_flags() {
    let request = parsed(
        r#"{"model":"kimi-search","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"developer","content":"be brief"},
                        {"role":"user","content":[{"type":"text","text":"a"},
                            {"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}},
                            {"type":"mystery"}]},
                        {"role":"assistant","content":null,
                         "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}],
            "temperature":0.2,"unknown":{"x":1}}"#,
    );
    assert!(request.include_usage && request.chat.stream && request.chat.mode.search);
    let messages = &request.chat.messages;
    assert_eq!(messages[0], Message::text(Role::System, "be brief"));
    assert_eq!(
        messages[1].parts,
        vec![Part::Text("a".into()), Part::Image("data:image/png;base64,AA".into())]
    );
    let call = ToolCall { id: "c".into(), name: "f".into(), arguments: serde_json::Map::new() };
    assert_eq!(messages[2].parts, vec![Part::ToolCall(call)]);
    assert_eq!(request.chat.conversation, Conversation::Ephemeral);
}

#[test]
fn reasoning_effort_turns_thinking_on_and_xhigh_asks_for_the_top_effort() {
    let mode = |model: &str, effort: &str| {
        let body = format!(
            r#"{{"model":"{model}","reasoning_effort":{effort},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let mode = parsed(&body).chat.mode;
        (mode.thinking, mode.max_effort)
    };
    assert_eq!(mode("kimi", r#""xhigh""#), (true, true));
    for effort in [r#""low""#, r#""medium""#, r#""high""#] {
        assert_eq!(mode("kimi", effort), (true, false), "{effort}");
    }
    for effort in [r#""none""#, r#""minimal""#, "null", "3"] {
        assert_eq!(mode("kimi", effort), (false, false), "{effort}");
        assert_eq!(mode("kimi-thinking", effort), (true, false), "{effort}: the model name still counts");
    }
}

#[test]
fn conversation_ids() {
    let body = |id: &str| {
        format!(r#"{{"model":"kimi","messages":[{{"role":"user","content":"x"}}],"conversation_id":"{id}"}}"#)
    };
    assert_eq!(parsed(&body("none")).chat.conversation, Conversation::Keep);
    assert_eq!(
        parsed(&body("cnndivilnl96vah411dg")).chat.conversation,
        Conversation::Continue("cnndivilnl96vah411dg".into())
    );
}

#[test]
fn bad_requests_are_named() {
    let cases = [
        ("{", "invalid JSON"),
        (r#"{"messages":[{"role":"user","content":"x"}]}"#, "`model`"),
        (r#"{"model":"kimi","messages":[]}"#, "`messages`"),
        (r#"{"model":"kimi","messages":[{"role":"wizard","content":"x"}]}"#, "messages[0].role"),
        (r#"{"model":"kimi","messages":[{"role":"user","content":5}]}"#, "messages[0].content"),
    ];
    for (body, needle) in cases {
        let error = parse(body.as_bytes()).err().unwrap();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert!(error.message.contains(needle), "{body}: {}", error.message);
    }
}

#[test]
fn stream_frames_in_order() {
    let request = parsed(
        r#"{"model":"kimi","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let mut stream = Stream::new(&request);
    let mut out = Vec::new();
    stream.event(Event::ConversationId("chat1".into()), &mut out);
    assert!(out.is_empty());
    stream.event(Event::Thinking("hmm".into()), &mut out);
    stream.event(Event::Text("Hello".into()), &mut out);
    stream.event(Event::Finish(Finish::Length), &mut out);
    let frames = frames(&out);
    assert_eq!(frames.len(), 6);
    assert_eq!(frames[0]["choices"][0]["delta"], serde_json::json!({"role":"assistant","content":""}));
    assert_eq!(frames[1]["choices"][0]["delta"]["reasoning_content"], "hmm");
    assert_eq!(frames[2]["choices"][0]["delta"]["content"], "Hello");
    assert_eq!(frames[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(frames[4]["choices"], serde_json::json!([]));
    assert!(frames[4]["usage"]["completion_tokens"].as_u64().unwrap() >= 2);
    assert_eq!(frames[5], "[DONE]");
    assert!(frames[..5].iter().all(|f| f["id"] == "chat1" && f["object"] == "chat.completion.chunk"));
}

#[test]
fn mid_stream_error_ends_with_done() {
    let request = parsed(r#"{"model":"kimi","messages":[{"role":"user","content":"hi"}]}"#);
    let mut out = Vec::new();
    Stream::new(&request).error(&chat::Error::new(ErrorKind::Upstream, "cut"), &mut out);
    let frames = frames(&out);
    assert_eq!(frames[0]["error"]["message"], "cut");
    assert_eq!(frames[0]["error"]["type"], "server_error");
    assert_eq!(frames[1], "[DONE]");
}

#[test]
fn aggregated_completion() {
    let request = parsed(r#"{"model":"kimi-k1","messages":[{"role":"user","content":"hi"}]}"#);
    let answer = crate::dialect::answer_of([
        Event::ConversationId("chat1".into()),
        Event::Thinking("hmm".into()),
        Event::Text("Hel".into()),
        Event::Text("lo".into()),
        Event::Finish(Finish::Stop),
    ]);
    let body: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
    assert_eq!(body["id"], "chat1");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "kimi-k1");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello");
    assert_eq!(body["choices"][0]["message"]["reasoning_content"], "hmm");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() >= 1);
}

#[test]
fn error_shape() {
    let (status, body) = error_response(&chat::Error::new(ErrorKind::RateLimited, "slow down"));
    assert_eq!(status, 429);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["message"], "slow down");
    assert_eq!(body["error"]["type"], "rate_limit_exceeded");
}

#[test]
fn models_list_and_one() {
    let list: Value = serde_json::from_slice(&models(None, &chat::listed_models())).unwrap();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), chat::MODELS.len());
    assert_eq!(
        data[0],
        serde_json::json!({"id": "kimi", "object": "model", "created": 1_700_000_000,
                           "owned_by": "kimi-free-api", "description": chat::MODELS[0].1})
    );
    let search = data.iter().find(|m| m["id"] == "kimi-search").unwrap();
    for id in ["kimi-search", "models/kimi-search"] {
        let one: Value = serde_json::from_slice(&models(Some(id), &chat::listed_models())).unwrap();
        assert_eq!(&one, search);
    }
    let unknown: Value = serde_json::from_slice(&models(Some("gpt-4o"), &chat::listed_models())).unwrap();
    assert_eq!(unknown["id"], "gpt-4o");
    assert_eq!(unknown["description"], "");
}

#[test]
fn no_null_system_fingerprint() {
    let request = parsed(r#"{"model":"kimi","messages":[{"role":"user","content":"hi"}]}"#);
    let mut out = Vec::new();
    Stream::new(&request).event(Event::Finish(Finish::Stop), &mut out);
    let answer = crate::dialect::answer_of([Event::Finish(Finish::Stop)]);
    let completion: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
    for body in frames(&out).iter().filter(|f| f.is_object()).chain([&completion]) {
        assert!(body.get("system_fingerprint").is_none(), "{body}");
    }
}

#[test]
fn response_format_sets_the_output() {
    let schema =
        r#"{"type":"json_schema","json_schema":{"name":"Person","schema":{"type":"object"},"strict":true}}"#;
    let request = parsed(&format!(
        r#"{{"model":"kimi","messages":[{{"role":"user","content":"x"}}],"response_format":{schema}}}"#
    ));
    let expected =
        chat::Output::JsonSchema { name: "Person".into(), schema: serde_json::json!({"type": "object"}) };
    assert_eq!(request.chat.output, expected);
    for (format, output) in [
        (r#"{"type":"json_object"}"#, chat::Output::Json),
        (r#"{"type":"text"}"#, chat::Output::Text),
        (r#"{"type":"json_schema","json_schema":{"name":"n"}}"#, chat::Output::Json),
        ("null", chat::Output::Text),
    ] {
        let body = format!(
            r#"{{"model":"kimi","messages":[{{"role":"user","content":"x"}}],"response_format":{format}}}"#
        );
        assert_eq!(parsed(&body).chat.output, output, "{format}");
    }
}

#[test]
fn a_failed_check_keeps_the_text_and_sets_the_refusal() {
    let request = parsed(r#"{"model":"kimi","messages":[{"role":"user","content":"x"}]}"#);
    let mut answer = crate::dialect::answer_of([Event::Text("No.".into()), Event::Finish(Finish::Stop)]);
    answer.invalid_output = Some("not JSON".into());
    let body: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
    let choice = &body["choices"][0];
    assert_eq!(
        (choice["message"]["content"].as_str(), choice["message"]["refusal"].as_str()),
        (Some("No."), Some("not JSON"))
    );
    assert_eq!(choice["finish_reason"], "stop");
}
