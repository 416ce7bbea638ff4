//! Tool calling, emulated on Kimi's web chat, through all three dialects, streamed and not, on
//! every token kind: the mock scripts the exact answer text the model writes; the server must
//! turn the call markup into each API's tool calls, stop reading after the call block, and
//! feed results back in the grammar.

#[macro_use]
mod support;

use serde_json::{Value, json};
use support::{Harness, Kind, Script, post_with, stream_with};

both_backends!(
    one_call_in_every_dialect,
    every_form_kimis_model_writes_is_the_same_call,
    parallel_calls_in_order,
    prose_before_a_call_streams_as_text,
    a_call_split_across_many_upstream_events,
    a_fenced_example_is_text_not_a_call,
    an_undeclared_tool_or_a_malformed_call_is_text,
    thinking_then_a_call,
    tool_choice_none_shows_no_tools_and_parses_nothing,
    the_round_trip_feeds_the_result_back_and_ends_with_an_answer,
    kimis_length_error_is_each_dialects_context_length_error,
);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
    Gemini,
}

const APIS: [Api; 3] = [Api::OpenAi, Api::Anthropic, Api::Gemini];

/// What one answer held, whatever the dialect.
#[derive(Debug, Default)]
struct Got {
    text: String,
    calls: Vec<(String, Value)>,
    ids: Vec<String>,
    /// The dialect's stop reason.
    finish: String,
}

