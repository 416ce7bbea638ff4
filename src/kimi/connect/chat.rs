//! One chat on the Connect API: the `Chat` request built from the neutral request, its stream
//! decoded frame by frame, the chat deleted on the way out, and the last answer's id kept for
//! the next turn of a kept chat (`docs/kimi-protocol.md` §4.3–4.7).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};
use ureq::RequestBuilder;
use ureq::typestate::WithBody;

use super::Context;
use super::call::{signed, unary_on};
use super::envelope::{self, Decoder};
use super::event::{self, CitationMarkers, ConnectEvent};
use super::upload::upload;
use crate::chat::{self, Conversation, Event, Finish, Sink};
use crate::kimi::guard::{ChatGuard, Progress};
use crate::kimi::token::ConnectIdentity;
use crate::kimi::{Error, attachment, http, prompt};

/// Kimi's web default since 2026-07 (K3).
const SCENARIO_K3: &str = "SCENARIO_K3";
/// The older K2 line ("K2.6"), still accepted: for clients that name `kimi-k2…`.
const SCENARIO_K2D5: &str = "SCENARIO_K2D5";
/// The effort of a thinking request; the values seen run from `REASONING_EFFORT_LOW` to `_MAX`.
const REASONING_EFFORT_HIGH: &str = "REASONING_EFFORT_HIGH";
const READ_CHUNK: usize = 4 * 1024;
/// Kept conversations whose last answer id is remembered (for `parent_id`).
const MAX_REMEMBERED: usize = 10_000;

/// The last assistant message of each kept chat: Kimi continues a chat from `parent_id`.
#[derive(Default)]
pub struct Parents(Mutex<HashMap<String, String>>);

impl Parents {
    fn get(&self, chat_id: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(chat_id).cloned()
    }

    fn set(&self, chat_id: String, message_id: String) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_REMEMBERED && !map.contains_key(&chat_id) {
            map.clear();
        }
        map.insert(chat_id, message_id);
    }
}

/// The `Chat` request (`docs/kimi-protocol.md` §4.3) for the neutral request.
fn chat_body(
    request: &chat::Request,
    chat_id: Option<&str>,
    parent_id: Option<&str>,
    files: &[String],
) -> Value {
    let mode = &request.mode;
    let content = match chat_id {
        Some(_) => prompt::new_turn(&request.messages),
        None => prompt::merge_history(&request.messages),
    };
    let mut blocks = vec![json!({"message_id": "", "text": {"content": content}})];
    blocks.extend(files.iter().map(|id| json!({"message_id": "", "file": {"id": id}})));
    let scenario = if mode.older_model { SCENARIO_K2D5 } else { SCENARIO_K3 };
    let mut message = json!({"role": "user", "blocks": blocks, "scenario": scenario});
    if let Some(parent_id) = parent_id {
        message["parent_id"] = json!(parent_id);
    }
    let mut body = json!({"scenario": scenario, "message": message, "options": options(mode)});
    if mode.search || mode.research {
        body["tools"] = json!([{"type": "TOOL_TYPE_SEARCH", "search": {}}]);
    }
    if let Some(agent) = &mode.agent {
        body["kimiplus_id"] = json!(agent);
    }
    if let Some(chat_id) = chat_id {
        body["chat_id"] = json!(chat_id);
    }
    body
}

/// `options` of the `Chat` request. Connect has no separate explore mode: research is web search
/// with thinking. Thinking names an effort too, as the web app does.
fn options(mode: &chat::Mode) -> Value {
    let thinking = mode.thinking || mode.research;
    let mut options = json!({"thinking": thinking});
    if thinking {
        options["reasoning_effort"] = json!(REASONING_EFFORT_HIGH);
    }
    options
}

