//! One chat on the Connect API: the `Chat` request (`body.rs`) on the model the account's
//! catalogue picks, its stream decoded frame by frame, Kimi's refusals told apart
//! (`refusal.rs`), the chat deleted on the way out, and the last answer's id kept for the next
//! turn of a kept chat (`docs/kimi-protocol.md` §4.4–4.7, §7).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use ureq::RequestBuilder;
use ureq::typestate::WithBody;

use super::Context;
use super::body::{Target, Turn, chat_body};
use super::call::{signed, unary, unary_on};
use super::envelope::{self, Decoder};
use super::event::{self, ConnectEvent};
use super::markers::CitationMarkers;
use super::models::{Catalogue, Entry};
use super::refusal::refusal;
use super::upload::upload;
use crate::chat::{self, Conversation, Event, Finish, Sink, Stop, ToolOffer, tools};
use crate::kimi::guard::{ChatGuard, Halt, Progress};
use crate::kimi::token::ConnectIdentity;
use crate::kimi::{Error, attachment, drift, http, prompt};

const READ_CHUNK: usize = 4 * 1024;
/// Kept conversations whose last answer id is remembered (for `parent_id`).
const MAX_REMEMBERED: usize = 10_000;
/// The chat status of a deep research run that waits for the user's answer (§7.5).
const ASK_USER_STATUS: &str = "STATUS_ASK_USER_QUESTION";
/// Kimi's own tool by which a research run asks the user (inferred from §7.5's status).
const ASK_USER_TOOL: &str = "ask_user";
/// Server-side tool steps remembered per chat (their names and arguments so far).
const MAX_TOOL_STEPS: usize = 256;

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

/// Runs one chat: the account's catalogue picks the model, the request goes out as the
/// browser's would, its tools as the account takes them (`tool_mode.rs`), and a refusal that
/// names the system prompt field, the declared tools or the model is answered once more the
/// way Kimi takes (`docs/kimi-protocol.md` §7.3, §7.4, §7.1).
pub fn chat(
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
    request: &chat::Request,
    sink: &mut Progress,
) -> Result<(), Halt> {
    let continued = match &request.conversation {
        Conversation::Continue(id) => Some(id.as_str()),
        _ => None,
    };
    if continued.is_some_and(|id| ctx.memory.is_locked(id)) {
        let why = "Kimi ended this conversation for its length earlier; start a new conversation";
        return Err(Error::TooLong(why.into()).into());
    }
    let attachments = attachment::of_last_message(request, ctx.fetch)?;
    ctx.chats.sent(attachments.iter().map(|a| a.bytes.len()).sum());
    let files = attachments.iter().map(|a| upload(ctx, token, who, a)).collect::<Result<Vec<_>, _>>()?;
    let (mut catalogue, mut fresh) = catalogue(ctx, token, who)?;
    let mut system_field = !ctx.memory.plain_system(ctx.account);
    let only = request.tool_prompt.as_ref().and_then(|p| p.only);
    let mut offer =
        request.tool_prompt.as_ref().map(|p| p.only.unwrap_or_else(|| ctx.tools.offer(ctx.account)));
    let has_system = prompt::system_prompt(&request.messages).is_some();
    for _ in 0..3 {
        let native = offer == Some(ToolOffer::Native) && system_field;
        let placed = if native { Cow::Borrowed(request) } else { tools::in_turn(request) };
        if offer.is_some() {
            let offer = if native { ToolOffer::Native } else { ToolOffer::Prompt };
            sink.send(Event::ToolsOffered(offer)).go()?;
        }
        let target = Target::of(&catalogue, &placed);
        let parent = continued.and_then(|id| ctx.parents.get(id));
        let turn = Turn {
            chat_id: continued,
            parent_id: parent.as_deref(),
            files: &files,
            system_field,
            native_tools: native,
            text: None,
        };
        let result = chat_once(ctx, token, who, &placed, &target, &turn, sink);
        match result {
            Err(Halt::Failed(Error::Rejected(why)))
                if !sink.delivered() && native && (names_device_tools(&why) || names_system(&why)) =>
            {
                if names_system(&why) {
                    ctx.memory.set_plain_system(ctx.account);
                    system_field = false;
                }
                if only.is_some() || !ctx.tools.refused(ctx.account, &why) {
                    let why =
                        format!("Kimi refused the declared tools ({why}); --tool-mode native keeps them");
                    return Err(Error::Rejected(why).into());
                }
                offer = Some(ToolOffer::Prompt);
            }
            Err(Halt::Failed(Error::Rejected(why)))
                if !sink.delivered() && system_field && has_system && names_system(&why) =>
            {
                eprintln!(
                    "kimi: account {}: Kimi refused the system prompt field; it goes into the text",
                    ctx.account
                );
                ctx.memory.set_plain_system(ctx.account);
                system_field = false;
            }
            Err(Halt::Failed(Error::Rejected(why)))
                if !sink.delivered() && !fresh && names_model(&why, target.entry) =>
            {
                ctx.memory.forget_catalogue(ctx.account);
                (catalogue, fresh) = self::catalogue(ctx, token, who)?;
            }
            other => {
                if native && only.is_none() && tools::requires_call(request) {
                    note_outcome(ctx, &other);
                }
                return other;
            }
        }
    }
    Err(Error::Rejected("Kimi refused the request as this server can send it".into()).into())
}