fn weather_tool() -> (&'static str, &'static str, Value) {
    (
        "get_weather",
        "The weather of a city",
        json!({"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}),
    )
}

fn tools_of(api: Api) -> Value {
    let (name, description, schema) = weather_tool();
    let time = json!({"type": "object", "properties": {"zone": {"type": "string"}}});
    match api {
        Api::OpenAi => json!([
            {"type": "function", "function": {"name": name, "description": description, "parameters": schema}},
            {"type": "function", "function": {"name": "get_time", "description": "the time", "parameters": time}}]),
        Api::Anthropic => json!([{"name": name, "description": description, "input_schema": schema},
            {"name": "get_time", "description": "the time", "input_schema": time}]),
        Api::Gemini => json!([{"functionDeclarations": [
            {"name": name, "description": description, "parametersJsonSchema": schema},
            {"name": "get_time", "description": "the time", "parameters": time}]}]),
    }
}

fn body(api: Api, stream: bool, messages: Value, extra: Value) -> Value {
    let mut body = match api {
        Api::OpenAi => {
            json!({"model": "kimi", "stream": stream, "messages": messages, "tools": tools_of(api)})
        }
        Api::Anthropic => {
            json!({"model": "kimi", "max_tokens": 1024, "stream": stream, "messages": messages, "tools": tools_of(api)})
        }
        Api::Gemini => json!({"contents": messages, "tools": tools_of(api)}),
    };
    for (key, value) in extra.as_object().into_iter().flatten() {
        body[key] = value.clone();
    }
    body
}

fn user(api: Api, text: &str) -> Value {
    match api {
        Api::Gemini => json!([{"role": "user", "parts": [{"text": text}]}]),
        _ => json!([{"role": "user", "content": text}]),
    }
}

fn url(h: &Harness, api: Api, stream: bool) -> String {
    match (api, stream) {
        (Api::OpenAi, _) => h.url("/v1/chat/completions"),
        (Api::Anthropic, _) => h.url("/v1/messages"),
        (Api::Gemini, false) => h.url("/v1beta/models/kimi:generateContent"),
        (Api::Gemini, true) => h.url("/v1beta/models/kimi:streamGenerateContent?alt=sse"),
    }
}

fn headers(api: Api, token: &str) -> Vec<(&'static str, String)> {
    match api {
        Api::OpenAi => vec![("Authorization", format!("Bearer {token}"))],
        Api::Anthropic => vec![("x-api-key", token.to_string()), ("anthropic-version", "2023-06-01".into())],
        Api::Gemini => vec![("x-goog-api-key", token.to_string())],
    }
}

/// Sends the request and reads the answer in the dialect's terms.
fn ask(h: &Harness, kind: Kind, api: Api, stream: bool, body: &Value) -> Got {
    let headers = headers(api, &kind.token());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let url = url(h, api, stream);
    if !stream {
        let reply = post_with(&url, &headers, body);
        assert_eq!(reply.status, 200, "{api:?}: {}", reply.body);
        return whole(api, &reply.json());
    }
    let answer = stream_with(&url, &headers, body);
    assert_eq!(answer.status, 200, "{api:?}: {}", answer.body_if_error);
    assert!(answer.complete, "{api:?}: the stream ends properly");
    let frames: Vec<Value> = answer.frames.iter().filter(|f| f.data != "[DONE]").map(|f| f.json()).collect();
    streamed(api, &frames)
}

fn whole(api: Api, body: &Value) -> Got {
    let mut got = Got::default();
    match api {
        Api::OpenAi => {
            let message = &body["choices"][0]["message"];
            got.text = message["content"].as_str().unwrap_or_default().to_string();
            for call in message["tool_calls"].as_array().into_iter().flatten() {
                let arguments: Value =
                    serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
                got.calls.push((call["function"]["name"].as_str().unwrap().to_string(), arguments));
                got.ids.push(call["id"].as_str().unwrap().to_string());
            }
            got.finish = body["choices"][0]["finish_reason"].as_str().unwrap().to_string();
        }
        Api::Anthropic => {
            for block in body["content"].as_array().unwrap() {
                match block["type"].as_str().unwrap() {
                    "text" => got.text.push_str(block["text"].as_str().unwrap()),
                    "tool_use" => {
                        got.calls.push((block["name"].as_str().unwrap().to_string(), block["input"].clone()));
                        got.ids.push(block["id"].as_str().unwrap().to_string());
                    }
                    _ => {}
                }
            }
            got.finish = body["stop_reason"].as_str().unwrap().to_string();
        }
        Api::Gemini => gemini_parts(&mut got, body),
    }
    got
}

fn gemini_parts(got: &mut Got, body: &Value) {
    let candidate = &body["candidates"][0];
    for part in candidate["content"]["parts"].as_array().into_iter().flatten() {
        if let Some(text) = part["text"].as_str().filter(|_| part["thought"] != true) {
            got.text.push_str(text);
        }
        if let Some(call) = part.get("functionCall") {
            got.calls.push((call["name"].as_str().unwrap().to_string(), call["args"].clone()));
        }
    }
    if let Some(finish) = candidate["finishReason"].as_str() {
        got.finish = finish.to_string();
    }
}

fn streamed(api: Api, frames: &[Value]) -> Got {
    let mut got = Got::default();
    let mut arguments: Vec<String> = Vec::new();
    for frame in frames {
        match api {
            Api::OpenAi => {
                let choice = &frame["choices"][0];
                got.text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
                for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
                    let index = call["index"].as_u64().unwrap() as usize;
                    if let Some(id) = call["id"].as_str() {
                        assert_eq!(index, got.ids.len(), "indexes count up");
                        got.ids.push(id.to_string());
                        got.calls.push((call["function"]["name"].as_str().unwrap().to_string(), Value::Null));
                        arguments.push(String::new());
                    }
                    arguments[index].push_str(call["function"]["arguments"].as_str().unwrap_or_default());
                }
                if let Some(finish) = choice["finish_reason"].as_str() {
                    got.finish = finish.to_string();
                }
            }
            Api::Anthropic => match frame["type"].as_str().unwrap() {
                "content_block_start" if frame["content_block"]["type"] == "tool_use" => {
                    assert_eq!(frame["content_block"]["input"], json!({}));
                    got.ids.push(frame["content_block"]["id"].as_str().unwrap().to_string());
                    got.calls
                        .push((frame["content_block"]["name"].as_str().unwrap().to_string(), Value::Null));
                    arguments.push(String::new());
                }
                "content_block_delta" => match frame["delta"]["type"].as_str().unwrap() {
                    "text_delta" => got.text.push_str(frame["delta"]["text"].as_str().unwrap()),
                    "input_json_delta" => arguments
                        .last_mut()
                        .unwrap()
                        .push_str(frame["delta"]["partial_json"].as_str().unwrap()),
                    _ => {}
                },
                "message_delta" => got.finish = frame["delta"]["stop_reason"].as_str().unwrap().to_string(),
                _ => {}
            },
            Api::Gemini => gemini_parts(&mut got, frame),
        }
    }
    for (call, json) in got.calls.iter_mut().zip(arguments) {
        call.1 = serde_json::from_str(&json).unwrap_or_else(|e| panic!("arguments {json:?}: {e}"));
    }
    got
}

fn tool_finish(api: Api) -> &'static str {
    match api {
        Api::OpenAi => "tool_calls",
        Api::Anthropic => "tool_use",
        Api::Gemini => "STOP",
    }
}

