//! The OpenAI Chat Completions route over both Kimi backends: every feature, driven over HTTP
//! against the mock, asserting on the answer and on what the mock received. Each test body runs
//! once with a legacy refresh_token and once with a kimi-auth JWT.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Api, Harness, Kind, Script, post_json, stream};

both_backends!(
    plain_answer_and_the_chat_is_deleted,
    stream_frames_in_the_openai_order,
    usage_chunk_when_asked,
    events_are_forwarded_as_they_arrive,
    history_is_merged_with_the_system_prompt,
    model_name_flags_reach_kimi,
    search_citations_as_the_original_renders_them,
    thinking_streams_as_reasoning_content,
    native_conversation_is_kept_and_continued,
    utf8_split_across_reads_is_kept_whole,
    a_pool_spreads_requests_over_its_tokens,
);

fn ask(model: &str, content: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

fn plain_answer_and_the_chat_is_deleted(kind: Kind) {
    let h = Harness::start();
    let reply = post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &ask("kimi", "hi"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "kimi");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from the mock Kimi.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body.get("system_fingerprint").is_none_or(Value::is_string), "OpenAI types it as a string");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let stats = h.mock.settled();
    assert_eq!((stats.chats_created, stats.chats_deleted), (1, 1));
    assert!(stats.live_chats.is_empty());
    assert_eq!(stats.last_prompt.as_deref(), Some("hi\n"));
    assert!(stats.last_traffic_id.is_some(), "the user id is sent as X-Traffic-Id");
    let sent = stats.last_completion.unwrap();
    match kind.api() {
        Api::Legacy => {
            assert_eq!(body["id"], "cm000000000000000002", "the id is Kimi's chat id");
            assert_eq!(sent["kimiplus_id"], "kimi");
            for flag in ["use_search", "use_research", "use_math"] {
                assert_eq!(sent[flag], false, "{flag}");
            }
            assert_eq!(stats.last_create.unwrap()["kimiplus_id"], "kimi");
        }
        Api::Connect => {
            assert!(body["id"].as_str().unwrap().starts_with("19be5aab-"), "the id is Kimi's chat id");
            // Instant is the account's default since September 2026 (docs/kimi-protocol.md §7.1).
            assert_eq!(sent["scenario"], "SCENARIO_CHAT");
            assert_eq!(sent["message"]["scenario"], "SCENARIO_CHAT");
            assert_eq!(sent["options"]["model"], "k2d6-chat");
            assert_eq!(sent["options"]["reasoning_effort"], "REASONING_EFFORT_NONE");
            assert_eq!(sent["tools"], json!([{"type": "TOOL_TYPE_CRON_JOB"}]));
            assert!(sent.get("chat_id").is_none());
        }
    }
}

