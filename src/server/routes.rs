//! Routing and the handlers of each endpoint.

use std::time::Instant;

use serde_json::json;
use tiny_http::{Method, Request};

use super::App;
use super::exchange::{self, EventStream};
use crate::chat::{self, CitationText, ErrorKind, MODELS};
use crate::dialect::{Aggregator, openai};
use crate::kimi::Backend;

const WELCOME_PAGE: &str = include_str!("welcome.html");

/// What a handler reports for the request's log line.
struct Outcome {
    status: u16,
    dialect: &'static str,
    backend: Backend,
    chat_id: Option<String>,
}

impl Outcome {
    fn plain(status: u16) -> Self {
        Outcome { status, dialect: "-", backend: Backend::None, chat_id: None }
    }
}

/// Serves one request and logs one line for it (never a token: the query is left out).
pub fn handle(app: &App, request: Request) {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let outcome = route(app, request, &method, &path);
    eprintln!(
        "{method} {path} {} {} {} {}ms chat={}",
        outcome.dialect,
        outcome.backend.name(),
        outcome.status,
        started.elapsed().as_millis(),
        outcome.chat_id.as_deref().unwrap_or("-"),
    );
}

fn route(app: &App, request: Request, method: &Method, path: &str) -> Outcome {
    let allowed: &[Method] = match path {
        "/" => &[Method::Get, Method::Head],
        "/ping" | "/v1/models" => &[Method::Get],
        "/v1/chat/completions" | "/token/check" => &[Method::Post],
        _ if path.starts_with("/v1/models/") => &[Method::Get],
        _ => {
            if *method == Method::Options {
                return preflight(request);
            }
            let error = chat::Error::new(ErrorKind::NotFound, format!("no route for {path}"));
            exchange::respond_error(request, &error, &[]);
            return Outcome::plain(404);
        }
    };
    if *method == Method::Options {
        return preflight(request);
    }
    if !allowed.contains(method) {
        let error =
            chat::Error::new(ErrorKind::MethodNotAllowed, format!("{method} is not allowed on {path}"));
        exchange::respond_error(request, &error, &[("Allow", &allowed_list(allowed))]);
        return Outcome::plain(405);
    }
    match path {
        "/" => {
            exchange::respond(
                request,
                200,
                "text/html; charset=utf-8",
                WELCOME_PAGE.as_bytes().to_vec(),
                &[],
            );
            Outcome::plain(200)
        }
        "/ping" => {
            exchange::respond(request, 200, "text/plain", b"pong".to_vec(), &[]);
            Outcome::plain(200)
        }
        "/v1/models" => {
            let data: Vec<_> = MODELS.iter().map(|(id, description)| model_object(id, description)).collect();
            exchange::respond_json(
                request,
                200,
                json!({"object": "list", "data": data}).to_string().into_bytes(),
            );
            Outcome::plain(200)
        }
        "/v1/chat/completions" => chat_completions(app, request),
        "/token/check" => token_check(app, request),
        _ => {
            let id = &path["/v1/models/".len()..];
            let description = MODELS.iter().find(|(name, _)| *name == id).map_or("", |(_, d)| d);
            exchange::respond_json(request, 200, model_object(id, description).to_string().into_bytes());
            Outcome::plain(200)
        }
    }
}

fn allowed_list(methods: &[Method]) -> String {
    let names: Vec<String> = methods.iter().map(ToString::to_string).collect();
    names.join(", ")
}

fn preflight(request: Request) -> Outcome {
    exchange::respond(request, 204, "text/plain", Vec::new(), &[("Access-Control-Max-Age", "86400")]);
    Outcome::plain(204)
}

fn model_object(id: &str, description: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "kimi-free-api", "description": description})
}

/// Reads the credential and body every chat endpoint needs, answering the failure itself.
fn credential_and_body(app: &App, request: &mut Request) -> Result<(String, Vec<u8>), chat::Error> {
    let body = exchange::read_body(request, app.config.max_body_bytes)?;
    let credential = exchange::credential(request).ok_or_else(|| {
        chat::Error::new(ErrorKind::Authentication, "no Kimi token: send it as `Authorization: Bearer TOKEN`")
    })?;
    Ok((credential, body))
}

fn chat_completions(app: &App, mut request: Request) -> Outcome {
    let dialect = "openai";
    let parsed = match credential_and_body(app, &mut request).and_then(|(c, b)| Ok((c, openai::parse(&b)?))) {
        Ok(parsed) => parsed,
        Err(error) => {
            exchange::respond_error(request, &error, &[]);
            return Outcome { status: error.kind.status(), dialect, backend: Backend::None, chat_id: None };
        }
    };
    let (credential, parsed) = parsed;
    let silent = parsed.chat.mode.silent;
    if parsed.chat.stream {
        let mut stream = EventStream::new(request, openai::Stream::new(&parsed));
        let (backend, result) =
            app.kimi.chat(&credential, &parsed.chat, &mut CitationText::new(&mut stream, true, silent));
        let chat_id = stream.conversation_id.clone();
        let status = match result {
            Ok(()) => {
                stream.finish();
                200
            }
            Err(error) => stream.fail(&error.into()),
        };
        Outcome { status, dialect, backend, chat_id }
    } else {
        let mut sink = Collector { aggregator: openai::Complete::new(&parsed), chat_id: None };
        let (backend, result) =
            app.kimi.chat(&credential, &parsed.chat, &mut CitationText::new(&mut sink, false, silent));
        let status = match result {
            Ok(()) => {
                exchange::respond_json(request, 200, sink.aggregator.body());
                200
            }
            Err(error) => {
                let error = chat::Error::from(error);
                exchange::respond_error(request, &error, &[]);
                error.kind.status()
            }
        };
        Outcome { status, dialect, backend, chat_id: sink.chat_id }
    }
}

/// Feeds a non-streaming aggregator.
struct Collector<A> {
    aggregator: A,
    chat_id: Option<String>,
}

impl<A: Aggregator> chat::Sink for Collector<A> {
    fn send(&mut self, event: chat::Event) -> Result<(), chat::Disconnected> {
        if let chat::Event::ConversationId(id) = &event {
            self.chat_id = Some(id.clone());
        }
        self.aggregator.event(event);
        Ok(())
    }
}

fn token_check(app: &App, mut request: Request) -> Outcome {
    #[derive(serde::Deserialize)]
    struct Body {
        token: String,
    }
    let parsed = exchange::read_body(&mut request, app.config.max_body_bytes).and_then(|body| {
        serde_json::from_slice::<Body>(&body)
            .map_err(|e| chat::Error::invalid(format!("expected {{\"token\": \"...\"}}: {e}")))
    });
    match parsed {
        Ok(body) => {
            let live = app.kimi.check_token(&body.token);
            exchange::respond_json(request, 200, json!({ "live": live }).to_string().into_bytes());
            Outcome::plain(200)
        }
        Err(error) => {
            exchange::respond_error(request, &error, &[]);
            Outcome::plain(error.kind.status())
        }
    }
}
