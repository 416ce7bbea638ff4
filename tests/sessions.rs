//! Agent sessions on one Kimi chat (README "Agent sessions", issue #22), driven over HTTP
//! against the mock: a tool loop in each API reuses one chat and sends only the new tail; an
//! edit, a compaction, a too-long refusal and a chat Kimi lost each rotate to a fresh chat (the
//! old one deleted); sessions of one caller and of two callers never cross; idle sessions and
//! every session at shutdown are deleted; `--sessions 0` is one chat per request; a client that
//! hangs up mid-answer has Kimi's answer stopped (`CancelChat`); a session whose account left the
//! pool or cools down moves to another account with its whole history.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::mock::{Fault, TurnSeen};
use support::process::ServerProcess;
use support::{Harness, Kind, Script, post_bytes};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
    Gemini,
    Responses,
}

const APIS: [Api; 4] = [Api::OpenAi, Api::Anthropic, Api::Gemini, Api::Responses];

const SYSTEM: &str = "You are a careful agent.";
const TASK: &str = "TASK-START: read the files one by one";

/// What the mock's model writes every turn: a sentence, then a call of `Read`.
fn answer(n: usize) -> String {
    format!(
        "Reading file {n}.\n<function_calls>\n<invoke name=\"Read\">\n<parameter name=\"path\">f{n}.txt</parameter>\n</invoke>\n</function_calls>"
    )
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]})
}

/// A conversation in one API's own shape, grown turn by turn as its client would.
struct Client {
    api: Api,
    token: String,
    history: Vec<Value>,
    system: String,
    /// Sends its bodies pretty-printed (each byte of the history moves).
    pretty: bool,
}

impl Client {
    fn new(api: Api, token: &str, first: &str) -> Client {
        let mut client =
            Client { api, token: token.into(), history: Vec::new(), system: SYSTEM.into(), pretty: false };
        client.user(first);
        client
    }

    fn user(&mut self, text: &str) {
        self.history.push(match self.api {
            Api::OpenAi | Api::Anthropic | Api::Responses => json!({"role": "user", "content": text}),
            Api::Gemini => json!({"role": "user", "parts": [{"text": text}]}),
        });
    }

