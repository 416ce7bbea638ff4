//! Google Gemini generateContent over both Kimi backends, over raw HTTP: the strict
//! `data: …\r\n\r\n` framing Google's parsers need, the JSON-array stream, thoughts, JSON mode,
//! countTokens, models and errors.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Harness, Kind, Script, get_with, post_with, stream_with};

both_backends!(
    generate_content_on_v1beta_and_v1,
    sse_stream_is_exactly_data_lines,
    json_array_stream_without_alt_sse,
    thoughts_only_when_asked_for,
    system_instruction_and_json_mode_reach_kimi,
    events_are_forwarded_as_they_arrive,
    errors_in_the_gemini_shape,
    count_tokens_and_models,
);

fn hi() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
           "generationConfig": {"temperature": 1, "topP": 0.95, "topK": 64}})
}

fn key(kind: Kind) -> String {
    kind.token()
}

fn generate_content_on_v1beta_and_v1(kind: Kind) {
    let h = Harness::start();
    let token = key(kind);
    for path in [
        "/v1beta/models/gemini-3.1-pro-preview:generateContent",
        "/v1/models/gemini-2.5-flash:generateContent",
    ] {
        let reply = post_with(&h.url(path), &[("x-goog-api-key", &token)], &hi());
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let body = reply.json();
        let candidate = &body["candidates"][0];
        assert_eq!(candidate["content"]["role"], "model");
        assert_eq!(candidate["content"]["parts"], json!([{"text": "Hello from the mock Kimi."}]));
        assert_eq!(candidate["finishReason"], "STOP");
        let usage = &body["usageMetadata"];
        assert!(
            usage["promptTokenCount"].as_u64().unwrap() > 0
                && usage["candidatesTokenCount"].as_u64().unwrap() > 0
        );
    }
    let with_query =
        post_with(&h.url(&format!("/v1beta/models/kimi:generateContent?key={token}")), &[], &hi());
    assert_eq!(with_query.status, 200, "?key= is accepted");
    assert!(h.mock.settled().live_chats.is_empty());
}

fn sse_stream_is_exactly_data_lines(kind: Kind) {
    let h = Harness::start();
    let url = h.url("/v1beta/models/gemini-3.1-pro-preview:streamGenerateContent?alt=sse");
    let answer = stream_with(&url, &[("x-goog-api-key", &key(kind))], &hi());
    assert_eq!(answer.status, 200);
    assert!(answer.complete);
    let frames: Vec<&str> = answer.raw.split_terminator("\r\n\r\n").collect();
    assert!(!frames.is_empty());
    assert!(answer.raw.ends_with("\r\n\r\n"));
    for frame in &frames {
        assert!(frame.starts_with("data: {") && !frame.contains('\n'), "not a bare data line: {frame:?}");
    }
    assert!(!answer.raw.contains("[DONE]") && !answer.raw.contains("event:"));
    let chunks: Vec<Value> = frames.iter().map(|f| serde_json::from_str(&f[6..]).unwrap()).collect();
    let text: String =
        chunks.iter().filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str()).collect();
    assert_eq!(text, "Hello from the mock Kimi.");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["candidates"][0].get("finishReason").is_none()));
}

fn json_array_stream_without_alt_sse(kind: Kind) {
    let h = Harness::start();
    let url = h.url("/v1beta/models/kimi:streamGenerateContent");
    let answer = stream_with(&url, &[("x-goog-api-key", &key(kind))], &hi());
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("application/json"));
    let array: Value = serde_json::from_str(&answer.body_if_error).expect("a JSON array");
    let chunks = array.as_array().unwrap();
    assert_eq!(chunks.last().unwrap()["candidates"][0]["finishReason"], "STOP");
}

fn thoughts_only_when_asked_for(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script {
        thinking: vec!["pondering".into()],
        text: vec!["42".into()],
        ..Script::default()
    });
    let url = h.url("/v1beta/models/kimi-k2-thinking:generateContent");
    let mut body = hi();
    body["generationConfig"]["thinkingConfig"] = json!({"includeThoughts": true});
    let reply = post_with(&url, &[("x-goog-api-key", &key(kind))], &body).json();
    let parts = &reply["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0], json!({"text": "pondering", "thought": true}));
    assert_eq!(parts[1], json!({"text": "42"}));
    assert!(reply["usageMetadata"]["thoughtsTokenCount"].as_u64().unwrap() > 0);

    let reply = post_with(&url, &[("x-goog-api-key", &key(kind))], &hi()).json();
    assert_eq!(reply["candidates"][0]["content"]["parts"], json!([{"text": "42"}]));
}

