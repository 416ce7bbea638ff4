//! `POST /doctor`: the doctor's steps (`crate::doctor`) run by the server on its own accounts,
//! with the login cache that serves its chats, so that checking a login never means a second
//! process rotating it (`kimi-free-api doctor --server URL` asks for this). In server-pool mode
//! the caller presents one of the API keys and every account of the pool is checked in turn;
//! in pass-through mode the caller's key is the token (or comma list) to check. Without either,
//! a 401 in the OpenAI shape that says what to send. The answer is `{"accounts": [REPORT...]}`,
//! one report per account (`doctor::Report`: its fingerprint and its lines, never a token).

use serde_json::json;
use tiny_http::Request;

use super::{App, exchange, routes};
use crate::dialect::Dialect;
use crate::doctor::{self, Report};
use crate::kimi::Credential;

/// Serves `POST /doctor`; returns the status.
pub fn serve(app: &App, mut request: Request) -> u16 {
    let credential = match routes::credential_and_body(app, &mut request, Dialect::OpenAi) {
        Ok((credential, _, _)) => credential,
        Err(error) => {
            exchange::respond_error(request, Dialect::OpenAi, &error, &[]);
            return Dialect::OpenAi.error_response(&error).0;
        }
    };
    let credential = credential.as_deref().map_or(Credential::Pool, Credential::Tokens);
    // The server is the process that uses these logins: renewing one here is what a chat would do.
    let reports: Vec<Report> = app
        .kimi
        .tokens_of(credential)
        .iter()
        .map(|token| doctor::check(&app.kimi, &app.tools, token, true, &mut |_| {}))
        .collect();
    let body = json!({"accounts": reports});
    exchange::respond_json(request, 200, body.to_string().into_bytes());
    200
}