fn call_markup(city: &str) -> String {
    format!(
        "<invoke name=\"get_weather\">\n<parameter name=\"city\">{city}</parameter>\n<parameter name=\"days\">3</parameter>\n</invoke>\n"
    )
}

/// Runs `check` for every dialect, streamed and not, each time against the same script.
fn each(kind: Kind, pieces: &[&str], thinking: bool, check: impl Fn(Api, bool, &Got, &Harness)) {
    for api in APIS {
        for stream in [false, true] {
            let h = Harness::start();
            let script = Script {
                text: pieces.iter().map(|p| p.to_string()).collect(),
                thinking: if thinking { vec!["Let me think.".into()] } else { Vec::new() },
                ..Script::default()
            };
            h.mock.script(script);
            let model = if thinking { json!({"model": "kimi-thinking"}) } else { json!({}) };
            let mut request = body(api, stream, user(api, "weather?"), model);
            if thinking && api == Api::Gemini {
                request["generationConfig"] = json!({"thinkingConfig": {"includeThoughts": true}});
            }
            let got = ask(&h, kind, api, stream, &request);
            check(api, stream, &got, &h);
            assert!(h.mock.settled().live_chats.is_empty(), "{api:?} stream={stream}: the chat is deleted");
        }
    }
}

fn one_call_in_every_dialect(kind: Kind) {
    let text = format!("<tool_calls>\n{}</tool_calls>", call_markup("Paris"));
    each(kind, &[&text, "\nNow the result: sunny."], false, |api, stream, got, h| {
        assert_eq!(
            got.calls,
            vec![("get_weather".to_string(), json!({"city": "Paris", "days": 3}))],
            "{api:?} {stream}"
        );
        assert_eq!(got.finish, tool_finish(api), "{api:?} {stream}");
        assert!(!got.text.contains("result") && !got.text.contains("invoke"), "{api:?}: {:?}", got.text);
        let prefix = match api {
            Api::OpenAi => "call_",
            Api::Anthropic => "toolu_",
            Api::Gemini => "",
        };
        assert!(got.ids.iter().all(|id| id.starts_with(prefix) && id.len() > prefix.len()), "{:?}", got.ids);
        let stats = h.mock.stats();
        let prompt = stats.sent_prompt();
        assert!(prompt.contains("## get_weather") && prompt.contains("<tool_calls>"), "the tools reach Kimi");
        // On the Connect API each declared tool is declared natively, its schema in the system
        // prompt field (`docs/tools.md` §3); the legacy API has the tools in the turn.
        let declared = support::device_tools(stats.last_completion.as_ref());
        let native = if kind == Kind::Legacy { vec![] } else { vec!["get_weather", "get_time"] };
        assert_eq!(declared, native, "{api:?} {stream}");
    });
}

/// The forms Kimi's model was seen writing calls in (`docs/tools.md`), near-miss names and a
/// made-up result after the call included: each is the one call, in every dialect.
fn every_form_kimis_model_writes_is_the_same_call(kind: Kind) {
    let forms = [
        "<function_calls>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Paris &amp; around</parameter>\n\
         <parameter name=\"days\">3</parameter>\n</invoke>\n</function_calls>\n<function_results>sunny</function_results>",
        "<tool>Get_Weather</tool>\n<parameter>{“city”: “Paris & around”, “days”: 3}</parameter>\nResult: sunny",
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.bridge_get_weather:0<|tool_call_argument_begin|>\
         {“city”: “Paris & around”, “days”: “3”}<|tool_call_end|><|tool_calls_section_end|>\n[TOOL_RESULT] sunny",
    ];
    for form in forms {
        each(kind, &[form], false, |api, stream, got, _| {
            let expected = vec![("get_weather".to_string(), json!({"city": "Paris & around", "days": 3}))];
            assert_eq!(got.calls, expected, "{api:?} {stream} {form}");
            assert_eq!(got.finish, tool_finish(api), "{api:?} {stream}");
            assert!(!got.text.contains("sunny") && got.text.trim().is_empty(), "{api:?}: {:?}", got.text);
        });
    }
}