/// A required call offered natively came (the answer stopped at its calls) or did not (the
/// answer ended complete): what `auto` learns from (`tool_mode.rs`).
fn note_outcome(ctx: Context<'_>, result: &Result<(), Halt>) {
    match result {
        Ok(()) => ctx.tools.outcome(ctx.account, false),
        Err(Halt::Stopped(Stop::ToolCalls)) => ctx.tools.outcome(ctx.account, true),
        Err(_) => {}
    }
}

/// Whether Kimi's refusal is about the declared tools.
fn names_device_tools(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    why.contains("device_tool") || why.contains("devicetool") || why.contains("tool_type")
}

/// The account's catalogue (cached an hour), and whether it was read just now.
pub fn catalogue(
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
) -> Result<(Arc<Catalogue>, bool), Error> {
    ctx.memory.catalogue(ctx.account, || {
        let method = "apiv2/kimi.gateway.config.v1.ConfigService/GetAvailableModels";
        let answer = unary(ctx, token, who, method, &json!({}))?;
        Catalogue::parse(&answer)
            .ok_or_else(|| Error::Upstream("Kimi's model catalogue lists no model".into()))
    })
}

/// Whether Kimi's refusal is about the system prompt field.
fn names_system(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    why.contains("systemprompt") || why.contains("system_prompt")
}

/// Whether Kimi's refusal is about the model (the catalogue may have changed).
fn names_model(why: &str, entry: &Entry) -> bool {
    why.contains(&entry.id) || why.to_ascii_lowercase().contains("model")
}

/// One `Chat` call and its stream.
fn chat_once(
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
    request: &chat::Request,
    target: &Target<'_>,
    turn: &Turn<'_>,
    sink: &mut Progress,
) -> Result<(), Halt> {
    let response = post_chat(ctx, token, who, &chat_body(request, target, turn))?;
    let mut stream = ChatStream::new(ctx, token, who, request, target, turn.chat_id.is_some());
    let mut result = stream.read(response.into_body().into_reader(), sink);
    if result == Err(Halt::Stopped(Stop::CallMissing)) {
        result = follow_up(&mut stream, request, target, turn, sink);
    }
    if let Err(Halt::Stopped(Stop::ToolCalls | Stop::ClientGone)) = &result {
        stream.cancel();
    }
    match &result {
        // A kept chat goes on from this answer: complete, or ended by the client's tool calls.
        Ok(()) | Err(Halt::Stopped(Stop::ToolCalls)) => stream.remember_parent(),
        Err(Halt::Failed(Error::TooLong(_))) => stream.lock(),
        Err(_) => {}
    }
    result
}

/// Sends a `Chat` request; its answer is the stream to read.
fn post_chat(
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
    body: &Value,
) -> Result<ureq::http::Response<ureq::Body>, Error> {
    let builder: RequestBuilder<WithBody> =
        ctx.upstream.post(format!("{}/apiv2/kimi.gateway.chat.v1.ChatService/Chat", ctx.base));
    let framed = envelope::encode(envelope::FLAG_DATA, body.to_string().as_bytes());
    ctx.chats.sent(framed.len());
    let response = signed(builder, ctx, token, who)
        .header("Content-Type", "application/connect+json")
        .send(&framed[..])
        .map_err(|e| ctx.upstream.failed(e))?;
    if response.status().as_u16() != 200 {
        return Err(http::error_of(response));
    }
    Ok(response)
}

