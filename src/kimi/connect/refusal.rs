//! What Kimi's refusals on the Connect stream mean (`docs/kimi-protocol.md` §7.5): an error code,
//! a `REASON_…` name and a message in, the one [`Error`] of the Kimi side out, with a message
//! that says what to do. Pure.

use crate::kimi::{Error, drift, http};

/// A free account asked for an agent model (K3, K2.8, Swarm, research).
const FREE_USER_OVERLOADED: &str = "REASON_SERVER_OVERLOADED_FOR_FREE_USER";
/// Another chat of the account is still generating.
const CHAT_IN_PROGRESS: &str = "REASON_CHAT_IN_PROGRESS";
/// The conversation is longer than the model takes; Kimi locks the chat.
const TOO_LONG: &str = "REASON_TOKEN_LENGTH_TOO_LONG";

/// The error for a refusal; `model` is the display name of the model that was asked for.
pub fn refusal(code: &str, reason: &str, message: String, model: &str) -> Error {
    match reason {
        FREE_USER_OVERLOADED => Error::PlanRequired(format!(
            "Kimi serves {model} only to paid plans now (it answered: {message}); use the model `kimi` \
             (Instant), which works on a free account, or a token of an account with a Kimi subscription"
        )),
        CHAT_IN_PROGRESS => Error::ChatInProgress(message),
        TOO_LONG => Error::TooLong(format!("{message}; start a new conversation or shorten it")),
        _ if code.is_empty() => {
            note_unknown(reason);
            Error::Refused(message)
        }
        _ if message.contains("Chat session in progress") => Error::ChatInProgress(message),
        _ => {
            note_unknown(reason);
            if !super::event::KNOWN_CODES.contains(&code) {
                drift::note("code", code);
            }
            http::classify(200, code, message)
        }
    }
}

/// Reasons this server knows besides the three it acts on (`docs/kimi-protocol.md` §7.5).
const KNOWN_REASONS: &[&str] = &["REASON_MOCK"];

fn note_unknown(reason: &str) {
    if !reason.is_empty() && !KNOWN_REASONS.contains(&reason) {
        drift::note("reason", reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_says_what_to_do() {
        let free = refusal("resource_exhausted", FREE_USER_OVERLOADED, "Too many people".into(), "K3");
        let Error::PlanRequired(why) = free else { panic!("{free:?}") };
        assert!(why.contains("K3") && why.contains("`kimi`") && why.contains("paid"), "{why}");
        assert!(matches!(
            refusal("resource_exhausted", CHAT_IN_PROGRESS, "busy".into(), "K3"),
            Error::ChatInProgress(_)
        ));
        assert!(matches!(
            refusal(
                "resource_exhausted",
                "",
                "Chat session in progress. Please try again later.".into(),
                "K3"
            ),
            Error::ChatInProgress(_)
        ));
        let long = refusal("", TOO_LONG, "getting too long".into(), "Instant");
        assert!(matches!(&long, Error::TooLong(why) if why.contains("new conversation")), "{long:?}");
    }

    #[test]
    fn an_unknown_reason_keeps_kimis_message() {
        let error = refusal("", "REASON_SOMETHING_NEW", "Kimi says no".into(), "Instant");
        assert_eq!(error, Error::Refused("Kimi says no".into()));
        assert!(
            drift::seen().iter().any(|(what, name, _)| *what == "reason" && name == "REASON_SOMETHING_NEW")
        );
        let coded = refusal("resource_exhausted", "REASON_OTHER_LIMIT", "slow down".into(), "Instant");
        assert!(matches!(coded, Error::RateLimited(..)), "{coded:?}");
        let odd = refusal("brand_new_code", "", "hm".into(), "Instant");
        assert!(matches!(odd, Error::Upstream(_)), "{odd:?}");
        assert!(drift::seen().iter().any(|(what, name, _)| *what == "code" && name == "brand_new_code"));
    }
}