    fn path(&self) -> &'static str {
        match self.api {
            Api::OpenAi => "/v1/chat/completions",
            Api::Anthropic => "/v1/messages",
            Api::Gemini => "/v1beta/models/kimi:generateContent",
            Api::Responses => "/v1/responses",
        }
    }

    fn body(&self) -> Value {
        let read = ("Read", "reads a file");
        match self.api {
            Api::OpenAi => {
                let mut messages = vec![json!({"role": "system", "content": self.system})];
                messages.extend(self.history.iter().cloned());
                json!({"model": "kimi", "messages": messages, "tools": [{"type": "function",
                    "function": {"name": read.0, "description": read.1, "parameters": schema()}}]})
            }
            Api::Anthropic => json!({"model": "kimi", "max_tokens": 1024, "system": self.system,
                "messages": self.history, "tools": [{"name": read.0, "description": read.1, "input_schema": schema()}]}),
            Api::Gemini => {
                json!({"contents": self.history, "systemInstruction": {"parts": [{"text": self.system}]},
                "tools": [{"functionDeclarations": [{"name": read.0, "description": read.1, "parameters": schema()}]}]})
            }
            Api::Responses => json!({"model": "kimi", "instructions": self.system, "input": self.history,
                "tools": [{"type": "function", "name": read.0, "description": read.1, "parameters": schema()}]}),
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        match self.api {
            Api::OpenAi | Api::Responses => vec![("Authorization", format!("Bearer {}", self.token))],
            Api::Anthropic => {
                vec![("x-api-key", self.token.clone()), ("anthropic-version", "2023-06-01".into())]
            }
            Api::Gemini => vec![("x-goog-api-key", self.token.clone())],
        }
    }

    /// Sends the conversation; the answer joins the history as the client echoes it. Returns
    /// the answer's call ids (empty when it made no call).
    fn send(&mut self, base: &str) -> Vec<String> {
        let headers = self.headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = self.body();
        let body = if self.pretty {
            serde_json::to_vec_pretty(&body).unwrap()
        } else {
            body.to_string().into_bytes()
        };
        let reply = post_bytes(&format!("{base}{}", self.path()), &headers, &body);
        assert_eq!(reply.status, 200, "{:?}: {}", self.api, reply.body);
        let body = reply.json();
        match self.api {
            Api::OpenAi => {
                let message = body["choices"][0]["message"].clone();
                let ids = message["tool_calls"].as_array().into_iter().flatten();
                let ids = ids.map(|c| c["id"].as_str().unwrap().to_string()).collect();
                self.history.push(message);
                ids
            }
            Api::Anthropic => {
                let content = body["content"].clone();
                let ids = content.as_array().into_iter().flatten().filter(|b| b["type"] == "tool_use");
                let ids = ids.map(|b| b["id"].as_str().unwrap().to_string()).collect();
                self.history.push(json!({"role": "assistant", "content": content}));
                ids
            }
            Api::Gemini => {
                let content = body["candidates"][0]["content"].clone();
                let calls = content["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p.get("functionCall").is_some());
                let ids = calls.map(|p| p["functionCall"]["name"].as_str().unwrap().to_string()).collect();
                self.history.push(content);
                ids
            }
            Api::Responses => {
                let output = body["output"].as_array().cloned().unwrap_or_default();
                let ids = output.iter().filter(|i| i["type"] == "function_call");
                let ids = ids.map(|i| i["call_id"].as_str().unwrap().to_string()).collect();
                self.history.extend(output);
                ids
            }
        }
    }

    /// The tool's result for each call, as the client feeds it back.
    fn results(&mut self, ids: &[String], content: &str) {
        match self.api {
            Api::OpenAi => {
                for id in ids {
                    self.history.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
                }
            }
            Api::Anthropic => {
                let blocks: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"type": "tool_result", "tool_use_id": id, "content": content}))
                    .collect();
                self.history.push(json!({"role": "user", "content": blocks}));
            }
            Api::Gemini => {
                let parts: Vec<Value> = ids
                    .iter()
                    .map(|name| json!({"functionResponse": {"name": name, "response": {"output": content}}}))
                    .collect();
                self.history.push(json!({"role": "user", "parts": parts}));
            }
            Api::Responses => {
                for id in ids {
                    self.history
                        .push(json!({"type": "function_call_output", "call_id": id, "output": content}));
                }
            }
        }
    }

    /// One turn of the loop: send, then feed back the result `content`.
    fn turn(&mut self, base: &str, content: &str) {
        let ids = self.send(base);
        assert!(!ids.is_empty(), "{:?}: the answer calls Read", self.api);
        self.results(&ids, content);
    }
}

/// Sends a streamed OpenAI request over a raw socket, reads the answer's first bytes, and leaves.
fn hang_up_after_first_bytes(addr: std::net::SocketAddr, token: &str, body: &Value) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(body.as_bytes()).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let read = socket.read(&mut buf).unwrap();
    assert!(read > 0 && buf.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..read]));
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

fn sessions_on(adjust: impl FnOnce(&mut kimi_free_api::config::Config)) -> Harness {
    Harness::start_with(|c| {
        c.sessions = 64;
        adjust(c);
    })
}

fn scripted(h: &Harness) {
    h.mock.script(Script { turns: (1..=40).map(|n| vec![answer(n)]).collect(), ..Script::default() });
}

fn turns(h: &Harness) -> Vec<TurnSeen> {
    h.mock.stats().turns
}

