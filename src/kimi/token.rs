//! Which kind of Kimi token the user gave, and the claims of a Kimi JWT
//! (`docs/kimi-protocol.md` §2.4).
//!
//! Only the payload is read; nothing is verified (Kimi does that). No single claim decides:
//! the kind follows from the token's lifetime (`exp - iat`), `typ`, `app_id`, `iss` and whether
//! it carries the web client's identity (`device_id`, `ssid`) together, because the 2026 tokens
//! are known only from a few public reports.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::Error;

/// Tokens that live longer than this are refresh tokens or old `kimi-auth` cookies; shorter
/// ones are the 2026 web app's access tokens (about 15 minutes).
const LONG_LIVED_SECS: u64 = 3600;

/// The identity a Connect call carries, sent back as `X-Traffic-Id` and `X-Msh-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectIdentity {
    pub user_id: String,
    pub device_id: String,
    pub session_id: String,
}

/// Where an account lives: Kimi's mainland (kimi.com) or global (kimi.ai) hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Cn,
    Global,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A legacy refresh_token of kimi.moonshot.cn: the REST + SSE API.
    LegacyRefresh,
    /// An old `kimi-auth` cookie: sent to the Connect API as it is until it expires.
    KimiAuth(ConnectIdentity),
    /// A 2026 web `access_token`: sent as it is, but it lives about 15 minutes (`expires`,
    /// Unix seconds).
    WebAccess { identity: ConnectIdentity, expires: u64 },
    /// A 2026 web `refresh_token`: exchanged at the auth host for access tokens; it rotates.
    WebRefresh,
    /// Nothing tells (an opaque string, or a JWT of no known shape): tried as a 2026 refresh
    /// token first, then as a legacy one.
    Unknown,
}

impl TokenKind {
    /// A short name for logs and `/token/check`.
    pub fn name(&self) -> &'static str {
        match self {
            TokenKind::LegacyRefresh => "legacy refresh_token",
            TokenKind::KimiAuth(_) => "kimi-auth",
            TokenKind::WebAccess { .. } => "web access_token",
            TokenKind::WebRefresh => "web refresh_token",
            TokenKind::Unknown => "unknown",
        }
    }
}

/// Decides what kind of token this is (`now` in Unix seconds). A token shaped like a JWT whose
/// payload cannot be read is refused here, without bothering Kimi.
pub fn kind(token: &str, now: u64) -> Result<TokenKind, Error> {
    let looks_like_jwt = token.starts_with("eyJ") && token.split('.').count() == 3;
    if !looks_like_jwt {
        return Ok(TokenKind::Unknown);
    }
    let claims = Claims::of(token).ok_or_else(|| {
        Error::NotAToken(
            "not a Kimi token (not a valid JWT): it looks like one (eyJ…, three parts) but its payload is \
             not a JSON object"
                .into(),
        )
    })?;
    Ok(claims.kind(now))
}

/// The claims of a Kimi JWT, as the kind detection and the Connect headers read them.
#[derive(Debug)]
pub struct Claims(Map<String, Value>);

impl Claims {
    pub fn of(token: &str) -> Option<Claims> {
        claims(token).map(Claims)
    }

    /// A claim as text (Kimi sends some ids as numbers); empty when absent.
    pub fn text(&self, name: &str) -> String {
        match self.0.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    }

    pub fn number(&self, name: &str) -> Option<u64> {
        self.0.get(name)?.as_u64()
    }

    /// The identity headers of a Connect call; a token without `device_id` (the 2026 access
    /// token) gets a stable one derived from its user and session.
    pub fn identity(&self) -> ConnectIdentity {
        let (user_id, session_id) = (self.text("sub"), self.text("ssid"));
        let mut device_id = self.text("device_id");
        if device_id.is_empty() {
            device_id = derived_device_id(&user_id, &session_id);
        }
        ConnectIdentity { user_id, device_id, session_id }
    }

    /// The account's region, when the token says (`region: overseas` is a kimi.ai account).
    pub fn region(&self) -> Option<Region> {
        match self.text("region").as_str() {
            "overseas" | "global" => Some(Region::Global),
            "cn" => Some(Region::Cn),
            _ => None,
        }
    }

    fn long_lived(&self, now: u64) -> bool {
        match (self.number("exp"), self.number("iat")) {
            (Some(exp), Some(iat)) => exp.saturating_sub(iat) > LONG_LIVED_SECS,
            (Some(exp), None) => exp.saturating_sub(now) > LONG_LIVED_SECS,
            // No expiry: not a short-lived token.
            (None, _) => true,
        }
    }

