//! One chat on the legacy API: the chat created (or a kept one continued), attachments
//! uploaded, the completion streamed event by event, continued after a length stop, and the
//! chat deleted on the way out (`docs/kimi-protocol.md` §3.3–3.7, §3.9).

use serde::Deserialize;
use serde_json::{Value, json};
use ureq::RequestBuilder;
use ureq::typestate::WithoutBody;

use super::Context;
use super::call::{EventReader, post_json, signed};
use super::event::{self, LegacyEvent};
use super::upload::upload;
use crate::chat::{self, Conversation, Event, Finish, Flow, Sink, Stop, tools};
use crate::kimi::guard::{ChatGuard, Halt};
use crate::kimi::session::Session;
use crate::kimi::{Error, attachment, http, prompt};

/// The Kimi+ id of the K1 long-thinking assistant.
const K1_AGENT: &str = "crm40ee9e5jvhsn7ptcg";
/// How many times an answer cut at Kimi's length limit is continued.
const MAX_CONTINUATIONS: usize = 8;

fn kimiplus_id(mode: &chat::Mode) -> &str {
    match (&mode.agent, mode.thinking) {
        (Some(agent), _) => agent,
        (None, true) => K1_AGENT,
        (None, false) => "kimi",
    }
}

pub(super) fn run(
    ctx: Context<'_>,
    session: &Session,
    request: &chat::Request,
    sink: &mut dyn Sink,
) -> Result<(), Halt> {
    let mode = &request.mode;
    let attachments = attachment::of_last_message(request, ctx.fetch)?;
    if mode.research {
        check_research_quota(ctx, session)?;
    }
    let (chat_id, keep, content) = match &request.conversation {
        Conversation::Continue(id) if chat::is_agent_id(id) => {
            (id.clone(), true, prompt::new_turn(&request.messages))
        }
        Conversation::Continue(_) => {
            let why = "conversation_id must be \"none\" or the 20-character id an earlier answer returned";
            return Err(Error::Rejected(why.into()).into());
        }
        other => {
            let id = create_chat(ctx, session, kimiplus_id(mode))?;
            (id, *other == Conversation::Keep, prompt::merge_history(&request.messages))
        }
    };
    let delete = |id: &str| delete_chat(ctx, session, id);
    let guard = ChatGuard::new(chat_id, keep, ctx.chats, delete);
    sink.send(Event::ConversationId(guard.chat_id().to_string())).go()?;
    ctx.chats.sent(attachments.iter().map(|a| a.bytes.len()).sum());
    let mut refs = Vec::new();
    let mut refs_file = Vec::new();
    for attachment in &attachments {
        let file = upload(ctx, session, guard.chat_id(), attachment)?;
        let id = file["id"].clone();
        refs.push(id.clone());
        refs_file.push(json!({"detail": file, "done": true, "file": {}, "file_info": file, "id": id,
            "name": attachment.name, "parse_status": "success", "size": attachment.bytes.len(),
            "upload_progress": 100, "upload_status": "success"}));
    }

    let mut body = json!({
        "kimiplus_id": kimiplus_id(mode),
        "messages": [{"role": "user", "content": content}],
        "refs": refs,
        "refs_file": refs_file,
        "use_math": mode.math,
        "use_research": mode.research,
        "use_search": mode.search,
        "extend": {"sidebar": true},
    });
    let mut produced = false;
    let mut corrective = tools::corrective(request);
    for _ in 0..=MAX_CONTINUATIONS {
        let (ending, answered) = stream_completion(ctx, session, guard.chat_id(), &body, sink)?;
        produced |= answered;
        match ending {
            // An answer with no text and no reasoning is Kimi failing quietly, not a success.
            Ending::Done if !produced => {
                return Err(Error::Upstream("Kimi returned an empty answer".into()).into());
            }
            Ending::Done => match (sink.send(Event::Finish(Finish::Stop)), corrective.take()) {
                // A required tool call did not come: the same chat is asked once more.
                (Flow::Stop(Stop::CallMissing), Some(text)) => body = follow_up(mode, &text),
                (Flow::Stop(Stop::CallMissing), None) => {
                    return Ok(sink.send(Event::Finish(Finish::Stop)).go()?);
                }
                (flow, _) => return Ok(flow.go()?),
            },
            Ending::Length { segment_id: Some(segment_id) } => {
                body = json!({
                    "segment_id": segment_id,
                    "action": "continue",
                    "messages": [{"role": "user", "content": " "}],
                    "kimiplus_id": kimiplus_id(mode),
                    "extend": {"sidebar": true},
                });
            }
            Ending::Length { segment_id: None } => break,
        }
    }
    Ok(sink.send(Event::Finish(Finish::Length)).go()?)
}

/// The next user message in the same chat, asking again for a required tool call.
fn follow_up(mode: &chat::Mode, text: &str) -> Value {
    json!({
        "kimiplus_id": kimiplus_id(mode),
        "messages": [{"role": "user", "content": text}],
        "refs": [],
        "use_search": false,
        "extend": {"sidebar": true},
    })
}