fn metric(h: &Harness, name: &str) -> f64 {
    let text = h.metrics();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_ten_turn_tool_loop_reuses_one_chat_and_sends_only_tails_in_every_api() {
    for kind in [Kind::Web, Kind::Legacy] {
        for api in APIS {
            let h = sessions_on(|_| {});
            scripted(&h);
            let mut client = Client::new(api, &kind.token(), TASK);
            for n in 1..=10 {
                client.turn(&h.url(""), &format!("RESULT-{n} of f{n}.txt"));
            }
            let seen = turns(&h);
            assert_eq!(seen.len(), 10, "{kind:?} {api:?}");
            // The first request is one message: no session, its chat deleted as before.
            let chat = &seen[1].chat_id;
            assert_ne!(&seen[0].chat_id, chat);
            assert!(
                seen[1].prompt.contains(TASK) && seen[1].prompt.contains("RESULT-1"),
                "{}",
                seen[1].prompt
            );
            for (i, turn) in seen.iter().enumerate().skip(2) {
                let label = format!("{kind:?} {api:?} turn {}", i + 1);
                assert_eq!(&turn.chat_id, chat, "{label}: one chat");
                assert!(turn.continued, "{label}");
                assert!(turn.prompt.contains(&format!("RESULT-{i} ")), "{label}: {}", turn.prompt);
                assert!(!turn.prompt.contains(TASK), "{label}: only the tail: {}", turn.prompt);
                assert!(!turn.prompt.contains(&format!("RESULT-{} ", i - 1)), "{label}: {}", turn.prompt);
                assert!(!turn.prompt.contains("## Read"), "{label}: the tools are not sent again");
                assert!(turn.system.is_none(), "{label}: nor the system prompt");
                if kind == Kind::Web {
                    assert!(turn.parent_id.is_some(), "{label}: after the last answer");
                }
            }
            let stats = h.mock.stats();
            assert_eq!(stats.live_chats.len(), 1, "{kind:?} {api:?}: the session's chat is kept");
            assert_eq!(metric(&h, "kimi_free_api_session_turns_total{sent=\"tail\"}"), 8.0);
            assert_eq!(metric(&h, "kimi_free_api_session_turns_total{sent=\"full\"}"), 1.0);
            let elided = metric(&h, "kimi_free_api_session_bodies_elided_total");
            assert_eq!(elided, 8.0, "{kind:?} {api:?}: each continued turn read without the history");
            assert_eq!(metric(&h, "kimi_free_api_sessions "), 1.0);
            assert!(metric(&h, "kimi_free_api_upstream_bytes_total") > 0.0);
        }
    }
}

/// A loop of three answered turns on `h`, then the session's chat id.
fn three_turns(h: &Harness, client: &mut Client) -> String {
    for n in 1..=3 {
        client.turn(&h.url(""), &format!("RESULT-{n} "));
    }
    turns(h).last().unwrap().chat_id.clone()
}

#[test]
fn an_edited_earlier_turn_rotates_to_a_fresh_chat_and_deletes_the_old_one() {
    let h = sessions_on(|_| {});
    scripted(&h);
    let mut client = Client::new(Api::OpenAi, &Kind::Web.token(), TASK);
    let old = three_turns(&h, &mut client);
    // The client edits the result of the first call.
    client.history[2]["content"] = json!("RESULT-1 EDITED");
    client.turn(&h.url(""), "RESULT-4 ");
    let last = turns(&h).last().unwrap().clone();
    assert_ne!(last.chat_id, old);
    assert!(
        !last.continued && last.prompt.contains("EDITED") && last.prompt.contains(TASK),
        "{}",
        last.prompt
    );
    let stats = h.mock.stats();
    assert!(!stats.live_chats.contains(&old), "the old chat is deleted");
    assert_eq!(stats.live_chats.len(), 1);
    assert_eq!(metric(&h, "kimi_free_api_session_rotations_total"), 1.0);
}

#[test]
fn a_compaction_that_keeps_the_newest_turns_verbatim_rotates() {
    let h = sessions_on(|_| {});
    scripted(&h);
    let mut client = Client::new(Api::Anthropic, &Kind::Web.token(), TASK);
    let old = three_turns(&h, &mut client);
    // The first message stays, the middle turns become a summary, the newest are kept as they are.
    let newest: Vec<Value> = client.history[client.history.len() - 2..].to_vec();
    client.history =
        vec![client.history[0].clone(), json!({"role": "assistant", "content": "SUMMARY of work"})];
    client.history.push(json!({"role": "user", "content": "go on"}));
    client.history.extend(newest);
    client.turn(&h.url(""), "RESULT-4 ");
    let last = turns(&h).last().unwrap().clone();
    assert_ne!(last.chat_id, old);
    assert!(last.prompt.contains("SUMMARY"), "the whole compacted history: {}", last.prompt);
    assert!(!h.mock.stats().live_chats.contains(&old));
}

#[test]
fn a_too_long_chat_and_a_chat_kimi_lost_each_rotate_with_the_whole_history() {
    for lost in [false, true] {
        let h = sessions_on(|_| {});
        scripted(&h);
        let mut client = Client::new(Api::OpenAi, &Kind::Web.token(), TASK);
        let old = three_turns(&h, &mut client);
        if lost {
            h.mock.forget_chat(&old);
        } else {
            // The tail (a continued turn) is refused as too long; the whole history in a new chat is not.
            let mut script =
                Script { fault: Some(Fault::TooLong), fault_times: Some(1), ..Script::default() };
            script.turns = (1..=40).map(|n| vec![answer(n)]).collect();
            h.mock.script(script);
        }
        client.turn(&h.url(""), "RESULT-4 ");
        let seen = turns(&h);
        let last = seen.last().unwrap();
        assert_ne!(last.chat_id, old, "lost={lost}");
        assert!(
            !last.continued && last.prompt.contains(TASK) && last.prompt.contains("RESULT-3"),
            "{}",
            last.prompt
        );
        assert!(!h.mock.stats().live_chats.contains(&old), "lost={lost}: the old chat is gone");
        // The next turn continues the new chat.
        client.turn(&h.url(""), "RESULT-5 ");
        let next = turns(&h).last().unwrap().clone();
        assert!(next.continued && next.chat_id == last.chat_id, "lost={lost}");
    }
}

#[test]
fn two_sessions_of_one_caller_and_two_callers_with_one_history_never_cross() {
    let h = sessions_on(|_| {});
    scripted(&h);
    let token = Kind::Web.token();
    let other = support::connect_token("another-user");
    let mut a = Client::new(Api::OpenAi, &token, "TASK-A");
    let mut b = Client::new(Api::OpenAi, &token, "TASK-B");
    let mut c = Client::new(Api::OpenAi, &other, "TASK-A");
    let mut chats: [Vec<String>; 3] = Default::default();
    for n in 1..=4 {
        for (i, client) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
            client.turn(&h.url(""), &format!("RESULT-{n} of {i}"));
            let last = turns(&h).last().unwrap().clone();
            if n > 1 {
                chats[i].push(last.chat_id);
            }
        }
    }
    for chat in &chats {
        assert!(chat.windows(2).all(|w| w[0] == w[1]), "one chat each: {chats:?}");
    }
    assert!(chats[0][0] != chats[1][0] && chats[0][0] != chats[2][0] && chats[1][0] != chats[2][0]);
    assert_eq!(h.mock.stats().live_chats.len(), 3);
}

