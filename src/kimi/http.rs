//! The HTTP client all backends share: one ureq agent (pooled connections), timeouts from the
//! configuration, and the translation of transport failures and error bodies into [`Error`].

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use ureq::Agent;
use ureq::http::Response;

use super::Error;
use super::browser::Browser;

/// Longest a chat deletion may take.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest non-streamed upstream body read (token refresh, user, chat creation...).
const MAX_JSON_BODY: u64 = 1024 * 1024;

pub struct Upstream {
    agent: Agent,
    /// Deletes chats once [`Upstream::interrupt`] stopped `agent` (before, deletions reuse the
    /// connections `agent` pools, as a chat's own stream just left one).
    cleanup: Agent,
    interrupted: AtomicBool,
    /// Attachment fetches: public addresses only, and any address (`--allow-private-urls`).
    fetch_public: Agent,
    fetch_any: Agent,
    /// Who the calls say they come from: Kimi's web API is made for browsers.
    browser: Browser,
}

impl Upstream {
    /// `timeout` bounds both the wait for response headers and every silence while a body
    /// streams; the total length of a stream is not bounded (research answers run minutes).
    /// Every agent sends `browser`'s User-Agent.
    pub fn new(timeout: Duration, browser: &Browser) -> Self {
        let builder = || {
            Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_recv_response(Some(timeout))
                .timeout_per_read(Some(timeout))
                .user_agent(browser.user_agent.as_str())
                // Buffers sized for hundreds of concurrent streams rather than for bulk downloads
                // (ureq's default is 128 KiB each way per connection). The output buffer must hold
                // a request head (a kimi-auth JWT appears twice), the input one a response head.
                .input_buffer_size(8 * 1024)
                .output_buffer_size(8 * 1024)
                .max_response_header_size(8 * 1024)
                .max_idle_connections_per_host(32)
        };
        Upstream {
            agent: builder().build().new_agent(),
            // A deletion is small: it need not wait long, and it bounds how long a shutdown
            // waits for the chats of interrupted requests.
            cleanup: builder().timeout_global(Some(CLEANUP_TIMEOUT)).build().new_agent(),
            interrupted: AtomicBool::new(false),
            fetch_public: super::attachment::fetch_agent(false, &browser.user_agent),
            fetch_any: super::attachment::fetch_agent(true, &browser.user_agent),
            browser: browser.clone(),
        }
    }

    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The agent that deletes chats: the shared one, or after [`Upstream::interrupt`] the one
    /// kept for deletions.
    pub fn cleanup(&self) -> &Agent {
        if self.interrupted.load(Ordering::Acquire) { &self.cleanup } else { &self.agent }
    }

    /// The browser identity whose headers each call adds (the agents send its User-Agent).
    pub fn browser(&self) -> &Browser {
        &self.browser
    }

    pub fn fetch_agent(&self, allow_private: bool) -> &Agent {
        if allow_private { &self.fetch_any } else { &self.fetch_public }
    }

    /// Ends every upstream call in flight at once (a blocked read fails) and refuses new ones,
    /// except chat deletions: at shutdown, so the chats of interrupted requests are deleted.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
        for agent in [&self.agent, &self.fetch_public, &self.fetch_any] {
            agent.clone().shutdown();
        }
    }
}

/// Reads a small JSON body, or turns an error status into an [`Error`].
pub fn read_json<T: for<'de> Deserialize<'de>>(response: Response<ureq::Body>) -> Result<T, Error> {
    if !response.status().is_success() {
        return Err(error_of(response));
    }
    let body = read_small(response)?;
    serde_json::from_slice(&body).map_err(|e| Error::Upstream(format!("unexpected answer from Kimi: {e}")))
}

/// Reads a small body whole (bounded by [`MAX_JSON_BODY`]).
pub fn read_small(response: Response<ureq::Body>) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    response.into_body().into_reader().take(MAX_JSON_BODY).read_to_end(&mut body).map_err(|e| from_io(&e))?;
    Ok(body)
}

/// The error an unsuccessful response stands for, with the wait its `Retry-After` header asks
/// (in seconds) on a rate limit or an overload.
pub fn error_of(response: Response<ureq::Body>) -> Error {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    let body = match read_small(response) {
        Ok(body) => body,
        Err(error) => return error,
    };
    match error_from_body(status, &body) {
        Error::RateLimited(why, None) => Error::RateLimited(why, retry_after),
        Error::Overloaded(why, None) => Error::Overloaded(why, retry_after),
        other => other,
    }
}

