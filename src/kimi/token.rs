//! Reading the claims of a Kimi JWT. Only the payload is read; nothing is verified (Kimi does
//! that), and a malformed token simply has no claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

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
    fn malformed_tokens_have_no_claims() {
        for token in ["", "abc", "a.b", "a.b.c.d", "a.!!!.c", &jwt("[1]"), &jwt("not json")] {
            assert_eq!(claims(token), None, "{token}");
        }
    }
}