#[test]
fn sessions_off_is_one_chat_per_request_deleted_after_it() {
    let h = Harness::start_with(|c| c.sessions = 0);
    scripted(&h);
    let mut client = Client::new(Api::Anthropic, &Kind::Web.token(), TASK);
    for n in 1..=4 {
        client.turn(&h.url(""), &format!("RESULT-{n} "));
    }
    let seen = turns(&h);
    let chats: std::collections::BTreeSet<&String> = seen.iter().map(|t| &t.chat_id).collect();
    assert_eq!(chats.len(), 4);
    assert!(seen.iter().all(|t| !t.continued) && seen[3].prompt.contains(TASK));
    assert!(h.mock.settled().live_chats.is_empty());
}

#[test]
fn an_idle_session_is_deleted_from_kimi() {
    let h = sessions_on(|c| c.session_idle = Duration::from_millis(400));
    scripted(&h);
    let mut client = Client::new(Api::Gemini, &Kind::Web.token(), TASK);
    let chat = three_turns(&h, &mut client);
    assert!(h.mock.stats().live_chats.contains(&chat));
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.mock.stats().live_chats.contains(&chat) {
        assert!(Instant::now() < deadline, "the idle session's chat is deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&h, "kimi_free_api_sessions "), 0.0);
}

#[test]
fn the_least_recently_used_session_goes_when_there_are_too_many() {
    let h = sessions_on(|c| c.sessions = 1);
    scripted(&h);
    let token = Kind::Web.token();
    let mut a = Client::new(Api::OpenAi, &token, "TASK-A");
    let mut b = Client::new(Api::OpenAi, &token, "TASK-B");
    a.turn(&h.url(""), "RESULT-1 ");
    a.turn(&h.url(""), "RESULT-2 ");
    let first = turns(&h).last().unwrap().chat_id.clone();
    b.turn(&h.url(""), "RESULT-1 ");
    b.turn(&h.url(""), "RESULT-2 ");
    let stats = h.mock.stats();
    assert!(!stats.live_chats.contains(&first), "a's session made room for b's");
    assert_eq!(stats.live_chats.len(), 1);
}

#[test]
fn the_max_turns_start_a_fresh_chat() {
    let h = sessions_on(|c| c.session_max_turns = 2);
    scripted(&h);
    let mut client = Client::new(Api::OpenAi, &Kind::Web.token(), TASK);
    for n in 1..=5 {
        client.turn(&h.url(""), &format!("RESULT-{n} "));
    }
    let seen = turns(&h);
    // Requests 2 and 3 on one chat (two answers), request 4 a fresh one with everything.
    assert_eq!(seen[2].chat_id, seen[1].chat_id);
    assert_ne!(seen[3].chat_id, seen[2].chat_id);
    assert!(!seen[3].continued && seen[3].prompt.contains(TASK));
    assert!(!h.mock.stats().live_chats.contains(&seen[2].chat_id));
}

#[test]
fn shutdown_deletes_every_sessions_chat() {
    let mock = support::mock::MockKimi::start();
    mock.script(Script { turns: (1..=40).map(|n| vec![answer(n)]).collect(), ..Script::default() });
    let mut server = ServerProcess::start(&mock, &[]);
    let base = server.url("");
    let token = Kind::Web.token();
    for task in ["TASK-A", "TASK-B"] {
        let mut client = Client::new(Api::Anthropic, &token, task);
        for n in 1..=3 {
            client.turn(&base, &format!("RESULT-{n} "));
        }
    }
    assert_eq!(mock.stats().live_chats.len(), 2, "two sessions live");
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).is_some(), "{}", server.log());
    assert!(mock.stats().live_chats.is_empty(), "{}", server.log());
    assert!(server.log().contains("deleted the chats of 2 agent sessions"), "{}", server.log());
}

