use serde_json::json;

use super::*;
use crate::chat::{Conversation, MODELS, Message, Role};

fn request(model: &str, messages: Vec<Message>) -> chat::Request {
    chat::Request {
        model: model.into(),
        mode: Mode::from_model_name(model),
        messages,
        conversation: Conversation::Ephemeral,
        stream: true,
        tools: Vec::new(),
        tool_choice: chat::ToolChoice::Auto,
        parallel_tool_calls: true,
        output: crate::chat::Output::Text,
        tool_prompt: None,
    }
}

fn ask(model: &str) -> chat::Request {
    request(model, vec![Message::text(Role::User, "hi")])
}

fn body(model: &str, turn: &Turn<'_>) -> Value {
    let catalogue = Catalogue::builtin();
    let request = ask(model);
    chat_body(&request, &Target::of(&catalogue, &request), turn)
}

/// What the browser sent (`docs/kimi-protocol.md` §7.2): a new Instant chat with search on and
/// thinking ("High" = LOW), from the live capture of 2026-09-15.
fn browser_instant() -> Value {
    json!({"scenario": "SCENARIO_CHAT",
        "tools": [{"type": "TOOL_TYPE_SEARCH", "search": {}}, {"type": "TOOL_TYPE_CRON_JOB"}],
        "message": {"role": "user", "blocks": [{"message_id": "", "text": {"content": "hi\n"}}],
                    "scenario": "SCENARIO_CHAT", "is_goal": false},
        "options": {"thinking": true, "enable_plugin": true, "reasoning_effort": "REASONING_EFFORT_LOW",
                    "model": "k2d6-chat"},
        "project_id": ""})
}

/// A new K3 chat as the browser sends it (`docs/kimi-protocol.md` §7.2, browser captures).
fn browser_agent(model: &str) -> Value {
    json!({"scenario": "SCENARIO_OK_COMPUTER", "kimiplus_id": "ok-computer",
        "tools": [{"type": "TOOL_TYPE_SEARCH", "search": {}}, {"type": "TOOL_TYPE_ASK_USER"}],
        "message": {"role": "user", "blocks": [{"message_id": "", "text": {"content": "hi\n"}}],
                    "scenario": "SCENARIO_OK_COMPUTER", "is_goal": false},
        "options": {"thinking": true, "enable_plugin": true, "reasoning_effort": "REASONING_EFFORT_HIGH",
                    "context_length": "CONTEXT_LENGTH_L", "model": model},
        "project_id": ""})
}

#[test]
fn bodies_match_the_browsers_field_for_field() {
    assert_eq!(body("kimi-search-thinking", &Turn::default()), browser_instant());
    assert_eq!(body("kimi-k3-search-thinking", &Turn::default()), browser_agent("k3-agent"));
    assert_eq!(body("kimi-k2.8-search-thinking", &Turn::default()), browser_agent("k28-agent-preview"));
}

#[test]
fn plain_names_differ_from_the_browser_only_in_what_they_ask() {
    let mut expected = browser_instant();
    expected["tools"] = json!([{"type": "TOOL_TYPE_CRON_JOB"}]);
    expected["options"]["reasoning_effort"] = json!("REASONING_EFFORT_NONE");
    assert_eq!(body("kimi", &Turn::default()), expected);
    let mut expected = browser_agent("k3-agent");
    expected["tools"] = json!([{"type": "TOOL_TYPE_ASK_USER"}]);
    expected["options"]["reasoning_effort"] = json!("REASONING_EFFORT_LOW");
    assert_eq!(body("kimi-k3", &Turn::default()), expected);
    let max = body("kimi-k3-max", &Turn::default());
    assert_eq!(max["options"]["reasoning_effort"], "REASONING_EFFORT_MAX");
}

#[test]
fn swarm_and_research_carry_their_agent_fields() {
    let swarm = body("kimi-k3-swarm", &Turn::default());
    assert_eq!(
        (&swarm["scenario"], &swarm["message"]["scenario"]),
        (&json!("SCENARIO_OK_COMPUTER_SWARM"), &json!("SCENARIO_OK_COMPUTER_SWARM"))
    );
    assert_eq!(
        (&swarm["agent_mode"], &swarm["options"]["model"]),
        (&json!("TYPE_ULTRA"), &json!("k3-agent-swarm"))
    );
    assert_eq!(swarm["kimiplus_id"], "ok-computer");
    let research = body("kimi-research", &Turn::default());
    assert_eq!(research["kimiplus_id"], "deep-researcher");
    assert_eq!(research["scenario"], "SCENARIO_OK_COMPUTER");
    assert_eq!(research["options"]["model"], "k3-agent");
    assert_eq!(
        research["tools"],
        json!([{"type": "TOOL_TYPE_SEARCH", "search": {}}, {"type": "TOOL_TYPE_ASK_USER"}])
    );
    assert!(body("kimi-k3", &Turn::default()).get("agent_mode").is_none(), "K3's TYPE_NORMAL stays out");
}

#[test]
fn a_follow_up_names_the_chat_and_the_parent() {
    let turn = Turn { chat_id: Some("c1"), parent_id: Some("m9"), ..Turn::default() };
    let body = body("kimi", &turn);
    assert_eq!((&body["chat_id"], &body["message"]["parent_id"]), (&json!("c1"), &json!("m9")));
    let files = ["f1".to_string()];
    let with_file = chat_body(
        &ask("kimi"),
        &Target::of(&Catalogue::builtin(), &ask("kimi")),
        &Turn { files: &files, ..Turn::default() },
    );
    assert_eq!(
        with_file["message"]["blocks"][1],
        json!({"file": {"id": "f1", "status": "PROCESS_STATUS_SUCCESS"}})
    );
}

