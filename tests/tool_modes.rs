//! How a request's tools reach Kimi (`docs/tools.md` §3), driven over HTTP against the mock:
//! natively on the Connect API (one device tool per declared tool, the section in the system
//! prompt field), in the user's turn on the legacy API and in `prompt` mode; `auto` moving an
//! account to the prompt when Kimi refuses the native way or required calls never come; the
//! corrective follow-up in the same chat; what `/token/check` and `/metrics` say.

#[macro_use]
mod support;

use kimi_free_api::kimi::ToolMode;
use serde_json::{Value, json};
use support::{Harness, Kind, Script, post_with, stream_with};

both_backends!(
    a_required_call_that_did_not_come_is_asked_for_once_in_the_same_chat,
    a_required_call_that_never_comes_ends_with_the_text_and_is_counted,
);

const FUNCTION_CALLS: &str = "<function_calls>\n<invoke name=\"Read\">\n<parameter name=\"path\">a&amp;b.txt</parameter>\n</invoke>\n</function_calls>";

fn tools() -> Value {
    let read = json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]});
    json!([{"type": "function", "function": {"name": "Read", "description": "reads a file", "parameters": read}},
           {"type": "function", "function": {"name": "Glob", "description": "finds files", "parameters": {}}}])
}

fn ask(h: &Harness, token: &str, stream: bool, choice: Value) -> (u16, Value) {
    let body = json!({"model": "kimi", "stream": stream, "tools": tools(), "tool_choice": choice,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "read a&b.txt"}]});
    let url = h.url("/v1/chat/completions");
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str())];
    if !stream {
        let reply = post_with(&url, &headers, &body);
        return (reply.status, reply.json());
    }
    let answer = stream_with(&url, &headers, &body);
    let frames: Vec<Value> = answer.frames.iter().filter(|f| f.data != "[DONE]").map(|f| f.json()).collect();
    let calls: Vec<Value> = frames
        .iter()
        .flat_map(|f| f["choices"][0]["delta"]["tool_calls"].as_array().cloned().unwrap_or_default())
        .collect();
    let text: String = frames.iter().filter_map(|f| f["choices"][0]["delta"]["content"].as_str()).collect();
    (answer.status, json!({"calls": calls, "text": text}))
}

/// The call's tool name in a streamed or whole answer.
fn called(answer: &Value) -> Option<String> {
    let call = answer["choices"][0]["message"]["tool_calls"][0].clone();
    let call = if call.is_null() { answer["calls"][0].clone() } else { call };
    call["function"]["name"].as_str().map(str::to_string)
}

fn device_tools(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["type"] == "TOOL_TYPE_DEVICE_TOOL")
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn connect_declares_every_tool_natively_and_legacy_keeps_them_in_the_turn() {
    for kind in [Kind::Web, Kind::Connect, Kind::Legacy] {
        for stream in [false, true] {
            let h = Harness::start();
            h.mock.script(Script { text: vec![FUNCTION_CALLS.into()], ..Script::default() });
            let (status, answer) = ask(&h, &kind.token(), stream, json!("auto"));
            assert_eq!(status, 200, "{kind:?} {answer}");
            assert_eq!(called(&answer).as_deref(), Some("Read"), "{kind:?} stream={stream}: {answer}");
            let stats = h.mock.settled();
            let prompt = stats.last_prompt.clone().unwrap();
            if kind == Kind::Legacy {
                assert!(prompt.contains("## Read") && prompt.contains("## Glob"), "{prompt}");
                continue;
            }
            let body = stats.last_completion.clone().unwrap();
            assert_eq!(device_tools(&body), ["Read", "Glob"], "{kind:?}: {body}");
            let system = body["options"]["systemPrompt"].as_str().unwrap();
            assert!(system.starts_with("be brief\n\n# Tools") && system.contains("## Read"), "{system}");
            assert!(!prompt.contains("## Read"), "the turn has no tool section: {prompt}");
            assert!(stats.live_chats.is_empty(), "the chat is deleted");
        }
    }
}

#[test]
fn prompt_mode_declares_nothing_and_puts_the_tools_in_the_turn() {
    let h = Harness::start_with(|c| c.tool_mode = ToolMode::Prompt);
    h.mock.script(Script { text: vec![FUNCTION_CALLS.into()], ..Script::default() });
    let (status, answer) = ask(&h, &Kind::Web.token(), false, json!("auto"));
    assert_eq!((status, called(&answer).as_deref()), (200, Some("Read")), "{answer}");
    let stats = h.mock.settled();
    let body = stats.last_completion.unwrap();
    assert!(device_tools(&body).is_empty(), "{body}");
    assert_eq!(
        body["options"]["systemPrompt"], "be brief",
        "the request's own system prompt stays in its field"
    );
    assert!(stats.last_prompt.unwrap().contains("## Read"));
}

