//! Structured output in every dialect, streamed and not, on every token kind: the mock scripts
//! the model's answer (valid JSON, fenced JSON, JSON missing a required field, prose); the
//! server must give back the JSON alone, correct a failed answer once (not streamed), and give
//! back prose as it is with the dialect's marker — never invented JSON. Anthropic's structured
//! output is a forced tool, which the tool layer serves.

#[macro_use]
mod support;

use serde_json::{Value, json};
use support::{Harness, Kind, Script, post_with, stream_with};

both_backends!(
    valid_json_comes_back_as_it_is,
    fenced_json_comes_back_unfenced,
    a_missing_field_is_corrected_once_when_not_streamed,
    prose_is_given_back_with_the_dialects_marker,
    anthropic_a_forced_tool_is_the_structured_output,
);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Responses,
    Gemini,
}

const APIS: [Api; 3] = [Api::OpenAi, Api::Responses, Api::Gemini];

const VALID: &str = "{\"name\": \"Ann\", \"age\": 30}";

fn schema() -> Value {
    json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
           "required": ["name", "age"], "additionalProperties": false})
}

/// The path, headers and body of a request for a person as JSON in `api`.
fn ask(api: Api, stream: bool, token: &str) -> (String, Vec<(&'static str, String)>, Value) {
    let bearer = vec![("Authorization", format!("Bearer {token}"))];
    let prompt = "Who is Ann?";
    match api {
        Api::OpenAi => {
            let format = json!({"type": "json_schema", "json_schema": {"name": "Person", "schema": schema(), "strict": true}});
            let body = json!({"model": "kimi", "stream": stream, "response_format": format,
                              "messages": [{"role": "user", "content": prompt}]});
            ("/v1/chat/completions".into(), bearer, body)
        }
        Api::Responses => {
            let format = json!({"type": "json_schema", "name": "Person", "schema": schema(), "strict": true});
            let body =
                json!({"model": "kimi", "stream": stream, "input": prompt, "text": {"format": format}});
            ("/v1/responses".into(), bearer, body)
        }
        Api::Gemini => {
            let action = if stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
            let openapi = json!({"type": "OBJECT", "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER"}},
                                 "required": ["name", "age"]});
            let body = json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                              "generationConfig": {"responseMimeType": "application/json", "responseSchema": openapi}});
            (format!("/v1beta/models/kimi:{action}"), vec![("x-goog-api-key", token.to_string())], body)
        }
    }
}

/// What came back, whatever the dialect: the answer's text, and the dialect's marker of an
/// answer that is not the JSON asked for (OpenAI's `refusal`, the Responses refusal part,
/// Gemini's `finishMessage` with `OTHER`).
#[derive(Debug, Default)]
struct Got {
    text: String,
    marker: Option<String>,
    finish: String,
}

fn call(h: &Harness, api: Api, stream: bool, kind: Kind) -> Got {
    let (path, headers, body) = ask(api, stream, &kind.token());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    if stream {
        let answer = stream_with(&h.url(&path), &headers, &body);
        assert_eq!(answer.status, 200, "{api:?}: {}", answer.body_if_error);
        assert!(answer.complete);
        return streamed(api, &answer.frames.iter().map(|f| f.data.as_str()).collect::<Vec<_>>());
    }
    let reply = post_with(&h.url(&path), &headers, &body);
    assert_eq!(reply.status, 200, "{api:?}: {}", reply.body);
    whole(api, &reply.json())
}

