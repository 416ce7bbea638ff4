//! Logging in to the legacy API: a refresh token buys an access token (Kimi may rotate the
//! refresh token at the same time), and the user id is read once for `X-Traffic-Id`
//! (`docs/kimi-protocol.md` §3.1).

use serde::Deserialize;

use super::Context;
use crate::kimi::session::{self, Session};
use crate::kimi::{Error, http};

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
        .get(format!("{}/api/auth/token/refresh", ctx.base))
        .header("Authorization", format!("Bearer {refresh_token}"))
        .header("Referer", format!("{}/", ctx.base))
        .call()
        .map_err(|e| ctx.upstream.failed(e))?;
    // An error status keeps its meaning (a 5xx is Kimi's trouble, not a bad token); a success
    // without an access token is a refusal.
    let status = response.status().as_u16();
    let body = http::read_small(response)?;
    if !(200..300).contains(&status) {
        return Err(http::error_from_body(status, &body));
    }
    match serde_json::from_slice::<Tokens>(&body) {
        Ok(tokens) if !tokens.access_token.is_empty() => Ok(tokens),
        _ => Err(Error::Unauthorized("Kimi did not return an access token".into())),
    }
}

pub(super) fn login(ctx: Context<'_>, refresh_token: &str) -> Result<Session, Error> {
    let tokens = refresh(ctx, refresh_token)?;
    let response = ctx
        .upstream
        .get(format!("{}/api/user", ctx.base))
        .header("Authorization", format!("Bearer {}", tokens.access_token))
        .call()
        .map_err(|e| ctx.upstream.failed(e))?;
    let user: User = http::read_json(response)?;
    if user.id.is_empty() {
        return Err(Error::Upstream("Kimi returned a user without an id".into()));
    }
    Ok(Session {
        refresh_after_ms: session::refresh_deadline(&tokens.access_token, session::now_ms()),
        obtained_ms: session::now_ms(),
        access_token: tokens.access_token,
        user_id: user.id,
        refresh_token: tokens
            .refresh_token
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| refresh_token.to_string()),
    })
}
