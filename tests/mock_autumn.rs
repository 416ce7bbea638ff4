//! The mock Kimi's autumn-2026 behaviour (`docs/kimi-protocol.md` §7), driven directly over
//! HTTP without the server: the model catalogue, strict chat requests, free accounts, the new
//! faults, credits, upload statuses and deep research that parks.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Fault, MockKimi, Script, connect_token, connect_token_with, web_refresh_token_with};

const CATALOGUE: &str = "/apiv2/kimi.gateway.config.v1.ConfigService/GetAvailableModels";
const CHAT: &str = "/apiv2/kimi.gateway.chat.v1.ChatService/Chat";
const STATS: &str = "/apiv2/kimi.gateway.membership.v2.MembershipService/GetSubscriptionStats";
const SUBSCRIPTION: &str = "/apiv2/kimi.gateway.order.v1.SubscriptionService/GetSubscription";
const PROGRESS: &str = "/apiv2-files/kimi.gateway.file.v1.FileService/GetFileParseProgress";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

/// A unary Connect call: status and JSON answer.
fn unary(mock: &MockKimi, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request =
        agent().post(format!("{}{path}", mock.url())).header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send(body.to_string().as_bytes()).expect("the call completes");
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A Connect envelope: flag 0, the length (u32, big-endian), the JSON.
fn envelope(body: &Value) -> Vec<u8> {
    let json = body.to_string();
    let mut out = vec![0];
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

/// The next envelope of a Connect stream: its flags and JSON.
fn next_frame(reader: &mut impl Read) -> Option<(u8, Value)> {
    let mut head = [0u8; 5];
    reader.read_exact(&mut head).ok()?;
    let mut payload = vec![0; u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize];
    reader.read_exact(&mut payload).ok()?;
    Some((head[0], serde_json::from_slice(&payload).unwrap_or(Value::Null)))
}

/// A Connect chat answer: the data frames and the end-of-stream frame.
struct Answer {
    status: u16,
    frames: Vec<Value>,
    end: Value,
}

impl Answer {
    fn text(&self) -> String {
        self.frames.iter().filter_map(|f| f["block"]["text"]["content"].as_str()).collect()
    }

    fn masks(&self) -> Vec<&str> {
        self.frames.iter().filter_map(|f| f["mask"].as_str()).collect()
    }

    fn chat_id(&self) -> Option<String> {
        self.frames.iter().find_map(|f| f["chat"]["id"].as_str().map(str::to_string))
    }

    /// The end-of-stream error: code, debug reason, message.
    fn error(&self) -> (String, String, String) {
        let error = &self.end["error"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (text(&error["code"]), text(&error["details"][0]["debug"]["reason"]), text(&error["message"]))
    }

    fn done_at(&self) -> Option<usize> {
        self.frames.iter().position(|f| f.get("done").is_some())
    }
}

/// Opens a Connect chat as the user `sub` with `token`: the response, still streaming.
fn open_chat(mock: &MockKimi, token: &str, sub: &str, body: &Value) -> ureq::http::Response<ureq::Body> {
    agent()
        .post(format!("{}{CHAT}", mock.url()))
        .header("Content-Type", "application/connect+json")
        .header("Authorization", format!("Bearer {token}"))
        .header("X-Traffic-Id", sub)
        .send(&envelope(body)[..])
        .expect("the chat call completes")
}

fn chat_as(mock: &MockKimi, token: &str, sub: &str, body: &Value) -> Answer {
    let response = open_chat(mock, token, sub, body);
    let status = response.status().as_u16();
    let mut reader = response.into_body().into_reader();
    let (mut frames, mut end) = (Vec::new(), Value::Null);
    while let Some((flags, frame)) = next_frame(&mut reader) {
        if flags & 2 == 2 {
            end = frame;
            break;
        }
        frames.push(frame);
    }
    Answer { status, frames, end }
}

/// A chat of the paid account `user-1`.
fn chat(mock: &MockKimi, body: &Value) -> Answer {
    chat_as(mock, &connect_token("user-1"), "user-1", body)
}

/// An Instant request as the browser sends it (`docs/kimi-protocol.md` §7.2).
fn instant(model: &str, effort: &str, prompt: &str) -> Value {
    json!({"scenario": "SCENARIO_CHAT", "tools": [{"type": "TOOL_TYPE_SEARCH", "search": {}},
        {"type": "TOOL_TYPE_CRON_JOB"}], "message": {"role": "user", "blocks": [{"message_id": "",
        "text": {"content": prompt}}], "scenario": "SCENARIO_CHAT", "is_goal": false},
        "options": {"thinking": true, "enable_plugin": true, "reasoning_effort": effort, "model": model},
        "project_id": ""})
}

/// An agent request (K3, K2.8, Swarm) as the browser sends it (`docs/kimi-protocol.md` §7.2).
fn agent_chat(model: &str, scenario: &str, kimiplus: &str) -> Value {
    json!({"scenario": scenario, "kimiplus_id": kimiplus, "tools": [{"type": "TOOL_TYPE_SEARCH", "search": {}},
        {"type": "TOOL_TYPE_ASK_USER"}], "message": {"role": "user", "blocks": [{"message_id": "",
        "text": {"content": "plan a trip"}}], "scenario": scenario, "is_goal": false},
        "options": {"thinking": true, "enable_plugin": true, "reasoning_effort": "REASONING_EFFORT_HIGH",
        "context_length": "CONTEXT_LENGTH_L", "model": model}, "project_id": ""})
}

fn k3() -> Value {
    agent_chat("k3-agent", "SCENARIO_OK_COMPUTER", "ok-computer")
}

fn research() -> Value {
    agent_chat("k3-agent", "SCENARIO_OK_COMPUTER", "deep-researcher")
}

fn ids(catalogue: &Value) -> Vec<&str> {
    catalogue["availableModels"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect()
}

#[test]
fn the_catalogue_is_standard_variant_per_account_or_down() {
    let mock = MockKimi::start();
    let (status, standard) = unary(&mock, CATALOGUE, Some(&connect_token("user-1")), &json!({}));
    assert_eq!(status, 200);
    assert_eq!(ids(&standard), ["k2d6-chat", "k28-agent-preview", "k3-agent", "k3-agent-swarm"]);
    assert_eq!(standard["defaultScenario"], json!({"scenario": "SCENARIO_CHAT", "model": "k2d6-chat"}));
    assert_eq!(standard["availableModels"][3]["agentMode"], "TYPE_ULTRA");
    assert_eq!(standard["availableModels"][3]["minMembershipLevel"], "LEVEL_BASIC");

    let variant_token = connect_token_with("user-2", json!({"catalogue": "variant"}));
    let (_, variant) = unary(&mock, CATALOGUE, Some(&variant_token), &json!({}));
    assert_eq!(ids(&variant), ["k2d7-chat", "k28-agent", "k3-agent-v2", "k3-agent-swarm-v2"]);
    let keys: Vec<&str> =
        variant["availableModels"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["k2d7", "k28", "k3", "k3-agent-ultra"]);
    assert_eq!(
        variant["availableModels"][0]["reasoningEffortOptions"],
        json!([{"effort": "REASONING_EFFORT_LOW", "displayName": "Thinking"}])
    );

    mock.script(Script { catalogue: "fail".into(), ..Script::default() });
    let (status, down) = unary(&mock, CATALOGUE, Some(&connect_token("user-1")), &json!({}));
    assert_eq!((status, down), (500, json!({"code": "internal", "message": "mock catalogue down"})));
    let (status, refused) = unary(&mock, CATALOGUE, None, &json!({}));
    assert_eq!((status, refused["code"].as_str()), (401, Some("unauthenticated")));
    assert_eq!(mock.stats().catalogue_calls, 4);
}

/// Each request is refused with `invalid_argument` naming `problem`, before any chat frame.
fn assert_invalid(mock: &MockKimi, token: &str, body: &Value, problem: &str) {
    let answer = chat_as(mock, token, "user-1", body);
    assert_eq!(answer.status, 200);
    assert!(answer.frames.is_empty(), "frames before the refusal: {:?}", answer.frames);
    let (code, _, message) = answer.error();
    assert_eq!(code, "invalid_argument", "{message}");
    assert!(message.contains(problem), "{message:?} does not name {problem:?}");
}

#[test]
fn chat_requests_that_break_the_catalogue_are_refused_before_any_frame() {
    let mock = MockKimi::start();
    let token = connect_token("user-1");
    assert_invalid(
        &mock,
        &token,
        &agent_chat("k3", "SCENARIO_OK_COMPUTER", "ok-computer"),
        "unknown model k3",
    );
    let mut no_model = instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi");
    no_model["options"].as_object_mut().unwrap().remove("model");
    assert_invalid(&mock, &token, &no_model, "options.model");
    let mut no_kimiplus = k3();
    no_kimiplus.as_object_mut().unwrap().remove("kimiplus_id");
    assert_invalid(&mock, &token, &no_kimiplus, "kimiplus_id");
    assert_invalid(
        &mock,
        &token,
        &instant("k2d6-chat", "REASONING_EFFORT_HIGH", "hi"),
        "REASONING_EFFORT_HIGH is not offered by k2d6-chat",
    );
    let mut no_off_rung = k3();
    no_off_rung["options"]["reasoning_effort"] = json!("REASONING_EFFORT_NONE");
    assert_invalid(&mock, &token, &no_off_rung, "REASONING_EFFORT_NONE is not offered by k3-agent");
    assert_invalid(
        &mock,
        &token,
        &agent_chat("k3-agent", "SCENARIO_CHAT", "ok-computer"),
        "scenario SCENARIO_CHAT",
    );
    let mut message_scenario = instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi");
    message_scenario["message"]["scenario"] = json!("SCENARIO_K2D5");
    assert_invalid(&mock, &token, &message_scenario, "message.scenario SCENARIO_K2D5");
    assert_invalid(
        &mock,
        &token,
        &agent_chat("k3-agent-swarm", "SCENARIO_OK_COMPUTER", "ok-computer"),
        "scenario",
    );
    let stats = mock.stats();
    assert_eq!((stats.chats_created, stats.completions), (0, 8));
    assert_eq!(stats.last_completion.unwrap()["options"]["model"], "k3-agent-swarm");
}

#[test]
fn requests_the_catalogue_offers_are_answered_camel_case_too() {
    let mock = MockKimi::start();
    assert_eq!(
        chat(&mock, &instant("k2d6-chat", "REASONING_EFFORT_NONE", "hi")).text(),
        "Hello from the mock Kimi."
    );
    let mut camel = k3();
    camel["kimiplusId"] = camel.as_object_mut().unwrap().remove("kimiplus_id").unwrap();
    let answer = chat(&mock, &camel);
    assert_eq!((answer.text().as_str(), answer.end.clone()), ("Hello from the mock Kimi.", json!({})));
    let swarm = agent_chat("k3-agent-swarm", "SCENARIO_OK_COMPUTER_SWARM", "ok-computer");
    assert_eq!(chat(&mock, &swarm).text(), "Hello from the mock Kimi.");
}

#[test]
fn a_variant_account_is_checked_against_its_own_catalogue() {
    let mock = MockKimi::start();
    let token = connect_token_with("user-1", json!({"catalogue": "variant"}));
    assert_invalid(
        &mock,
        &token,
        &instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi"),
        "unknown model k2d6-chat",
    );
    assert_invalid(
        &mock,
        &token,
        &instant("k2d7-chat", "REASONING_EFFORT_NONE", "hi"),
        "not offered by k2d7-chat",
    );
    assert_invalid(&mock, &token, &k3(), "unknown model k3-agent");
    let answer = chat_as(&mock, &token, "user-1", &instant("k2d7-chat", "REASONING_EFFORT_LOW", "hi"));
    assert_eq!(answer.text(), "Hello from the mock Kimi.");
    let k3_v2 = agent_chat("k3-agent-v2", "SCENARIO_OK_COMPUTER", "ok-computer");
    assert_eq!(chat_as(&mock, &token, "user-1", &k3_v2).text(), "Hello from the mock Kimi.");
    // While the catalogue is down, chats are checked against the standard one.
    mock.script(Script { catalogue: "fail".into(), ..Script::default() });
    assert_eq!(chat(&mock, &k3()).text(), "Hello from the mock Kimi.");
}

/// The free-plan refusal: the chat, the messages, `done`, then the error; no answer text.
fn assert_overloaded(answer: &Answer) {
    assert_eq!(answer.status, 200);
    assert!(answer.chat_id().is_some());
    assert_eq!(answer.masks(), ["message", "message"]);
    assert_eq!(answer.done_at(), Some(answer.frames.len() - 1));
    let (code, reason, message) = answer.error();
    assert_eq!(
        (code.as_str(), reason.as_str()),
        ("resource_exhausted", "REASON_SERVER_OVERLOADED_FOR_FREE_USER")
    );
    assert_eq!(
        message,
        "Too many people are chatting with Kimi right now. Subscribe to enter a priority queue!"
    );
}

#[test]
fn a_free_account_gets_agents_refused_after_done_and_the_chat_is_deletable() {
    let mock = MockKimi::start();
    let token = connect_token_with("free-1", json!({"plan": "free"}));
    let answer = chat_as(&mock, &token, "free-1", &k3());
    assert_overloaded(&answer);
    let swarm = agent_chat("k3-agent-swarm", "SCENARIO_OK_COMPUTER_SWARM", "ok-computer");
    assert_overloaded(&chat_as(&mock, &token, "free-1", &swarm));
    assert_overloaded(&chat_as(&mock, &token, "free-1", &research()));
    let instant = chat_as(&mock, &token, "free-1", &instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi"));
    assert_eq!((instant.text().as_str(), instant.end.clone()), ("Hello from the mock Kimi.", json!({})));

    let id = answer.chat_id().unwrap();
    assert!(mock.stats().live_chats.contains(&id));
    let delete = "/apiv2/kimi.chat.v1.ChatService/DeleteChat";
    assert_eq!(unary(&mock, delete, Some(&token), &json!({"chat_id": id})).0, 200);
    assert!(!mock.stats().live_chats.contains(&id));
}

#[test]
fn the_free_plan_survives_the_web_refresh() {
    let mock = MockKimi::start();
    let refresh = web_refresh_token_with("free-web", json!({"plan": "free"}));
    let (status, tokens) = unary(
        &mock,
        "/api/account.gateway.v1.AuthService/RefreshToken",
        None,
        &json!({"refresh_token": refresh}),
    );
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["accessToken"].as_str().unwrap();
    let response = agent()
        .post(format!("{}{CHAT}", mock.url()))
        .header("Content-Type", "application/connect+json")
        .header("Authorization", format!("Bearer {access}"))
        .header("X-Traffic-Id", "free-web")
        .header("X-Msh-Session-Id", "ss-free-web")
        .header("X-Msh-Device-Id", format!("7{:018}", "free-web".len() * 7919))
        .send(&envelope(&k3())[..])
        .unwrap();
    let mut reader = response.into_body().into_reader();
    let mut last = Value::Null;
    while let Some((_, frame)) = next_frame(&mut reader) {
        last = frame;
    }
    assert_eq!(
        last["error"]["details"][0]["debug"]["reason"], "REASON_SERVER_OVERLOADED_FOR_FREE_USER",
        "{last}"
    );
}

#[test]
fn chat_in_progress_refuses_before_any_frame_the_scripted_times() {
    let mock = MockKimi::start();
    mock.script(Script { fault: Some(Fault::ChatInProgress), fault_times: Some(1), ..Script::default() });
    let body = instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi");
    let refused = chat(&mock, &body);
    assert!(refused.frames.is_empty());
    let (code, reason, message) = refused.error();
    assert_eq!((code.as_str(), reason.as_str()), ("resource_exhausted", "REASON_CHAT_IN_PROGRESS"));
    assert_eq!(message, "Chat session in progress. Please try again later.");
    assert_eq!(mock.stats().chats_created, 0);
    assert_eq!(chat(&mock, &body).text(), "Hello from the mock Kimi.");
}

#[test]
fn one_chat_per_user_refuses_a_second_chat_while_the_first_streams() {
    let mock = MockKimi::start();
    mock.script(Script { one_chat_per_user: true, delay_ms: 100, ..Script::default() });
    let body = instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi");
    let first = open_chat(&mock, &connect_token("user-1"), "user-1", &body);
    let second = chat(&mock, &body);
    assert_eq!(second.error().1, "REASON_CHAT_IN_PROGRESS");
    let other = chat_as(&mock, &connect_token("user-2"), "user-2", &body);
    assert_eq!(other.text(), "Hello from the mock Kimi.");
    let mut reader = first.into_body().into_reader();
    while next_frame(&mut reader).is_some() {}
    assert_eq!(chat(&mock, &body).text(), "Hello from the mock Kimi.");
}

/// The chat, the messages, one exception block with `reason`, `done`, `{}`; no text.
fn assert_exception(answer: &Answer, reason: &str) {
    assert_eq!(answer.masks(), ["message", "message", "block.exception"]);
    let error = &answer.frames[4]["block"]["exception"]["error"];
    assert_eq!(error["reason"], reason);
    assert_eq!(error["localizedMessage"]["locale"], "en-US");
    assert_eq!(answer.done_at(), Some(5));
    assert_eq!((answer.text(), answer.end.clone()), (String::new(), json!({})));
}

#[test]
fn too_long_and_other_exceptions_end_without_text() {
    let mock = MockKimi::start();
    let body = instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi");
    mock.script(Script { fault: Some(Fault::TooLong), fault_times: Some(1), ..Script::default() });
    let answer = chat(&mock, &body);
    assert_exception(&answer, "REASON_TOKEN_LENGTH_TOO_LONG");
    let message = &answer.frames[4]["block"]["exception"]["error"]["localizedMessage"]["message"];
    assert_eq!(message, "Your conversation with Kimi is getting too long. Try starting a new session.");
    let exception = Fault::Exception { reason: "REASON_NEVER_SEEN".into(), message: "odd".into() };
    mock.script(Script { fault: Some(exception), ..Script::default() });
    assert_exception(&chat(&mock, &body), "REASON_NEVER_SEEN");
}

#[test]
fn a_prompt_over_the_limit_locks_its_chat_as_too_long() {
    let mock = MockKimi::start();
    mock.script(Script { max_prompt_chars: Some(10), ..Script::default() });
    let long = chat(&mock, &instant("k2d6-chat", "REASONING_EFFORT_LOW", "far more than ten characters"));
    assert_exception(&long, "REASON_TOKEN_LENGTH_TOO_LONG");
    let mut again = instant("k2d6-chat", "REASONING_EFFORT_LOW", "short");
    again["chat_id"] = json!(long.chat_id().unwrap());
    assert_exception(&chat(&mock, &again), "REASON_TOKEN_LENGTH_TOO_LONG");
    assert_eq!(
        chat(&mock, &instant("k2d6-chat", "REASONING_EFFORT_LOW", "short")).text(),
        "Hello from the mock Kimi."
    );
}

#[test]
fn unknown_frames_come_before_a_normal_answer() {
    let mock = MockKimi::start();
    mock.script(Script { fault: Some(Fault::UnknownFrames), ..Script::default() });
    let answer = chat(&mock, &instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi"));
    let masks = answer.masks();
    assert_eq!(masks[..4], ["message", "message", "block.hologram", "weather"]);
    assert_eq!((answer.text().as_str(), answer.end.clone()), ("Hello from the mock Kimi.", json!({})));
}

#[test]
fn credits_come_from_the_stats_call_or_the_subscription_fallback() {
    let mock = MockKimi::start();
    let token = connect_token("user-1");
    let (status, stats) = unary(&mock, STATS, Some(&token), &json!({}));
    assert_eq!(status, 200);
    let balance = &stats["subscriptionBalance"];
    assert_eq!(
        (balance["feature"].as_str(), balance["amountUsedRatio"].as_f64()),
        (Some("FEATURE_OMNI"), Some(0.25))
    );
    let spent = connect_token_with("user-2", json!({"credits_used": 0.9}));
    assert_eq!(
        unary(&mock, STATS, Some(&spent), &json!({})).1["subscriptionBalance"]["amountUsedRatio"],
        0.9
    );
    assert_eq!(unary(&mock, STATS, None, &json!({})).0, 401);

    mock.script(Script { stats_missing: true, credits_used: 0.5, ..Script::default() });
    assert_eq!(unary(&mock, STATS, Some(&token), &json!({})), (404, json!({"code": "not_found"})));
    let (status, subscription) = unary(&mock, SUBSCRIPTION, Some(&token), &json!({}));
    assert_eq!(status, 200);
    assert_eq!(subscription["subscription"]["userId"], "user-1");
    assert_eq!(subscription["balances"][0]["unit"], "UNIT_CREDIT");
    assert_eq!(subscription["balances"][0]["amountUsedRatio"], 0.5);
    assert_eq!(mock.stats().stats_calls, 4);
}

#[test]
fn the_last_chat_headers_are_recorded() {
    let mock = MockKimi::start();
    let response = agent()
        .post(format!("{}{CHAT}", mock.url()))
        .header("Content-Type", "application/connect+json")
        .header("Authorization", format!("Bearer {}", connect_token("user-1")))
        .header("X-Traffic-Id", "user-1")
        .header("X-Msh-Version", "2.3.0")
        .header("User-Agent", "Mozilla/5.0 Chrome/146.0.0.0")
        .header("Sec-Ch-Ua-Mobile", "?0")
        .send(&envelope(&instant("k2d6-chat", "REASONING_EFFORT_LOW", "hi"))[..])
        .unwrap();
    let _ = response.into_body().read_to_vec();
    let headers = mock.stats().last_headers;
    let expected = [
        ("sec-ch-ua-mobile", "?0"),
        ("user-agent", "Mozilla/5.0 Chrome/146.0.0.0"),
        ("x-msh-version", "2.3.0"),
    ];
    assert_eq!(headers, expected.map(|(n, v)| (n.to_string(), v.to_string())).into());
}

/// The statuses of two polls of a file.
fn two_polls(mock: &MockKimi, file: &str) -> [String; 2] {
    [0, 1].map(|_| {
        let (_, progress) = unary(mock, PROGRESS, None, &json!({"file_ids": [file]}));
        assert_eq!(progress["progresses"][0]["fileId"], file);
        progress["progresses"][0]["status"].as_str().unwrap().to_string()
    })
}

#[test]
fn uploads_process_then_succeed_or_fail_as_scripted() {
    let mock = MockKimi::start();
    assert_eq!(two_polls(&mock, "cf-1"), ["PROCESS_STATUS_PROCESSING", "PROCESS_STATUS_SUCCESS"]);
    for failed in ["PROCESS_STATUS_FAIL", "PROCESS_STATUS_FAILED"] {
        mock.script(Script { upload_status: Some(failed.into()), ..Script::default() });
        assert_eq!(two_polls(&mock, &format!("cf-{failed}")), ["PROCESS_STATUS_PROCESSING", failed]);
    }
}

/// The search queries of the `block.tool` rounds that ran.
fn searches(answer: &Answer) -> Vec<String> {
    let running = answer.frames.iter().filter(|f| f["block"]["tool"]["status"] == "STATUS_RUNNING");
    running.filter_map(|f| f["block"]["tool"]["args"].as_str().map(str::to_string)).collect()
}

#[test]
fn deep_research_searches_twice_then_answers() {
    let mock = MockKimi::start();
    let answer = chat(&mock, &research());
    let expected = [r#"{"queries": ["mock research 1"]}"#, r#"{"queries": ["mock research 2"]}"#];
    assert_eq!(searches(&answer), expected);
    assert_eq!((answer.text().as_str(), answer.end.clone()), ("Hello from the mock Kimi.", json!({})));
    let mut on_k28 = research();
    on_k28["options"]["model"] = json!("k28-agent-preview");
    assert_invalid(&mock, &connect_token("user-1"), &on_k28, "deep research runs on k3-agent");
}

#[test]
fn deep_research_asking_the_user_parks_until_the_client_hangs_up() {
    let mock = MockKimi::start();
    mock.script(Script { research_question: Some("Which continent?".into()), ..Script::default() });
    let started = Instant::now();
    let response = open_chat(&mock, &connect_token("user-1"), "user-1", &research());
    let mut reader = response.into_body().into_reader();
    let mut frames = Vec::new();
    while let Some((flags, frame)) = next_frame(&mut reader) {
        assert_eq!(flags, 0, "the stream ended: {frame}");
        let parked = frame["chat"]["status"] == "STATUS_ASK_USER_QUESTION";
        frames.push(frame);
        if parked {
            break;
        }
    }
    let answer = Answer { status: 200, frames, end: Value::Null };
    assert_eq!(searches(&answer)[0], r#"{"queries": ["mock research 1"]}"#);
    let ask = answer.frames.iter().find(|f| f["block"]["tool"]["toolCallId"] == "ask_user:0").unwrap();
    assert_eq!(
        (&ask["block"]["tool"]["name"], &ask["block"]["tool"]["status"]),
        (&json!("ask_user"), &json!("STATUS_PENDING"))
    );
    let id = &ask["block"]["id"];
    let args = answer.frames.iter().filter(|f| f["mask"] == "block.tool.args" && &f["block"]["id"] == id);
    let joined: String = args.filter_map(|f| f["block"]["tool"]["args"].as_str()).collect();
    let questions: Value = serde_json::from_str(&joined).unwrap();
    assert_eq!(questions["questions"][0]["question"], "Which continent?");
    assert_eq!(questions["questions"][0]["options"][0], json!({"option": "Europe", "recommended": true}));
    assert!(answer.done_at().is_none() && answer.text().is_empty());
    // Parked: only heartbeats come.
    assert_eq!(next_frame(&mut reader).map(|(_, f)| f), Some(json!({"heartbeat": {}})));
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.stats().research_hangups == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = mock.stats();
    assert_eq!((stats.research_parked, stats.research_hangups), (1, 1));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the mock waited out the park: {:?}",
        started.elapsed()
    );
}

#[test]
fn new_script_fields_and_faults_come_over_http() {
    let mock = MockKimi::start();
    let script = json!({"catalogue": "variant", "one_chat_per_user": true, "max_prompt_chars": 5,
        "credits_used": 0.75, "stats_missing": false, "upload_status": "PROCESS_STATUS_FAIL",
        "research_question": "Why?", "fault": {"kind": "exception", "reason": "R", "message": "m"}});
    assert_eq!(unary(&mock, "/_mock/script", None, &script).0, 200);
    for fault in
        [json!({"kind": "chat_in_progress"}), json!({"kind": "too_long"}), json!({"kind": "unknown_frames"})]
    {
        assert_eq!(unary(&mock, "/_mock/script", None, &json!({"fault": fault})).0, 200, "{fault}");
    }
    let stats =
        agent().get(format!("{}/_mock/stats", mock.url())).call().unwrap().into_body().read_to_string();
    let stats: Value = serde_json::from_str(&stats.unwrap()).unwrap();
    for field in ["catalogue_calls", "stats_calls", "last_headers", "research_parked", "research_hangups"] {
        assert!(stats.get(field).is_some(), "{field} missing from {stats}");
    }
}
