//! The Connect RPC backend for kimi-auth JWTs (`docs/kimi-protocol.md` §4): one enveloped
//! `Chat` call whose stream is decoded frame by frame and pushed to the sink at once, then
//! `DeleteChat`, unless the caller keeps the conversation.

mod body;
mod call;
mod chat;
pub mod credits;
pub mod envelope;
mod event;
pub mod login;
mod markers;
mod memory;
pub(crate) mod models;
mod refusal;
mod upload;

use serde_json::json;

use crate::kimi::Error;
use crate::kimi::attachment::Fetch;
use crate::kimi::guard::ChatCounts;
use crate::kimi::http::Via;
use crate::kimi::token::ConnectIdentity;
use crate::kimi::tool_mode::ToolModes;

pub use chat::{Parents, catalogue, chat};
pub use memory::Memory;

/// What a Connect call of one account needs: the hosts of the account's region, and how its
/// token is presented.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The shared agents, through the account's proxy if it has one.
    pub upstream: Via<'a>,
    /// The chat API (www.kimi.com or www.kimi.ai).
    pub base: &'a str,
    /// The auth host that renews 2026 web logins (auth.kimi.com or auth.kimi.ai).
    pub auth_base: &'a str,
    pub parents: &'a Parents,
    /// What is remembered of each account (catalogue, refusals), and this account's fingerprint.
    pub memory: &'a Memory,
    /// How each account takes the client's tools (natively or in the text).
    pub tools: &'a ToolModes,
    pub account: &'a str,
    pub fetch: Fetch<'a>,
    /// Send the token as the `kimi-auth` cookie too (the old cookie-era token).
    pub kimi_auth_cookie: bool,
    pub chats: &'a ChatCounts,
}

/// Whether Kimi accepts the access token: its subscription can be read (a read-only call).
pub fn check_token(ctx: Context<'_>, token: &str, who: &ConnectIdentity) -> Result<(), Error> {
    let method = "apiv2/kimi.gateway.order.v1.SubscriptionService/GetSubscription";
    call::unary(ctx, token, who, method, &json!({})).map(drop)
}

/// Deletes a kept chat (`docs/kimi-protocol.md` §7.6), counted with the others.
pub fn delete_chat(ctx: Context<'_>, token: &str, who: &ConnectIdentity, chat_id: &str) -> Result<(), Error> {
    ctx.chats.delete_now(chat_id, |id| {
        let method = "apiv2/kimi.chat.v1.ChatService/DeleteChat";
        call::unary_on(ctx.upstream.cleanup(), ctx, token, who, method, &json!({"chat_id": id})).map(drop)
    })
}
