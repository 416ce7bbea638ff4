//! The legacy backend: refresh_token → access token → `POST /api/chat` → completion stream
//! (`docs/kimi-protocol.md` §3). The stream is read as bytes arrive and each event is pushed
//! to the sink at once; the chat is deleted on every path unless the caller keeps it.

mod call;
mod completion;
mod event;
mod login;
pub mod sse;
mod upload;

use crate::chat;
use crate::kimi::Error;
use crate::kimi::attachment::Fetch;
use crate::kimi::guard::{ChatCounts, Halt, Progress};
use crate::kimi::http::Via;
use crate::kimi::session::Sessions;

/// What the legacy backend needs from the shared Kimi client.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The shared agents, through the account's proxy if it has one.
    pub upstream: Via<'a>,
    pub base: &'a str,
    pub sessions: &'a Sessions,
    pub fetch: Fetch<'a>,
    pub chats: &'a ChatCounts,
}

/// Runs one chat. A refused access token is refreshed once and the request tried again
/// (it may have expired early), as long as nothing reached the client.
pub fn chat(
    ctx: Context<'_>,
    refresh_token: &str,
    request: &chat::Request,
    sink: &mut Progress,
) -> Result<(), Halt> {
    let (session, fresh) = ctx.sessions.get(refresh_token, |token| login::login(ctx, token))?;
    match completion::run(ctx, &session, request, sink) {
        Err(Halt::Failed(Error::Unauthorized(_))) if !fresh && !sink.delivered() => {
            ctx.sessions.invalidate(refresh_token);
            let (session, _) = ctx.sessions.get(refresh_token, |token| login::login(ctx, token))?;
            completion::run(ctx, &session, request, sink)
        }
        other => other,
    }
}

/// Deletes a kept chat (`docs/kimi-protocol.md` §3.7), counted with the others.
pub fn delete_chat(ctx: Context<'_>, refresh_token: &str, chat_id: &str) -> Result<(), Error> {
    let (session, _) = ctx.sessions.get(refresh_token, |token| login::login(ctx, token))?;
    ctx.chats.delete_now(chat_id, |id| completion::delete_chat(ctx, &session, id))
}

/// Whether the refresh token is live: a login works (through the cache, so a rotation it
/// causes is kept, not burnt).
pub fn check_token(ctx: Context<'_>, refresh_token: &str) -> Result<(), Error> {
    ctx.sessions.get(refresh_token, |token| login::login(ctx, token)).map(drop)
}