fn stream_frames_in_the_openai_order(kind: Kind) {
    let h = Harness::start();
    let answer = stream(&h.url("/v1/chat/completions"), Some(&kind.token()), &streamed(ask("kimi", "hi")));
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("text/event-stream"));
    assert!(answer.complete, "the body must end properly");
    let data = answer.data();
    assert_eq!(*data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = answer.frames[..data.len() - 1].iter().map(|f| f.json()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert!(chunks[1..chunks.len() - 1].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    let id = &chunks[0]["id"];
    assert!(chunks.iter().all(|c| &c["id"] == id && c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c.get("system_fingerprint").is_none_or(Value::is_string)));
    assert_eq!(answer.content(), "Hello from the mock Kimi.");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "no usage chunk unless asked");
    assert!(h.mock.settled().live_chats.is_empty());
}

fn usage_chunk_when_asked(kind: Kind) {
    let h = Harness::start();
    let mut body = streamed(ask("kimi", "hi"));
    body["stream_options"] = json!({"include_usage": true});
    let answer = stream(&h.url("/v1/chat/completions"), Some(&kind.token()), &body);
    let data = answer.data();
    let usage: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    let usage = &usage["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

fn events_are_forwarded_as_they_arrive(kind: Kind) {
    let h = Harness::start();
    let pieces: Vec<String> = (0..6).map(|i| format!("p{i} ")).collect();
    h.mock.script(Script { text: pieces.clone(), delay_ms: 120, ..Script::default() });
    let answer = stream(&h.url("/v1/chat/completions"), Some(&kind.token()), &streamed(ask("kimi", "hi")));
    assert_eq!(answer.content(), pieces.concat());
    let content_frames: Vec<_> = answer
        .frames
        .iter()
        .filter(|f| {
            f.data != "[DONE]"
                && f.json()["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty())
        })
        .collect();
    assert_eq!(content_frames.len(), pieces.len());
    // The upstream spaces its events 120 ms apart; had the server buffered the answer, the
    // frames would arrive together at the end.
    support::assert_arrived_apart(&content_frames, Duration::from_millis(400));
}

fn history_is_merged_with_the_system_prompt(kind: Kind) {
    let h = Harness::start();
    let body = json!({"model": "kimi", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi!"},
        {"role": "user", "content": [{"type": "text", "text": "read https://example.com/a"}]},
    ]});
    assert_eq!(post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &body).status, 200);
    let conversation = "user:hello\nassistant:hi!\nsystem:关注用户最新的消息\n\
         user:read <url id=\"\" type=\"url\" status=\"\" title=\"\" wc=\"\">https://example.com/a</url>\n";
    let stats = h.mock.stats();
    if kind.api() == Api::Legacy {
        assert_eq!(stats.last_prompt.unwrap(), format!("system:be brief\n{conversation}"));
        return;
    }
    // Connect: the system prompt has a field of its own (docs/kimi-protocol.md §7.3).
    assert_eq!(stats.last_prompt.unwrap(), conversation);
    assert_eq!(stats.last_completion.unwrap()["options"]["systemPrompt"], "be brief");
}

fn model_name_flags_reach_kimi(kind: Kind) {
    let h = Harness::start();
    let token = kind.token();
    let send = |model: &str| {
        let reply = post_json(&h.url("/v1/chat/completions"), Some(&token), &ask(model, "x"));
        assert_eq!(reply.status, 200, "{model}: {}", reply.body);
        h.mock.stats()
    };
    match kind.api() {
        Api::Legacy => {
            let cases = [
                ("kimi-search", "use_search", "kimi"),
                ("kimi-research", "use_research", "kimi"),
                ("kimi-math", "use_math", "kimi"),
                ("kimi-k1", "", "crm40ee9e5jvhsn7ptcg"),
                ("coo6l3pkqq4ri39f36bg", "", "coo6l3pkqq4ri39f36bg"),
            ];
            for (model, flag, kimiplus_id) in cases {
                let stats = send(model);
                let sent = stats.last_completion.unwrap();
                for name in ["use_search", "use_research", "use_math"] {
                    let expected = name == flag || (model == "kimi-research" && name == "use_search");
                    assert_eq!(sent[name], json!(expected), "{model} {name}");
                }
                assert_eq!(sent["kimiplus_id"], kimiplus_id, "{model}");
                assert_eq!(stats.last_create.unwrap()["kimiplus_id"], kimiplus_id, "{model}");
            }
        }
        Api::Connect => {
            let search = json!({"type": "TOOL_TYPE_SEARCH", "search": {}});
            let sent = send("kimi-search").last_completion.unwrap();
            assert_eq!(sent["tools"], json!([search, {"type": "TOOL_TYPE_CRON_JOB"}]));
            assert_eq!(sent["options"]["reasoning_effort"], "REASONING_EFFORT_NONE");
            let sent = send("kimi-k2-thinking").last_completion.unwrap();
            assert_eq!(
                (&sent["scenario"], &sent["options"]["model"], &sent["options"]["reasoning_effort"]),
                (&json!("SCENARIO_CHAT"), &json!("k2d6-chat"), &json!("REASONING_EFFORT_LOW"))
            );
            let sent = send("kimi-k3").last_completion.unwrap();
            assert_eq!(
                (&sent["scenario"], &sent["kimiplus_id"]),
                (&json!("SCENARIO_OK_COMPUTER"), &json!("ok-computer"))
            );
            let sent = send("kimi-research").last_completion.unwrap();
            assert_eq!(sent["tools"], json!([search, {"type": "TOOL_TYPE_ASK_USER"}]));
            assert_eq!(
                (&sent["kimiplus_id"], &sent["options"]["reasoning_effort"]),
                (&json!("deep-researcher"), &json!("REASONING_EFFORT_HIGH"))
            );
            let sent = send("coo6l3pkqq4ri39f36bg").last_completion.unwrap();
            assert_eq!(sent["kimiplus_id"], "coo6l3pkqq4ri39f36bg");
        }
    }
    let mut body = ask("kimi", "x");
    body["use_search"] = json!(true);
    post_json(&h.url("/v1/chat/completions"), Some(&token), &body);
    let sent = h.mock.stats().last_completion.unwrap();
    assert!(sent["use_search"] == true || sent["tools"][0]["type"] == "TOOL_TYPE_SEARCH", "{sent}");
}

fn search_citations_as_the_original_renders_them(kind: Kind) {
    let h = Harness::start();
    let results = vec![("Weather".to_string(), "https://w.example/1".to_string())];
    h.mock.script(Script { search: results, text: vec!["Sunny.".into()], ..Script::default() });
    let (url, token) = (h.url("/v1/chat/completions"), kind.token());

    let answer = stream(&url, Some(&token), &streamed(ask("kimi-search", "weather")));
    assert_eq!(answer.content(), "【检索 1】 [Weather](https://w.example/1)\n\nSunny.");

    let reply = post_json(&url, Some(&token), &ask("kimi-search", "weather"));
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Sunny.\n\n搜索结果来自：\n【检索 1】 [Weather](https://w.example/1)\n\n"
    );

    let answer = stream(&url, Some(&token), &streamed(ask("kimi-search-silent", "weather")));
    assert_eq!(answer.content(), "Sunny.");
    let reply = post_json(&url, Some(&token), &ask("kimi-search-silent", "weather"));
    assert_eq!(reply.json()["choices"][0]["message"]["content"], "Sunny.");
}

fn thinking_streams_as_reasoning_content(kind: Kind) {
    let h = Harness::start();
    let thinking = vec!["Let me".to_string(), " think.".to_string()];
    h.mock.script(Script { thinking, text: vec!["42".into()], ..Script::default() });
    let (url, token) = (h.url("/v1/chat/completions"), kind.token());
    let answer = stream(&url, Some(&token), &streamed(ask("kimi-k1", "q")));
    assert_eq!(answer.reasoning(), "Let me think.");
    assert_eq!(answer.content(), "42");
    let first_content = answer.frames.iter().position(|f| f.data.contains("\"content\":\"42\"")).unwrap();
    let last_reasoning = answer.frames.iter().rposition(|f| f.data.contains("reasoning_content")).unwrap();
    assert!(last_reasoning < first_content, "reasoning comes before the answer");

    let reply = post_json(&url, Some(&token), &ask("kimi-k2-thinking", "q"));
    let message = &reply.json()["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "Let me think.");
    assert_eq!(message["content"], "42");
}

fn native_conversation_is_kept_and_continued(kind: Kind) {
    let h = Harness::start();
    let (url, token) = (h.url("/v1/chat/completions"), kind.token());
    let mut first = ask("kimi", "remember 7");
    first["conversation_id"] = json!("none");
    let reply = post_json(&url, Some(&token), &first);
    assert_eq!(reply.status, 200);
    let chat_id = reply.json()["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(100));
    let stats = h.mock.stats();
    assert_eq!(stats.live_chats.iter().collect::<Vec<_>>(), vec![&chat_id], "a kept chat is not deleted");

    let second = json!({"model": "kimi", "conversation_id": chat_id, "messages": [
        {"role": "user", "content": "remember 7"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "which number?"},
    ]});
    let answer = stream(&url, Some(&token), &streamed(second));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.frames[0].json()["id"], chat_id.as_str());
    std::thread::sleep(Duration::from_millis(100));
    let stats = h.mock.stats();
    assert_eq!(stats.chats_created, 1, "no new chat for a continued conversation");
    assert_eq!(stats.completions, 2);
    assert_eq!(stats.last_prompt.as_deref(), Some("which number?"));
    assert!(stats.live_chats.contains(&chat_id));
    if kind.api() == Api::Connect {
        let sent = stats.last_completion.unwrap();
        assert_eq!(sent["chat_id"], chat_id.as_str());
        assert!(stats.last_parent_id.is_some_and(|p| p.starts_with("msg-")), "parent_id is the last answer");
    }

    let mut bad = ask("kimi", "x");
    bad["conversation_id"] = json!("not-a-chat-id");
    let reply = post_json(&url, Some(&token), &bad);
    assert!(matches!(reply.status, 400 | 404), "{}", reply.body);
}

fn utf8_split_across_reads_is_kept_whole(kind: Kind) {
    let h = Harness::start();
    let text: Vec<String> = ["你好，", "世界！", "🎉 完成"].map(String::from).to_vec();
    h.mock.script(Script { text: text.clone(), split_utf8: true, ..Script::default() });
    let answer = stream(&h.url("/v1/chat/completions"), Some(&kind.token()), &streamed(ask("kimi", "hi")));
    assert_eq!(answer.content(), text.concat());
    let reply = post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &ask("kimi", "hi"));
    assert_eq!(reply.json()["choices"][0]["message"]["content"], text.concat());
}

fn a_pool_spreads_requests_over_its_tokens(kind: Kind) {
    let h = Harness::start();
    let (a, b) = (kind.token_for("pool-a"), kind.token_for("pool-b"));
    let pool = format!("{a}, {b}");
    let mut users = std::collections::HashSet::new();
    for _ in 0..24 {
        assert_eq!(post_json(&h.url("/v1/chat/completions"), Some(&pool), &ask("kimi", "x")).status, 200);
        users.insert(h.mock.stats().last_traffic_id.unwrap());
        if users.len() == 2 {
            return;
        }
    }
    panic!("24 requests never used both accounts of the pool: {users:?}");
}

#[test]
fn a_pool_may_mix_both_kinds() {
    let h = Harness::start();
    let pool = format!("{},{}", Kind::Legacy.token(), Kind::Connect.token());
    for _ in 0..8 {
        let reply = post_json(&h.url("/v1/chat/completions"), Some(&pool), &ask("kimi", "x"));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert!(h.mock.settled().live_chats.is_empty());
}

#[test]
fn legacy_answers_cut_at_the_length_limit_are_continued() {
    let h = Harness::start();
    h.mock.script(Script { text: vec!["part ".into()], length_cuts: 2, ..Script::default() });
    let (url, token) = (h.url("/v1/chat/completions"), Kind::Legacy.token());
    let reply = post_json(&url, Some(&token), &ask("kimi", "long"));
    assert_eq!(reply.json()["choices"][0]["message"]["content"], "part part part ");
    assert_eq!(reply.json()["choices"][0]["finish_reason"], "stop");
    let stats = h.mock.settled();
    assert_eq!(stats.completions, 3);
    let sent = stats.last_completion.unwrap();
    assert_eq!(sent["action"], "continue");
    assert_eq!(sent["segment_id"], "seg2");
    assert_eq!(stats.chats_created, 1);
    assert!(stats.live_chats.is_empty());

    let answer = stream(&url, Some(&token), &streamed(ask("kimi", "long")));
    assert_eq!(answer.content(), "part part part ");
}

#[test]
fn legacy_refreshes_once_for_a_burst_of_requests() {
    let h = Harness::start();
    h.mock.script(Script { delay_ms: 20, ..Script::default() });
    let url = h.url("/v1/chat/completions");
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || post_json(&url, Some("rt-burst"), &ask("kimi", "x")).status)
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 200);
    }
    let stats = h.mock.stats();
    assert_eq!(stats.refreshes, 1, "the access token is cached and refreshed once");
    assert_eq!(stats.user_calls, 1);
}
