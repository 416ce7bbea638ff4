//! Which Kimi API a token belongs to, and the claims of a Kimi JWT.
//!
//! Only the payload is read; nothing is verified (Kimi does that). A `kimi-auth` JWT (payload
//! `typ: access`, `app_id: kimi`) goes to the Connect API; anything else is a legacy
//! refresh_token (`docs/kimi-protocol.md` §2.4).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::Error;

/// The identity a Connect token carries, sent back as `X-Traffic-Id` and `X-Msh-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectIdentity {
    pub user_id: String,
    pub device_id: String,
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A legacy refresh_token (REST + SSE API).
    Refresh,
    /// A kimi-auth JWT (Connect RPC API).
    Connect(ConnectIdentity),
}

/// Decides which API a token is for. A token shaped like a JWT whose payload cannot be read is
/// refused here, without bothering Kimi.
pub fn kind(token: &str) -> Result<TokenKind, Error> {
    let looks_like_jwt = token.starts_with("eyJ") && token.split('.').count() == 3;
    if !looks_like_jwt {
        return Ok(TokenKind::Refresh);
    }
    let claims = claims(token).ok_or_else(|| {
        Error::Unauthorized("the token looks like a JWT but its payload cannot be read".into())
    })?;
    let text = |name: &str| match claims.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if text("typ") == "access" && text("app_id") == "kimi" {
        Ok(TokenKind::Connect(ConnectIdentity {
            user_id: text("sub"),
            device_id: text("device_id"),
            session_id: text("ssid"),
        }))
    } else {
        Ok(TokenKind::Refresh)
    }
}

/// The JSON payload of a JWT (`header.payload.signature`, base64url with or without padding).
pub fn claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A numeric claim, such as `exp`.
pub fn claim_u64(token: &str, name: &str) -> Option<u64> {
    claims(token)?.get(name)?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!("eyJhbGciOiJIUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn reads_claims() {
        let token = jwt(r#"{"typ":"access","exp":1700000000}"#);
        assert_eq!(claim_u64(&token, "exp"), Some(1_700_000_000));
        assert_eq!(claims(&token).unwrap()["typ"], "access");
    }

    #[test]
    fn padded_payload_is_accepted() {
        let token = jwt(r#"{"a":1}"#).replace(".c2ln", "==.c2ln");
        assert_eq!(claim_u64(&token, "a"), Some(1));
    }

    #[test]
    fn token_kinds() {
        let connect =
            jwt(r#"{"typ":"access","app_id":"kimi","sub":"u1","device_id":7651804114103329291,"ssid":"17"}"#);
        assert_eq!(
            kind(&connect).unwrap(),
            TokenKind::Connect(ConnectIdentity {
                user_id: "u1".into(),
                device_id: "7651804114103329291".into(),
                session_id: "17".into()
            })
        );
        assert_eq!(kind(&jwt(r#"{"typ":"refresh","sub":"u1"}"#)).unwrap(), TokenKind::Refresh);
        assert_eq!(kind(&jwt(r#"{"typ":"access","sub":"u1"}"#)).unwrap(), TokenKind::Refresh);
        assert_eq!(kind("cpmt_opaque-refresh-token").unwrap(), TokenKind::Refresh);
    }

    #[test]
    fn malformed_jwts_are_refused_clearly() {
        for token in ["eyJhbGciOiJIUzI1NiJ9.!!!.sig", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig"] {
            let Err(Error::Unauthorized(message)) = kind(token) else { panic!("{token}") };
            assert!(message.contains("JWT"));
        }
    }

    #[test]
    fn malformed_tokens_have_no_claims() {
        for token in ["", "abc", "a.b", "a.b.c.d", "a.!!!.c", &jwt("[1]"), &jwt("not json")] {
            assert_eq!(claims(token), None, "{token}");
        }
    }
}
