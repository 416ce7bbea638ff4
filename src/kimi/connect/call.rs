//! How an authenticated call to the Connect API is made: the web client's headers and unary
//! JSON calls (`docs/kimi-protocol.md` §4.1).

use serde_json::Value;
use ureq::RequestBuilder;
use ureq::typestate::WithBody;

use super::Context;
use crate::kimi::token::ConnectIdentity;
use crate::kimi::{Error, http};

/// The headers of Kimi's web client on an authenticated call; the identity comes from the
/// token's claims (for a 2026 login, from the refresh token's: the access token has no
/// `device_id`, `docs/kimi-protocol.md` §4.1), the version and client hints from the
/// configured browser (`docs/kimi-protocol.md` §7.9).
pub(super) fn signed<B>(
    builder: RequestBuilder<B>,
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
) -> RequestBuilder<B> {
    let builder = builder.header("Authorization", format!("Bearer {token}"));
    // Only the old cookie-era token was ever a cookie.
    let builder =
        if ctx.kimi_auth_cookie { builder.header("Cookie", format!("kimi-auth={token}")) } else { builder };
    let builder = browser_headers(builder, ctx);
    builder
        .header("Connect-Protocol-Version", "1")
        .header("X-Msh-Platform", "web")
        .header("X-Msh-Device-Id", who.device_id.as_str())
        .header("X-Msh-Session-Id", who.session_id.as_str())
        .header("X-Traffic-Id", who.user_id.as_str())
        .header("X-Language", "zh-CN")
        .header("R-Timezone", "Asia/Shanghai")
        .header("Origin", ctx.base)
        .header("Referer", format!("{}/", ctx.base))
}

/// `X-Msh-Version` and the client hints of the configured browser (`docs/kimi-protocol.md` §7.9).
pub(super) fn browser_headers<B>(builder: RequestBuilder<B>, ctx: Context<'_>) -> RequestBuilder<B> {
    ctx.upstream
        .browser()
        .headers()
        .into_iter()
        .fold(builder, |builder, (name, value)| builder.header(name, value))
}

pub(super) fn unary(
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
    method: &str,
    body: &Value,
) -> Result<Value, Error> {
    unary_on(ctx.upstream, ctx, token, who, method, body)
}

/// [`unary`] on the given agents (chat deletions use the one that survives a shutdown).
pub(super) fn unary_on(
    via: http::Via<'_>,
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
    method: &str,
    body: &Value,
) -> Result<Value, Error> {
    let builder: RequestBuilder<WithBody> = via.post(format!("{}/{method}", ctx.base));
    let response = signed(builder, ctx, token, who)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(|e| via.failed(e))?;
    let status = response.status().as_u16();
    let body = http::read_small(response)?;
    if status == 200 {
        serde_json::from_slice(&body).map_err(|e| {
            Error::Upstream(format!("Kimi answered {method} with something that is not JSON: {e}"))
        })
    } else {
        Err(http::error_from_body(status, &body))
    }
}
