//! Kimi's 2026 answer stream on the Connect API (`docs/kimi-protocol.md` §4.3–4.5), over HTTP
//! against the mock: citation markers of every form cut across frames, several text blocks
//! around a server-side tool round, and the scenario and effort each model name selects.

mod support;

use serde_json::{Value, json};
use support::{Harness, Kind, Script, get, post_json, post_with, stream, stream_with};

/// The answer pieces, one frame each: the 2026 header, quotes closed by 🛠 and by U+E3A8, the
/// 2025 form and an inline reference, each cut across frames; a lone 🛠 ends the answer.
const MARKED: [&str; 9] = [
    "\u{E3A0}arti",
    "cle🛠web_search:1#",
    "1🛠web_search:1#0🎨\n\nParis is sunny",
    " \u{E3A0}cite🛠web_search:1#1:~:text=clear skies all day",
    "🛠, up to 24℃ \u{E3A0}ci",
    "te\u{E3A3}web_search:1#0\u{E3A8}; light wind \u{E3A0}cite🛠web_search:1#0:~:text=a light breeze",
    "\u{E3A8} 🛠web_",
    "search:1#2",
    "🛠. Tools: 🛠",
];
/// What the client reads of [`MARKED`].
const CLEAN: &str = "\n\nParis is sunny , up to 24℃ ; light wind  . Tools: 🛠";

fn script(pieces: &[&str]) -> Script {
    Script { text: pieces.iter().map(|p| p.to_string()).collect(), ..Script::default() }
}

/// The marked answer, with search results as Kimi sends them beside such text.
fn marked_search() -> Script {
    Script { search: vec![("Weather".into(), "https://w.example/paris".into())], ..script(&MARKED) }
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "weather in Paris?"}]})
}

fn openai_text(h: &Harness, model: &str) -> (String, String) {
    let url = h.url("/v1/chat/completions");
    let token = Kind::Connect.token();
    let streamed = stream(&url, Some(&token), &ask(model, true));
    assert!(streamed.complete && streamed.status == 200, "{}", streamed.body_if_error);
    let reply = post_json(&url, Some(&token), &ask(model, false));
    assert_eq!(reply.status, 200, "{}", reply.body);
    (streamed.content(), reply.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string())
}

#[test]
fn markers_of_every_form_cut_across_frames_are_removed_in_openai_answers() {
    let h = Harness::start();
    h.mock.script(marked_search());
    assert_eq!(openai_text(&h, "kimi-search-silent"), (CLEAN.to_string(), CLEAN.to_string()));
    h.mock.script(script(&MARKED));
    assert_eq!(openai_text(&h, "kimi"), (CLEAN.to_string(), CLEAN.to_string()));
    assert!(h.mock.settled().live_chats.is_empty());
}