pub fn chat(
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
    request: &chat::Request,
    sink: &mut Progress,
) -> Result<(), Error> {
    let files = attachment::of_last_message(request, ctx.fetch)?
        .iter()
        .map(|a| upload(ctx, token, who, a))
        .collect::<Result<Vec<_>, _>>()?;
    let continued = match &request.conversation {
        Conversation::Continue(id) => Some(id.as_str()),
        _ => None,
    };
    let parent = continued.and_then(|id| ctx.parents.get(id));
    let body = chat_body(request, continued, parent.as_deref(), &files);
    let builder: RequestBuilder<WithBody> =
        ctx.upstream.agent().post(format!("{}/apiv2/kimi.gateway.chat.v1.ChatService/Chat", ctx.base));
    let response = signed(builder, ctx, token, who)
        .header("Content-Type", "application/connect+json")
        .send(&envelope::encode(envelope::FLAG_DATA, body.to_string().as_bytes())[..])
        .map_err(http::from_ureq)?;
    if response.status().as_u16() != 200 {
        return Err(http::error_of(response));
    }

    let mut stream = ChatStream {
        ctx,
        token,
        who,
        keep: request.conversation != Conversation::Ephemeral,
        continued: continued.is_some(),
        guard: None,
        markers: CitationMarkers::default(),
        last_message: None,
        produced: false,
        done: false,
        seen: Vec::new(),
    };
    let mut reader = response.into_body().into_reader();
    let mut decoder = Decoder::new();
    let ended = loop {
        let n = decoder.read_from(&mut reader, READ_CHUNK).map_err(|e| http::from_io(&e))?;
        if n == 0 {
            break false;
        }
        let mut ended = false;
        while let Some(frame) = decoder.next_frame().map_err(|e| Error::Upstream(e.to_string()))? {
            if frame.is_end_stream() {
                match event::end_stream_error(&frame.payload) {
                    Ok(None) => ended = true,
                    Ok(Some(ConnectEvent::Error { code, message })) => {
                        return Err(http::classify(200, &code, message));
                    }
                    Ok(Some(_)) => ended = true,
                    Err(e) => {
                        return Err(Error::Upstream(format!("Kimi sent an unreadable end of stream: {e}")));
                    }
                }
                break;
            }
            if frame.payload.is_empty() {
                continue;
            }
            let event = event::parse(&frame.payload)
                .map_err(|e| Error::Upstream(format!("Kimi sent a frame that is not its protocol: {e}")))?;
            stream.apply(event, sink)?;
        }
        sink.flush()?;
        if ended {
            break true;
        }
    };
    // Some streams close without the end-of-stream message after `done`: that is complete.
    if !ended && !stream.done {
        return Err(Error::Transport("Kimi closed the stream before the answer was complete".into()));
    }
    stream.finish_text(sink)?;
    if !stream.produced {
        return Err(Error::Upstream("Kimi returned an empty answer".into()));
    }
    if let (true, Some(guard), Some(message)) = (stream.keep, &stream.guard, stream.last_message.take()) {
        ctx.parents.set(guard.chat_id().to_string(), message);
    }
    sink.send(Event::Finish(Finish::Stop))?;
    Ok(())
}

/// The state of one `Chat` stream.
struct ChatStream<'a> {
    ctx: Context<'a>,
    token: &'a str,
    who: &'a ConnectIdentity,
    keep: bool,
    /// The chat is an earlier one, continued (not created by this request).
    continued: bool,
    /// Deletes the chat once its id is known.
    guard: Option<ChatGuard<'a>>,
    markers: CitationMarkers,
    last_message: Option<String>,
    produced: bool,
    done: bool,
    /// Citation URLs already sent.
    seen: Vec<String>,
}

