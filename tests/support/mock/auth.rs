//! Tokens and who they belong to: JWTs minted and read (the `mock` claim that scripts an
//! account), the 2026 web refresh at the auth host with its rotating refresh tokens, and the
//! identity check of every Connect call.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::http::{Flow, Request, bearer, connect_error, json_response, request_header};
use super::script::Fault;
use super::state::{State, fault_applies};

/// The claims of a JWT, if it is one.
pub(super) fn jwt_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok().filter(Value::is_object)
}

/// A JWT with these claims (the mock signs nothing; the server verifies nothing).
pub fn mint_jwt(claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(claims.to_string()),
        b64.encode("sig")
    )
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `AuthService/RefreshToken`: a new access token and a new refresh token; the one presented is
/// spent. Refused: tokens that are no web refresh JWT, users whose id starts with `expired`,
/// the `RefreshUnauthorized` fault, revoked sessions, and spent tokens (which revoke).
pub(super) fn web_refresh(state: &Mutex<State>, request: Request, body: &Value) -> Flow {
    let token = body["refresh_token"].as_str().or_else(|| body["refreshToken"].as_str()).unwrap_or_default();
    let mut st = state.lock().unwrap();
    st.stats.web_refreshes += 1;
    st.stats.web_refresh_tokens.push(token.to_string());
    let claims = jwt_claims(token).unwrap_or_default();
    let (sub, ssid) =
        (claims["sub"].as_str().unwrap_or_default(), claims["ssid"].as_str().unwrap_or_default());
    let refused = sub.is_empty()
        || ssid.is_empty()
        || claims["typ"] == "access"
        || sub.starts_with("expired")
        || st.web.revoked.contains(ssid)
        || (st.script.fault == Some(Fault::RefreshUnauthorized) && fault_applies(&mut st).is_some());
    if refused {
        drop(st);
        return connect_error(request, 401, "unauthenticated");
    }
    let current = st.web.current.get(ssid).cloned();
    if st.web.spent.contains(token) || current.as_ref().is_some_and(|c| c != token) {
        st.web.revoked.insert(ssid.to_string());
        st.stats.sessions_revoked += 1;
        drop(st);
        return connect_error(request, 401, "unauthenticated");
    }
    st.next_id += 1;
    let now = unix_now();
    let mut next = claims.clone();
    next["jti"] = json!(format!("rt-{}", st.next_id));
    next["iat"] = json!(now);
    next["exp"] = json!(now + 90 * 86_400);
    let next = mint_jwt(&next);
    let mut access = json!({"iss": "account-nt", "typ": "access", "sub": sub, "ssid": ssid,
        "jti": format!("at-{}", st.next_id), "iat": now, "exp": now + st.script.access_lifetime_secs});
    if !claims["mock"].is_null() {
        access["mock"] = claims["mock"].clone();
    }
    let access = mint_jwt(&access);
    st.web.spent.insert(token.to_string());
    st.web.current.insert(ssid.to_string(), next.clone());
    let device =
        claims["device_id"].as_str().map(str::to_string).unwrap_or_else(|| claims["device_id"].to_string());
    st.web.devices.insert(ssid.to_string(), device);
    drop(st);
    json_response(request, 200, json!({"accessToken": access, "refreshToken": next}))
}

/// The `sub` of the access token in `Authorization`: a kimi-auth JWT, or a 2026 web access
/// token that has not expired and comes with the identity headers of its login (session and
/// user, and the device of the refresh token it was minted from). `Err` for anything else,
/// and for users whose id starts with `expired`.
pub(super) fn connect_identity(state: &Mutex<State>, request: &Request) -> Result<String, ()> {
    let claims = jwt_claims(&bearer(request)).ok_or(())?;
    let text =
        |name: &str| claims[name].as_str().map(str::to_string).unwrap_or_else(|| claims[name].to_string());
    let sub = claims["sub"].as_str().unwrap_or_default();
    if claims["typ"] != "access" || sub.is_empty() || sub.starts_with("expired") {
        return Err(());
    }
    if claims["app_id"] == "kimi" && claims["iss"] != "account-nt" {
        return Ok(sub.to_string());
    }
    let expired = claims["exp"].as_u64().is_none_or(|exp| exp <= unix_now());
    let header = |name: &str| request_header(request, name).unwrap_or_default();
    let ssid = text("ssid");
    let device = state.lock().unwrap().web.devices.get(&ssid).cloned();
    let device_ok = device.is_none_or(|d| d == header("X-Msh-Device-Id"));
    if expired || header("X-Msh-Session-Id") != ssid || header("X-Traffic-Id") != sub || !device_ok {
        return Err(());
    }
    Ok(sub.to_string())
}

/// The `mock` claim of the bearer token: per-account faults, `plan`, `catalogue`, `credits_used`.
pub(super) fn mock_claim(request: &Request) -> Value {
    jwt_claims(&bearer(request)).map(|claims| claims["mock"].clone()).unwrap_or(Value::Null)
}