#[test]
fn a_client_that_hangs_up_mid_answer_has_kimis_answer_stopped() {
    let h = sessions_on(|_| {});
    scripted(&h);
    let mut client = Client::new(Api::OpenAi, &Kind::Web.token(), TASK);
    let chat = three_turns(&h, &mut client);
    let before = h.mock.stats().cancels.len();
    // A slow answer, and a client that leaves after its first bytes.
    let pieces: Vec<String> = (0..40).map(|i| format!("word{i} ")).collect();
    h.mock.script(Script { text: pieces, delay_ms: 50, ..Script::default() });
    let mut body = client.body();
    body["stream"] = json!(true);
    hang_up_after_first_bytes(h.server.addr(), &client.token, &body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.mock.stats().cancels.len() == before {
        assert!(Instant::now() < deadline, "CancelChat is called");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancels = h.mock.stats().cancels;
    assert_eq!(cancels.last().unwrap().0, chat);
    assert!(!cancels.last().unwrap().1.is_empty(), "with the answer's message id");
    // The same history again continues from the last whole answer.
    scripted(&h);
    client.turn(&h.url(""), "RESULT-4 ");
    let seen = turns(&h);
    let (cut, last) = (&seen[seen.len() - 2], seen.last().unwrap());
    assert_eq!(last.chat_id, chat);
    assert_eq!(last.parent_id, cut.parent_id, "not after the cut answer");
}

/// Sends a streamed Anthropic request in one write and reads it to `message_stop` (not to the
/// end of the body, as a client that goes on at once does); returns the answer's text.
fn stream_to_message_stop(addr: std::net::SocketAddr, token: &str, body: &Value) -> String {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {token}\r\nanthropic-version: 2023-06-01\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(format!("{head}{body}").as_bytes()).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
    while !String::from_utf8_lossy(&seen).contains("message_stop") {
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn a_turn_sent_while_the_last_one_still_ends_used_to_start_a_new_session() {
    // The last answer reached the client; its turn still stops Kimi's answer (a slow CancelChat)
    // when the next request arrives: the next request waits for the session, it does not miss it.
    let h = sessions_on(|_| {});
    let mut script = Script { cancel_delay_ms: 300, ..Script::default() };
    script.turns = (1..=40).map(|n| vec![answer(n)]).collect();
    h.mock.script(script);
    let token = Kind::Web.token();
    let mut client = Client::new(Api::Anthropic, &token, TASK);
    for n in 1..=4 {
        let mut body = client.body();
        body["stream"] = json!(true);
        let answer = stream_to_message_stop(h.server.addr(), &token, &body);
        assert!(answer.contains("tool_use"), "{answer}");
        let id = format!("toolu_{n}");
        client.history.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": format!("Reading file {n}.")},
            {"type": "tool_use", "id": id, "name": "Read", "input": {"path": format!("f{n}.txt")}}]}));
        client.results(&[id], &format!("RESULT-{n} "));
    }
    let seen = turns(&h);
    assert_eq!(seen.len(), 4);
    assert!(seen[2].continued && seen[3].continued, "{seen:?}");
    assert!(seen[3].chat_id == seen[1].chat_id && !seen[3].prompt.contains(TASK));
}