/// A required call did not come: the same chat is asked once more
/// ([`tools::corrective`]), and that answer goes to the sink as it comes.
fn follow_up(
    stream: &mut ChatStream<'_>,
    request: &chat::Request,
    target: &Target<'_>,
    turn: &Turn<'_>,
    sink: &mut Progress,
) -> Result<(), Halt> {
    let (Some(text), Some(guard), Some(parent)) =
        (tools::corrective(request), &stream.guard, stream.last_message.clone())
    else {
        return Ok(sink.send(Event::Finish(Finish::Stop)).go()?);
    };
    let chat_id = guard.chat_id().to_string();
    let ask =
        Turn { chat_id: Some(&chat_id), parent_id: Some(&parent), files: &[], text: Some(&text), ..*turn };
    let body = chat_body(request, target, &ask);
    let response = post_chat(stream.ctx, stream.token, stream.who, &body)?;
    stream.done = false;
    stream.read(response.into_body().into_reader(), sink)
}

/// The state of one `Chat` stream.
struct ChatStream<'a> {
    ctx: Context<'a>,
    token: &'a str,
    who: &'a ConnectIdentity,
    keep: bool,
    /// The chat is an earlier one, continued (not created by this request).
    continued: bool,
    /// Show Kimi's own tool steps as reasoning (agents and research run for minutes).
    progress: bool,
    /// The model asked for, for refusals.
    model: &'a str,
    /// Deletes the chat once its id is known.
    guard: Option<ChatGuard<'a>>,
    markers: CitationMarkers,
    last_message: Option<String>,
    produced: bool,
    done: bool,
    /// A research run asked the user this and waits: it is the answer.
    question: Option<String>,
    /// Server-side tool steps by block id: (name, arguments so far).
    tools: HashMap<String, (String, String)>,
    /// Citation URLs already sent.
    seen: Vec<String>,
}

impl<'a> ChatStream<'a> {
    fn new(
        ctx: Context<'a>,
        token: &'a str,
        who: &'a ConnectIdentity,
        request: &chat::Request,
        target: &Target<'a>,
        continued: bool,
    ) -> Self {
        ChatStream {
            ctx,
            token,
            who,
            keep: request.conversation != Conversation::Ephemeral,
            continued,
            progress: target.is_agent(),
            model: target.name(),
            guard: None,
            markers: CitationMarkers::default(),
            last_message: None,
            produced: false,
            done: false,
            question: None,
            tools: HashMap::new(),
            seen: Vec::new(),
        }
    }

    /// Reads the stream to its end (or to a research question), pushing events to the sink.
    fn read(&mut self, mut reader: impl Read, sink: &mut Progress) -> Result<(), Halt> {
        let mut decoder = Decoder::new();
        let ended = loop {
            let n = decoder.read_from(&mut reader, READ_CHUNK).map_err(|e| http::from_io(&e))?;
            if n == 0 {
                break false;
            }
            let ended = self.frames(&mut decoder, sink)?;
            sink.flush().go()?;
            if ended || self.question.is_some() {
                break true;
            }
        };
        // Some streams close without the end-of-stream message after `done`: that is complete.
        if !ended && !self.done {
            return Err(
                Error::Transport("Kimi closed the stream before the answer was complete".into()).into()
            );
        }
        self.finish(sink)
    }

