use serde_json::json;

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
    let arguments = json!({"file_path": "a"}).as_object().unwrap().clone();
    assert_eq!(
        messages[3].parts,
        vec![Part::ToolCall(ToolCall { id: "toolu_1".into(), name: "Read".into(), arguments })]
    );
    let result = |id: &str, content: &str| {
        Part::ToolResult(ToolResult {
            call_id: id.into(),
            name: String::new(),
            content: content.into(),
            is_error: false,
        })
    };
    assert_eq!(messages[4].parts[0], result("toolu_1", "hello"));
    assert_eq!(messages[4].parts[1], result("toolu_2", "Loaded tool: WebFetch"));
    assert_eq!(messages[4].parts[2], Part::Image("data:image/png;base64,AA==".into()));
    assert!(request.chat.mode.thinking && request.chat.stream);
    assert!(!request.chat.mode.max_effort, "Claude Code's effort high is not the top effort");
}

#[test]
fn output_config_effort_max_asks_for_the_top_effort_and_thinking() {
    let body = |config: Value| {
        json!({"model": "claude-opus-5-5", "max_tokens": 8, "output_config": config,
               "messages": [{"role": "user", "content": "hi"}]})
    };
    let mode = parsed(body(json!({"effort": "max"}))).chat.mode;
    assert!(mode.max_effort && mode.thinking, "{mode:?}");
    for config in [json!({"effort": "high"}), json!({"effort": "low"}), json!({}), json!("max"), json!(null)]
    {
        let mode = parsed(body(config.clone())).chat.mode;
        assert!(!mode.max_effort && !mode.thinking, "{config}: {mode:?}");
    }
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

#[test]
fn models_list_and_one() {
    let list: Value = serde_json::from_slice(&models(None, &chat::listed_models())).unwrap();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), chat::MODELS.len());
    assert_eq!(
        data[0],
        json!({"type": "model", "id": "kimi", "display_name": "kimi",
               "created_at": "2025-01-01T00:00:00Z"})
    );
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], chat::MODELS[0].0);
    assert_eq!(list["last_id"], chat::MODELS[chat::MODELS.len() - 1].0);
    let search = data.iter().find(|m| m["id"] == "kimi-search").unwrap();
    for id in ["kimi-search", "models/kimi-search"] {
        let one: Value = serde_json::from_slice(&models(Some(id), &chat::listed_models())).unwrap();
        assert_eq!(&one, search);
    }
    let unknown: Value = serde_json::from_slice(&models(Some("my-model"), &chat::listed_models())).unwrap();
    assert_eq!(unknown["id"], "my-model");
    assert_eq!(unknown["display_name"], "my-model");
}