fn parallel_calls_in_order(kind: Kind) {
    let time = "<invoke name=\"get_time\">\n<parameter name=\"zone\">CET</parameter>\n</invoke>\n";
    let text = format!("<tool_calls>\n{}{time}</tool_calls>", call_markup("Oslo"));
    each(kind, &[&text], false, |api, _, got, _| {
        let names: Vec<&str> = got.calls.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["get_weather", "get_time"], "{api:?}");
        assert_eq!(got.calls[1].1, json!({"zone": "CET"}));
        if api != Api::Gemini {
            assert_ne!(got.ids[0], got.ids[1], "ids are unique per response");
        }
    });
}

fn prose_before_a_call_streams_as_text(kind: Kind) {
    let text = format!("I will check the weather.\n<tool_calls>\n{}</tool_calls>", call_markup("Rome"));
    each(kind, &[&text], false, |api, _, got, _| {
        assert_eq!(got.text.trim(), "I will check the weather.", "{api:?}");
        assert_eq!(got.calls.len(), 1);
        assert_eq!(got.finish, tool_finish(api));
    });
}

fn a_call_split_across_many_upstream_events(kind: Kind) {
    let text = format!("Sure. <tool_calls>\n{}</tool_calls>", call_markup("São Paulo"));
    let chars: Vec<String> = text.chars().collect::<Vec<_>>().chunks(3).map(|c| c.iter().collect()).collect();
    let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
    each(kind, &pieces, false, |api, _, got, _| {
        assert_eq!(
            got.calls,
            vec![("get_weather".to_string(), json!({"city": "São Paulo", "days": 3}))],
            "{api:?}"
        );
        assert_eq!(got.text.trim(), "Sure.");
    });
}

fn a_fenced_example_is_text_not_a_call(kind: Kind) {
    let text = format!(
        "Here is how a call looks:\n```xml\nexample of a call:\n<tool_calls>\n{}</tool_calls>\n```\nThat is all.",
        call_markup("X")
    );
    let expected = text.clone();
    each(kind, &[&text], false, move |api, _, got, _| {
        assert!(got.calls.is_empty(), "{api:?}");
        assert_eq!(got.text, expected, "{api:?}");
        assert_ne!(got.finish, "tool_calls");
        assert_ne!(got.finish, "tool_use");
    });
}

fn an_undeclared_tool_or_a_malformed_call_is_text(kind: Kind) {
    let unknown = "<tool_calls>\n<invoke name=\"rm_rf\">\n<parameter name=\"path\">/</parameter>\n</invoke>\n</tool_calls>";
    let malformed = "<tool_calls>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Paris";
    for text in [unknown, malformed] {
        each(kind, &[text], false, |api, _, got, _| {
            assert!(got.calls.is_empty(), "{api:?}: {text}");
            assert_eq!(got.text, text, "{api:?}: delivered as text, never dropped");
        });
    }
}

fn thinking_then_a_call(kind: Kind) {
    let text = format!("<tool_calls>\n{}</tool_calls>", call_markup("Lima"));
    each(kind, &[&text], true, |api, _, got, _| {
        assert_eq!(got.calls.len(), 1, "{api:?}");
        assert_eq!(got.finish, tool_finish(api));
    });
}

