//! Anthropic Messages over both Kimi backends, over raw HTTP: the exact event order and
//! framing Claude Code and the SDK need, thinking, system prompts, errors, true streaming.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Api, Fault, Harness, Kind, Script, get_with, post_with, stream_with};

both_backends!(
    message_with_x_api_key,
    stream_events_in_order_with_event_lines,
    thinking_blocks_come_first_and_are_signed,
    system_blocks_and_system_messages_reach_kimi,
    events_are_forwarded_as_they_arrive,
    errors_in_the_anthropic_shape,
    a_failure_mid_stream_is_an_error_event,
    count_tokens_and_models,
);

fn headers(token: &str) -> Vec<(&'static str, String)> {
    vec![("x-api-key", token.to_string()), ("anthropic-version", "2023-06-01".to_string())]
}

fn refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

fn hi(stream: bool) -> Value {
    json!({"model": "claude-opus-5-5", "max_tokens": 64000, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

fn message_with_x_api_key(kind: Kind) {
    let h = Harness::start();
    let reply = post_with(&h.url("/v1/messages?beta=true"), &refs(&headers(&kind.token())), &hi(false));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-opus-5-5");
    assert_eq!(body["content"], json!([{"type": "text", "text": "Hello from the mock Kimi."}]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(body["usage"]["cache_creation_input_tokens"], 0);
    // The Python SDK sends the key as a bearer token.
    let bearer = format!("Bearer {}", kind.token());
    let reply = post_with(
        &h.url("/v1/messages"),
        &[("Authorization", &bearer), ("anthropic-version", "2026-10-21")],
        &hi(false),
    );
    assert_eq!(reply.status, 200);
    assert!(h.mock.settled().live_chats.is_empty());
}

fn stream_events_in_order_with_event_lines(kind: Kind) {
    let h = Harness::start();
    let answer = stream_with(&h.url("/v1/messages"), &refs(&headers(&kind.token())), &hi(true));
    assert_eq!(answer.status, 200);
    assert!(answer.complete);
    let names: Vec<&str> =
        answer.frames.iter().map(|f| f.event.as_deref().expect("every event has a name")).collect();
    let deltas = names.iter().filter(|n| **n == "content_block_delta").count();
    let mut expected = vec!["message_start", "ping", "content_block_start"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for frame in &answer.frames {
        assert_eq!(frame.json()["type"], frame.event.as_deref().unwrap(), "data.type matches the event name");
    }
    let text: String =
        answer.frames.iter().filter_map(|f| f.json()["delta"]["text"].as_str().map(str::to_string)).collect();
    assert_eq!(text, "Hello from the mock Kimi.");
    let delta = answer.frames.iter().find(|f| f.event.as_deref() == Some("message_delta")).unwrap().json();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert!(!answer.raw.contains("[DONE]"));
}

fn thinking_blocks_come_first_and_are_signed(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script {
        thinking: vec!["Let me think.".into()],
        text: vec!["42".into()],
        ..Script::default()
    });
    let mut body = hi(true);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let answer = stream_with(&h.url("/v1/messages"), &refs(&headers(&kind.token())), &body);
    let frames: Vec<Value> = answer.frames.iter().map(|f| f.json()).collect();
    let starts: Vec<&Value> = frames.iter().filter(|f| f["type"] == "content_block_start").collect();
    assert_eq!(starts[0]["content_block"]["type"], "thinking");
    assert_eq!((starts[0]["index"].clone(), starts[1]["index"].clone()), (json!(0), json!(1)));
    assert_eq!(starts[1]["content_block"]["type"], "text");
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["delta"]["type"].as_str()).collect();
    assert_eq!(kinds, ["thinking_delta", "signature_delta", "text_delta"]);

    body["stream"] = json!(false);
    let reply = post_with(&h.url("/v1/messages"), &refs(&headers(&kind.token())), &body).json();
    assert_eq!(reply["content"][0]["type"], "thinking");
    assert_eq!(reply["content"][0]["thinking"], "Let me think.");
    assert!(reply["content"][0]["signature"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(reply["content"][1]["text"], "42");

    // The signed block comes back in the next turn and is accepted.
    let next = json!({"model": "claude-opus-5-5", "max_tokens": 100, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": reply["content"]},
        {"role": "user", "content": "and?"}]});
    let again = post_with(&h.url("/v1/messages"), &refs(&headers(&kind.token())), &next);
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(
        !h.mock.stats().last_prompt.unwrap().contains("Let me think."),
        "thinking is not sent back to Kimi"
    );
}

fn system_blocks_and_system_messages_reach_kimi(kind: Kind) {
    let h = Harness::start();
    let body = json!({"model": "claude-opus-5-5", "max_tokens": 10,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.331;"},
                   {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}}]},
                     {"role": "system", "content": [{"type": "text", "text": "late rule"}]}],
        "metadata": {"user_id": "{\"device_id\":\"x\"}"}, "context_management": {"edits": []}, "temperature": 0.5});
    let reply = post_with(&h.url("/v1/messages"), &refs(&headers(&kind.token())), &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stats = h.mock.stats();
    let prompt = stats.last_prompt.unwrap();
    if kind.api() == Api::Legacy {
        assert_eq!(
            prompt,
            "system:You are terse.\nuser:say hi\nsystem:关注用户最新的消息\nsystem:late rule\n"
        );
        return;
    }
    // Connect: the system prompt goes into Kimi's own field (docs/kimi-protocol.md §7.3).
    assert_eq!(prompt, "say hi\n");
    assert_eq!(stats.last_completion.unwrap()["options"]["systemPrompt"], "You are terse.\n\nlate rule");
}

fn events_are_forwarded_as_they_arrive(kind: Kind) {
    let h = Harness::start();
    let pieces: Vec<String> = (0..5).map(|i| format!("p{i} ")).collect();
    h.mock.script(Script { text: pieces.clone(), delay_ms: 120, ..Script::default() });
    let answer = stream_with(&h.url("/v1/messages"), &refs(&headers(&kind.token())), &hi(true));
    let deltas: Vec<_> =
        answer.frames.iter().filter(|f| f.event.as_deref() == Some("content_block_delta")).collect();
    assert_eq!(deltas.len(), pieces.len());
    support::assert_arrived_apart(&deltas, Duration::from_millis(350));
}

fn errors_in_the_anthropic_shape(kind: Kind) {
    let h = Harness::start();
    let url = h.url("/v1/messages");
    let check = |reply: &support::Reply, status: u16, kind_name: &str| {
        assert_eq!(reply.status, status, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], kind_name, "{body}");
    };
    check(&post_with(&url, &refs(&headers(&kind.refused_token())), &hi(true)), 401, "authentication_error");
    check(&post_with(&url, &[("anthropic-version", "2023-06-01")], &hi(false)), 401, "authentication_error");
    check(
        &post_with(&url, &refs(&headers(&kind.token())), &json!({"model": "m"})),
        400,
        "invalid_request_error",
    );
    h.mock.script(Script { fault: Some(kind.busy_fault()), ..Script::default() });
    check(&post_with(&url, &refs(&headers(&kind.token())), &hi(true)), 429, "rate_limit_error");
    let overloaded = match kind.api() {
        Api::Legacy => "openai.completion.stream",
        Api::Connect => "unavailable",
    };
    let fault = Fault::ErrorEvent { error_type: overloaded.into(), message: "too busy".into(), after: 0 };
    h.mock.script(Script { fault: Some(fault), ..Script::default() });
    let reply = post_with(&url, &refs(&headers(&kind.token())), &hi(true));
    check(&reply, 529, "overloaded_error");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(h.mock.settled().live_chats.is_empty());
}

fn a_failure_mid_stream_is_an_error_event(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { fault: Some(Fault::Cut { after: 2 }), ..Script::default() });
    let answer = stream_with(&h.url("/v1/messages"), &refs(&headers(&kind.token())), &hi(true));
    assert_eq!(answer.status, 200);
    assert!(answer.complete, "the body ends properly after the error");
    let last = answer.frames.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.json()["error"]["type"], "api_error");
    assert!(!answer.frames.iter().any(|f| f.event.as_deref() == Some("message_stop")), "no fake success");
    assert!(h.mock.settled().live_chats.is_empty());
}

fn count_tokens_and_models(kind: Kind) {
    let h = Harness::start();
    let reply =
        post_with(&h.url("/v1/messages/count_tokens?beta=true"), &refs(&headers(&kind.token())), &hi(false));
    assert_eq!(reply.status, 200);
    assert!(reply.json()["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(h.mock.stats().completions, 0, "counting does not ask Kimi");
    let models = get_with(&h.url("/v1/models"), &[("anthropic-version", "2023-06-01")]).json();
    assert_eq!(models["has_more"], false);
    assert_eq!(models["data"][0]["type"], "model");
    assert!(models["first_id"].is_string() && models["last_id"].is_string());
}