#[test]
fn the_system_prompt_goes_to_its_field_or_stays_in_the_text() {
    let messages = vec![Message::text(Role::System, "be brief"), Message::text(Role::User, "a")];
    let request = request("kimi", messages);
    let catalogue = Catalogue::builtin();
    let target = Target::of(&catalogue, &request);
    let field = chat_body(&request, &target, &Turn { system_field: true, ..Turn::default() });
    assert_eq!(field["options"]["systemPrompt"], "be brief");
    assert_eq!(field["message"]["blocks"][0]["text"]["content"], "a\n");
    let text = chat_body(&request, &target, &Turn::default());
    assert!(text["options"].get("systemPrompt").is_none());
    assert_eq!(
        text["message"]["blocks"][0]["text"]["content"],
        "system:be brief\nsystem:关注用户最新的消息\nuser:a\n"
    );
}

#[test]
fn native_tools_are_declared_by_name_and_their_section_joins_the_system_prompt() {
    let messages = vec![Message::text(Role::System, "be brief"), Message::text(Role::User, "a")];
    let mut request = request("kimi", messages);
    for name in ["Read", "Bash"] {
        request.tools.push(chat::Tool {
            name: name.into(),
            description: String::new(),
            parameters: json!({}),
            deferred: name == "Bash",
            freeform: false,
        });
    }
    request.tool_prompt = Some(chat::ToolPrompt {
        turn: "TURN".into(),
        system: "# Tools\nREAD".into(),
        only: None,
        in_chat: false,
    });
    let catalogue = Catalogue::builtin();
    let target = Target::of(&catalogue, &request);
    let native = Turn { system_field: true, native_tools: true, ..Turn::default() };
    let body = chat_body(&request, &target, &native);
    assert_eq!(
        body["tools"],
        json!([{"type": "TOOL_TYPE_CRON_JOB"}, {"type": DEVICE_TOOL, "name": "Read"}, {"type": DEVICE_TOOL, "name": "Bash"}]),
        "every declared tool by name, a deferred one too"
    );
    assert_eq!(body["options"]["systemPrompt"], "be brief\n\n# Tools\nREAD");
    assert_eq!(body["message"]["blocks"][0]["text"]["content"], "a\n", "no tool text in the turn");
    let plain = chat_body(&request, &target, &Turn { system_field: true, ..Turn::default() });
    assert_eq!(plain["tools"], json!([{"type": "TOOL_TYPE_CRON_JOB"}]), "not native: nothing declared");
    assert_eq!(plain["options"]["systemPrompt"], "be brief");
    let mut bare = request.clone();
    bare.messages.remove(0);
    let alone = chat_body(&bare, &Target::of(&catalogue, &bare), &native);
    assert_eq!(alone["options"]["systemPrompt"], "# Tools\nREAD", "the section alone");
    let follow = Turn { chat_id: Some("c1"), parent_id: Some("m1"), text: Some("call one"), ..native };
    let asked = chat_body(&request, &target, &follow);
    assert_eq!(asked["message"]["blocks"][0]["text"]["content"], "call one");
    assert_eq!((asked["chat_id"].as_str(), asked["message"]["parent_id"].as_str()), (Some("c1"), Some("m1")));
    // An agent session's continued chat already holds the section: the names go again, it does not.
    bare.tool_prompt.as_mut().unwrap().in_chat = true;
    let next = Turn { chat_id: Some("c1"), parent_id: Some("m1"), ..native };
    let continued = chat_body(&bare, &Target::of(&catalogue, &bare), &next);
    assert_eq!(continued["tools"], body["tools"], "{continued}");
    assert!(continued["options"].get("systemPrompt").is_none(), "{continued}");
}

/// What the test mock and Kimi check (`docs/kimi-protocol.md` §7.2): for every listed name,
/// the model is in the catalogue, the scenario is its entry's in both places, an agent carries
/// its Kimi+ id, and the effort is on the model's own ladder.
#[test]
fn every_listed_name_sends_a_request_kimi_takes() {
    for catalogue in [Catalogue::builtin(), variant()] {
        for (name, _) in MODELS {
            let body = body_on(&catalogue, name);
            let entry = catalogue.entries.iter().find(|e| e.id == body["options"]["model"]).expect(name);
            assert_eq!(
                (&body["scenario"], &body["message"]["scenario"]),
                (&json!(entry.scenario), &json!(entry.scenario)),
                "{name}"
            );
            if entry.scenario.starts_with("SCENARIO_OK_COMPUTER") {
                assert!(body["kimiplus_id"].is_string(), "{name}");
            }
            let effort = body["options"]["reasoning_effort"].as_str().expect(name);
            assert!(entry.reasoning_effort_options.iter().any(|o| o.effort == effort), "{name}: {effort}");
            assert_eq!(body["options"]["thinking"], true, "{name}");
        }
    }
}

fn body_on(catalogue: &Catalogue, model: &str) -> Value {
    let request = ask(model);
    chat_body(&request, &Target::of(catalogue, &request), &Turn::default())
}

fn variant() -> Catalogue {
    Catalogue::parse(&json!({"availableModels": [
        {"id": "k2d7-chat", "key": "k2d7", "scenario": "SCENARIO_CHAT",
         "reasoningEffortOptions": [{"effort": "REASONING_EFFORT_LOW"}]},
        {"id": "k3-agent-v2", "key": "k3", "scenario": "SCENARIO_OK_COMPUTER", "kimiPlusId": "ok-computer",
         "reasoningEffortOptions": [{"effort": "REASONING_EFFORT_LOW"}, {"effort": "REASONING_EFFORT_HIGH"}]}],
        "defaultScenario": {"model": "k2d7-chat"}}))
    .unwrap()
}