fn tool_choice_none_shows_no_tools_and_parses_nothing(kind: Kind) {
    let text = format!("<tool_calls>\n{}</tool_calls>", call_markup("Nice"));
    for api in APIS {
        let h = Harness::start();
        h.mock.script(Script { text: vec![text.clone()], ..Script::default() });
        let none = match api {
            Api::OpenAi => json!({"tool_choice": "none"}),
            Api::Anthropic => json!({"tool_choice": {"type": "none"}}),
            Api::Gemini => json!({"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}),
        };
        let got = ask(&h, kind, api, false, &body(api, false, user(api, "hi"), none));
        assert!(got.calls.is_empty() && got.text == text, "{api:?}: {got:?}");
        assert!(!h.mock.stats().sent_prompt().contains("get_weather"), "{api:?}: no tools shown");
    }
}

/// The history of a finished call, in the dialect's shape, and the tool's result.
fn history_with_result(api: Api) -> Value {
    match api {
        Api::OpenAi => json!([
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":3}"}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "sunny, 21C"}]),
        Api::Anthropic => json!([
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                "input": {"city": "Paris", "days": 3}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "sunny, 21C"}]}]),
        Api::Gemini => json!([
            {"role": "user", "parts": [{"text": "weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 3}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny, 21C"}}}]}]),
    }
}

fn the_round_trip_feeds_the_result_back_and_ends_with_an_answer(kind: Kind) {
    for api in APIS {
        for stream in [false, true] {
            let h = Harness::start();
            h.mock.script(Script { text: vec!["It is sunny in Paris.".into()], ..Script::default() });
            let got = ask(&h, kind, api, stream, &body(api, stream, history_with_result(api), json!({})));
            assert_eq!((got.text.as_str(), got.calls.len()), ("It is sunny in Paris.", 0), "{api:?}");
            assert_ne!(got.finish, "tool_calls");
            let prompt = h.mock.stats().sent_prompt();
            assert!(
                prompt.contains("<invoke name=\"get_weather\">\n<parameter name=\"city\">Paris</parameter>"),
                "{api:?}: the earlier call in the grammar: {prompt}"
            );
            assert!(prompt.contains("<tool_result name=\"get_weather\""), "{api:?}: {prompt}");
            assert!(prompt.contains("sunny, 21C\n</tool_result>"), "{api:?}: {prompt}");
            assert!(!prompt.contains("[called"), "no text flattening any more");
        }
    }
}

fn kimis_length_error_is_each_dialects_context_length_error(kind: Kind) {
    let error_type = match kind.api() {
        support::Api::Legacy => "openai.completion.token_length_too_long",
        support::Api::Connect => "context_length_exceeded",
    };
    for api in APIS {
        let h = Harness::start();
        let fault = support::Fault::CompletionStatus { status: 400, error_type: error_type.into() };
        h.mock.script(Script { fault: Some(fault), ..Script::default() });
        let headers = headers(api, &kind.token());
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = post_with(&url(&h, api, false), &headers, &body(api, false, user(api, "hi"), json!({})));
        assert_eq!(reply.status, 400, "{api:?}: {}", reply.body);
        let error = reply.json()["error"].clone();
        match api {
            Api::OpenAi => assert_eq!(error["code"], "context_length_exceeded"),
            Api::Anthropic => {
                assert_eq!(error["type"], "invalid_request_error");
                assert!(error["message"].as_str().unwrap().starts_with("prompt is too long"), "{error}");
            }
            Api::Gemini => assert_eq!(error["status"], "INVALID_ARGUMENT"),
        }
    }
}

#[test]
fn parallel_tool_calls_false_keeps_only_the_first() {
    let h = Harness::start();
    let time = "<invoke name=\"get_time\">\n<parameter name=\"zone\">CET</parameter>\n</invoke>\n";
    h.mock.script(Script {
        text: vec![format!("<tool_calls>\n{}{time}</tool_calls>", call_markup("Oslo"))],
        ..Script::default()
    });
    let request = body(Api::OpenAi, false, user(Api::OpenAi, "w"), json!({"parallel_tool_calls": false}));
    let got = ask(&h, Kind::Web, Api::OpenAi, false, &request);
    assert_eq!(got.calls.len(), 1);
    assert!(h.mock.stats().sent_prompt().contains("one <invoke> block per answer"));
}

