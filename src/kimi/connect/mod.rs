//! The Connect RPC backend for kimi-auth JWTs (`docs/kimi-protocol.md` §4): one enveloped
//! `Chat` call whose stream is decoded frame by frame and pushed to the sink at once, then
//! `DeleteChat`, unless the caller keeps the conversation.

mod call;
mod chat;
pub mod envelope;
mod event;
mod upload;

use serde_json::json;

use crate::kimi::attachment::Fetch;
use crate::kimi::http::Upstream;
use crate::kimi::token::ConnectIdentity;

pub use chat::{Parents, chat};

#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub upstream: &'a Upstream,
    pub base: &'a str,
    pub parents: &'a Parents,
    pub fetch: Fetch<'a>,
}

/// Whether Kimi accepts the token (its subscription can be read).
pub fn check_token(ctx: Context<'_>, token: &str, who: &ConnectIdentity) -> bool {
    call::unary(
        ctx,
        token,
        who,
        "apiv2/kimi.gateway.order.v1.SubscriptionService/GetSubscription",
        &json!({}),
    )
    .is_ok()
}
