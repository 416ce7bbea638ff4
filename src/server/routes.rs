//! Routing and the handlers of each endpoint.

use std::time::Instant;

use serde_json::json;
use tiny_http::{Method, Request};

use super::App;
use super::exchange::{self, EventStream};
use crate::chat::{self, CitationText, ErrorKind, MODELS};
use crate::dialect::{Aggregator, Answer, Dialect, StreamRenderer, anthropic, gemini, openai};
use crate::kimi::Backend;

const WELCOME_PAGE: &str = include_str!("welcome.html");

/// What a handler reports for the request's log line.
struct Outcome {
    status: u16,
    dialect: Option<Dialect>,
    backend: Backend,
    chat_id: Option<String>,
}

impl Outcome {
    fn plain(status: u16) -> Self {
        Outcome { status, dialect: None, backend: Backend::None, chat_id: None }
    }

    fn failed(dialect: Dialect, error: &chat::Error) -> Self {
        Outcome {
            status: dialect.error_response(error).0,
            dialect: Some(dialect),
            backend: Backend::None,
            chat_id: None,
        }
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
        outcome.dialect.map_or("-", Dialect::name),
        outcome.backend.name(),
        outcome.status,
        started.elapsed().as_millis(),
        outcome.chat_id.as_deref().unwrap_or("-"),
    );
}

/// The dialect a path belongs to, for answers given before routing (such as a full queue).
pub fn dialect_for_path(path: &str) -> Dialect {
    if path.starts_with("/v1/messages") {
        Dialect::Anthropic
    } else if path.starts_with("/v1beta/") || path.contains(':') {
        Dialect::Gemini
    } else {
        Dialect::OpenAi
    }
}

/// What a Gemini model path asks for: `models/{model}` or `models/{model}:{action}`.
fn gemini_target(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"))?;
    Some(match rest.rsplit_once(':') {
        Some((model, action)) => (model, Some(action)),
        None => (rest, None),
    })
}

fn route(app: &App, request: Request, method: &Method, path: &str) -> Outcome {
    if *method == Method::Options {
        exchange::respond(request, 204, "text/plain", Vec::new(), &[("Access-Control-Max-Age", "86400")]);
        return Outcome::plain(204);
    }
    let allowed: &[Method] = match path {
        "/" => &[Method::Get, Method::Head],
        "/ping" | "/v1/models" | "/v1beta/models" => &[Method::Get],
        "/v1/chat/completions" | "/v1/messages" | "/v1/messages/count_tokens" | "/token/check" => {
            &[Method::Post]
        }
        _ => match gemini_target(path) {
            Some((_, Some(_))) => &[Method::Post],
            Some((_, None)) => &[Method::Get],
            None => {
                let error = chat::Error::new(ErrorKind::NotFound, format!("no route for {path}"));
                let dialect = dialect_for_path(path);
                exchange::respond_error(request, dialect, &error, &[]);
                return Outcome::failed(dialect, &error);
            }
        },
    };
    if !allowed.contains(method) {
        let error =
            chat::Error::new(ErrorKind::MethodNotAllowed, format!("{method} is not allowed on {path}"));
        let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        let dialect = dialect_for_path(path);
        exchange::respond_error(request, dialect, &error, &[("Allow", &names.join(", "))]);
        return Outcome::failed(dialect, &error);
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
        "/v1/models" | "/v1beta/models" => models(request, path, None),
        "/v1/chat/completions" => chat(app, request, Dialect::OpenAi, |body| {
            let parsed = openai::parse(body)?;
            Ok((parsed.chat.clone(), openai::Stream::new(&parsed), openai::Complete::new(&parsed)))
        }),
        "/v1/messages" => chat(app, request, Dialect::Anthropic, |body| {
            let parsed = anthropic::parse(body)?;
            Ok((parsed.chat.clone(), anthropic::Stream::new(&parsed), anthropic::Complete::new(&parsed)))
        }),
        "/v1/messages/count_tokens" => count_tokens(app, request, Dialect::Anthropic, |body| {
            anthropic::parse(body).map(|parsed| anthropic::count_tokens(&parsed))
        }),
        "/token/check" => token_check(app, request),
        _ => match gemini_target(path) {
            Some((model, None)) => models(request, path, Some(model)),
            Some((model, Some(action))) => {
                let model = model.to_string();
                match action {
                    "generateContent" | "streamGenerateContent" => {
                        let stream = action == "streamGenerateContent";
                        let sse = exchange::query_param(request.url(), "alt").as_deref() == Some("sse");
                        chat(app, request, Dialect::Gemini, move |body| {
                            let parsed = gemini::parse(&model, body, stream, sse)?;
                            Ok((
                                parsed.chat.clone(),
                                gemini::Stream::new(&parsed),
                                gemini::Complete::new(&parsed),
                            ))
                        })
                    }
                    "countTokens" => count_tokens(app, request, Dialect::Gemini, move |body| {
                        gemini::parse(&model, body, false, false).map(|parsed| gemini::count_tokens(&parsed))
                    }),
                    _ => {
                        let error = chat::Error::new(ErrorKind::NotFound, format!("unknown method {action}"));
                        exchange::respond_error(request, Dialect::Gemini, &error, &[]);
                        Outcome::failed(Dialect::Gemini, &error)
                    }
                }
            }
            None => unreachable!("paths without a target were answered above"),
        },
    }
}

fn header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