#[test]
fn claude_code_tool_search_lists_deferred_tools_by_name_until_loaded() {
    let h = Harness::start();
    let tools = json!([
        {"name": "ToolSearch", "description": "find tools", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}},
        {"name": "DeferredToolPlaceholder", "description": "never call this tool", "defer_loading": true, "input_schema": {}},
        {"name": "WebFetch", "description": "fetch a URL", "defer_loading": true, "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}}},
        {"name": "CronCreate", "description": "cron", "defer_loading": true, "input_schema": {}},
    ]);
    let headers = headers(Api::Anthropic, &Kind::Web.token());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let first = json!({"model": "kimi", "max_tokens": 100, "tools": tools, "messages": [{"role": "user", "content": "fetch x"}]});
    assert_eq!(post_with(&h.url("/v1/messages"), &headers, &first).status, 200);
    let prompt = h.mock.stats().sent_prompt();
    assert!(prompt.contains("## ToolSearch") && !prompt.contains("## WebFetch"), "{prompt}");
    assert!(
        prompt.contains("WebFetch, CronCreate") && !prompt.contains("DeferredToolPlaceholder"),
        "{prompt}"
    );
    let loaded = json!({"model": "kimi", "max_tokens": 100, "tools": tools, "messages": [
        {"role": "user", "content": "fetch x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ToolSearch", "input": {"query": "select:WebFetch"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
            "content": [{"type": "tool_reference", "tool_name": "WebFetch"}]}, {"type": "text", "text": "Tool loaded."}]}]});
    assert_eq!(post_with(&h.url("/v1/messages"), &headers, &loaded).status, 200);
    let prompt = h.mock.stats().sent_prompt();
    assert!(prompt.contains("## WebFetch\nfetch a URL"), "loaded: its schema is shown: {prompt}");
    assert!(prompt.contains("Loaded tool: WebFetch") && !prompt.contains("## CronCreate"), "{prompt}");
}

#[test]
fn a_long_prompt_sends_its_history_as_a_text_attachment() {
    let h = Harness::start_with(|c| c.max_inline_prompt = 2000);
    let messages = json!([{"role": "system", "content": "rules ".repeat(600)},
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "newest"}]);
    let headers = headers(Api::OpenAi, &Kind::Web.token());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let request = body(Api::OpenAi, false, messages, json!({}));
    assert_eq!(post_with(&h.url("/v1/chat/completions"), &headers, &request).status, 200);
    let stats = h.mock.stats();
    assert_eq!(stats.uploads.len(), 1);
    assert_eq!(stats.uploads[0].name, "conversation.txt");
    let prompt = stats.sent_prompt();
    assert!(prompt.contains("## get_weather") && prompt.trim_end().ends_with("newest"), "{prompt}");
    assert!(!prompt.contains("rules rules"), "the history went into the file");
}

/// A tool-call answer used to stop the backend with the error that means "the client went away",
/// so on the Connect API a kept conversation skipped remembering that answer, and its next turn
/// (the tool's result) went to Kimi without a `parent_id`.
#[test]
fn a_kept_conversation_used_to_lose_its_parent_after_a_tool_call_answer() {
    let h = Harness::start();
    let auth = format!("Bearer {}", Kind::Connect.token());
    let headers = [("authorization", auth.as_str())];
    let call = format!("<tool_calls>\n{}</tool_calls>", call_markup("Paris"));
    h.mock.script(Script { turns: vec![vec![call]], text: vec!["Sunny.".into()], ..Script::default() });
    let url = h.url("/v1/chat/completions");
    let first = json!({"model": "kimi", "conversation_id": "none", "tools": tools_of(Api::OpenAi),
        "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let reply = post_with(&url, &headers, &first);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls", "{answer}");
    let (chat_id, call) = (answer["id"].clone(), answer["choices"][0]["message"]["tool_calls"][0].clone());
    let second = json!({"model": "kimi", "conversation_id": chat_id, "tools": tools_of(Api::OpenAi), "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 24 C"}]});
    let reply = post_with(&url, &headers, &second);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stats = h.mock.stats();
    assert_eq!(stats.last_completion.unwrap()["chat_id"], chat_id);
    assert!(
        stats.last_parent_id.is_some_and(|p| p.starts_with("msg-")),
        "the tool-call answer is the parent"
    );
}
