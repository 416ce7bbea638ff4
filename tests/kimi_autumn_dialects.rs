//! The autumn-2026 Kimi (`docs/kimi-protocol.md` §7.11) through every dialect the server speaks:
//! OpenAI chat completions, the Responses API, Anthropic Messages and Gemini generateContent
//! (whole and `?alt=sse`), on both token kinds that reach Connect (an old kimi-auth JWT and a
//! 2026 web refresh token). Each test drives the real server over HTTP against the mock and
//! asserts both what the mock saw (the Chat request body) and what the client got: the
//! catalogue's default, thinking efforts from each model's own ladder, search, K3 on paid and
//! free accounts, too-long conversations, unknown exceptions and the system prompt field.

mod support;

use serde_json::{Value, json};
use support::{
    Fault, Harness, Kind, Script, connect_token_with, post_with, stream_with, web_refresh_token_with,
};

/// Runs each named test body, `fn name(kind: Kind)`, once per token kind that reaches Connect.
macro_rules! connect_kinds {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn connect() {
                super::$name(crate::support::Kind::Connect)
            }
            #[test]
            fn web() {
                super::$name(crate::support::Kind::Web)
            }
        }
    )+};
}

connect_kinds!(
    the_default_is_the_catalogues_instant_in_every_dialect,
    the_catalogues_ids_are_read_not_assumed,
    a_catalogue_that_cannot_be_read_falls_back_to_the_built_in_one,
    thinking_takes_an_effort_from_the_models_own_ladder_in_every_dialect,
    search_sends_the_search_tool_in_every_dialect,
    kimi_k3_used_to_go_out_as_scenario_k3_without_a_model,
    k3_on_a_free_account_is_a_429_naming_the_paid_plan_in_every_dialect,
    k3_on_a_free_account_used_to_read_as_kimi_being_too_busy,
    a_too_long_conversation_is_each_dialects_context_length_error,
    a_too_long_conversation_used_to_answer_kimi_returned_an_empty_answer,
    a_kept_conversation_that_grew_too_long_is_not_continued,
    an_unknown_exception_used_to_answer_kimi_returned_an_empty_answer,
    the_system_prompt_goes_into_kimis_own_field_in_every_dialect,
);

/// What the mock answers by default.
const HELLO: &str = "Hello from the mock Kimi.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Responses,
    Anthropic,
    Gemini,
}

/// Responses comes last: a failure there then leaves the other three dialects checked.
const DIALECTS: [Dialect; 4] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini, Dialect::Responses];

impl Dialect {
    /// A model name this dialect's own clients send, which the server does not know.
    fn client_model(self) -> &'static str {
        match self {
            Dialect::OpenAi => "gpt-4o",
            Dialect::Responses => "gpt-5-codex",
            Dialect::Anthropic => "claude-sonnet-4-5",
            Dialect::Gemini => "gemini-2.5-pro",
        }
    }
}

/// One request, said in any dialect.
#[derive(Debug, Clone, Default)]
struct Ask {
    model: String,
    text: String,
    system: Option<String>,
    /// Thinking, each dialect's way: OpenAI `-thinking` in the model name, Responses
    /// `reasoning.effort: high`, Anthropic `thinking: enabled`, Gemini `includeThoughts`.
    thinking: bool,
    /// The top effort, each dialect's way: OpenAI `reasoning_effort: xhigh`, Responses
    /// `reasoning.effort: xhigh`, Anthropic `output_config.effort: max`; Gemini has no such
    /// field, so its model name gets `-max`.
    max: bool,
    stream: bool,
}

impl Ask {
    fn new(model: &str) -> Ask {
        Ask { model: model.into(), text: "hi".into(), ..Ask::default() }
    }

    fn streamed(self, stream: bool) -> Ask {
        Ask { stream, ..self }
    }
}