#[test]
fn markers_are_removed_in_anthropic_and_gemini_answers() {
    let h = Harness::start();
    h.mock.script(marked_search());
    let token = Kind::Connect.token();
    let headers = [("x-api-key", token.as_str()), ("anthropic-version", "2023-06-01")];
    let body = json!({"model": "kimi-search-silent", "max_tokens": 1024, "stream": true,
        "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let answer = stream_with(&h.url("/v1/messages"), &headers, &body);
    let text: String =
        answer.frames.iter().filter_map(|f| f.json()["delta"]["text"].as_str().map(str::to_string)).collect();
    assert_eq!(text, CLEAN);

    let body = json!({"contents": [{"role": "user", "parts": [{"text": "weather in Paris?"}]}]});
    let url = h.url("/v1beta/models/kimi-search-silent:generateContent");
    let reply = post_with(&url, &[("x-goog-api-key", &token)], &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["candidates"][0]["content"]["parts"], json!([{"text": CLEAN}]));
}

#[test]
fn search_citations_still_show_beside_the_stripped_text() {
    let h = Harness::start();
    h.mock.script(marked_search());
    let (streamed, whole) = openai_text(&h, "kimi-search");
    assert_eq!(streamed, format!("【检索 1】 [Weather](https://w.example/paris)\n\n{CLEAN}"));
    assert_eq!(
        whole,
        format!("{CLEAN}\n\n搜索结果来自：\n【检索 1】 [Weather](https://w.example/paris)\n\n")
    );
}

#[test]
fn two_text_blocks_around_a_tool_round_give_the_whole_answer() {
    let h = Harness::start();
    let pieces = ["Let me look that up.", " It is 18℃ 🛠web_search:1#0🛠", "in Paris."];
    h.mock.script(Script { tool_round_after: Some(1), ..script(&pieces) });
    let expected = "Let me look that up. It is 18℃ in Paris.";
    assert_eq!(openai_text(&h, "kimi"), (expected.to_string(), expected.to_string()));
    let raw = stream(&h.url("/v1/chat/completions"), Some(&Kind::Connect.token()), &ask("kimi", true)).raw;
    for leak in ["TOOL CONTENT", "tool.example", "queries", "STATUS_", "web_search"] {
        assert!(!raw.contains(leak), "{leak} of the tool round reached the client: {raw}");
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

#[test]
fn an_answer_in_the_2026_marker_form_used_to_come_back_as_kimi_returned_an_empty_answer() {
    let h = Harness::start();
    h.mock.script(script(&["\u{E3A0}article🛠web_search:1#1🛠web_search:1#0🎨", "Rain later."]));
    let reply = post_json(&h.url("/v1/chat/completions"), Some(&Kind::Connect.token()), &ask("kimi", false));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["choices"][0]["message"]["content"], "Rain later.");
}

#[test]
fn the_model_name_selects_the_catalogue_entry_and_thinking_an_effort_of_its_ladder() {
    let h = Harness::start();
    let token = Kind::Connect.token();
    let sent = |model: &str| {
        let reply = post_json(&h.url("/v1/chat/completions"), Some(&token), &ask(model, false));
        assert_eq!(reply.status, 200, "{model}: {}", reply.body);
        h.mock.stats().last_completion.unwrap()
    };
    // (name, options.model, scenario, effort, kimiplus_id) — docs/kimi-protocol.md §7.11.
    let cases = [
        ("kimi", "k2d6-chat", "SCENARIO_CHAT", "REASONING_EFFORT_NONE", None),
        ("gpt-4o", "k2d6-chat", "SCENARIO_CHAT", "REASONING_EFFORT_NONE", None),
        ("kimi-k2", "k2d6-chat", "SCENARIO_CHAT", "REASONING_EFFORT_NONE", None),
        ("kimi-k2-thinking", "k2d6-chat", "SCENARIO_CHAT", "REASONING_EFFORT_LOW", None),
        ("kimi-k3", "k3-agent", "SCENARIO_OK_COMPUTER", "REASONING_EFFORT_LOW", Some("ok-computer")),
        (
            "kimi-k3-thinking",
            "k3-agent",
            "SCENARIO_OK_COMPUTER",
            "REASONING_EFFORT_HIGH",
            Some("ok-computer"),
        ),
        ("kimi-k3-max", "k3-agent", "SCENARIO_OK_COMPUTER", "REASONING_EFFORT_MAX", Some("ok-computer")),
        (
            "kimi-k2.8",
            "k28-agent-preview",
            "SCENARIO_OK_COMPUTER",
            "REASONING_EFFORT_LOW",
            Some("ok-computer"),
        ),
        (
            "kimi-k3-swarm",
            "k3-agent-swarm",
            "SCENARIO_OK_COMPUTER_SWARM",
            "REASONING_EFFORT_LOW",
            Some("ok-computer"),
        ),
        ("k3-agent", "k3-agent", "SCENARIO_OK_COMPUTER", "REASONING_EFFORT_LOW", Some("ok-computer")),
        (
            "kimi-research",
            "k3-agent",
            "SCENARIO_OK_COMPUTER",
            "REASONING_EFFORT_HIGH",
            Some("deep-researcher"),
        ),
    ];
    for (name, model, scenario, effort, kimiplus_id) in cases {
        let body = sent(name);
        assert_eq!(
            (&body["options"]["model"], &body["options"]["reasoning_effort"]),
            (&json!(model), &json!(effort)),
            "{name}"
        );
        assert_eq!(
            (&body["scenario"], &body["message"]["scenario"]),
            (&json!(scenario), &json!(scenario)),
            "{name}"
        );
        assert_eq!(body.get("kimiplus_id").and_then(Value::as_str), kimiplus_id, "{name}");
        assert_eq!(body["options"]["thinking"], true, "{name}: the browser always sends thinking");
    }

    let headers = [("x-api-key", token.as_str()), ("anthropic-version", "2023-06-01")];
    let body = json!({"model": "claude-opus-5-5", "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(post_with(&h.url("/v1/messages"), &headers, &body).status, 200);
    let body = h.mock.stats().last_completion.unwrap();
    assert_eq!(
        (&body["options"]["model"], &body["options"]["reasoning_effort"]),
        (&json!("k2d6-chat"), &json!("REASONING_EFFORT_LOW"))
    );
}

#[test]
fn the_model_list_says_what_each_name_selects() {
    let h = Harness::start();
    let description = |models: &Value, id: &str| {
        let model = models["data"].as_array().unwrap().iter().find(|m| m["id"] == id);
        model.unwrap_or_else(|| panic!("{id} listed"))["description"].as_str().unwrap().to_string()
    };
    // Without a token: what each name asks for.
    let models = get(&h.url("/v1/models")).json();
    assert!(description(&models, "kimi").contains("Instant"));
    assert!(description(&models, "kimi-k3").contains("paid plans"));
    // With the caller's token: which of the account's models each name runs on, and its ids.
    let token = Kind::Web.token();
    let models =
        support::get_with(&h.url("/v1/models"), &[("authorization", &format!("Bearer {token}"))]).json();
    assert!(description(&models, "kimi").contains("(k2d6-chat, SCENARIO_CHAT)"), "{models}");
    assert!(
        description(&models, "kimi-k3-thinking").contains("(k3-agent, SCENARIO_OK_COMPUTER)"),
        "{models}"
    );
    assert!(description(&models, "k3-agent-swarm").contains("K3 Swarm"), "{models}");
}