impl<'a> ChatStream<'a> {
    fn apply(&mut self, event: ConnectEvent, sink: &mut dyn Sink) -> Result<(), Error> {
        match event {
            ConnectEvent::Chat { id } if self.guard.is_none() => {
                if !self.continued {
                    self.ctx.chats.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let (ctx, token, who) = (self.ctx, self.token, self.who);
                let delete = move |chat_id: &str| {
                    let body = json!({"chat_id": chat_id});
                    let method = "apiv2/kimi.chat.v1.ChatService/DeleteChat";
                    unary_on(ctx.upstream.cleanup(), ctx, token, who, method, &body).map(drop)
                };
                self.guard = Some(ChatGuard::new(id.clone(), self.keep, ctx.chats, delete));
                sink.send(Event::ConversationId(id))?;
            }
            ConnectEvent::AssistantMessage { id } => self.last_message = Some(id),
            ConnectEvent::Text(text) => {
                let text = self.markers.strip(text);
                self.send_text(text, sink)?;
            }
            ConnectEvent::Thinking(text) if !text.is_empty() => {
                self.produced = true;
                sink.send(Event::Thinking(text))?;
            }
            ConnectEvent::Citations(sources) => {
                for (title, url) in sources {
                    if !self.seen.contains(&url) {
                        self.seen.push(url.clone());
                        sink.send(Event::Citation { title, url })?;
                    }
                }
            }
            ConnectEvent::Done => self.done = true,
            ConnectEvent::Heartbeat => sink.send(Event::Heartbeat)?,
            ConnectEvent::Error { code, message } => return Err(http::classify(200, &code, message)),
            ConnectEvent::Chat { .. } | ConnectEvent::Thinking(_) | ConnectEvent::Ignored => {}
        }
        Ok(())
    }

    /// Sends what the citation matcher still holds: at the end of the stream it is answer text.
    fn finish_text(&mut self, sink: &mut dyn Sink) -> Result<(), Error> {
        let text = self.markers.finish();
        self.send_text(text, sink)
    }

    fn send_text(&mut self, text: String, sink: &mut dyn Sink) -> Result<(), Error> {
        if !text.is_empty() {
            self.produced = true;
            sink.send(Event::Text(text))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Message, Mode, Role};

    fn request(model: &str, conversation: Conversation) -> chat::Request {
        chat::Request {
            model: model.into(),
            mode: Mode::from_model_name(model),
            messages: vec![
                Message::text(Role::System, "be brief"),
                Message::text(Role::User, "a"),
                Message::text(Role::Assistant, "b"),
                Message::text(Role::User, "c"),
            ],
            conversation,
            stream: true,
            tools: Vec::new(),
            tool_choice: chat::ToolChoice::Auto,
            parallel_tool_calls: true,
        }
    }

    #[test]
    fn new_chat_merges_history_and_omits_ids() {
        let body = chat_body(&request("kimi", Conversation::Ephemeral), None, None, &[]);
        assert_eq!(body["scenario"], SCENARIO_K3);
        assert_eq!(body["message"]["scenario"], SCENARIO_K3);
        assert_eq!(
            body["message"]["blocks"][0]["text"]["content"],
            "system:be brief\nuser:a\nassistant:b\nsystem:关注用户最新的消息\nuser:c\n"
        );
        assert!(body.get("chat_id").is_none() && body["message"].get("parent_id").is_none());
        assert!(body.get("tools").is_none());
        assert_eq!(body["options"], json!({"thinking": false}));
    }

    #[test]
    fn modes_map_to_tools_and_options() {
        let body = chat_body(&request("kimi-search", Conversation::Ephemeral), None, None, &[]);
        assert_eq!(body["tools"], json!([{"type": "TOOL_TYPE_SEARCH", "search": {}}]));
        let body = chat_body(&request("kimi-research", Conversation::Ephemeral), None, None, &[]);
        assert!(body["tools"].is_array());
        assert_eq!(body["options"], json!({"thinking": true, "reasoning_effort": REASONING_EFFORT_HIGH}));
    }

    #[test]
    fn model_names_select_the_scenario_and_thinking_its_effort() {
        let thinking = json!({"thinking": true, "reasoning_effort": REASONING_EFFORT_HIGH});
        let plain = json!({"thinking": false});
        let cases = [
            ("kimi", SCENARIO_K3, &plain),
            ("kimi-k3", SCENARIO_K3, &plain),
            ("kimi-k3-thinking", SCENARIO_K3, &thinking),
            ("kimi-k1", SCENARIO_K3, &thinking),
            ("gpt-4o", SCENARIO_K3, &plain),
            ("kimi-k2", SCENARIO_K2D5, &plain),
            ("Kimi-K2-Thinking", SCENARIO_K2D5, &thinking),
            ("kimi-k2-search", SCENARIO_K2D5, &plain),
        ];
        for (model, scenario, options) in cases {
            let body = chat_body(&request(model, Conversation::Ephemeral), None, None, &[]);
            assert_eq!(
                (&body["scenario"], &body["message"]["scenario"]),
                (&json!(scenario), &json!(scenario)),
                "{model}"
            );
            assert_eq!(&body["options"], options, "{model}");
        }
    }

    #[test]
    fn continued_chat_sends_ids_and_the_new_turn() {
        let body =
            chat_body(&request("kimi", Conversation::Continue("c1".into())), Some("c1"), Some("m9"), &[]);
        assert_eq!(body["chat_id"], "c1");
        assert_eq!(body["message"]["parent_id"], "m9");
        assert_eq!(body["message"]["blocks"][0]["text"]["content"], "c");
    }
}