#[test]
fn a_session_whose_account_left_the_pool_rotates_to_another_account() {
    let tokens = [support::connect_token("pool-a"), support::connect_token("pool-b")];
    let server = support::pool::PoolServer::start(&tokens, &["k1"], &[]);
    server.mock.script(Script { turns: (1..=40).map(|n| vec![answer(n)]).collect(), ..Script::default() });
    let mut client = Client::new(Api::OpenAi, "k1", TASK);
    for n in 1..=3 {
        client.turn(&server.base, &format!("RESULT-{n} "));
    }
    let stats = server.mock.stats();
    let chat = stats.turns.last().unwrap().chat_id.clone();
    assert!(stats.turns[2].continued && stats.turns[2].chat_id == stats.turns[1].chat_id);
    // The account the session lives on: the one that answered its last turn.
    let before = stats.completions_by_user.clone();
    client.turn(&server.base, "RESULT-4 ");
    let after = server.mock.stats().completions_by_user;
    let home = after.iter().find(|(user, n)| before.get(*user) != Some(n)).unwrap().0.clone();
    let other = if home == "pool-a" { &tokens[1] } else { &tokens[0] };
    server.write_tokens(std::slice::from_ref(other));
    server.hup();
    client.turn(&server.base, "RESULT-5 ");
    let seen = server.mock.stats().turns;
    let last = seen.last().unwrap();
    assert!(last.chat_id != chat && !last.continued && last.prompt.contains(TASK), "{last:?}");
    client.turn(&server.base, "RESULT-6 ");
    let next = server.mock.stats().turns.last().unwrap().clone();
    assert!(next.continued && next.chat_id == last.chat_id, "{next:?}");
}