/// The legacy error body `{"error_type","message"}`; Connect's `{"code","message"}` is read too.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Maps an upstream error status and body onto [`Error`].
pub fn error_from_body(status: u16, body: &[u8]) -> Error {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = if parsed.message.is_empty() { format!("HTTP {status}") } else { parsed.message.clone() };
    classify(status, if parsed.error_type.is_empty() { &parsed.code } else { &parsed.error_type }, message)
}

/// Maps an upstream error type (legacy `error_type` or Connect `code`) and status onto [`Error`].
pub fn classify(status: u16, error_type: &str, message: String) -> Error {
    match error_type {
        "auth.token.invalid" | "unauthenticated" | "permission_denied" => {
            return Error::Unauthorized(message);
        }
        "chat.user_stream_pushing" => {
            return Error::RateLimited(
                format!("another answer is streaming on this Kimi account ({message})"),
                None,
            );
        }
        "chat.not_found" | "not_found" => return Error::NotFound(message),
        "resource_exhausted" => return Error::RateLimited(message, None),
        "invalid_argument" => return Error::Rejected(message),
        kind if kind.contains("token_length")
            || kind.contains("too_long")
            || kind.contains("context_length") =>
        {
            return Error::TooLong(message);
        }
        "openai.completion.stream" | "unavailable" | "deadline_exceeded" => {
            return Error::Overloaded(message, None);
        }
        _ => {}
    }
    match status {
        401 | 403 => Error::Unauthorized(message),
        404 => Error::NotFound(message),
        429 => Error::RateLimited(message, None),
        400..=499 => Error::Rejected(message),
        503 => Error::Overloaded(message, None),
        _ if error_type.is_empty() => Error::Upstream(format!("Kimi answered HTTP {status}: {message}")),
        _ => Error::Upstream(format!("{error_type}: {message}")),
    }
}

/// Maps a ureq failure (connect, send, headers) onto [`Error`].
pub fn from_ureq(error: ureq::Error) -> Error {
    match error {
        ureq::Error::Timeout(_) => Error::Timeout,
        ureq::Error::Io(e) => from_io(&e),
        other => Error::Transport(other.to_string()),
    }
}

/// Maps a failed read of a streaming body onto [`Error`].
pub fn from_io(error: &io::Error) -> Error {
    if matches!(error.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        return Error::Timeout;
    }
    if let Some(inner) = error.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
        if matches!(inner, ureq::Error::Timeout(_)) {
            return Error::Timeout;
        }
        return Error::Transport(inner.to_string());
    }
    Error::Transport(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_map_to_kinds() {
        let body = br#"{"error_type":"auth.token.invalid","message":"expired"}"#;
        assert_eq!(error_from_body(401, body), Error::Unauthorized("expired".into()));
        let body = br#"{"error_type":"chat.user_stream_pushing","message":"busy"}"#;
        assert!(matches!(error_from_body(400, body), Error::RateLimited(..)));
        assert!(matches!(error_from_body(502, b"<html>"), Error::Upstream(m) if m.contains("HTTP 502")));
        assert!(matches!(error_from_body(503, b""), Error::Overloaded(..)));
        assert!(matches!(error_from_body(429, b"{}"), Error::RateLimited(..)));
        let body = br#"{"code":"unauthenticated","message":"token expired"}"#;
        assert!(matches!(error_from_body(401, body), Error::Unauthorized(_)));
    }

    #[test]
    fn kimis_length_error_is_a_context_length_error() {
        let body = br#"{"error_type":"openai.completion.token_length_too_long","message":"too long"}"#;
        assert_eq!(error_from_body(400, body), Error::TooLong("too long".into()));
        assert_eq!(Error::TooLong("x".into()).kind(), crate::chat::ErrorKind::ContextLength);
    }

    #[test]
    fn timeouts_are_recognised_in_io_errors() {
        assert_eq!(from_io(&io::Error::new(io::ErrorKind::TimedOut, "t")), Error::Timeout);
        assert!(matches!(from_io(&io::Error::new(io::ErrorKind::ConnectionReset, "r")), Error::Transport(_)));
    }
}
