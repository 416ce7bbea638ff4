//! The legacy REST + SSE API (`docs/kimi-protocol.md` §3): the refresh-token login, the user and
//! research quota, chats, the completion stream and uploads (pre-signed URLs, files, parsing).

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use super::http::{
    Chunked, Flow, Request, bearer, json_response, json_response_with, legacy_error, request_header,
    retry_after_header,
};
use super::script::{Fault, Script, Strike, TurnSeen, answer_pieces, micros_now, stamp_piece, strike};
use super::state::{State, Streaming, delete_chat, fault_applies};

/// `GET /api/auth/token/refresh`: an access token for a refresh token (any but empty or `bad…`);
/// the user id is made from the token.
pub(super) fn refresh(state: &Mutex<State>, request: Request) -> Flow {
    let token = bearer(&request);
    let mut st = state.lock().unwrap();
    st.stats.refreshes += 1;
    st.stats.refresh_tokens.push(token.clone());
    let refused = token.is_empty()
        || token.starts_with("bad")
        || (st.script.fault == Some(Fault::RefreshUnauthorized) && fault_applies(&mut st).is_some());
    if refused {
        drop(st);
        return legacy_error(request, 401, "auth.token.invalid");
    }
    st.next_id += 1;
    let access = format!("access-{}", st.next_id);
    let user: String = format!("user{:016}", token.bytes().map(u64::from).sum::<u64>());
    if token.contains("no-research") {
        st.no_research.insert(user.clone());
    }
    st.access.insert(access.clone(), user);
    drop(st);
    json_response(request, 200, json!({"access_token": access, "refresh_token": token}))
}

/// `GET /api/user`: who the access token belongs to.
pub(super) fn user(state: &Mutex<State>, request: Request) -> Flow {
    let token = bearer(&request);
    let mut st = state.lock().unwrap();
    st.stats.user_calls += 1;
    match st.access.get(&token).cloned() {
        Some(user) => {
            drop(st);
            json_response(request, 200, json!({"id": user, "name": "mock user"}))
        }
        None => {
            drop(st);
            legacy_error(request, 401, "auth.token.invalid")
        }
    }
}

/// `GET /api/chat/research/usage`: the research quota, used up by the script or for the user.
pub(super) fn research_usage(state: &Mutex<State>, request: Request) -> Flow {
    let st = state.lock().unwrap();
    let user = st.access.get(&bearer(&request)).cloned().unwrap_or_default();
    let used_up = st.script.research_used_up || st.no_research.contains(&user);
    drop(st);
    let used = if used_up { 30 } else { 3 };
    json_response(request, 200, json!({"remain": 30 - used, "total": 30, "used": used}))
}

/// `POST /api/chat`: a new chat.
pub(super) fn create_chat(state: &Mutex<State>, request: Request, body: Value) -> Flow {
    let mut st = state.lock().unwrap();
    if !st.access.contains_key(&bearer(&request)) {
        drop(st);
        return legacy_error(request, 401, "auth.token.invalid");
    }
    if let Some(Fault::CreateStatus { status }) = st.script.fault.clone()
        && fault_applies(&mut st).is_some()
    {
        drop(st);
        return legacy_error(request, status, "mock.create_failed");
    }
    st.next_id += 1;
    let id = format!("cm{:018}", st.next_id);
    st.stats.chats_created += 1;
    st.stats.live_chats.insert(id.clone());
    st.stats.last_create = Some(body);
    st.chats.insert(id.clone(), 0);
    drop(st);
    json_response(request, 200, json!({"id": id, "name": "未命名会话"}))
}

/// `DELETE /api/chat/{id}`.
pub(super) fn delete(state: &Mutex<State>, request: Request, id: &str) -> Flow {
    if !state.lock().unwrap().access.contains_key(&bearer(&request)) {
        return legacy_error(request, 401, "auth.token.invalid");
    }
    if delete_chat(state, id) {
        json_response(request, 200, json!({}))
    } else {
        legacy_error(request, 404, "chat.not_found")
    }
}