#[test]
fn a_session_whose_account_cools_down_moves_to_another_account_without_asking_it() {
    let tokens = [support::connect_token("pool-a"), support::connect_token("pool-b")];
    let server = support::pool::PoolServer::pass_through(&[]);
    let script = || Script { turns: (1..=40).map(|n| vec![answer(n)]).collect(), ..Script::default() };
    server.mock.script(script());
    let mut client = Client::new(Api::OpenAi, &tokens.join(","), TASK);
    for n in 1..=3 {
        client.turn(&server.base, &format!("RESULT-{n} "));
    }
    let before = server.mock.stats().completions_by_user;
    client.turn(&server.base, "RESULT-4 ");
    let stats = server.mock.stats();
    let (chat, last) = (stats.turns.last().unwrap().chat_id.clone(), stats.turns.last().unwrap().continued);
    assert!(last, "the fourth turn continued the session");
    let home =
        stats.completions_by_user.iter().find(|(user, n)| before.get(*user) != Some(n)).unwrap().0.clone();
    let home_token = if home == "pool-a" { &tokens[0] } else { &tokens[1] };
    // Another request on the session's account alone is rate limited: it cools down for 30 s.
    let fault = Fault::RateLimited { retry_after: Some(30) };
    server.mock.script(Script { fault: Some(fault), fault_times: Some(1), ..script() });
    let alone = json!({"model": "kimi", "messages": [{"role": "user", "content": "hello"}]});
    let auth = format!("Bearer {home_token}");
    assert_eq!(server.post("/v1/chat/completions", &[("Authorization", &auth)], &alone).status, 429);
    let asked = server.mock.stats().completions_by_user[&home];
    client.turn(&server.base, "RESULT-5 ");
    let stats = server.mock.stats();
    let moved = stats.turns.last().unwrap();
    assert!(moved.chat_id != chat && !moved.continued && moved.prompt.contains(TASK), "{moved:?}");
    assert_eq!(stats.completions_by_user[&home], asked, "the cooling account was not asked");
    assert!(!stats.live_chats.contains(&chat), "the old chat was deleted: {:?}", stats.live_chats);
    client.turn(&server.base, "RESULT-6 ");
    let next = server.mock.stats().turns.last().unwrap().clone();
    assert!(next.continued && next.chat_id == moved.chat_id, "{next:?}");
}

#[test]
fn a_body_laid_out_anew_is_read_whole_and_still_continues_its_session() {
    for api in APIS {
        let h = sessions_on(|_| {});
        scripted(&h);
        let mut client = Client::new(api, &Kind::Web.token(), TASK);
        for n in 1..=3 {
            client.turn(&h.url(""), &format!("RESULT-{n} "));
        }
        assert_eq!(metric(&h, "kimi_free_api_session_bodies_elided_total"), 1.0, "{api:?}: the third turn");
        client.pretty = true;
        client.turn(&h.url(""), "RESULT-4 ");
        client.turn(&h.url(""), "RESULT-5 ");
        client.pretty = false;
        client.turn(&h.url(""), "RESULT-6 ");
        let seen = turns(&h);
        let chat = &seen[1].chat_id;
        for (i, turn) in seen.iter().enumerate().skip(2) {
            let label = format!("{api:?} turn {}", i + 1);
            assert!(
                turn.continued && &turn.chat_id == chat && !turn.prompt.contains(TASK),
                "{label}: {turn:?}"
            );
            assert!(turn.prompt.contains(&format!("RESULT-{i} ")), "{label}: {}", turn.prompt);
        }
        // Pretty-printed: the fourth turn is read whole, the fifth elided again after it, the
        // sixth (laid out as before the fourth) read whole.
        assert_eq!(metric(&h, "kimi_free_api_session_bodies_elided_total"), 2.0, "{api:?}");
    }
}