/// `DELETE /api/chat/{id}` (`docs/kimi-protocol.md` §3.7).
pub(super) fn delete_chat(ctx: Context<'_>, session: &Session, id: &str) -> Result<(), Error> {
    let builder: RequestBuilder<WithoutBody> =
        ctx.upstream.cleanup().delete(format!("{}/api/chat/{id}", ctx.base));
    let response = signed(builder, ctx, session, Some(id)).call().map_err(|e| ctx.upstream.failed(e))?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        Ok(())
    } else {
        Err(http::error_from_body(status, &http::read_small(response)?))
    }
}

fn create_chat(ctx: Context<'_>, session: &Session, kimiplus_id: &str) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Created {
        id: String,
    }
    let body = json!({
        "enter_method": "new_chat",
        "is_example": false,
        "kimiplus_id": kimiplus_id,
        "name": "未命名会话",
    });
    let created: Created = http::read_json(post_json(ctx, session, None, "/api/chat", &body)?)?;
    if created.id.is_empty() {
        return Err(Error::Upstream("Kimi created a chat without an id".into()));
    }
    ctx.chats.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(created.id)
}

fn check_research_quota(ctx: Context<'_>, session: &Session) -> Result<(), Error> {
    #[derive(Deserialize)]
    struct Usage {
        total: u64,
        used: u64,
    }
    let builder: RequestBuilder<WithoutBody> =
        ctx.upstream.get(format!("{}/api/chat/research/usage", ctx.base));
    let response = signed(builder, ctx, session, None).call().map_err(|e| ctx.upstream.failed(e))?;
    match http::read_json::<Usage>(response) {
        Ok(usage) if usage.used >= usage.total => {
            Err(Error::QuotaUsedUp(format!("research quota used up ({} of {})", usage.used, usage.total)))
        }
        // The quota check is advisory: if Kimi does not answer it, the completion will say.
        _ => Ok(()),
    }
}

/// How one completion stream ended.
enum Ending {
    Done,
    Length { segment_id: Option<String> },
}

/// What one completion stream has told so far.
#[derive(Default)]
struct Seen {
    segment_id: Option<String>,
    length: bool,
    /// Some answer text or reasoning came.
    produced: bool,
}

/// One completion stream, to its end; the bool says whether it produced text or reasoning.
fn stream_completion(
    ctx: Context<'_>,
    session: &Session,
    chat_id: &str,
    body: &Value,
    sink: &mut dyn Sink,
) -> Result<(Ending, bool), Halt> {
    let path = format!("/api/chat/{chat_id}/completion/stream");
    ctx.chats.sent(body.to_string().len());
    let mut events = EventReader::open(ctx, session, chat_id, &path, body)?;
    let mut seen = Seen::default();
    loop {
        let Some(batch) = events.next_batch()? else {
            // A stream that closes before `all_done` is truncated, not finished.
            if let Some(data) = events.rest()
                && handle(&data, sink, &mut seen)?
            {
                break;
            }
            return Err(
                Error::Transport("Kimi closed the stream before the answer was complete".into()).into()
            );
        };
        let mut done = false;
        for data in batch {
            if handle(&data, sink, &mut seen)? {
                done = true;
                break;
            }
        }
        sink.flush().go()?;
        if done {
            break;
        }
    }
    let ending = if seen.length { Ending::Length { segment_id: seen.segment_id } } else { Ending::Done };
    Ok((ending, seen.produced))
}

/// Acts on one event; `Ok(true)` when the stream is over.
fn handle(data: &str, sink: &mut dyn Sink, seen: &mut Seen) -> Result<bool, Halt> {
    let event = event::parse(data)
        .map_err(|e| Error::Upstream(format!("Kimi sent an event that is not its protocol: {e}")))?;
    match event {
        LegacyEvent::Request { segment_id: id } => seen.segment_id = Some(id),
        LegacyEvent::Text(text) if !text.is_empty() => {
            seen.produced = true;
            sink.send(Event::Text(text)).go()?
        }
        LegacyEvent::Thinking(text) if !text.is_empty() => {
            seen.produced = true;
            sink.send(Event::Thinking(text)).go()?
        }
        LegacyEvent::SearchResult { title, url } => sink.send(Event::Citation { title, url }).go()?,
        LegacyEvent::Length => seen.length = true,
        LegacyEvent::AllDone => return Ok(true),
        LegacyEvent::Error { error_type, message } => {
            let message = if message.is_empty() { "Kimi stopped with an error".to_string() } else { message };
            return Err(http::classify(200, &error_type, message).into());
        }
        // Progress events (search steps, segment echoes) say Kimi is still working.
        LegacyEvent::Ignored => sink.send(Event::Heartbeat).go()?,
        LegacyEvent::Text(_) | LegacyEvent::Thinking(_) => {}
    }
    Ok(false)
}
