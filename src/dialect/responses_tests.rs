use super::*;

fn parsed(body: &str) -> ParsedRequest {
    parse(body.as_bytes()).unwrap()
}

/// The `(event name, data)` pairs of a rendered stream.
fn frames(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (event, data) = f.split_once('\n').unwrap();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            (event.strip_prefix("event: ").unwrap().to_string(), data)
        })
        .collect()
}

/// A captured body: the fixtures fold strings longer than a line into
/// `{"$folded": [pieces]}` (the repository allows no line over 200 characters).
fn capture(folded: &str) -> ParsedRequest {
    fn unfold(value: Value) -> Value {
        match value {
            Value::Object(map) if map.len() == 1 && map.contains_key("$folded") => {
                let pieces = map["$folded"].as_array().cloned().unwrap_or_default();
                Value::String(pieces.iter().filter_map(Value::as_str).collect())
            }
            Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, unfold(v))).collect()),
            Value::Array(items) => Value::Array(items.into_iter().map(unfold).collect()),
            other => other,
        }
    }
    parsed(&unfold(serde_json::from_str(folded).unwrap()).to_string())
}

/// What Codex CLI 0.169.0 really sent (`codex exec "say hi"`), captured on loopback.
#[test]
fn parses_codex_exec() {
    let request = capture(include_str!("../../tests/fixtures/codex/exec_say_hi.json"));
    let chat = &request.chat;
    assert!(chat.stream && chat.parallel_tool_calls && !chat.mode.thinking);
    let roles: Vec<Role> = chat.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::System, Role::User, Role::User]);
    assert_eq!(chat.messages[3].joined_text(), "say hi");
    let names: Vec<&str> = chat.tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"exec_command") && !names.contains(&"multi_agent_v1"), "{names:?}");
}

/// Codex's second turn of a tool loop: its `exec_command` call and the output.
#[test]
fn parses_codex_tool_loop() {
    let request = capture(include_str!("../../tests/fixtures/codex/exec_tool_loop_turn2.json"));
    let messages = &request.chat.messages;
    let Part::ToolCall(call) = &messages[messages.len() - 2].parts[0] else { panic!("a call") };
    assert_eq!((call.id.as_str(), call.name.as_str()), ("call_1", "exec_command"));
    assert_eq!(call.arguments["cmd"], "echo MOCK-REPLY: codex said hi");
    let Part::ToolResult(result) = &messages[messages.len() - 1].parts[0] else { panic!("a result") };
    assert!(result.call_id == "call_1" && result.content.contains("MOCK-REPLY: codex said hi"));
}

#[test]
fn parses_items_tools_and_flags() {
    let request = parsed(
        r#"{"model":"kimi","instructions":"be brief","stream":true,"reasoning":{"effort":"high"},
            "input":[{"role":"developer","content":"dev"},
              {"type":"message","role":"user","content":[{"type":"input_text","text":"a"},
                {"type":"input_image","image_url":"data:image/png;base64,AA"},
                {"type":"input_file","file_data":"data:application/pdf;base64,AA"},{"type":"mystery"}]},
              {"type":"reasoning","summary":[]},
              {"type":"function_call","call_id":"c1","name":"f","arguments":"{\"x\":1}"},
              {"type":"function_call","call_id":"c2","name":"g","arguments":""},
              {"type":"function_call_output","call_id":"c1","output":"one"},
              {"type":"custom_tool_call","call_id":"c3","name":"apply_patch","input":"*** Begin Patch"},
              {"type":"custom_tool_call_output","call_id":"c3","output":[{"type":"input_text","text":"ok"}]}],
            "tools":[{"type":"function","name":"f","description":"d","parameters":{"type":"object"}},
              {"type":"custom","name":"apply_patch","description":"patch","format":{"type":"grammar"}},
              {"type":"web_search"}],
            "tool_choice":{"type":"function","name":"f"},"parallel_tool_calls":false,
            "store":false,"max_output_tokens":5,"include":["reasoning.encrypted_content"],"unknown":1}"#,
    );
    let chat = &request.chat;
    assert!(chat.stream && chat.mode.thinking && !chat.parallel_tool_calls);
    assert_eq!(chat.tool_choice, ToolChoice::Named("f".into()));
    assert_eq!(chat.tools.len(), 2);
    assert!(!chat.tools[0].freeform && chat.tools[1].freeform);
    assert_eq!(request.freeform, vec!["apply_patch".to_string()]);
    let m = &chat.messages;
    assert_eq!(m[0], Message::text(Role::System, "be brief"));
    assert_eq!(m[1], Message::text(Role::System, "dev"));
    assert_eq!(m[2].parts.len(), 3);
    assert!(matches!(&m[2].parts[1], Part::Image(url) if url.starts_with("data:image")));
    assert!(matches!(&m[2].parts[2], Part::File(_)));
    assert_eq!(m[3].role, Role::Assistant);
    assert_eq!(m[3].parts.len(), 2, "calls in a row are one answer");
    let Part::ToolCall(call) = &m[3].parts[0] else { panic!() };
    assert_eq!((call.id.as_str(), call.arguments["x"].clone()), ("c1", json!(1)));
    let Part::ToolResult(result) = &m[4].parts[0] else { panic!() };
    assert_eq!((result.call_id.as_str(), result.content.as_str()), ("c1", "one"));
    let Part::ToolCall(custom) = &m[5].parts[0] else { panic!() };
    assert_eq!(custom.arguments["input"], "*** Begin Patch");
    let Part::ToolResult(result) = &m[6].parts[0] else { panic!() };
    assert_eq!(result.content, "ok");
}