/// `POST /api/chat/{id}/completion/stream`: the answer as SSE events, with the script's pacing and faults.
pub(super) fn completion(state: &Mutex<State>, request: Request, chat_id: &str, body: Value) -> Flow {
    let mut st = state.lock().unwrap();
    let user = st.access.get(&bearer(&request)).cloned();
    st.stats.completions += 1;
    st.stats.last_completion = Some(body.clone());
    st.stats.last_prompt = body["messages"][0]["content"].as_str().map(str::to_string);
    st.stats.last_traffic_id = request_header(&request, "X-Traffic-Id");
    let Some(user) = user else {
        drop(st);
        return legacy_error(request, 401, "auth.token.invalid");
    };
    *st.stats.completions_by_user.entry(user.clone()).or_default() += 1;
    st.stats.starts_by_user.entry(user.clone()).or_default().push(micros_now());
    if st.stats.last_traffic_id.as_deref() != Some(user.as_str()) {
        drop(st);
        return legacy_error(request, 400, "mock.traffic_id_mismatch");
    }
    let Some(seen) = st.chats.get_mut(chat_id) else {
        drop(st);
        return legacy_error(request, 404, "chat.not_found");
    };
    *seen += 1;
    let round = *seen;
    let prompt = st.stats.last_prompt.clone().unwrap_or_default();
    let turn = TurnSeen { chat_id: chat_id.to_string(), continued: round > 1, prompt, ..TurnSeen::default() };
    st.stats.turns.push(turn);
    let script = st.script.clone();
    let turn = st.stats.completions as usize;
    let fault = fault_applies(&mut st);
    drop(st);
    match &fault {
        Some(Fault::AccessExpired) => return legacy_error(request, 401, "auth.token.invalid"),
        Some(Fault::CompletionStatus { status, error_type }) => {
            return legacy_error(request, *status, error_type);
        }
        Some(Fault::RateLimited { retry_after }) => {
            let body = json!({"error_type": "chat.user_stream_pushing", "message": "mock busy"});
            return json_response_with(request, 429, body, &retry_after_header(*retry_after));
        }
        _ => {}
    }
    let _streaming = Streaming::start(state, &user);
    let prompt = body["messages"][0]["content"].as_str().unwrap_or_default().to_string();
    let mut events: Vec<Value> = vec![
        json!({"event": "req", "id": format!("seg{round}"), "group_id": "grp", "content": prompt, "refs": []}),
        json!({"event": "resp", "id": format!("resp{round}"), "group_id": "grp"}),
    ];
    let mut content = Vec::new();
    let (searching, thinking) = asked(&script, &body);
    for (title, url) in script.search.iter().filter(|_| searching) {
        content.push(json!({"event": "search_plus", "msg": {"type": "get_res", "title": title, "url": url}}));
    }
    for piece in script.thinking.iter().filter(|_| thinking) {
        content.push(json!({"event": "k1", "text": piece}));
    }
    let text = answer_pieces(&script, &prompt, turn);
    for piece in &text {
        content.push(json!({"event": "cmpl", "text": piece}));
    }
    events.extend(content);
    if round <= script.length_cuts {
        events.push(json!({"event": "length"}));
    }
    events.push(json!({"event": "all_done"}));

    let Ok(mut out) = Chunked::open(request) else { return Flow::Close };
    let mut answered = 0;
    for mut event in events {
        let is_answer = matches!(event["event"].as_str(), Some("cmpl" | "k1" | "search_plus"));
        if is_answer {
            match strike(&fault, answered) {
                Strike::Error(error_type, message) => {
                    let error =
                        json!({"event": "error", "error": {"error_type": error_type, "message": message}});
                    let _ = out.chunk(format!("data: {error}\n\n").as_bytes());
                    return out.end();
                }
                Strike::Cut => return Flow::Close,
                Strike::Malformed => {
                    let _ = out.chunk(b"data: {this is not json\n\n");
                }
                Strike::Nothing => {}
            }
            answered += 1;
        }
        if script.delay_ms > 0 {
            thread::sleep(Duration::from_millis(script.delay_ms));
        }
        if script.stamp && event["event"] == "cmpl" {
            event["text"] = json!(stamp_piece(script.pad));
        }
        let frame = format!("data: {event}\n\n");
        let bytes = frame.as_bytes();
        let written = if script.split_utf8 {
            // Split inside the first multi-byte character, if any.
            let cut =
                frame.char_indices().find(|(_, c)| c.len_utf8() > 1).map_or(bytes.len() / 2, |(i, _)| i + 1);
            out.chunk(&bytes[..cut]).and_then(|()| {
                thread::sleep(Duration::from_millis(2));
                out.chunk(&bytes[cut..])
            })
        } else {
            out.chunk(bytes)
        };
        if written.is_err() {
            return Flow::Close;
        }
    }
    out.end()
}