    fn kind(&self, now: u64) -> TokenKind {
        let typ = self.text("typ");
        let web_identity = !self.text("device_id").is_empty() || !self.text("ssid").is_empty();
        let long = self.long_lived(now);
        if typ == "access" && long {
            return TokenKind::KimiAuth(self.identity());
        }
        if !long && typ != "refresh" {
            let expires = self.number("exp").unwrap_or(0);
            return TokenKind::WebAccess { identity: self.identity(), expires };
        }
        if web_identity {
            return TokenKind::WebRefresh;
        }
        if typ == "refresh" && self.text("iss") == "user-center" {
            return TokenKind::LegacyRefresh;
        }
        TokenKind::Unknown
    }
}

/// Nineteen digits derived from the user and session, so that a token without a device id
/// presents the same one on every call and after a restart, like a browser does.
fn derived_device_id(user_id: &str, session_id: &str) -> String {
    let digest = super::sha256::digest(format!("device\0{user_id}\0{session_id}").as_bytes());
    let mut id = String::from("7");
    id.extend(digest.iter().take(18).map(|b| char::from(b'0' + b % 10)));
    id
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`, for messages about a token's expiry.
pub fn utc(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
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

    const NOW: u64 = 1_790_000_000;

    fn jwt(payload: &str) -> String {
        format!("eyJhbGciOiJIUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn kind_names_for_logs() {
        let who =
            ConnectIdentity { user_id: String::new(), device_id: String::new(), session_id: String::new() };
        let names = [
            (TokenKind::LegacyRefresh, "legacy refresh_token"),
            (TokenKind::KimiAuth(who.clone()), "kimi-auth"),
            (TokenKind::WebAccess { identity: who, expires: 0 }, "web access_token"),
            (TokenKind::WebRefresh, "web refresh_token"),
            (TokenKind::Unknown, "unknown"),
        ];
        for (kind, name) in names {
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn only_three_dotted_parts_starting_eyj_look_like_a_jwt() {
        assert_eq!(kind("eyJhbGciOiJIUzI1NiJ9.e30", NOW).unwrap(), TokenKind::Unknown);
        assert_eq!(kind("abc.def.ghi", NOW).unwrap(), TokenKind::Unknown);
        assert!(kind("eyJhbGciOiJIUzI1NiJ9.!!!.c2ln", NOW).is_err(), "a JWT whose payload cannot be read");
    }

    #[test]
    fn regions_and_the_long_lived_bound() {
        assert_eq!(Claims::of(&jwt(r#"{"region":"cn"}"#)).unwrap().region(), Some(Region::Cn));
        assert_eq!(Claims::of(&jwt(r#"{"region":"overseas"}"#)).unwrap().region(), Some(Region::Global));
        assert_eq!(Claims::of(&jwt(r#"{"region":"mars"}"#)).unwrap().region(), None);
        // Exactly an hour between iat and exp is short-lived; a second more is long-lived.
        let hour = jwt(&format!(r#"{{"typ":"access","iat":{NOW},"exp":{}}}"#, NOW + 3600));
        assert!(matches!(kind(&hour, NOW).unwrap(), TokenKind::WebAccess { .. }));
        let longer = jwt(&format!(r#"{{"typ":"access","iat":{NOW},"exp":{}}}"#, NOW + 3601));
        assert!(matches!(kind(&longer, NOW).unwrap(), TokenKind::KimiAuth(_)));
    }

    #[test]
    fn a_session_id_alone_marks_a_web_refresh_token() {
        let token = jwt(&format!(r#"{{"typ":"refresh","ssid":"s1","iat":{NOW},"exp":{}}}"#, NOW + 86_400));
        assert_eq!(kind(&token, NOW).unwrap(), TokenKind::WebRefresh);
        let token =
            jwt(&format!(r#"{{"typ":"refresh","device_id":"7","iat":{NOW},"exp":{}}}"#, NOW + 86_400));
        assert_eq!(kind(&token, NOW).unwrap(), TokenKind::WebRefresh);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_868_799), "2000-02-29 23:59:59 UTC");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06:40 UTC");
        // Century days: 2100 is not a leap year, 2400 is (the last day of a 400-year era).
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
        assert_eq!(utc(13_574_606_400), "2400-02-29 12:00:00 UTC");
        assert_eq!(utc(13_574_649_600), "2400-03-01 00:00:00 UTC");
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
    fn an_old_kimi_auth_cookie() {
        let token = jwt(&format!(
            r#"{{"iss":"user-center","typ":"access","app_id":"kimi","sub":"u1","device_id":7651804114103329291,
                "ssid":"17","iat":{},"exp":{}}}"#,
            NOW - 86_400,
            NOW + 29 * 86_400
        ));
        let identity = ConnectIdentity {
            user_id: "u1".into(),
            device_id: "7651804114103329291".into(),
            session_id: "17".into(),
        };
        assert_eq!(kind(&token, NOW).unwrap(), TokenKind::KimiAuth(identity));
        // Without `iat`, a far `exp` says the same; without `exp`, nothing says it is short.
        let no_iat = jwt(r#"{"typ":"access","app_id":"kimi","sub":"u1","exp":4102444800}"#);
        assert!(matches!(kind(&no_iat, NOW).unwrap(), TokenKind::KimiAuth(_)));
        let no_exp = jwt(r#"{"typ":"access","app_id":"kimi","sub":"u1"}"#);
        assert!(matches!(kind(&no_exp, NOW).unwrap(), TokenKind::KimiAuth(_)));
    }

    #[test]
    fn a_2026_web_access_token_lives_minutes_and_gets_a_stable_device_id() {
        let token = jwt(&format!(
            r#"{{"iss":"account-nt","typ":"access","sub":"u2","ssid":"99","iat":{NOW},"exp":{}}}"#,
            NOW + 900
        ));
        let TokenKind::WebAccess { identity, expires } = kind(&token, NOW).unwrap() else { panic!() };
        assert_eq!(expires, NOW + 900);
        assert_eq!((identity.user_id.as_str(), identity.session_id.as_str()), ("u2", "99"));
        assert_eq!(identity.device_id.len(), 19);
        assert!(identity.device_id.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(Claims::of(&token).unwrap().identity(), identity, "the same on every call");
        // Also without `typ`, and with `app_id: kimi`: the lifetime says access token.
        let bare = jwt(&format!(r#"{{"sub":"u2","app_id":"kimi","iat":{NOW},"exp":{}}}"#, NOW + 900));
        assert!(matches!(kind(&bare, NOW).unwrap(), TokenKind::WebAccess { .. }));
    }

    #[test]
    fn a_2026_web_refresh_token() {
        let payload = |extra: &str| {
            format!(
                r#"{{"sub":"u3","ssid":"5","device_id":"88",{extra}"iat":{NOW},"exp":{}}}"#,
                NOW + 90 * 86_400
            )
        };
        for extra in [r#""typ":"refresh","#, r#""typ":"refresh","app_id":"kimi","#, ""] {
            assert_eq!(kind(&jwt(&payload(extra)), NOW).unwrap(), TokenKind::WebRefresh, "{extra}");
        }
        let claims = Claims::of(&jwt(&payload(r#""region":"overseas","#))).unwrap();
        assert_eq!(claims.region(), Some(Region::Global));
        assert_eq!(Claims::of(&jwt(&payload(""))).unwrap().region(), None);
    }

    #[test]
    fn a_legacy_refresh_token() {
        let token = jwt(&format!(
            r#"{{"iss":"user-center","typ":"refresh","sub":"cner0h2lnl9577s32ing","space_id":"s","iat":{NOW},"exp":{}}}"#,
            NOW + 90 * 86_400
        ));
        assert_eq!(kind(&token, NOW).unwrap(), TokenKind::LegacyRefresh);
    }

    #[test]
    fn tokens_of_no_known_shape_are_unknown() {
        assert_eq!(kind("cpmt_opaque-refresh-token", NOW).unwrap(), TokenKind::Unknown);
        assert_eq!(kind("rt-good-1", NOW).unwrap(), TokenKind::Unknown);
        let odd = jwt(&format!(r#"{{"typ":"refresh","sub":"u","iat":{NOW},"exp":{}}}"#, NOW + 86_400 * 9));
        assert_eq!(kind(&odd, NOW).unwrap(), TokenKind::Unknown);
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06:40 UTC");
        // Century days: 2100 is not a leap year, 2400 is (the last day of a 400-year era).
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
        assert_eq!(utc(13_574_606_400), "2400-02-29 12:00:00 UTC");
        assert_eq!(utc(13_574_649_600), "2400-03-01 00:00:00 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }

    #[test]
    fn malformed_jwts_are_refused_clearly() {
        for token in ["eyJhbGciOiJIUzI1NiJ9.!!!.sig", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig"] {
            let Err(Error::NotAToken(message)) = kind(token, NOW) else { panic!("{token}") };
            assert!(message.contains("JWT"));
        }
    }

    #[test]
    fn a_jwt_shaped_non_jwt_is_not_a_kimi_token_not_refused_by_kimi() {
        let Err(error) = kind("eyJabc.def.ghi", NOW) else { panic!("eyJabc.def.ghi is no JWT") };
        let message = error.to_string();
        assert!(message.starts_with("not a Kimi token (not a valid JWT)"), "{message}");
        assert!(!message.contains("Kimi refused"), "{message}");
        assert_eq!(error.kind(), crate::chat::ErrorKind::Authentication);
    }

    #[test]
    fn malformed_tokens_have_no_claims() {
        for token in ["", "abc", "a.b", "a.b.c.d", "a.!!!.c", &jwt("[1]"), &jwt("not json")] {
            assert_eq!(claims(token), None, "{token}");
        }
    }
}
