//! The legacy backend: refresh_token → access token → `POST /api/chat` → completion stream
//! (`kimi-upstream.md` §1). The stream is read as bytes arrive and each event is pushed to the
//! sink at once; the chat is deleted on every path unless the caller keeps it.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};
use ureq::RequestBuilder;
use ureq::typestate::{WithBody, WithoutBody};

use super::attachment::{self, Attachment, Fetch};
use super::http::{self, Upstream};
use super::legacy_event::{self, LegacyEvent};
use super::session::{self, Session, Sessions};
use super::sse::SseDecoder;
use super::{ChatGuard, Error, Progress, accounts, prompt};
use crate::chat::{self, Conversation, Event, Finish, Sink};

/// The Kimi+ id of the K1 long-thinking assistant.
const K1_AGENT: &str = "crm40ee9e5jvhsn7ptcg";
/// How many times an answer cut at Kimi's length limit is continued.
const MAX_CONTINUATIONS: usize = 8;
/// Size of each read from the upstream stream.
const READ_CHUNK: usize = 4 * 1024;

/// What the legacy backend needs from the shared Kimi client.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub upstream: &'a Upstream,
    pub base: &'a str,
    pub sessions: &'a Sessions,
    pub fetch: Fetch<'a>,
}

/// Runs one chat. A refused access token is refreshed once and the request tried again
/// (it may have expired early), as long as nothing reached the client.
pub fn chat(
    ctx: Context<'_>,
    refresh_token: &str,
    request: &chat::Request,
    sink: &mut Progress,
) -> Result<(), Error> {
    let (session, fresh) = ctx.sessions.get(refresh_token, |token| login(ctx, token))?;
    match run(ctx, &session, request, sink) {
        Err(Error::Unauthorized(_)) if !fresh && !sink.delivered() => {
            ctx.sessions.invalidate(refresh_token);
            let (session, _) = ctx.sessions.get(refresh_token, |token| login(ctx, token))?;
            run(ctx, &session, request, sink)
        }
        other => other,
    }
}

/// Whether the refresh token is live: Kimi gives an access token for it.
pub fn check_token(ctx: Context<'_>, refresh_token: &str) -> bool {
    refresh(ctx, refresh_token).is_ok()
}

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

fn refresh(ctx: Context<'_>, refresh_token: &str) -> Result<Tokens, Error> {
    let response = ctx
        .upstream
        .agent()
        .get(format!("{}/api/auth/token/refresh", ctx.base))
        .header("Authorization", format!("Bearer {refresh_token}"))
        .header("Referer", format!("{}/", ctx.base))
        .call()
        .map_err(http::from_ureq)?;
    let tokens: Tokens = http::read_json(response).map_err(|e| match e {
        Error::Upstream(_) => Error::Unauthorized("Kimi did not return an access token".into()),
        other => other,
    })?;
    if tokens.access_token.is_empty() {
        return Err(Error::Unauthorized("Kimi did not return an access token".into()));
    }
    Ok(tokens)
}

fn login(ctx: Context<'_>, refresh_token: &str) -> Result<Session, Error> {
    let tokens = refresh(ctx, refresh_token)?;
    let response = ctx
        .upstream
        .agent()
        .get(format!("{}/api/user", ctx.base))
        .header("Authorization", format!("Bearer {}", tokens.access_token))
        .call()
        .map_err(http::from_ureq)?;
    let user: User = http::read_json(response)?;
    if user.id.is_empty() {
        return Err(Error::Upstream("Kimi returned a user without an id".into()));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(Session {
        refresh_at: session::refresh_deadline(&tokens.access_token, now),
        access_token: tokens.access_token,
        user_id: user.id,
        refresh_token: tokens
            .refresh_token
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| refresh_token.to_string()),
    })
}

/// Device and session ids, chosen once per process like a browser's.
fn client_ids() -> &'static (String, String) {
    static IDS: OnceLock<(String, String)> = OnceLock::new();
    IDS.get_or_init(|| (accounts::random_digits('7', 19), accounts::random_digits('1', 19)))
}

/// The headers of Kimi's web client on an authenticated call.
fn signed<B>(
    builder: RequestBuilder<B>,
    ctx: Context<'_>,
    session: &Session,
    chat_id: Option<&str>,
) -> RequestBuilder<B> {
    let (device_id, session_id) = client_ids();
    let referer = match chat_id {
        Some(id) => format!("{}/chat/{id}", ctx.base),
        None => format!("{}/", ctx.base),
    };
    builder
        .header("Authorization", format!("Bearer {}", session.access_token))
        .header("X-Traffic-Id", session.user_id.as_str())
        .header("X-Msh-Platform", "web")
        .header("X-Msh-Device-Id", device_id.as_str())
        .header("X-Msh-Session-Id", session_id.as_str())
        .header("R-Timezone", "Asia/Shanghai")
        .header("Origin", ctx.base)
        .header("Referer", referer)
}