/// `GET /v1/models[/{id}]` is shared by the three dialects: the headers say which shape the
/// client expects (`client-apis.md` §0 rule 2); `/v1beta` is Gemini's.
fn models(request: Request, path: &str, one: Option<&str>) -> Outcome {
    let gemini = path.starts_with("/v1beta/")
        || header(&request, "x-goog-api-key").is_some()
        || header(&request, "x-goog-api-client").is_some()
        || exchange::query_param(request.url(), "key").is_some();
    let anthropic = !gemini
        && (header(&request, "anthropic-version").is_some() || header(&request, "x-api-key").is_some());
    let one = one.map(|id| id.strip_prefix("models/").unwrap_or(id));
    let description = |id: &str| MODELS.iter().find(|(name, _)| *name == id).map_or("", |(_, d)| *d);
    let ids: Vec<&str> = MODELS.iter().map(|(id, _)| *id).collect();
    let (dialect, body) = match (gemini, anthropic, one) {
        (true, _, None) => {
            let models: Vec<_> = MODELS.iter().map(|(id, d)| gemini::model_object(id, d)).collect();
            (Dialect::Gemini, json!({"models": models}).to_string().into_bytes())
        }
        (true, _, Some(id)) => {
            (Dialect::Gemini, gemini::model_object(id, description(id)).to_string().into_bytes())
        }
        (false, true, None) => (Dialect::Anthropic, anthropic::models(&ids)),
        (false, true, Some(id)) => (
            Dialect::Anthropic,
            json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"})
                .to_string()
                .into_bytes(),
        ),
        (false, false, None) => {
            let data: Vec<_> = MODELS.iter().map(|(id, d)| openai_model(id, d)).collect();
            (Dialect::OpenAi, json!({"object": "list", "data": data}).to_string().into_bytes())
        }
        (false, false, Some(id)) => {
            (Dialect::OpenAi, openai_model(id, description(id)).to_string().into_bytes())
        }
    };
    exchange::respond_json(request, 200, body);
    Outcome { status: 200, dialect: Some(dialect), backend: Backend::None, chat_id: None }
}

fn openai_model(id: &str, description: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "kimi-free-api", "description": description})
}

/// Reads the credential and body every chat endpoint needs.
fn credential_and_body(app: &App, request: &mut Request) -> Result<(String, Vec<u8>), chat::Error> {
    let body = exchange::read_body(request, app.config.max_body_bytes)?;
    let credential = exchange::credential(request).ok_or_else(|| {
        chat::Error::new(ErrorKind::Authentication, "no Kimi token: send it as `Authorization: Bearer TOKEN`")
    })?;
    Ok((credential, body))
}

/// Serves a chat request in any dialect: `parse` gives the neutral request and the dialect's
/// stream renderer and aggregator; one of the two answers, as the request asks.
///
/// Not inlined: inlined into `route`, the three dialects' copies share one frame on every
/// worker's stack, which raised each worker's resident stack from ~46 KB to ~58 KB (measured
/// in `/proc/PID/smaps`) — 6 MB at 500 open streams.
#[inline(never)]
fn chat<S, A>(
    app: &App,
    mut request: Request,
    dialect: Dialect,
    parse: impl FnOnce(&[u8]) -> Result<(chat::Request, S, A), chat::Error>,
) -> Outcome
where
    S: StreamRenderer,
    A: Aggregator,
{
    let parsed =
        credential_and_body(app, &mut request).and_then(|(credential, body)| Ok((credential, parse(&body)?)));
    let (credential, (chat, renderer, aggregator)) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            exchange::respond_error(request, dialect, &error, &[]);
            return Outcome::failed(dialect, &error);
        }
    };
    let silent = chat.mode.silent;
    if chat.stream {
        let mut stream = EventStream::new(request, dialect, renderer);
        let (backend, result) =
            app.kimi.chat(&credential, &chat, &mut CitationText::new(&mut stream, true, silent));
        let chat_id = stream.conversation_id.clone();
        let status = match result {
            Ok(()) => {
                stream.finish();
                200
            }
            Err(error) => stream.fail(&error.into()),
        };
        Outcome { status, dialect: Some(dialect), backend, chat_id }
    } else {
        let mut answer = Answer::default();
        let (backend, result) =
            app.kimi.chat(&credential, &chat, &mut CitationText::new(&mut answer, false, silent));
        let status = match result {
            Ok(()) => {
                exchange::respond_json(request, 200, aggregator.body(&answer));
                200
            }
            Err(error) => {
                let error = chat::Error::from(error);
                exchange::respond_error(request, dialect, &error, &[]);
                dialect.error_response(&error).0
            }
        };
        Outcome { status, dialect: Some(dialect), backend, chat_id: answer.conversation_id }
    }
}

/// `count_tokens` / `countTokens`: an estimate from the parsed request; Kimi is not asked.
fn count_tokens(
    app: &App,
    mut request: Request,
    dialect: Dialect,
    count: impl FnOnce(&[u8]) -> Result<Vec<u8>, chat::Error>,
) -> Outcome {
    match exchange::read_body(&mut request, app.config.max_body_bytes).and_then(|body| count(&body)) {
        Ok(body) => {
            exchange::respond_json(request, 200, body);
            Outcome { status: 200, dialect: Some(dialect), backend: Backend::None, chat_id: None }
        }
        Err(error) => {
            exchange::respond_error(request, dialect, &error, &[]);
            Outcome::failed(dialect, &error)
        }
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
            exchange::respond_error(request, Dialect::OpenAi, &error, &[]);
            Outcome::failed(Dialect::OpenAi, &error)
        }
    }
}