fn a_required_call_that_did_not_come_is_asked_for_once_in_the_same_chat(kind: Kind) {
    for stream in [false, true] {
        let h = Harness::start();
        let turns = vec![vec!["I would read it.".to_string()], vec![FUNCTION_CALLS.to_string()]];
        h.mock.script(Script { turns, ..Script::default() });
        let (status, answer) = ask(&h, &kind.token(), stream, json!("required"));
        assert_eq!((status, called(&answer).as_deref()), (200, Some("Read")), "{kind:?} {stream}: {answer}");
        let stats = h.mock.settled();
        assert_eq!((stats.completions, stats.chats_created), (2, 1), "{kind:?}: one chat, asked twice");
        let asked = stats.last_prompt.clone().unwrap();
        assert!(
            asked.starts_with("Your answer called no function") && asked.contains("Call one of: Read, Glob")
        );
        if kind != Kind::Legacy {
            assert!(stats.last_parent_id.is_some(), "the follow-up continues the first answer");
        }
        assert!(stats.live_chats.is_empty(), "the chat is deleted after the follow-up");
        let metrics = h.metrics();
        assert!(metrics.contains("kimi_free_api_tool_follow_ups_total{mode="), "{metrics}");
        assert!(metrics.contains("kimi_free_api_tool_calls_total{form=\"function_calls\""), "{metrics}");
    }
}

fn a_required_call_that_never_comes_ends_with_the_text_and_is_counted(kind: Kind) {
    let h = Harness::start();
    h.mock.script(Script { text: vec!["No.".into()], ..Script::default() });
    let (status, answer) =
        ask(&h, &kind.token(), false, json!({"type": "function", "function": {"name": "Read"}}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "No.No.", "both answers, as they came");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(h.mock.settled().last_prompt.unwrap().contains("Call one of: Read."), "the named tool");
    let mode = if kind == Kind::Legacy { "prompt" } else { "native" };
    let metrics = h.metrics();
    assert!(
        metrics.contains(&format!("kimi_free_api_tool_calls_missing_total{{mode=\"{mode}\"}} 1")),
        "{metrics}"
    );
}

#[test]
fn auto_moves_an_account_that_refuses_device_tools_to_the_prompt_and_keeps_it_there() {
    let h = Harness::start();
    h.mock.script(Script {
        text: vec![FUNCTION_CALLS.into()],
        refuse_device_tools: true,
        ..Script::default()
    });
    let token = Kind::Web.token_for("refuses-device-tools");
    for _ in 0..2 {
        let (status, answer) = ask(&h, &token, false, json!("auto"));
        assert_eq!((status, called(&answer).as_deref()), (200, Some("Read")), "{answer}");
        let stats = h.mock.settled();
        assert!(device_tools(&stats.last_completion.unwrap()).is_empty());
        assert!(stats.last_prompt.unwrap().contains("## Read"), "the tools went in the turn");
    }
    assert_eq!(h.mock.settled().completions, 3, "refused once, then never declared again");
    let check = post_with(&h.url("/token/check"), &[], &json!({"token": token})).json();
    let mode = check["tokens"][0]["tool_mode"].as_str().unwrap();
    assert!(
        mode.starts_with("prompt (auto, since ") && mode.contains("Kimi refused the declared tools"),
        "{mode}"
    );
    assert!(h.metrics().contains("kimi_free_api_tool_mode_switches_total 1"));
}

#[test]
fn native_mode_reports_the_refusal_instead_of_switching() {
    let h = Harness::start_with(|c| c.tool_mode = ToolMode::Native);
    h.mock.script(Script { refuse_device_tools: true, ..Script::default() });
    let (status, answer) = ask(&h, &Kind::Connect.token(), false, json!("auto"));
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("--tool-mode native"), "{message}");
}

#[test]
fn two_required_calls_in_a_row_that_never_come_move_an_auto_account_to_the_prompt() {
    let h = Harness::start();
    h.mock.script(Script { text: vec!["Sure.".into()], ..Script::default() });
    let token = Kind::Web.token_for("never-calls");
    for round in 0..2 {
        ask(&h, &token, false, json!("required"));
        let declared = device_tools(&h.mock.settled().last_completion.unwrap());
        assert_eq!(declared, ["Read", "Glob"], "round {round}: still native");
    }
    ask(&h, &token, false, json!("required"));
    assert!(device_tools(&h.mock.settled().last_completion.unwrap()).is_empty(), "now in the prompt");
    let check = post_with(&h.url("/token/check"), &[], &json!({"token": token})).json();
    assert!(check["tokens"][0]["tool_mode"].as_str().unwrap().contains("never came"), "{check}");
    let legacy = post_with(&h.url("/token/check"), &[], &json!({"token": Kind::Legacy.token()})).json();
    assert!(legacy["tokens"][0]["tool_mode"].as_str().unwrap().starts_with("prompt"), "{legacy}");
}