fn whole(api: Api, body: &Value) -> Got {
    let text = |v: &Value| v.as_str().map(str::to_string);
    match api {
        Api::OpenAi => {
            let choice = &body["choices"][0];
            Got {
                text: text(&choice["message"]["content"]).unwrap_or_default(),
                marker: text(&choice["message"]["refusal"]),
                finish: text(&choice["finish_reason"]).unwrap_or_default(),
            }
        }
        Api::Responses => {
            let part = &body["output"][0]["content"][0];
            let refusal = text(&part["refusal"]);
            Got {
                text: text(&part["text"]).or_else(|| refusal.clone()).unwrap_or_default(),
                marker: refusal,
                finish: text(&body["status"]).unwrap_or_default(),
            }
        }
        Api::Gemini => {
            let candidate = &body["candidates"][0];
            Got {
                text: text(&candidate["content"]["parts"][0]["text"]).unwrap_or_default(),
                marker: text(&candidate["finishMessage"]),
                finish: text(&candidate["finishReason"]).unwrap_or_default(),
            }
        }
    }
}

fn streamed(api: Api, frames: &[&str]) -> Got {
    let events: Vec<Value> =
        frames.iter().filter(|f| **f != "[DONE]").map(|f| serde_json::from_str(f).unwrap()).collect();
    let mut got = Got::default();
    for event in &events {
        let (piece, finish) = match api {
            Api::OpenAi => (&event["choices"][0]["delta"]["content"], &event["choices"][0]["finish_reason"]),
            Api::Responses if event["type"] == "response.output_text.delta" => {
                (&event["delta"], &Value::Null)
            }
            Api::Responses => (&Value::Null, &event["response"]["status"]),
            Api::Gemini => (
                &event["candidates"][0]["content"]["parts"][0]["text"],
                &event["candidates"][0]["finishReason"],
            ),
        };
        got.text.push_str(piece.as_str().unwrap_or_default());
        if let Some(finish) = finish.as_str() {
            got.finish = finish.to_string();
        }
    }
    got
}

fn normal_finish(api: Api) -> &'static str {
    match api {
        Api::OpenAi => "stop",
        Api::Responses => "completed",
        Api::Gemini => "STOP",
    }
}

