//! Logging in to the legacy API: a refresh token buys an access token (Kimi may rotate the
//! refresh token at the same time), and the user id is read once for `X-Traffic-Id`
//! (`docs/kimi-protocol.md` §3.1).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::Context;
use super::session::{self, Session};
use crate::kimi::Error;
use crate::kimi::http;

#[derive(Deserialize)]
pub(super) struct Tokens {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

pub(super) fn refresh(ctx: Context<'_>, refresh_token: &str) -> Result<Tokens, Error> {
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

pub(super) fn login(ctx: Context<'_>, refresh_token: &str) -> Result<Session, Error> {
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