fn system_instruction_and_json_mode_reach_kimi(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { text: vec!["```json\n{\"route\": \"flash\"}\n```".into()], ..Script::default() });
    let body = json!({"system_instruction": {"role": "user", "parts": [{"text": "You route."}]},
        "contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}],
        "generationConfig": {"responseMimeType": "application/json",
                             "responseJsonSchema": {"type": "OBJECT", "properties": {"route": {"type": "STRING"}}}}});
    let reply = post_with(
        &h.url("/v1beta/models/gemini-3.5-flash-lite:generateContent"),
        &[("x-goog-api-key", &key(kind))],
        &body,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let text = reply.json()["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"route": "flash"}),
        "JSON mode text parses"
    );
    let stats = h.mock.stats();
    let prompt = stats.last_prompt.unwrap();
    let system = stats.last_completion.unwrap()["options"]["systemPrompt"].as_str().map(str::to_string);
    // Connect sends the system prompt in its own field (docs/kimi-protocol.md §7.3).
    let (system, prompt) = match system {
        Some(system) => (system, prompt),
        None => {
            // The JSON instruction is in the newest turn (`chat/output.rs`), as the tool prompt is.
            assert!(
                prompt.starts_with("system:You route.\nuser:a\n") && prompt.contains("user:b\nReply with"),
                "{prompt}"
            );
            ("You route.".to_string(), prompt)
        }
    };
    assert!(system.starts_with("You route."), "{system}");
    let all = format!("{system}\n{prompt}");
    assert!(all.contains("valid JSON") && all.contains("\"OBJECT\""), "{all}");
}

fn events_are_forwarded_as_they_arrive(kind: Kind) {
    let h = Harness::start();
    let pieces: Vec<String> = (0..5).map(|i| format!("p{i} ")).collect();
    h.mock.script(Script { text: pieces.clone(), delay_ms: 120, ..Script::default() });
    let url = h.url("/v1beta/models/kimi:streamGenerateContent?alt=sse");
    let answer = stream_with(&url, &[("x-goog-api-key", &key(kind))], &hi());
    let texts: Vec<_> = answer
        .frames
        .iter()
        .filter(|f| {
            f.json()["candidates"][0]["content"]["parts"][0]["text"].as_str().is_some_and(|t| !t.is_empty())
        })
        .collect();
    assert_eq!(texts.len(), pieces.len());
    support::assert_arrived_apart(&texts, Duration::from_millis(350));
}

fn errors_in_the_gemini_shape(kind: Kind) {
    let h = Harness::start();
    let url = h.url("/v1beta/models/kimi:streamGenerateContent?alt=sse");
    let check = |reply: &support::Reply, status: u16, name: &str| {
        assert_eq!(reply.status, status, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["error"]["code"], status);
        assert_eq!(body["error"]["status"], name);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        body
    };
    check(&post_with(&url, &[("x-goog-api-key", &kind.refused_token())], &hi()), 401, "UNAUTHENTICATED");
    check(
        &post_with(&url, &[("x-goog-api-key", &key(kind))], &json!({"contents": []})),
        400,
        "INVALID_ARGUMENT",
    );
    h.mock.script(Script { fault: Some(kind.busy_fault()), ..Script::default() });
    let body = check(&post_with(&url, &[("x-goog-api-key", &key(kind))], &hi()), 429, "RESOURCE_EXHAUSTED");
    assert_eq!(body["error"]["details"][0]["@type"], "type.googleapis.com/google.rpc.RetryInfo");
    assert!(h.mock.settled().live_chats.is_empty());
}

fn count_tokens_and_models(kind: Kind) {
    let h = Harness::start();
    let reply =
        post_with(&h.url("/v1beta/models/kimi:countTokens"), &[("x-goog-api-key", &key(kind))], &hi());
    assert!(reply.json()["totalTokens"].as_u64().unwrap() > 0);
    let models = get_with(&h.url("/v1beta/models"), &[("x-goog-api-key", &key(kind))]).json();
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["name"].as_str().unwrap().starts_with("models/"))
    );
    // google-genai uses /v1 by default: the goog headers select the Gemini shape there too.
    let models = get_with(&h.url("/v1/models"), &[("x-goog-api-key", &key(kind))]).json();
    assert!(!models["models"].as_array().unwrap().is_empty());
    let one = get_with(&h.url("/v1beta/models/kimi-search"), &[("x-goog-api-key", &key(kind))]).json();
    assert_eq!(one["name"], "models/kimi-search");
    let openai = get_with(&h.url("/v1/models"), &[]).json();
    assert_eq!(openai["object"], "list");
}
