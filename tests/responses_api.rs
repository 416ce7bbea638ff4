//! The Responses API (`POST /v1/responses`, Codex CLI's wire) over HTTP on every token kind:
//! the documented event order, text and thinking, function and custom tool calls (emulated: the
//! mock scripts the exact text the model writes), the round trip and the failures.

#[macro_use]
mod support;

use serde_json::{Value, json};
use support::{Harness, Kind, Script, post_with, stream_with};

both_backends!(
    text_streams_in_the_documented_order,
    thinking_is_a_reasoning_item,
    one_function_call,
    parallel_function_calls,
    a_custom_tool_call_carries_the_raw_input,
    the_round_trip_feeds_the_output_back,
    failures_are_openai_errors_or_response_failed,
);

fn headers(kind: Kind) -> String {
    format!("Bearer {}", kind.token())
}

fn tools() -> Value {
    json!([
        {"type": "function", "name": "get_weather", "description": "The weather of a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"type": "custom", "name": "apply_patch", "description": "Edit files",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /(.|\\n)+/"}},
        {"type": "web_search"}
    ])
}

fn request(input: Value, stream: bool) -> Value {
    json!({"model": "kimi", "input": input, "stream": stream, "tools": tools(), "store": false})
}

/// Whole: the response object. Streamed: the `(event, data)` pairs, and the response of the
/// final `response.completed` (checked to be the event's `type` and in sequence).
fn ask(h: &Harness, kind: Kind, body: &Value) -> (Value, Vec<(String, Value)>) {
    let bearer = headers(kind);
    let headers = [("Authorization", bearer.as_str())];
    let url = h.url("/v1/responses");
    if body["stream"] != true {
        let reply = post_with(&url, &headers, body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        return (reply.json(), Vec::new());
    }
    let answer = stream_with(&url, &headers, body);
    assert_eq!(answer.status, 200, "{}", answer.body_if_error);
    assert!(answer.complete);
    let events: Vec<(String, Value)> =
        answer.frames.iter().map(|f| (f.event.clone().unwrap_or_default(), f.json())).collect();
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!((&data["type"], data["sequence_number"].as_u64()), (&json!(name), Some(i as u64)));
    }
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    (data["response"].clone(), events)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn types(response: &Value) -> Vec<&str> {
    response["output"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect()
}

fn text_of(response: &Value) -> String {
    let messages = response["output"].as_array().unwrap().iter().filter(|i| i["type"] == "message");
    messages
        .flat_map(|m| m["content"].as_array().unwrap().iter())
        .map(|c| c["text"].as_str().unwrap())
        .collect()
}

fn text_streams_in_the_documented_order(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { text: vec!["Hel".into(), "lo".into()], ..Script::default() });
    let (response, events) = ask(&h, kind, &json!({"model": "kimi", "input": "hi", "stream": true}));
    let names = names(&events);
    assert_eq!(
        names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        names[names.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Hello");
    assert_eq!((text_of(&response), response["status"].as_str()), ("Hello".to_string(), Some("completed")));
    assert!(response["usage"]["total_tokens"].as_u64().unwrap() >= 2);
    let (whole, _) = ask(&h, kind, &json!({"model": "kimi", "input": "hi"}));
    assert_eq!((whole["object"].as_str(), text_of(&whole)), (Some("response"), "Hello".to_string()));
    assert!(h.mock.settled().live_chats.is_empty());
}

fn thinking_is_a_reasoning_item(kind: Kind) {
    let h = Harness::start();
    let script =
        Script { text: vec!["42".into()], thinking: vec!["Let me think.".into()], ..Script::default() };
    for stream in [false, true] {
        h.mock.script(script.clone());
        let body = json!({"model": "kimi", "input": "?", "stream": stream, "reasoning": {"effort": "high"}});
        let (response, events) = ask(&h, kind, &body);
        assert_eq!(types(&response), ["reasoning", "message"], "stream={stream}");
        assert_eq!(response["output"][0]["summary"][0]["text"], "Let me think.");
        assert_eq!(text_of(&response), "42");
        assert!(!stream || names(&events).contains(&"response.reasoning_summary_text.delta"));
    }
}

fn weather(city: &str) -> String {
    format!("<invoke name=\"get_weather\">\n<parameter name=\"city\">{city}</parameter>\n</invoke>\n")
}

fn one_function_call(kind: Kind) {
    for stream in [false, true] {
        let h = Harness::start();
        h.mock.script(Script {
            text: vec![format!("<tool_calls>\n{}</tool_calls>", weather("Paris"))],
            ..Script::default()
        });
        let (response, events) = ask(&h, kind, &request(json!("weather?"), stream));
        assert_eq!(types(&response), ["function_call"], "stream={stream}");
        let call = &response["output"][0];
        assert_eq!(
            (call["name"].as_str(), call["arguments"].as_str()),
            (Some("get_weather"), Some("{\"city\":\"Paris\"}"))
        );
        assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
        if stream {
            let done = events.iter().find(|(n, _)| n == "response.function_call_arguments.done").unwrap();
            assert_eq!(done.1["arguments"], call["arguments"]);
        }
        assert!(h.mock.settled().live_chats.is_empty());
    }
}

fn parallel_function_calls(kind: Kind) {
    for stream in [false, true] {
        let h = Harness::start();
        let text = format!("<tool_calls>\n{}{}</tool_calls>", weather("Paris"), weather("Oslo"));
        h.mock.script(Script { text: vec![text], ..Script::default() });
        let (response, _) = ask(&h, kind, &request(json!("weather?"), stream));
        let output = response["output"].as_array().unwrap();
        let cities: Vec<&str> = output.iter().map(|c| c["arguments"].as_str().unwrap()).collect();
        assert_eq!(cities, ["{\"city\":\"Paris\"}", "{\"city\":\"Oslo\"}"], "stream={stream}");
        assert_ne!(output[0]["call_id"], output[1]["call_id"]);
    }
}

const PATCH: &str = "*** Begin Patch\n*** Add File: hello.txt\n+hi <there> & \"you\"\n*** End Patch";

fn a_custom_tool_call_carries_the_raw_input(kind: Kind) {
    for stream in [false, true] {
        let h = Harness::start();
        let text = format!(
            "<tool_calls>\n<invoke name=\"apply_patch\">\n<parameter name=\"input\">{PATCH}</parameter>\n</invoke>\n</tool_calls>"
        );
        h.mock.script(Script { text: vec![text], ..Script::default() });
        let (response, events) = ask(&h, kind, &request(json!("add a file"), stream));
        assert_eq!(types(&response), ["custom_tool_call"], "stream={stream}");
        assert_eq!(
            (response["output"][0]["name"].as_str(), response["output"][0]["input"].as_str()),
            (Some("apply_patch"), Some(PATCH))
        );
        if stream {
            let done = events.iter().find(|(n, _)| n == "response.custom_tool_call_input.done").unwrap();
            assert_eq!(done.1["input"], PATCH);
        }
        let stats = h.mock.stats();
        let prompt = stats.sent_prompt();
        assert!(prompt.contains("## apply_patch") && prompt.contains("input (text)"), "{prompt}");
        let native = if kind == Kind::Legacy { vec![] } else { vec!["get_weather", "apply_patch"] };
        assert_eq!(
            support::device_tools(stats.last_completion.as_ref()),
            native,
            "declared natively on Connect"
        );
    }
}

fn the_round_trip_feeds_the_output_back(kind: Kind) {
    for stream in [false, true] {
        let h = Harness::start();
        h.mock.script(Script { text: vec!["It is sunny in Paris.".into()], ..Script::default() });
        let input = json!([
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "reasoning", "summary": [], "encrypted_content": "x"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"}
        ]);
        let (response, _) = ask(&h, kind, &request(input, stream));
        assert_eq!(
            (types(&response), text_of(&response)),
            (vec!["message"], "It is sunny in Paris.".to_string())
        );
        let prompt = h.mock.stats().last_prompt.unwrap();
        assert!(
            prompt.contains("<invoke name=\"get_weather\">\n<parameter name=\"city\">Paris</parameter>"),
            "{prompt}"
        );
        assert!(prompt.contains("sunny, 21C\n</tool_result>"), "{prompt}");
    }
}

fn failures_are_openai_errors_or_response_failed(kind: Kind) {
    let h = Harness::start();
    let url = h.url("/v1/responses");
    let unauthenticated = post_with(&url, &[], &json!({"model": "kimi", "input": "hi"}));
    assert_eq!(
        (unauthenticated.status, unauthenticated.json()["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    let bearer = headers(kind);
    let auth = [("Authorization", bearer.as_str())];
    let previous =
        post_with(&url, &auth, &json!({"model": "kimi", "input": "hi", "previous_response_id": "resp_1"}));
    assert_eq!(previous.status, 400);
    assert!(previous.json()["error"]["message"].as_str().unwrap().contains("full conversation"));
    let fault = support::Fault::Cut { after: 1 };
    h.mock.script(Script {
        text: vec!["one ".into(), "two".into()],
        fault: Some(fault),
        ..Script::default()
    });
    let answer = stream_with(&url, &auth, &json!({"model": "kimi", "input": "hi", "stream": true}));
    let names: Vec<String> = answer.frames.iter().map(|f| f.event.clone().unwrap_or_default()).collect();
    assert_eq!(names.last().map(String::as_str), Some("response.failed"), "{names:?}");
    assert!(names.contains(&"error".to_string()) && !names.contains(&"response.completed".to_string()));
}