    /// Handles the frames one read delivered; `true` at the end of the stream.
    fn frames(&mut self, decoder: &mut Decoder, sink: &mut Progress) -> Result<bool, Halt> {
        while let Some(frame) = decoder.next_frame().map_err(|e| Error::Upstream(e.to_string()))? {
            if frame.is_end_stream() {
                return match event::end_stream_error(&frame.payload) {
                    Ok(Some(ConnectEvent::Error { code, reason, message })) => {
                        Err(refusal(&code, &reason, message, self.model).into())
                    }
                    Ok(_) => Ok(true),
                    Err(e) => {
                        Err(Error::Upstream(format!("Kimi sent an unreadable end of stream: {e}")).into())
                    }
                };
            }
            if frame.payload.is_empty() {
                continue;
            }
            let event = event::parse(&frame.payload)
                .map_err(|e| Error::Upstream(format!("Kimi sent a frame that is not its protocol: {e}")))?;
            if event == ConnectEvent::Ignored {
                event::unknown_names(&frame.payload)
                    .into_iter()
                    .for_each(|(what, name)| drift::note(what, &name));
            }
            self.apply(event, sink)?;
            if self.question.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The end of a complete answer: held text, the research question, the finish.
    fn finish(&mut self, sink: &mut Progress) -> Result<(), Halt> {
        let text = self.markers.finish();
        self.send_text(text, sink)?;
        if let Some(question) = self.question.take() {
            self.send_text(question, sink)?;
        }
        if !self.produced {
            return Err(Error::Upstream("Kimi returned an empty answer".into()).into());
        }
        Ok(sink.send(Event::Finish(Finish::Stop)).go()?)
    }

    /// A kept chat's next turn goes after this answer.
    fn remember_parent(&mut self) {
        if let (true, Some(guard), Some(message)) = (self.keep, &self.guard, self.last_message.take()) {
            self.ctx.parents.set(guard.chat_id().to_string(), message);
        }
    }

    /// Stops Kimi's answer in a kept chat whose reading stopped early (tool calls complete, or
    /// the client left): closing the stream does not stop it (`docs/kimi-protocol.md` §7.5),
    /// and the next turn goes after this answer. Best effort: a failure is only logged.
    fn cancel(&self) {
        let (true, Some(guard), Some(message)) = (self.keep, &self.guard, &self.last_message) else { return };
        let body = json!({"chat_id": guard.chat_id(), "message_id": message});
        let method = "apiv2/kimi.gateway.chat.v1.ChatService/CancelChat";
        match unary_on(self.ctx.upstream.cleanup(), self.ctx, self.token, self.who, method, &body) {
            Ok(_) => drop(self.ctx.chats.cancelled.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            Err(error) => eprintln!("kimi: could not stop the answer in chat {}: {error}", guard.chat_id()),
        }
    }

    /// Kimi answers nothing more in a chat that grew too long.
    fn lock(&self) {
        if let (true, Some(guard)) = (self.keep, &self.guard) {
            self.ctx.memory.lock_chat(guard.chat_id());
        }
    }

    fn apply(&mut self, event: ConnectEvent, sink: &mut dyn Sink) -> Result<(), Halt> {
        match event {
            ConnectEvent::Chat { id } if self.guard.is_none() => self.start(id, sink)?,
            ConnectEvent::AssistantMessage { id } => self.last_message = Some(id),
            ConnectEvent::Text(text) => {
                let text = self.markers.strip(text);
                self.send_text(text, sink)?;
            }
            ConnectEvent::Thinking(text) if !text.is_empty() => {
                self.produced = true;
                sink.send(Event::Thinking(text)).go()?;
            }
            ConnectEvent::Citations(sources) => self.cite(sources, sink)?,
            ConnectEvent::Tool { block, name, args, append, running } => {
                self.tool_step(block, name, args, append, running, sink)?;
            }
            ConnectEvent::Status(status) if status == ASK_USER_STATUS => {
                self.question.get_or_insert_with(|| {
                    "Kimi's research needs more detail before it goes on: reply to continue.".into()
                });
            }
            ConnectEvent::Done => self.done = true,
            ConnectEvent::Heartbeat => sink.send(Event::Heartbeat).go()?,
            ConnectEvent::Error { code, reason, message } => {
                return Err(refusal(&code, &reason, message, self.model).into());
            }
            ConnectEvent::Chat { .. }
            | ConnectEvent::Thinking(_)
            | ConnectEvent::Status(_)
            | ConnectEvent::Ignored => {}
        }
        Ok(())
    }

    /// The chat's id arrived: it is deleted on every way out unless kept.
    fn start(&mut self, id: String, sink: &mut dyn Sink) -> Result<(), Halt> {
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
        sink.send(Event::ConversationId(id)).go()?;
        Ok(())
    }

    fn cite(&mut self, sources: Vec<(String, String)>, sink: &mut dyn Sink) -> Result<(), Halt> {
        for (title, url) in sources {
            if !self.seen.contains(&url) {
                self.seen.push(url.clone());
                sink.send(Event::Citation { title, url }).go()?;
            }
        }
        Ok(())
    }

    /// One step of a tool Kimi runs itself (§7.5): its name comes first, its arguments in
    /// fragments, then whole when it runs. A research run's question to the user ends the
    /// answer; other steps of agents show as reasoning.
    fn tool_step(
        &mut self,
        block: String,
        name: String,
        args: String,
        append: bool,
        running: bool,
        sink: &mut dyn Sink,
    ) -> Result<(), Halt> {
        if self.tools.len() >= MAX_TOOL_STEPS && !self.tools.contains_key(&block) {
            return Ok(());
        }
        let step = self.tools.entry(block).or_default();
        if !name.is_empty() {
            step.0 = name;
        }
        if append {
            step.1.push_str(&args)
        } else if !args.is_empty() {
            step.1 = args
        }
        if !running {
            return Ok(());
        }
        let (name, args) = step.clone();
        if name.contains(ASK_USER_TOOL) {
            self.question = Some(question_of(&args));
        } else if self.progress {
            self.produced = true;
            sink.send(Event::Thinking(progress_line(&name, &args))).go()?;
        }
        Ok(())
    }

    fn send_text(&mut self, text: String, sink: &mut dyn Sink) -> Result<(), Halt> {
        if !text.is_empty() {
            self.produced = true;
            sink.send(Event::Text(text)).go()?;
        }
        Ok(())
    }
}

/// A line of reasoning for a tool step: what was searched, or which tool ran.
fn progress_line(name: &str, args: &str) -> String {
    let args: Value = serde_json::from_str(args).unwrap_or_default();
    let queries: Vec<&str> =
        args["queries"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if queries.is_empty() { format!("[{name}]\n") } else { format!("[{name}] {}\n", queries.join("; ")) }
}

/// The question a research run asks, as text: each question with its options, the
/// recommended ones marked (`{"questions":[{"question","type","options":[{"option",…}]}]}`).
fn question_of(args: &str) -> String {
    let Ok(args) = serde_json::from_str::<Value>(args) else { return args.to_string() };
    let mut lines = Vec::new();
    for question in args["questions"].as_array().into_iter().flatten() {
        lines.push(question["question"].as_str().unwrap_or_default().to_string());
        for option in question["options"].as_array().into_iter().flatten() {
            let mark = if option["recommended"] == true { " (recommended)" } else { "" };
            lines.push(format!("- {}{mark}", option["option"].as_str().unwrap_or_default()));
        }
    }
    let single = args["question"].as_str().map(str::to_string);
    if lines.is_empty() { single.unwrap_or_else(|| args.to_string()) } else { lines.join("\n") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_research_question_reads_as_text() {
        let args = r#"{"questions":[{"question":"Which region?","type":"single",
            "options":[{"option":"Europe","recommended":true},{"option":"Asia"}]}]}"#;
        assert_eq!(question_of(args), "Which region?\n- Europe (recommended)\n- Asia");
        assert_eq!(question_of(r#"{"question":"Why?"}"#), "Why?");
        assert_eq!(question_of("plain words"), "plain words");
    }

    #[test]
    fn tool_steps_read_as_progress() {
        assert_eq!(progress_line("web_search", r#"{"queries": ["a", "b"]}"#), "[web_search] a; b\n");
        assert_eq!(progress_line("ipython", "{not json"), "[ipython]\n");
    }

    #[test]
    fn refusals_name_the_system_field_and_the_model() {
        let entry = Entry { id: "k3-agent".into(), ..Entry::default() };
        assert!(names_system("unknown field options.systemPrompt"));
        assert!(names_system("system_prompt is not allowed"));
        assert!(!names_system("bad effort"));
        assert!(names_model("unknown model k3-agent", &entry));
        assert!(names_model("k3-agent is gone", &entry));
        assert!(!names_model("bad effort", &entry));
    }
}
