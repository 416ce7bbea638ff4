//! The Responses API against OpenAI's published OpenAPI document (the part pinned in
//! `tests/openapi/`, its source and date in the README there). Every `/v1/responses` answer the
//! support helpers receive is checked against it in every test (`support::openapi`); this file
//! runs the scenarios in one place — text, reasoning, function and custom tool calls,
//! structured output, errors before and during a stream — checks that each kind of event was
//! seen and valid, and that the check refuses what the document refuses.

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::openapi::{Schema, assert_valid, problems};
use support::{Fault, Harness, Kind, Script, post_with, stream_with};

fn tools() -> Value {
    json!([
        {"type": "function", "name": "get_weather", "description": "The weather of a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"type": "custom", "name": "apply_patch", "description": "Edit files",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /(.|\\n)+/"}}
    ])
}

/// A call as the model writes it (the `<tool_calls>` form the tool-call parser reads).
fn call_text(name: &str, parameter: &str, value: &str) -> String {
    format!(
        "<tool_calls>\n<invoke name=\"{name}\">\n<parameter name=\"{parameter}\">{value}</parameter>\n</invoke>\n</tool_calls>"
    )
}

/// The scenarios: a script for the mock and a request body (without `stream`).
fn scenarios() -> Vec<(&'static str, Script, Value)> {
    let text = Script { text: vec!["Hel".into(), "lo".into()], ..Script::default() };
    let thinking =
        Script { text: vec!["42".into()], thinking: vec!["Let me think.".into()], ..Script::default() };
    let function = Script { text: vec![call_text("get_weather", "city", "Paris")], ..Script::default() };
    let patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch";
    let custom = Script { text: vec![call_text("apply_patch", "input", patch)], ..Script::default() };
    let json_answer = Script { text: vec![r#"{"answer": 42}"#.into()], ..Script::default() };
    let not_json = Script { text: vec!["no JSON here".into()], ..Script::default() };
    let schema = json!({"type": "json_schema", "name": "answer", "strict": true, "schema": {"type": "object",
        "properties": {"answer": {"type": "integer"}}, "required": ["answer"], "additionalProperties": false}});
    vec![
        ("text", text, json!({"model": "kimi", "input": "hi", "instructions": "Be brief."})),
        ("reasoning", thinking, json!({"model": "kimi", "input": "?", "reasoning": {"effort": "high"}})),
        ("function call", function, json!({"model": "kimi", "input": "weather?", "tools": tools()})),
        (
            "custom call",
            custom,
            json!({"model": "kimi", "input": "patch", "tools": tools(), "tool_choice": "required"}),
        ),
        (
            "json",
            json_answer.clone(),
            json!({"model": "kimi", "input": "n?", "text": {"format": schema.clone()}}),
        ),
        ("refusal", not_json, json!({"model": "kimi", "input": "n?", "text": {"format": schema}})),
        (
            "cut",
            Script {
                text: vec!["one ".into(), "two".into()],
                fault: Some(Fault::Cut { after: 1 }),
                ..json_answer
            },
            json!({"model": "kimi", "input": "x"}),
        ),
    ]
}

#[test]
fn every_responses_answer_and_event_of_every_scenario_is_valid_per_the_document() {
    let h = Harness::start();
    let token = Kind::Web.token();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let url = h.url("/v1/responses");
    let mut event_types = BTreeSet::new();
    for (name, script, body) in scenarios() {
        h.mock.script(script.clone());
        let reply = post_with(&url, &auth, &body);
        let schema = if reply.status == 200 { Schema::Response } else { Schema::ErrorResponse };
        assert_valid(schema, &reply.json());
        assert!(name == "cut" || reply.status == 200, "{name}: {}", reply.body);
        h.mock.script(script);
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let answer = stream_with(&url, &auth, &streamed);
        assert_eq!(answer.status, 200, "{name}: {}", answer.body_if_error);
        for frame in &answer.frames {
            let event = frame.json();
            assert_valid(Schema::ResponseStreamEvent, &event);
            event_types.insert(event["type"].as_str().unwrap_or_default().to_string());
        }
    }
    for errors in [
        post_with(&url, &[], &json!({"model": "kimi", "input": "hi"})),
        post_with(&url, &auth, &json!({"input": "no model"})),
        post_with(&url, &auth, &json!({"model": "kimi", "input": "hi", "previous_response_id": "resp_1"})),
    ] {
        assert!(errors.status >= 400, "{}", errors.body);
        assert_valid(Schema::ErrorResponse, &errors.json());
    }
    for expected in [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.completed",
        "error",
        "response.failed",
    ] {
        assert!(event_types.contains(expected), "no {expected} event among {event_types:?}");
    }
}

/// A real answer of the server, whole, and the last event of the same answer streamed.
fn a_real_answer() -> (Value, Value) {
    let h = Harness::start();
    h.mock.script(Script { text: vec!["Hello".into()], ..Script::default() });
    let token = Kind::Connect.token();
    let bearer = format!("Bearer {token}");
    let body = json!({"model": "kimi", "input": "hi", "tools": tools()});
    let whole = post_with(&h.url("/v1/responses"), &[("Authorization", &bearer)], &body).json();
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let answer = stream_with(&h.url("/v1/responses"), &[("Authorization", &bearer)], &streamed);
    (whole, answer.frames.last().unwrap().json())
}

#[test]
fn usage_without_cache_write_tokens_is_refused_by_the_document() {
    let (mut whole, mut completed) = a_real_answer();
    assert_eq!(whole["usage"]["input_tokens_details"], json!({"cached_tokens": 0, "cache_write_tokens": 0}));
    assert_eq!(completed["type"], "response.completed");
    whole["usage"]["input_tokens_details"].as_object_mut().unwrap().remove("cache_write_tokens");
    let said = problems(Schema::Response, &whole);
    assert!(said.iter().any(|p| p.contains("cache_write_tokens")), "{said:?}");
    completed["response"]["usage"]["input_tokens_details"]
        .as_object_mut()
        .unwrap()
        .remove("cache_write_tokens");
    assert!(!problems(Schema::ResponseStreamEvent, &completed).is_empty());
}

#[test]
fn the_check_refuses_what_the_document_refuses() {
    let (whole, completed) = a_real_answer();
    assert!(problems(Schema::Response, &whole).is_empty());
    let mut failed = completed.clone();
    failed["type"] = json!("response.failed");
    failed["response"]["status"] = json!("failed");
    failed["response"]["error"] = json!({"code": "server_error", "message": "cut"});
    assert!(
        problems(Schema::ResponseStreamEvent, &failed).is_empty(),
        "{:?}",
        problems(Schema::ResponseStreamEvent, &failed)
    );
    // A failed response's code is one of the document's few (the `error` event has the precise one).
    failed["response"]["error"]["code"] = json!("upstream_error");
    assert!(!problems(Schema::ResponseStreamEvent, &failed).is_empty());
    // An echoed function tool says `strict`, even as null.
    let mut unstrict = whole.clone();
    unstrict["tools"][0].as_object_mut().unwrap().remove("strict");
    assert!(!problems(Schema::Response, &unstrict).is_empty());
    let delta = json!({"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1",
        "output_index": 0, "content_index": 0, "delta": "Hi"});
    assert!(!problems(Schema::ResponseStreamEvent, &delta).is_empty(), "logprobs is required");
    let mut wrong = delta;
    wrong["logprobs"] = json!([]);
    assert!(problems(Schema::ResponseStreamEvent, &wrong).is_empty());
    wrong["type"] = json!("response.output_text.deltas");
    assert!(!problems(Schema::ResponseStreamEvent, &wrong).is_empty());
    assert!(!problems(Schema::ErrorResponse, &json!({"error": {"message": "m", "type": "t"}})).is_empty());
}