/// The K1 long-thinking assistant's Kimi+ id (`docs/kimi-protocol.md` §3.3).
const K1_AGENT: &str = "crm40ee9e5jvhsn7ptcg";

/// Whether a completion gets the script's search results and thinking: always, unless the
/// script answers [as asked](Script::as_asked): search for `use_search`, thinking for
/// the K1 agent (`docs/kimi-protocol.md` §3.3, §3.4).
fn asked(script: &Script, body: &Value) -> (bool, bool) {
    if !script.as_asked {
        return (true, true);
    }
    (body["use_search"] == true, body["kimiplus_id"] == K1_AGENT)
}

/// `POST /api/pre-sign-url`: where to store an attachment (the mock's own `/_oss/` host).
pub(super) fn pre_sign_url(state: &Mutex<State>, request: Request, body: Value) -> Flow {
    if !state.lock().unwrap().access.contains_key(&bearer(&request)) {
        return legacy_error(request, 401, "auth.token.invalid");
    }
    let host = request_header(&request, "Host").unwrap_or_default();
    let mut st = state.lock().unwrap();
    st.next_id += 1;
    let object = format!("obj-{}-{}", st.next_id, body["name"].as_str().unwrap_or("x"));
    let file_id = if body["action"] == "image" { format!("fid-{}", st.next_id) } else { String::new() };
    drop(st);
    json_response(
        request,
        200,
        json!({"url": format!("http://{host}/_oss/{object}"), "object_name": object,
        "file_id": file_id}),
    )
}

/// `POST /api/file`: a stored object becomes a file (an image is parsed at once).
pub(super) fn create_file(state: &Mutex<State>, request: Request, body: Value) -> Flow {
    if !state.lock().unwrap().access.contains_key(&bearer(&request)) {
        return legacy_error(request, 401, "auth.token.invalid");
    }
    let mut st = state.lock().unwrap();
    st.next_id += 1;
    let id = format!("file-{}", st.next_id);
    drop(st);
    let status = if body["type"] == "image" { "parsed" } else { "initialized" };
    json_response(
        request,
        200,
        json!({"id": id, "name": body["name"], "type": body["type"], "status": status}),
    )
}

/// `POST /api/file/parse_process`: parsing, then parsed (unless the parse says nothing).
pub(super) fn parse_process(state: &Mutex<State>, request: Request) -> Flow {
    let silent = state.lock().unwrap().script.fault == Some(Fault::ParseSaysNothing);
    let Ok(mut out) = Chunked::open(request) else { return Flow::Close };
    let _ = out.chunk(b"data: {\"event\":\"resp\",\"file_info\":{\"status\":\"parsing\"}}\n\n");
    if !silent {
        let _ = out.chunk(b"data: {\"event\":\"resp\",\"file_info\":{\"status\":\"parsed\"}}\n\n");
    }
    out.end()
}