fn post_json(
    ctx: Context<'_>,
    session: &Session,
    chat_id: Option<&str>,
    path: &str,
    body: &Value,
) -> Result<ureq::http::Response<ureq::Body>, Error> {
    let builder: RequestBuilder<WithBody> = ctx.upstream.agent().post(format!("{}{path}", ctx.base));
    signed(builder, ctx, session, chat_id)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(http::from_ureq)
}

fn kimiplus_id(mode: &chat::Mode) -> &str {
    match (&mode.agent, mode.thinking) {
        (Some(agent), _) => agent,
        (None, true) => K1_AGENT,
        (None, false) => "kimi",
    }
}

fn run(
    ctx: Context<'_>,
    session: &Session,
    request: &chat::Request,
    sink: &mut dyn Sink,
) -> Result<(), Error> {
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
            return Err(Error::Rejected(
                "conversation_id must be \"none\" or the 20-character id an earlier answer returned".into(),
            ));
        }
        other => {
            let id = create_chat(ctx, session, kimiplus_id(mode))?;
            (id, *other == Conversation::Keep, prompt::merge_history(&request.messages))
        }
    };
    let delete = |id: &str| {
        let builder: RequestBuilder<WithoutBody> =
            ctx.upstream.agent().delete(format!("{}/api/chat/{id}", ctx.base));
        let response = signed(builder, ctx, session, Some(id)).call().map_err(http::from_ureq)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(())
        } else {
            Err(http::error_from_body(status, &http::read_small(response)?))
        }
    };
    let guard = ChatGuard::new(chat_id, keep, delete);
    sink.send(Event::ConversationId(guard.chat_id().to_string()))?;
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
    for _ in 0..=MAX_CONTINUATIONS {
        match stream_completion(ctx, session, guard.chat_id(), &body, sink)? {
            Ending::Done => return Ok(sink.send(Event::Finish(Finish::Stop))?),
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
    Ok(sink.send(Event::Finish(Finish::Length))?)
}

/// Uploads one attachment (§1.10): a pre-signed URL, the bytes PUT there (with no Kimi
/// credential: the storage host is a third party), the file registered, and for documents
/// the parse awaited. Returns Kimi's file object.
fn upload(
    ctx: Context<'_>,
    session: &Session,
    chat_id: &str,
    attachment: &Attachment,
) -> Result<Value, Error> {
    #[derive(Deserialize)]
    struct Signed {
        url: String,
        #[serde(default)]
        object_name: String,
        #[serde(default)]
        file_id: String,
    }
    let action = if attachment.is_image() { "image" } else { "file" };
    let request = json!({"action": action, "name": attachment.name, "size": attachment.bytes.len()});
    let signed: Signed =
        http::read_json(post_json(ctx, session, Some(chat_id), "/api/pre-sign-url", &request)?)?;
    let response = ctx
        .upstream
        .agent()
        .put(&signed.url)
        .header("Content-Type", attachment.mime.as_str())
        .send(&attachment.bytes[..])
        .map_err(http::from_ureq)?;
    if !response.status().is_success() {
        return Err(Error::Upstream(format!(
            "storing the attachment answered HTTP {}",
            response.status().as_u16()
        )));
    }
    let register = if attachment.is_image() {
        json!({"type": "image", "file_id": signed.file_id, "name": attachment.name})
    } else {
        json!({"type": "file", "name": attachment.name, "object_name": signed.object_name, "file_id": "", "chat_id": chat_id})
    };
    let file: Value = http::read_json(post_json(ctx, session, Some(chat_id), "/api/file", &register)?)?;
    let Some(id) = file["id"].as_str().filter(|id| !id.is_empty()).map(str::to_string) else {
        return Err(Error::Upstream("Kimi registered the attachment without an id".into()));
    };
    if !attachment.is_image() {
        await_parse(ctx, session, chat_id, &id)?;
    }
    Ok(file)
}

/// Reads the parse-progress stream of a document until Kimi says it is parsed (or failed).
fn await_parse(ctx: Context<'_>, session: &Session, chat_id: &str, file_id: &str) -> Result<(), Error> {
    let body = json!({"ids": [file_id], "timeout": 120_000});
    let mut events = EventReader::open(ctx, session, chat_id, "/api/file/parse_process", &body)?;
    while let Some(batch) = events.next_batch()? {
        for data in batch {
            let event: Value = serde_json::from_str(&data).unwrap_or_default();
            let status = event["file_info"]["status"].as_str().or_else(|| event["status"].as_str());
            match status {
                Some("parsed") => return Ok(()),
                Some("failed") => {
                    return Err(Error::Rejected("Kimi could not read the attached document".into()));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// An SSE response from Kimi, read as bytes arrive.
struct EventReader {
    reader: ureq::BodyReader<'static>,
    decoder: SseDecoder,
}

impl EventReader {
    /// POSTs `body` to `path` and checks that Kimi answered with a stream.
    fn open(
        ctx: Context<'_>,
        session: &Session,
        chat_id: &str,
        path: &str,
        body: &Value,
    ) -> Result<Self, Error> {
        let response = post_json(ctx, session, Some(chat_id), path, body)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(http::error_from_body(status, &http::read_small(response)?));
        }
        Ok(EventReader { reader: response.into_body().into_reader(), decoder: SseDecoder::new() })
    }

    /// The complete events one read delivered (possibly none), or `None` when the stream ended
    /// (with the data of an event it ended in the middle of, if any, left for [`Self::rest`]).
    fn next_batch(&mut self) -> Result<Option<Vec<String>>, Error> {
        let n = self.decoder.read_from(&mut self.reader, READ_CHUNK).map_err(|e| http::from_io(&e))?;
        if n == 0 {
            return Ok(None);
        }
        let mut batch = Vec::new();
        while let Some(data) = self.decoder.next_event().map_err(|e| Error::Upstream(e.to_string()))? {
            batch.push(data);
        }
        Ok(Some(batch))
    }

    /// An event the stream ended in the middle of.
    fn rest(&mut self) -> Option<String> {
        self.decoder.finish()
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
    Ok(created.id)
}

fn check_research_quota(ctx: Context<'_>, session: &Session) -> Result<(), Error> {
    #[derive(Deserialize)]
    struct Usage {
        total: u64,
        used: u64,
    }
    let builder: RequestBuilder<WithoutBody> =
        ctx.upstream.agent().get(format!("{}/api/chat/research/usage", ctx.base));
    let response = signed(builder, ctx, session, None).call().map_err(http::from_ureq)?;
    match http::read_json::<Usage>(response) {
        Ok(usage) if usage.used >= usage.total => {
            Err(Error::RateLimited(format!("research quota used up ({} of {})", usage.used, usage.total)))
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

fn stream_completion(
    ctx: Context<'_>,
    session: &Session,
    chat_id: &str,
    body: &Value,
    sink: &mut dyn Sink,
) -> Result<Ending, Error> {
    let path = format!("/api/chat/{chat_id}/completion/stream");
    let mut events = EventReader::open(ctx, session, chat_id, &path, body)?;
    let mut segment_id = None;
    let mut length = false;
    loop {
        let Some(batch) = events.next_batch()? else {
            // A stream that closes before `all_done` is truncated, not finished.
            if let Some(data) = events.rest()
                && handle(&data, sink, &mut segment_id, &mut length)?
            {
                break;
            }
            return Err(Error::Transport("Kimi closed the stream before the answer was complete".into()));
        };
        let mut done = false;
        for data in batch {
            if handle(&data, sink, &mut segment_id, &mut length)? {
                done = true;
                break;
            }
        }
        sink.flush()?;
        if done {
            break;
        }
    }
    Ok(if length { Ending::Length { segment_id } } else { Ending::Done })
}

/// Acts on one event; `Ok(true)` when the stream is over.
fn handle(
    data: &str,
    sink: &mut dyn Sink,
    segment_id: &mut Option<String>,
    length: &mut bool,
) -> Result<bool, Error> {
    let event = legacy_event::parse(data)
        .map_err(|e| Error::Upstream(format!("Kimi sent an event that is not its protocol: {e}")))?;
    match event {
        LegacyEvent::Request { segment_id: id } => *segment_id = Some(id),
        LegacyEvent::Text(text) if !text.is_empty() => sink.send(Event::Text(text))?,
        LegacyEvent::Thinking(text) if !text.is_empty() => sink.send(Event::Thinking(text))?,
        LegacyEvent::SearchResult { title, url } => sink.send(Event::Citation { title, url })?,
        LegacyEvent::Length => *length = true,
        LegacyEvent::AllDone => return Ok(true),
        LegacyEvent::Error { error_type, message } => {
            let message = if message.is_empty() { "Kimi stopped with an error".to_string() } else { message };
            return Err(http::classify(200, &error_type, message));
        }
        // Progress events (search steps, segment echoes) say Kimi is still working.
        LegacyEvent::Ignored => sink.send(Event::Heartbeat)?,
        LegacyEvent::Text(_) | LegacyEvent::Thinking(_) => {}
    }
    Ok(false)
}
