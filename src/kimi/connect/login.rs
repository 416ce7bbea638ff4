//! The 2026 web login (`docs/kimi-protocol.md` §2.5): a refresh token is exchanged at the auth
//! host for a 15-minute access token and a new refresh token, and the one sent is dead from
//! then on. [`crate::kimi::session::Sessions`] makes sure that happens once at a time per
//! account and that the new token is kept.

use serde::Deserialize;
use serde_json::json;

use super::Context;
use crate::kimi::session::{self, Session};
use crate::kimi::token::Claims;
use crate::kimi::{Error, http};

/// What the login of a refresh token Kimi no longer accepts tells the user.
pub const LOG_IN_AGAIN: &str = "log in again at www.kimi.com (or www.kimi.ai) and paste the new \
     refresh_token from F12 → Application → Local Storage";

/// The answer of `RefreshToken`; Connect's JSON mapping may use either spelling.
#[derive(Deserialize)]
struct Tokens {
    #[serde(rename = "accessToken", alias = "access_token", default)]
    access_token: String,
    #[serde(rename = "refreshToken", alias = "refresh_token", default)]
    refresh_token: String,
}

/// Exchanges `refresh_token` for a new session.
pub fn refresh(ctx: Context<'_>, refresh_token: &str) -> Result<Session, Error> {
    let url = format!("{}/api/account.gateway.v1.AuthService/RefreshToken", ctx.auth_base);
    let response = super::call::browser_headers(ctx.upstream.post(url), ctx)
        .header("Content-Type", "application/json")
        .header("Connect-Protocol-Version", "1")
        .header("X-Msh-Platform", "web")
        .header("Origin", ctx.base)
        .header("Referer", format!("{}/", ctx.base))
        .send(json!({ "refresh_token": refresh_token }).to_string().as_bytes())
        .map_err(|e| ctx.upstream.failed(e))?;
    let status = response.status().as_u16();
    let body = http::read_small(response)?;
    if matches!(status, 401 | 403) {
        return Err(Error::Unauthorized(format!(
            "Kimi ended this login (its refresh token is no longer accepted): {LOG_IN_AGAIN}"
        )));
    }
    if !(200..300).contains(&status) {
        return Err(http::error_from_body(status, &body));
    }
    let tokens: Tokens = serde_json::from_slice(&body)
        .map_err(|_| Error::Upstream("Kimi's login answer is not the JSON it should be".into()))?;
    if tokens.access_token.is_empty() {
        return Err(Error::Upstream("Kimi's login answer holds no access token".into()));
    }
    // Kimi rotates the refresh token; if an answer ever carries none, the old one still holds.
    let next = if tokens.refresh_token.is_empty() { refresh_token.to_string() } else { tokens.refresh_token };
    let user_id = Claims::of(&next).map(|c| c.text("sub")).unwrap_or_default();
    Ok(Session {
        refresh_after_ms: session::refresh_deadline(&tokens.access_token, session::now_ms()),
        obtained_ms: session::now_ms(),
        access_token: tokens.access_token,
        user_id,
        refresh_token: next,
    })
}