/// Runs `check` on each dialect, streamed and not, with the mock scripted afresh each time.
fn each(kind: Kind, script: impl Fn() -> Script, check: impl Fn(&Harness, Api, bool, Got)) {
    let h = Harness::start();
    for api in APIS {
        for stream in [false, true] {
            h.mock.reset_stats();
            h.mock.script(script());
            let got = call(&h, api, stream, kind);
            check(&h, api, stream, got);
        }
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

fn text(pieces: &[&str]) -> Script {
    Script { text: pieces.iter().map(|p| p.to_string()).collect(), ..Script::default() }
}

fn valid_json_comes_back_as_it_is(kind: Kind) {
    each(
        kind,
        || text(&["{\"name\": ", "\"Ann\", \"age\": 30}"]),
        |h, api, stream, got| {
            assert_eq!(got.text, VALID, "{api:?} stream={stream}");
            assert_eq!(
                (got.marker, got.finish.as_str()),
                (None, normal_finish(api)),
                "{api:?} stream={stream}"
            );
            let stats = h.mock.settled();
            assert_eq!(stats.completions, 1, "no follow-up");
            let prompt = stats.last_prompt.unwrap_or_default();
            assert!(
                prompt.contains("Reply with one valid JSON value only") && prompt.contains("\"age\""),
                "{prompt}"
            );
            assert!(prompt.matches("JSON Schema").count() == 1, "the schema is told once: {prompt}");
        },
    );
}

fn fenced_json_comes_back_unfenced(kind: Kind) {
    each(
        kind,
        || text(&["```js", "on\n{\"name\": \"Ann\",", " \"age\": 30}\n`", "``"]),
        |_, api, stream, got| {
            assert_eq!(got.text, VALID, "{api:?} stream={stream}");
            assert_eq!(got.marker, None);
        },
    );
}

fn a_missing_field_is_corrected_once_when_not_streamed(kind: Kind) {
    let script = || Script {
        turns: vec![
            vec!["{\"name\": \"Ann\"}".into()],
            vec!["```json\n".into(), VALID.into(), "\n```".into()],
        ],
        ..Script::default()
    };
    each(kind, script, |h, api, stream, got| {
        let stats = h.mock.settled();
        if stream {
            // A stream has been sent as it came: no follow-up, and it ends normally.
            assert_eq!(got.text, "{\"name\": \"Ann\"}", "{api:?}");
            assert_eq!((stats.completions, got.finish.as_str()), (1, normal_finish(api)));
            return;
        }
        assert_eq!(got.text, VALID, "{api:?}: the corrected answer");
        assert_eq!((got.marker, got.finish.as_str()), (None, normal_finish(api)));
        assert_eq!(stats.completions, 2, "one corrective follow-up");
        let prompt = stats.last_prompt.unwrap_or_default();
        assert!(
            prompt.contains("the required property \\\"age\\\" is missing")
                || prompt.contains("the required property \"age\" is missing"),
            "{prompt}"
        );
        assert!(prompt.contains("{\"name\": \"Ann\"}"), "the model sees its answer: {prompt}");
    });
}

fn prose_is_given_back_with_the_dialects_marker(kind: Kind) {
    let prose = "Ann is a person I do not know.";
    each(
        kind,
        || text(&["Ann is a person ", "I do not know."]),
        |h, api, stream, got| {
            let stats = h.mock.settled();
            if stream {
                assert_eq!((got.text.as_str(), got.finish.as_str()), (prose, normal_finish(api)), "{api:?}");
                assert_eq!(stats.completions, 1);
                return;
            }
            assert_eq!(stats.completions, 2, "{api:?}: the follow-up was tried");
            assert!(got.text.contains(prose), "{api:?}: the text as it is: {got:?}");
            assert!(!got.text.starts_with('{'), "never invented JSON");
            let marker = got.marker.unwrap_or_else(|| panic!("{api:?}: no marker"));
            assert!(marker.contains("not the JSON that was asked for"), "{marker}");
            let finish = match api {
                Api::OpenAi => "stop",
                Api::Responses => "completed",
                Api::Gemini => "OTHER",
            };
            assert_eq!(got.finish, finish, "{api:?}");
        },
    );
}

/// Anthropic's own advice for structured output: one tool whose input is the schema, forced
/// with `tool_choice: {"type": "tool", "name"}`; its `input` is the JSON.
fn anthropic_a_forced_tool_is_the_structured_output(kind: Kind) {
    let h = Harness::start();
    let call = "<tool_calls>\n<invoke name=\"record_person\">\n<parameter name=\"name\">Ann</parameter>\n<parameter name=\"age\">30</parameter>\n</invoke>\n</tool_calls>";
    let headers = [("x-api-key", kind.token()), ("anthropic-version", "2023-06-01".to_string())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for stream in [false, true] {
        h.mock.script(text(&[call]));
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
            "tools": [{"name": "record_person", "description": "Record the person", "input_schema": schema()}],
            "tool_choice": {"type": "tool", "name": "record_person"},
            "messages": [{"role": "user", "content": "Who is Ann?"}]});
        if stream {
            let answer = stream_with(&h.url("/v1/messages"), &headers, &body);
            let input: String = answer
                .frames
                .iter()
                .filter_map(|f| f.json()["delta"]["partial_json"].as_str().map(str::to_string))
                .collect();
            assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({"name": "Ann", "age": 30}));
            assert!(answer.raw.contains("\"stop_reason\":\"tool_use\""), "{}", answer.raw);
        } else {
            let reply = post_with(&h.url("/v1/messages"), &headers, &body).json();
            let block =
                reply["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").cloned();
            let block = block.unwrap_or_else(|| panic!("{reply}"));
            assert_eq!(
                (block["name"].as_str(), &block["input"]),
                (Some("record_person"), &json!({"name": "Ann", "age": 30}))
            );
            assert_eq!(reply["stop_reason"], "tool_use");
        }
        let prompt = h.mock.settled().sent_prompt();
        assert!(
            prompt.contains("record_person") && !prompt.contains("Reply with one valid JSON"),
            "{prompt}"
        );
    }
}