#[test]
fn a_string_input_is_one_user_turn_and_effort_minimal_is_no_thinking() {
    let request = parsed(r#"{"model":"kimi","input":"hi","reasoning":{"effort":"minimal"}}"#);
    assert_eq!(request.chat.messages, vec![Message::text(Role::User, "hi")]);
    assert!(!request.chat.mode.thinking && !request.chat.stream);
}

#[test]
fn reasoning_effort_xhigh_asks_for_the_top_effort() {
    let mode = |effort: &str| {
        let body = format!(r#"{{"model":"kimi","input":"hi","reasoning":{{"effort":"{effort}"}}}}"#);
        let mode = parsed(&body).chat.mode;
        (mode.thinking, mode.max_effort)
    };
    assert_eq!(mode("xhigh"), (true, true));
    assert_eq!(mode("high"), (true, false));
    assert_eq!(mode("none"), (false, false));
}

#[test]
fn bad_requests_are_named() {
    let cases = [
        ("{", "invalid JSON"),
        (r#"{"input":"x"}"#, "`model`"),
        (r#"{"model":"kimi","input":[]}"#, "`input`"),
        (r#"{"model":"kimi","input":5}"#, "`input`"),
        (r#"{"model":"kimi","input":[{"role":"wizard","content":"x"}]}"#, "input[0].role"),
        (r#"{"model":"kimi","input":"x","previous_response_id":"resp_1"}"#, "full conversation"),
    ];
    for (body, needle) in cases {
        let error = parse(body.as_bytes()).err().unwrap();
        assert_eq!(error.kind, chat::ErrorKind::InvalidRequest);
        assert!(error.message.contains(needle), "{body}: {}", error.message);
    }
}

#[test]
fn text_format_sets_the_output_and_a_failed_check_is_a_refusal_part() {
    let request = parsed(
        r#"{"model":"kimi","input":"x","text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"}}}}"#,
    );
    let schema = serde_json::json!({"type": "object"});
    assert_eq!(request.chat.output, chat::Output::JsonSchema { name: "n".into(), schema });
    let plain = parsed(r#"{"model":"kimi","input":"x","text":{"format":{"type":"json_object"}}}"#);
    assert_eq!(plain.chat.output, chat::Output::Json);
    assert_eq!(parsed(r#"{"model":"kimi","input":"x"}"#).chat.output, chat::Output::Text);
    let mut answer = crate::dialect::answer_of([Event::Text("{\"a\":1}".into())]);
    let body: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
    assert_eq!(body["output"][0]["content"][0]["text"], "{\"a\":1}");
    assert_eq!(body["text"]["format"]["name"], "n", "the format is echoed");
    answer.text = "No.".into();
    answer.invalid_output = Some("not JSON".into());
    let body: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
    let part = &body["output"][0]["content"][0];
    assert_eq!(
        (part["type"].as_str(), part["refusal"].as_str()),
        (Some("refusal"), Some("not JSON. The model answered:\nNo."))
    );
}

#[test]
fn stream_events_in_order_with_sequence_numbers() {
    let request = parsed(r#"{"model":"kimi","input":"hi","stream":true}"#);
    let mut stream = Stream::new(&request);
    let mut out = Vec::new();
    for event in [
        Event::ConversationId("chat1".into()),
        Event::Thinking("hmm".into()),
        Event::Text("Hel".into()),
        Event::Text("lo".into()),
        Event::Finish(Finish::Stop),
    ] {
        stream.event(event, &mut out);
    }
    let frames = frames(&out);
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, data)) in frames.iter().enumerate() {
        assert_eq!((&data["type"], &data["sequence_number"]), (&json!(name), &json!(i)));
    }
    assert_eq!(frames[12].1["text"], "Hello");
    assert_eq!(frames[12].1["output_index"], 1);
    let response = &frames[15].1["response"];
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["summary"][0]["text"], "hmm");
    assert_eq!(response["output"][1]["content"][0]["text"], "Hello");
    assert!(response["usage"]["output_tokens_details"]["reasoning_tokens"].as_u64().unwrap() >= 1);
    assert_eq!(response["id"], frames[0].1["response"]["id"]);
}

#[test]
fn calls_stream_as_function_and_custom_items() {
    let request = parsed(r#"{"model":"kimi","input":"hi","tools":[{"type":"custom","name":"apply_patch"}]}"#);
    let mut stream = Stream::new(&request);
    let mut out = Vec::new();
    let arguments = Map::from_iter([("city".to_string(), json!("Paris"))]);
    stream.event(
        Event::ToolCall(ToolCall { id: String::new(), name: "get_weather".into(), arguments }),
        &mut out,
    );
    let input = Map::from_iter([("input".to_string(), json!("*** Begin Patch"))]);
    stream.event(
        Event::ToolCall(ToolCall { id: String::new(), name: "apply_patch".into(), arguments: input }),
        &mut out,
    );
    stream.event(Event::Finish(Finish::ToolCalls), &mut out);
    let frames = frames(&out);
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[2..6],
        [
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done"
        ]
    );
    assert_eq!(
        names[6..10],
        [
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done"
        ]
    );
    let output = &frames[10].1["response"]["output"];
    assert_eq!(output[0]["type"], "function_call");
    assert_eq!(output[0]["arguments"], "{\"city\":\"Paris\"}");
    assert!(output[0]["call_id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(output[1]["type"], "custom_tool_call");
    assert_eq!(output[1]["input"], "*** Begin Patch");
    assert_eq!(frames[8].1["input"], "*** Begin Patch");
}

#[test]
fn a_failure_is_an_error_and_response_failed() {
    let request = parsed(r#"{"model":"kimi","input":"hi"}"#);
    let mut stream = Stream::new(&request);
    let mut out = Vec::new();
    stream.event(Event::Text("par".into()), &mut out);
    stream.error(&chat::Error::new(chat::ErrorKind::Upstream, "cut"), &mut out);
    let frames = frames(&out);
    let (error, failed) = (&frames[frames.len() - 2], &frames[frames.len() - 1]);
    assert_eq!((error.0.as_str(), error.1["message"].as_str()), ("error", Some("cut")));
    assert_eq!(failed.0, "response.failed");
    assert_eq!(failed.1["response"]["status"], "failed");
    assert_eq!(failed.1["response"]["error"]["message"], "cut");
    assert!(frames.iter().all(|(n, _)| n != "response.completed"));
}

#[test]
fn aggregated_response() {
    let request = parsed(r#"{"model":"kimi-k1","input":"hi","tools":[{"type":"function","name":"f"}]}"#);
    let call = ToolCall { id: String::new(), name: "f".into(), arguments: Map::new() };
    let answer = crate::dialect::answer_of([
        Event::Thinking("hmm".into()),
        Event::Text("Hello".into()),
        Event::ToolCall(call),
        Event::Finish(Finish::ToolCalls),
    ]);
    let body: Value = serde_json::from_slice(&Complete::new(&request).body(&answer)).unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!((body["object"].as_str(), body["status"].as_str()), (Some("response"), Some("completed")));
    assert_eq!(body["model"], "kimi-k1");
    let types: Vec<&str> =
        body["output"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["reasoning", "message", "function_call"]);
    assert_eq!(body["output"][2]["arguments"], "{}");
    assert_eq!(body["tools"][0]["name"], "f");
    assert_eq!(body["tool_choice"], "auto");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap())
    );
}