/// What the client got: the status, the body (the error JSON, the whole answer, or the raw
/// stream) and the answer's text.
#[derive(Debug)]
struct Got {
    status: u16,
    body: String,
    text: String,
    /// A 200 stream that carried an error frame (or did not end properly).
    failed_stream: bool,
}

/// The path, headers and body of `ask` in `dialect`.
fn request(dialect: Dialect, token: &str, ask: &Ask) -> (String, Vec<(&'static str, String)>, Value) {
    let bearer = vec![("Authorization", format!("Bearer {token}"))];
    match dialect {
        Dialect::OpenAi => {
            let model = if ask.thinking { format!("{}-thinking", ask.model) } else { ask.model.clone() };
            let mut messages = Vec::new();
            if let Some(system) = &ask.system {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.push(json!({"role": "user", "content": ask.text}));
            let mut body = json!({"model": model, "stream": ask.stream, "messages": messages});
            if ask.max {
                body["reasoning_effort"] = json!("xhigh");
            }
            ("/v1/chat/completions".into(), bearer, body)
        }
        Dialect::Responses => {
            let mut body =
                json!({"model": ask.model, "stream": ask.stream, "store": false, "input": ask.text});
            if let Some(system) = &ask.system {
                body["instructions"] = json!(system);
            }
            if ask.max {
                body["reasoning"] = json!({"effort": "xhigh"});
            } else if ask.thinking {
                body["reasoning"] = json!({"effort": "high"});
            }
            ("/v1/responses".into(), bearer, body)
        }
        Dialect::Anthropic => {
            let mut body = json!({"model": ask.model, "max_tokens": 4096, "stream": ask.stream,
                "messages": [{"role": "user", "content": ask.text}]});
            if let Some(system) = &ask.system {
                body["system"] = json!(system);
            }
            if ask.thinking {
                body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
            }
            if ask.max {
                body["output_config"] = json!({"effort": "max"});
            }
            let headers =
                vec![("x-api-key", token.to_string()), ("anthropic-version", "2023-06-01".to_string())];
            ("/v1/messages".into(), headers, body)
        }
        Dialect::Gemini => {
            let model = if ask.max { format!("{}-max", ask.model) } else { ask.model.clone() };
            let path = match ask.stream {
                true => format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
                false => format!("/v1beta/models/{model}:generateContent"),
            };
            let mut body = json!({"contents": [{"role": "user", "parts": [{"text": ask.text}]}]});
            if let Some(system) = &ask.system {
                body["system_instruction"] = json!({"parts": [{"text": system}]});
            }
            if ask.thinking {
                body["generationConfig"] = json!({"thinkingConfig": {"includeThoughts": true}});
            }
            (path, vec![("x-goog-api-key", token.to_string())], body)
        }
    }
}

/// Sends `ask` in `dialect` and reads the answer.
fn send(h: &Harness, dialect: Dialect, token: &str, ask: &Ask) -> Got {
    let (path, headers, body) = request(dialect, token, ask);
    let url = h.url(&path);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    if !ask.stream {
        let reply = post_with(&url, &headers, &body);
        let text = if reply.status == 200 { whole_text(dialect, &reply.json()) } else { String::new() };
        return Got { status: reply.status, body: reply.body, text, failed_stream: false };
    }
    let answer = stream_with(&url, &headers, &body);
    if !answer.content_type.starts_with("text/event-stream") {
        return Got {
            status: answer.status,
            body: answer.body_if_error,
            text: String::new(),
            failed_stream: false,
        };
    }
    let frames: Vec<Value> = answer.frames.iter().filter(|f| f.data != "[DONE]").map(|f| f.json()).collect();
    let errored = frames
        .iter()
        .any(|f| f.get("error").is_some() || f["type"] == "error" || f["type"] == "response.failed");
    let text = frames.iter().map(|f| streamed_text(dialect, f)).collect();
    Got { status: answer.status, body: answer.raw, text, failed_stream: errored || !answer.complete }
}

/// The answer text of one streamed frame.
fn streamed_text(dialect: Dialect, frame: &Value) -> String {
    let text = match dialect {
        Dialect::OpenAi => frame["choices"][0]["delta"]["content"].as_str(),
        Dialect::Responses => {
            frame["delta"].as_str().filter(|_| frame["type"] == "response.output_text.delta")
        }
        Dialect::Anthropic => {
            frame["delta"]["text"].as_str().filter(|_| frame["delta"]["type"] == "text_delta")
        }
        Dialect::Gemini => return gemini_text(frame),
    };
    text.unwrap_or_default().to_string()
}

/// The answer text of a whole response.
fn whole_text(dialect: Dialect, body: &Value) -> String {
    let texts = |items: &Value, kind: &str, field: &str| -> String {
        let items = items.as_array().into_iter().flatten().filter(|i| i["type"] == kind);
        items.filter_map(|i| i[field].as_str().map(str::to_string)).collect()
    };
    match dialect {
        Dialect::OpenAi => body["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string(),
        Dialect::Responses => {
            let messages = body["output"].as_array().into_iter().flatten().filter(|i| i["type"] == "message");
            messages.map(|m| texts(&m["content"], "output_text", "text")).collect()
        }
        Dialect::Anthropic => texts(&body["content"], "text", "text"),
        Dialect::Gemini => gemini_text(body),
    }
}

/// The answer (not thought) parts of a Gemini response or chunk.
fn gemini_text(body: &Value) -> String {
    let parts = body["candidates"][0]["content"]["parts"].as_array().into_iter().flatten();
    parts.filter(|p| p["thought"] != true).filter_map(|p| p["text"].as_str()).collect()
}

/// Asserts a whole, successful answer with the mock's text.
fn assert_answered(dialect: Dialect, ask: &Ask, got: &Got) {
    let what = format!("{dialect:?} {} stream={}", ask.model, ask.stream);
    assert_eq!(got.status, 200, "{what}: {}", got.body);
    assert!(!got.failed_stream, "{what}: the stream failed: {}", got.body);
    assert_eq!(got.text, HELLO, "{what}: {}", got.body);
}

/// The Chat request the mock saw last.
fn last_sent(h: &Harness) -> Value {
    h.mock.stats().last_completion.expect("the mock saw a chat request")
}

/// The fields of a Chat request this file pins: `options.model`, both scenarios, the effort.
fn route(sent: &Value) -> (String, String, String, String) {
    let text = |v: &Value| v.as_str().unwrap_or("<absent>").to_string();
    (
        text(&sent["options"]["model"]),
        text(&sent["scenario"]),
        text(&sent["message"]["scenario"]),
        text(&sent["options"]["reasoning_effort"]),
    )
}

fn expected(model: &str, scenario: &str, effort: &str) -> (String, String, String, String) {
    (model.into(), scenario.into(), scenario.into(), effort.into())
}

/// A token of `kind` for a free account `sub`.
fn free_token(kind: Kind, sub: &str) -> String {
    match kind {
        Kind::Web => web_refresh_token_with(sub, json!({"plan": "free"})),
        _ => connect_token_with(sub, json!({"plan": "free"})),
    }
}

/// The kinds of error this file expects, and what each dialect renders for them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// `ErrorKind::RateLimited`: 429.
    RateLimited,
    /// `ErrorKind::ContextLength`: 400.
    ContextLength,
    /// `ErrorKind::Upstream`: 502.
    Upstream,
}

/// Asserts `got` is the error `expect` in `dialect`'s own shape (src/dialect/*.rs) and
/// returns its message.
fn error_message(dialect: Dialect, got: &Got, expect: Expect) -> String {
    let status = match expect {
        Expect::RateLimited => 429,
        Expect::ContextLength => 400,
        Expect::Upstream => 502,
    };
    let what = format!("{dialect:?} {expect:?}");
    assert!(
        !(got.status == 200 && got.failed_stream),
        "{what}: the error came as frames of a 200 stream instead of HTTP {status} (the stream opened before \
         any content): {}",
        got.body
    );
    assert_eq!(got.status, status, "{what}: {}", got.body);
    let body: Value =
        serde_json::from_str(&got.body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", got.body));
    let message = match dialect {
        // Responses renders errors as OpenAI does (src/dialect/responses.rs `error_response`).
        Dialect::OpenAi | Dialect::Responses => {
            let (kind, code) = match expect {
                Expect::RateLimited => ("rate_limit_exceeded", "rate_limit_exceeded"),
                Expect::ContextLength => ("invalid_request_error", "context_length_exceeded"),
                Expect::Upstream => ("server_error", "upstream_error"),
            };
            let error = &body["error"];
            assert_eq!(
                (error["type"].as_str(), error["code"].as_str()),
                (Some(kind), Some(code)),
                "{what}: {body}"
            );
            error["message"].as_str()
        }
        Dialect::Anthropic => {
            let kind = match expect {
                Expect::RateLimited => "rate_limit_error",
                Expect::ContextLength => "invalid_request_error",
                Expect::Upstream => "api_error",
            };
            assert_eq!(
                (body["type"].as_str(), body["error"]["type"].as_str()),
                (Some("error"), Some(kind)),
                "{what}: {body}"
            );
            body["error"]["message"].as_str()
        }
        Dialect::Gemini => {
            let name = match expect {
                Expect::RateLimited => "RESOURCE_EXHAUSTED",
                Expect::ContextLength => "INVALID_ARGUMENT",
                Expect::Upstream => "INTERNAL",
            };
            let error = &body["error"];
            assert_eq!(
                (error["code"].as_u64(), error["status"].as_str()),
                (Some(status.into()), Some(name)),
                "{what}: {body}"
            );
            error["message"].as_str()
        }
    };
    let message = message.unwrap_or_else(|| panic!("{what}: no message: {body}")).to_string();
    assert!(!message.contains("empty answer"), "{what}: {message}");
    message
}

// 1. The default.

/// Every dialect's own model names run on the catalogue's default (Instant, `k2d6-chat`), its
/// scenario in both places, thinking off (`REASONING_EFFORT_NONE`), no agent.
fn the_default_is_the_catalogues_instant_in_every_dialect(kind: Kind) {
    let h = Harness::start();
    let token = kind.token();
    for dialect in DIALECTS {
        for model in ["kimi", dialect.client_model()] {
            for stream in [false, true] {
                let ask = Ask::new(model).streamed(stream);
                assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
                let sent = last_sent(&h);
                assert_eq!(
                    route(&sent),
                    expected("k2d6-chat", "SCENARIO_CHAT", "REASONING_EFFORT_NONE"),
                    "{dialect:?} {model} stream={stream}: {sent}"
                );
                assert_eq!(sent["options"]["thinking"], true, "the browser always sends thinking: true");
                assert!(sent.get("kimiplus_id").is_none(), "{dialect:?}: Instant is no agent: {sent}");
            }
        }
    }
    let stats = h.mock.settled();
    assert!(stats.live_chats.is_empty(), "chats left: {:?}", stats.live_chats);
    assert_eq!(stats.catalogue_calls, 1, "the catalogue is read once and cached");
}

/// With the variant catalogue (other ids, an Instant that offers only LOW), the server sends the
/// variant's ids: they are read from the account's catalogue, not hard-coded.
fn the_catalogues_ids_are_read_not_assumed(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { catalogue: "variant".into(), ..Script::default() });
    let token = kind.token();
    for dialect in DIALECTS {
        for stream in [false, true] {
            let ask = Ask::new(dialect.client_model()).streamed(stream);
            assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
            assert_eq!(
                route(&last_sent(&h)),
                expected("k2d7-chat", "SCENARIO_CHAT", "REASONING_EFFORT_LOW"),
                "{dialect:?} stream={stream}"
            );
        }
        let ask = Ask::new("kimi-k3");
        assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
        assert_eq!(last_sent(&h)["options"]["model"], "k3-agent-v2", "{dialect:?}");
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

/// GetAvailableModels answering 500 does not fail the chat: the built-in catalogue serves.
fn a_catalogue_that_cannot_be_read_falls_back_to_the_built_in_one(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { catalogue: "fail".into(), ..Script::default() });
    let token = kind.token();
    for dialect in DIALECTS {
        for stream in [false, true] {
            let ask = Ask::new("kimi").streamed(stream);
            assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
            assert_eq!(
                route(&last_sent(&h)),
                expected("k2d6-chat", "SCENARIO_CHAT", "REASONING_EFFORT_NONE"),
                "{dialect:?} stream={stream}"
            );
        }
    }
    let stats = h.mock.settled();
    assert!(stats.catalogue_calls >= 1, "the catalogue was asked for");
    assert!(stats.live_chats.is_empty());
}

// 2. Thinking.

/// Thinking, each dialect's way: Instant's LOW (its only rung above NONE; never HIGH, which
/// Instant does not offer), K3's HIGH (the highest below MAX), and MAX only at the top effort.
fn thinking_takes_an_effort_from_the_models_own_ladder_in_every_dialect(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { thinking: vec!["pondering".into()], ..Script::default() });
    let token = kind.token();
    for dialect in DIALECTS {
        let cases = [
            (
                Ask { thinking: true, ..Ask::new("kimi") },
                "k2d6-chat",
                "SCENARIO_CHAT",
                "REASONING_EFFORT_LOW",
            ),
            (Ask::new("kimi-k3"), "k3-agent", "SCENARIO_OK_COMPUTER", "REASONING_EFFORT_LOW"),
            (
                Ask { thinking: true, ..Ask::new("kimi-k3") },
                "k3-agent",
                "SCENARIO_OK_COMPUTER",
                "REASONING_EFFORT_HIGH",
            ),
            (
                Ask { max: true, ..Ask::new("kimi-k3") },
                "k3-agent",
                "SCENARIO_OK_COMPUTER",
                "REASONING_EFFORT_MAX",
            ),
        ];
        for (ask, model, scenario, effort) in cases {
            for stream in [false, true] {
                let ask = ask.clone().streamed(stream);
                assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
                assert_eq!(route(&last_sent(&h)), expected(model, scenario, effort), "{dialect:?} {ask:?}");
            }
        }
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

// 3. Search.

/// `kimi-search` sends Kimi's search tool (and still the Instant model); `kimi` does not.
fn search_sends_the_search_tool_in_every_dialect(kind: Kind) {
    let h = Harness::start();
    let token = kind.token();
    let searching = |sent: &Value| {
        sent["tools"].as_array().is_some_and(|tools| tools.iter().any(|t| t["type"] == "TOOL_TYPE_SEARCH"))
    };
    for dialect in DIALECTS {
        for stream in [false, true] {
            let ask = Ask::new("kimi-search").streamed(stream);
            let got = send(&h, dialect, &token, &ask);
            assert_eq!(got.status, 200, "{dialect:?}: {}", got.body);
            let sent = last_sent(&h);
            assert!(searching(&sent), "{dialect:?} stream={stream}: no search tool in {sent}");
            assert_eq!(sent["options"]["model"], "k2d6-chat", "{dialect:?}");
            assert!(got.text.contains(HELLO), "{dialect:?}: {}", got.body);
        }
        let ask = Ask::new("kimi");
        assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
        assert!(!searching(&last_sent(&h)), "{dialect:?}: `kimi` does not search");
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

// 4. K3 on a paid account.

/// The server before issue 19 sent `scenario: SCENARIO_K3` and no `options.model` for
/// `kimi-k3` (git show e372e4e:src/kimi/connect/chat.rs), which no catalogue lists. Now K3 is
/// the catalogue's agent entry: `k3-agent`, SCENARIO_OK_COMPUTER in both places,
/// `kimiplus_id: ok-computer`, the agent tools and context length; a paid account gets its answer.
fn kimi_k3_used_to_go_out_as_scenario_k3_without_a_model(kind: Kind) {
    let h = Harness::start();
    let token = kind.token();
    for dialect in DIALECTS {
        for stream in [false, true] {
            let ask = Ask::new("kimi-k3").streamed(stream);
            assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
            let sent = last_sent(&h);
            assert_eq!(
                route(&sent),
                expected("k3-agent", "SCENARIO_OK_COMPUTER", "REASONING_EFFORT_LOW"),
                "{dialect:?} stream={stream}: {sent}"
            );
            assert_eq!(sent["kimiplus_id"], "ok-computer", "{dialect:?}: {sent}");
            assert_eq!(sent["options"]["context_length"], "CONTEXT_LENGTH_L", "{dialect:?}");
            assert!(sent["tools"].as_array().unwrap().iter().any(|t| t["type"] == "TOOL_TYPE_ASK_USER"));
            assert!(sent.get("agent_mode").is_none(), "K3's agent mode is TYPE_NORMAL, left out: {sent}");
        }
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

// 5. K3 on a free account.

/// A free account asking for K3 gets, in every dialect and streamed too, a 429 in the dialect's
/// own error shape whose message names the paid plan and the model that works (`kimi`), never a
/// 200: the refusal comes after `done` but before any answer. The chat Kimi created is deleted,
/// and the refusal is remembered: the same request on the same lone account is answered without
/// asking Kimi again (clients retry 429s, and each try would open a Kimi chat).
fn k3_on_a_free_account_is_a_429_naming_the_paid_plan_in_every_dialect(kind: Kind) {
    let h = Harness::start();
    let token = free_token(kind, "free-1");
    for dialect in DIALECTS {
        let ask = Ask::new("kimi");
        assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
    }
    let asked = DIALECTS.len() as u32 + 1;
    for dialect in DIALECTS {
        for stream in [false, true] {
            let ask = Ask::new("kimi-k3").streamed(stream);
            let got = send(&h, dialect, &token, &ask);
            let message = error_message(dialect, &got, Expect::RateLimited);
            for needle in ["paid", "`kimi`", "k3"] {
                let found = message.to_ascii_lowercase().contains(&needle.to_ascii_lowercase());
                assert!(found, "{dialect:?} stream={stream}: {needle} not in {message:?}");
            }
            assert_eq!(last_sent(&h)["options"]["model"], "k3-agent");
            let stats = h.mock.settled();
            assert!(
                stats.live_chats.is_empty(),
                "{dialect:?} stream={stream}: chat left {:?}",
                stats.live_chats
            );
            assert_eq!(stats.completions_by_user.get("free-1"), Some(&asked), "Kimi was asked for K3 once");
            assert_eq!(stats.chats_deleted, asked, "every chat was deleted");
        }
    }
}

/// Before issue 19 the free-plan refusal (`resource_exhausted`) became a plain rate limit whose
/// message was Kimi's "Too many people are chatting with Kimi right now…": it read as a busy Kimi
/// to wait out. Now it says a paid plan is needed (Kimi's words kept beside it).
fn k3_on_a_free_account_used_to_read_as_kimi_being_too_busy(kind: Kind) {
    let h = Harness::start();
    let token = free_token(kind, "free-2");
    let got = send(&h, Dialect::OpenAi, &token, &Ask::new("kimi-k3"));
    let message = error_message(Dialect::OpenAi, &got, Expect::RateLimited);
    assert!(message.starts_with("Kimi needs a paid plan for this model"), "{message}");
    assert!(
        message.contains("Too many people are chatting with Kimi"),
        "Kimi's own words are kept: {message}"
    );
    assert!(!message.starts_with("Kimi rate limit"), "{message}");
}

// 6. Too long.

/// Kimi's `REASON_TOKEN_LENGTH_TOO_LONG` exception is each dialect's context-length error:
/// OpenAI and Responses 400 `context_length_exceeded`, Anthropic 400 `invalid_request_error`
/// starting "prompt is too long" (Claude Code compacts on it), Gemini 400 `INVALID_ARGUMENT`.
fn a_too_long_conversation_is_each_dialects_context_length_error(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { fault: Some(Fault::TooLong), ..Script::default() });
    let token = kind.token();
    let mut asked = 0;
    for dialect in DIALECTS {
        for stream in [false, true] {
            let got = send(&h, dialect, &token, &Ask::new("kimi").streamed(stream));
            asked += 1;
            let message = error_message(dialect, &got, Expect::ContextLength);
            assert!(message.contains("getting too long"), "{dialect:?}: Kimi's words: {message}");
            assert!(message.contains("new conversation"), "{dialect:?}: says what to do: {message}");
            if dialect == Dialect::Anthropic {
                assert!(message.starts_with("prompt is too long"), "{message}");
            }
            let stats = h.mock.settled();
            assert!(stats.live_chats.is_empty(), "{dialect:?}: chat left {:?}", stats.live_chats);
            assert_eq!(stats.completions, asked, "{dialect:?}: a too-long chat is not retried");
        }
    }
}

/// Before issue 19 the `block.exception` frame was ignored, the stream had no text and the
/// server answered 502 "Kimi returned an empty answer" (after retrying twice).
fn a_too_long_conversation_used_to_answer_kimi_returned_an_empty_answer(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { max_prompt_chars: Some(50), ..Script::default() });
    let long = Ask { text: "tell me more ".repeat(10), ..Ask::new("kimi") };
    for dialect in DIALECTS {
        let got = send(&h, dialect, &kind.token(), &long);
        assert_ne!(got.status, 502, "{dialect:?}: {}", got.body);
        error_message(dialect, &got, Expect::ContextLength);
        assert!(!got.body.contains("empty answer"), "{}", got.body);
        let short = Ask::new("kimi");
        assert_answered(dialect, &short, &send(&h, dialect, &kind.token(), &short));
    }
}

/// A kept conversation (OpenAI `conversation_id: "none"`, then its id: the only dialect that
/// keeps chats) whose turn Kimi ends as too long is locked: continuing it answers the
/// context-length error at once, without another Kimi turn. A new conversation still works.
fn a_kept_conversation_that_grew_too_long_is_not_continued(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { max_prompt_chars: Some(40), ..Script::default() });
    let (url, token) = (h.url("/v1/chat/completions"), kind.token());
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str())];
    let turn = |conversation: &str, text: &str, stream: bool| {
        json!({"model": "kimi", "stream": stream, "conversation_id": conversation,
            "messages": [{"role": "user", "content": text}]})
    };
    for stream in [false, true] {
        let first = post_with(&url, &headers, &turn("none", "hi", false));
        assert_eq!(first.status, 200, "{}", first.body);
        let chat_id = first.json()["id"].as_str().unwrap().to_string();
        assert!(h.mock.stats().live_chats.contains(&chat_id), "the chat is kept");

        let long = "a question far longer than the chat may grow ".repeat(3);
        let got = send_openai(&url, &headers, &turn(&chat_id, &long, stream));
        let message = error_message(Dialect::OpenAi, &got, Expect::ContextLength);
        assert!(message.contains("getting too long"), "{message}");
        assert_eq!(last_sent(&h)["chat_id"], chat_id.as_str(), "the long turn went to the kept chat");

        let completions = h.mock.stats().completions;
        for again in [false, true] {
            let got = send_openai(&url, &headers, &turn(&chat_id, "short", again));
            let message = error_message(Dialect::OpenAi, &got, Expect::ContextLength);
            assert!(message.contains("new conversation"), "{message}");
        }
        assert_eq!(
            h.mock.stats().completions,
            completions,
            "stream={stream}: the locked chat was sent again"
        );

        let fresh = post_with(&url, &headers, &turn("", "short", stream));
        assert_eq!(fresh.status, 200, "a new conversation still works: {}", fresh.body);
    }
}

/// An OpenAI request, streamed or not as its body says.
fn send_openai(url: &str, headers: &[(&str, &str)], body: &Value) -> Got {
    if body["stream"] != true {
        let reply = post_with(url, headers, body);
        return Got { status: reply.status, body: reply.body, text: String::new(), failed_stream: false };
    }
    let answer = stream_with(url, headers, body);
    let body = if answer.frames.is_empty() { answer.body_if_error } else { answer.raw };
    Got { status: answer.status, body, text: String::new(), failed_stream: false }
}

// 7. An unknown exception.

/// A `block.exception` whose reason this server does not know is an error carrying Kimi's own
/// message (502 in every dialect), where the server before issue 19 ignored the frame and
/// answered "Kimi returned an empty answer". The chats are deleted.
fn an_unknown_exception_used_to_answer_kimi_returned_an_empty_answer(kind: Kind) {
    let h = Harness::start();
    let fault = Fault::Exception { reason: "REASON_BRAND_NEW".into(), message: "Kimi says no".into() };
    h.mock.script(Script { fault: Some(fault), ..Script::default() });
    let token = kind.token();
    for dialect in DIALECTS {
        for stream in [false, true] {
            let got = send(&h, dialect, &token, &Ask::new("kimi").streamed(stream));
            let message = error_message(dialect, &got, Expect::Upstream);
            assert!(message.contains("Kimi says no"), "{dialect:?} stream={stream}: {message}");
            let stats = h.mock.settled();
            assert!(
                stats.live_chats.is_empty(),
                "{dialect:?} stream={stream}: chats left: {:?}",
                stats.live_chats
            );
        }
    }
}

// 8. The system prompt.

/// Each dialect's system prompt (OpenAI system message, Responses `instructions`, Anthropic
/// `system`, Gemini `system_instruction`) goes into `options.systemPrompt`, not into the text.
fn the_system_prompt_goes_into_kimis_own_field_in_every_dialect(kind: Kind) {
    let h = Harness::start();
    let token = kind.token();
    for dialect in DIALECTS {
        for stream in [false, true] {
            let system = format!("You answer as a pirate ({dialect:?}, stream={stream}).");
            let ask = Ask { system: Some(system.clone()), text: "ahoy?".into(), ..Ask::new("kimi") }
                .streamed(stream);
            assert_answered(dialect, &ask, &send(&h, dialect, &token, &ask));
            let stats = h.mock.stats();
            let sent = stats.last_completion.unwrap();
            assert_eq!(
                sent["options"]["systemPrompt"],
                system.as_str(),
                "{dialect:?} stream={stream}: {sent}"
            );
            let prompt = stats.last_prompt.unwrap_or_default();
            assert!(prompt.contains("ahoy?"), "{dialect:?}: {prompt:?}");
            assert!(
                !prompt.contains("pirate"),
                "{dialect:?}: the system prompt is not in the text too: {prompt:?}"
            );
        }
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

/// A model the plan does not include cannot be had by trying again: the OpenAI and Anthropic
/// SDKs, which retry every 429, are told not to (`x-should-retry: false`), no `Retry-After` is
/// sent, and Gemini's error carries no RetryInfo.
#[test]
fn a_plan_refusal_tells_clients_not_to_retry() {
    let h = Harness::start();
    let token = free_token(Kind::Connect, "free-no-retry");
    let body = json!({"model": "kimi-k3", "messages": [{"role": "user", "content": "hi"}]});
    let reply =
        post_with(&h.url("/v1/chat/completions"), &[("authorization", &format!("Bearer {token}"))], &body);
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.header("x-should-retry"), Some("false"));
    assert_eq!(reply.header("retry-after"), None);
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let reply =
        post_with(&h.url("/v1beta/models/kimi-k3:generateContent"), &[("x-goog-api-key", &token)], &gemini);
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(reply.json()["error"].get("details").is_none(), "{}", reply.body);
}
