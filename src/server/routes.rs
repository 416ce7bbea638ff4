//! Routing and the handlers of each endpoint.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tiny_http::{Method, Request};

use super::App;
use super::exchange::{self, EventStream};
use super::sessions::Raw;
use super::transcript::Recorder;
use super::{doctor, healthz, metrics};
use crate::chat::output;
use crate::chat::{self, Answer, Ended, ErrorKind, Layers, Stop};
use crate::dialect::{Aggregator, Dialect, StreamRenderer, anthropic, gemini, openai, responses};
use crate::kimi::{self, Backend, Credential, TokenCheck};

const WELCOME_PAGE: &str = include_str!("welcome.html");

/// What a handler reports for the request's log line.
struct Outcome {
    status: u16,
    dialect: Option<Dialect>,
    backend: Backend,
    chat_id: Option<String>,
    /// When a chat request's answer began (for `/metrics`).
    first_byte: Option<Instant>,
}

impl Outcome {
    fn plain(status: u16) -> Self {
        Outcome { status, dialect: None, backend: Backend::None, chat_id: None, first_byte: None }
    }

    fn failed(dialect: Dialect, error: &chat::Error) -> Self {
        Outcome {
            status: dialect.error_response(error).0,
            dialect: Some(dialect),
            backend: Backend::None,
            chat_id: None,
            first_byte: None,
        }
    }
}

/// Serves one request and logs one line for it (never a token: the query is left out).
///
/// Not inlined: inlined into the worker loop, the router's frame grew to 8 KB there and stayed
/// on every worker's stack, 92 → 100 KB per open stream (measured in `/proc/PID/smaps`).
#[inline(never)]
pub fn handle(app: &App, request: Request) {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let outcome = route(app, request, &method, &path);
    let name = resolve(&path).map_or("unknown", |(route, _)| route.name());
    app.metrics.request(name, outcome.dialect, outcome.status);
    if let Some(at) = outcome.first_byte {
        app.metrics.first_byte(at.duration_since(started));
    }
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

/// An endpoint of the server.
enum Route<'a> {
    Welcome,
    Ping,
    /// The model list, or one model, in the shape the client's headers ask for.
    Models(Option<&'a str>),
    OpenAiChat,
    Responses,
    AnthropicChat,
    AnthropicCountTokens,
    TokenCheck,
    /// The doctor's steps on the caller's account or the server's (`server/doctor.rs`).
    Doctor,
    /// `models/{model}:{action}`: generateContent, streamGenerateContent or countTokens.
    GeminiCall {
        model: &'a str,
        action: &'a str,
    },
    Healthz,
    Metrics,
}

impl Route<'_> {
    /// The route's name in `/metrics` (a fixed set: never a model or a path).
    fn name(&self) -> &'static str {
        match self {
            Route::Welcome => "welcome",
            Route::Ping => "ping",
            Route::Models(_) => "models",
            Route::OpenAiChat => "chat_completions",
            Route::AnthropicChat => "messages",
            Route::Responses => "responses",
            Route::AnthropicCountTokens | Route::GeminiCall { action: "countTokens", .. } => "count_tokens",
            Route::TokenCheck => "token_check",
            Route::Doctor => "doctor",
            Route::GeminiCall { .. } => "generate_content",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
        }
    }
}

const GET: &[Method] = &[Method::Get];
const GET_HEAD: &[Method] = &[Method::Get, Method::Head];
const POST: &[Method] = &[Method::Post];

/// The route table: every path the server answers and the methods it allows there.
fn resolve(path: &str) -> Option<(Route<'_>, &'static [Method])> {
    Some(match path {
        "/" => (Route::Welcome, GET_HEAD),
        "/ping" => (Route::Ping, GET),
        "/v1/models" | "/v1beta/models" => (Route::Models(None), GET),
        "/v1/chat/completions" => (Route::OpenAiChat, POST),
        "/v1/responses" => (Route::Responses, POST),
        "/v1/messages" => (Route::AnthropicChat, POST),
        "/v1/messages/count_tokens" => (Route::AnthropicCountTokens, POST),
        "/token/check" => (Route::TokenCheck, POST),
        "/doctor" => (Route::Doctor, POST),
        "/healthz" => (Route::Healthz, GET_HEAD),
        "/metrics" => (Route::Metrics, GET),
        _ => match gemini_target(path)? {
            (model, None) => (Route::Models(Some(model)), GET),
            (model, Some(action)) => (Route::GeminiCall { model, action }, POST),
        },
    })
}

fn route(app: &App, request: Request, method: &Method, path: &str) -> Outcome {
    if *method == Method::Options {
        exchange::respond(request, 204, "text/plain", Vec::new(), &[("Access-Control-Max-Age", "86400")]);
        return Outcome::plain(204);
    }
    let dialect = dialect_for_path(path);
    let Some((route, allowed)) = resolve(path) else {
        let error = chat::Error::new(ErrorKind::NotFound, format!("no route for {path}"));
        exchange::respond_error(request, dialect, &error, &[]);
        return Outcome::failed(dialect, &error);
    };
    if !allowed.contains(method) {
        let error =
            chat::Error::new(ErrorKind::MethodNotAllowed, format!("{method} is not allowed on {path}"));
        let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        exchange::respond_error(request, dialect, &error, &[("Allow", &names.join(", "))]);
        return Outcome::failed(dialect, &error);
    }
    match route {
        Route::Welcome => welcome(app, request),
        Route::Ping => {
            exchange::respond(request, 200, "text/plain", b"pong".to_vec(), &[]);
            Outcome::plain(200)
        }
        Route::Models(one) => models(app, request, path, one),
        Route::OpenAiChat => chat(app, request, Dialect::OpenAi, |body| {
            let parsed = openai::parse(body)?;
            let (stream, complete) = (openai::Stream::new(&parsed), openai::Complete::new(&parsed));
            Ok((parsed.chat, stream, complete))
        }),
        Route::Responses => chat(app, request, Dialect::Responses, |body| {
            let parsed = responses::parse(body)?;
            let (stream, complete) = (responses::Stream::new(&parsed), responses::Complete::new(&parsed));
            Ok((parsed.chat, stream, complete))
        }),
        Route::AnthropicChat => chat(app, request, Dialect::Anthropic, |body| {
            let parsed = anthropic::parse(body)?;
            let (stream, complete) = (anthropic::Stream::new(&parsed), anthropic::Complete::new(&parsed));
            Ok((parsed.chat, stream, complete))
        }),
        Route::AnthropicCountTokens => count_tokens(app, request, Dialect::Anthropic, |body| {
            anthropic::parse(body).map(|parsed| anthropic::count_tokens(&parsed))
        }),
        Route::TokenCheck => token_check(app, request),
        Route::Doctor => Outcome::plain(doctor::serve(app, request)),
        Route::GeminiCall { model, action } => gemini_call(app, request, model.to_string(), action),
        Route::Healthz => Outcome::plain(healthz::serve(app, request)),
        Route::Metrics => Outcome::plain(metrics::serve(app, request)),
    }
}

/// The welcome page, its examples pointing at the address the client reached us by.
fn welcome(app: &App, request: Request) -> Outcome {
    let host = header(&request, "Host")
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .map_or_else(|| app.addr.to_string(), str::to_string);
    let page = WELCOME_PAGE.replace("http://HOST:8000", &format!("http://{host}"));
    exchange::respond(request, 200, "text/html; charset=utf-8", page.into_bytes(), &[]);
    Outcome::plain(200)
}

/// `models/{model}:{action}` on the Gemini API.
fn gemini_call(app: &App, request: Request, model: String, action: &str) -> Outcome {
    match action {
        "generateContent" | "streamGenerateContent" => {
            let stream = action == "streamGenerateContent";
            let sse = exchange::query_param(request.url(), "alt").as_deref() == Some("sse");
            chat(app, request, Dialect::Gemini, move |body| {
                let parsed = gemini::parse(&model, body, stream, sse)?;
                let (stream, complete) = (gemini::Stream::new(&parsed), gemini::Complete::new(&parsed));
                Ok((parsed.chat, stream, complete))
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

fn header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

/// `GET /v1/models[/{id}]` is shared by the three dialects: the headers say which shape the
/// client expects (`docs/clients.md` §1.2); `/v1beta` is Gemini's.
fn models(app: &App, request: Request, path: &str, one: Option<&str>) -> Outcome {
    let gemini = path.starts_with("/v1beta/")
        || header(&request, "x-goog-api-key").is_some()
        || header(&request, "x-goog-api-client").is_some()
        || exchange::query_param(request.url(), "key").is_some();
    let anthropic = !gemini
        && (header(&request, "anthropic-version").is_some() || header(&request, "x-api-key").is_some());
    let presented = exchange::credential(&request);
    let credential = match presented.as_deref() {
        Some(key) if app.kimi.is_server_pool() => app.keys.admits(key).then_some(Credential::Pool),
        Some(token) => Some(Credential::Tokens(token)),
        None => None,
    };
    let list = app.kimi.model_list(credential);
    let (dialect, body) = if gemini {
        (Dialect::Gemini, gemini::models(one, &list))
    } else if anthropic {
        (Dialect::Anthropic, anthropic::models(one, &list))
    } else {
        (Dialect::OpenAi, openai::models(one, &list))
    };
    exchange::respond_json(request, 200, body);
    Outcome { status: 200, dialect: Some(dialect), backend: Backend::None, chat_id: None, first_byte: None }
}

fn read_body(app: &App, request: &mut Request) -> Result<Vec<u8>, chat::Error> {
    exchange::read_body(request, app.config.max_body_bytes, app.config.request_timeout)
}

/// How a client of `dialect` sends its credential, as the 401 for a missing one says it: each
/// API's own header, the one its SDKs and CLIs set.
fn credential_header(dialect: Dialect, what: &str) -> String {
    match dialect {
        Dialect::OpenAi | Dialect::Responses => format!("`Authorization: Bearer {what}`"),
        Dialect::Anthropic => format!("`x-api-key: {what}`"),
        Dialect::Gemini => format!("`x-goog-api-key: {what}` (or `?key={what}`)"),
    }
}

/// Reads the credential and body every chat endpoint needs. In server-pool mode the credential
/// must be one of the server's API keys, and the request runs on the pool (`None`); otherwise
/// it is the caller's own Kimi token (or list).
/// Also returns what the caller presented (its key or token): an agent session's owner.
pub(super) fn credential_and_body(
    app: &App,
    request: &mut Request,
    dialect: Dialect,
) -> Result<(Option<String>, String, Vec<u8>), chat::Error> {
    let body = read_body(app, request)?;
    let presented = exchange::credential(request);
    if !app.kimi.is_server_pool() {
        let token = presented.ok_or_else(|| {
            chat::Error::new(
                ErrorKind::Authentication,
                format!("no Kimi token: send it as {}", credential_header(dialect, "TOKEN")),
            )
        })?;
        return Ok((Some(token.clone()), token, body));
    }
    match presented {
        Some(key) if app.keys.admits(&key) => Ok((None, key, body)),
        Some(_) => {
            Err(chat::Error::new(ErrorKind::Authentication, "this API key is not one of the server's"))
        }
        None => Err(chat::Error::new(
            ErrorKind::Authentication,
            format!("no API key: send one of the server's keys as {}", credential_header(dialect, "KEY")),
        )),
    }
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
    parse: impl Fn(&[u8]) -> Result<(chat::Request, S, A), chat::Error>,
) -> Outcome
where
    S: StreamRenderer,
    A: Aggregator,
{
    let (credential, caller, body) = match credential_and_body(app, &mut request, dialect) {
        Ok(read) => read,
        Err(error) => {
            exchange::respond_error(request, dialect, &error, &[]);
            return Outcome::failed(dialect, &error);
        }
    };
    // A body that continues one of the caller's agent sessions byte for byte is parsed without
    // what the session's chat holds (`sessions.rs`, `prefix.rs`).
    let key = history_key(dialect);
    let elided =
        app.sessions.prior(&caller, key, &body).and_then(|prior| Some((parse(&prior.body).ok()?, prior)));
    let (parsed, prior) = match elided {
        Some((parsed, prior)) => (Ok(parsed), Some(prior)),
        None => (parse(&body), None),
    };
    let (chat, renderer, aggregator) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            exchange::respond_error(request, dialect, &error, &[]);
            return Outcome::failed(dialect, &error);
        }
    };
    let whole = || parse(&body).map(|(chat, _, _)| chat);
    let raw = Raw { body: &body, key, prior: Cell::new(prior), whole: &whole };
    let credential = credential.as_deref().map_or(Credential::Pool, Credential::Tokens);
    let caller = Caller { credential, owner: &caller, raw: &raw };
    let _in_flight = app.metrics.chat_started();
    if chat.stream {
        stream_chat(app, request, dialect, renderer, caller, chat)
    } else {
        complete_chat(app, request, dialect, aggregator, caller, chat)
    }
}

/// The member of a dialect's request body that holds the conversation's messages.
fn history_key(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAi | Dialect::Anthropic => "messages",
        Dialect::Responses => "input",
        Dialect::Gemini => "contents",
    }
}

/// Who asks: the credential a chat runs with, what the caller presented (its key or token),
/// which owns its agent sessions (`sessions.rs`), and the request's body as it came.
#[derive(Clone, Copy)]
struct Caller<'a> {
    credential: Credential<'a>,
    owner: &'a str,
    raw: &'a Raw<'a>,
}

/// Streams the answer as it comes; a JSON answer is unfenced on the way and checked at the end
/// (a failure is only logged: the answer has been sent).
fn stream_chat<S: StreamRenderer>(
    app: &App,
    request: Request,
    dialect: Dialect,
    renderer: S,
    caller: Caller<'_>,
    chat: chat::Request,
) -> Outcome {
    let started = Instant::now();
    let mut stream = EventStream::new(request, dialect, renderer);
    let (backend, result) =
        app.sessions.serve(&app.kimi, caller.credential, caller.owner, chat, caller.raw, |chat, record| {
            let (chat, layers) = Layers::prepare(chat, &app.tools);
            let mut sink = layers.over(Recorder::new(record, &mut stream), true);
            let (backend, result) = app.kimi.chat(caller.credential, &chat, &mut sink);
            log_problems(dialect, sink.inner().problems());
            app.metrics.tools(&sink.report());
            (backend, result)
        });
    let (chat_id, opened) = (stream.conversation_id.clone(), stream.opened);
    let status = match result {
        Ok(Ended::Stopped(Stop::ClientGone)) => {
            stream.fail(&ended(app, chat::Error::new(ErrorKind::Upstream, "the client disconnected")))
        }
        Ok(_) => {
            stream.finish();
            200
        }
        Err(error) => stream.fail(&ended(app, error.into())),
    };
    app.metrics.stream(started.elapsed());
    let first_byte = Some(opened.unwrap_or_else(Instant::now));
    Outcome { status, dialect: Some(dialect), backend, chat_id, first_byte }
}

fn log_problems(dialect: Dialect, problems: &[String]) {
    if !problems.is_empty() {
        eprintln!(
            "{}: the streamed JSON answer did not pass its check: {}",
            dialect.name(),
            problems.join("; ")
        );
    }
}

/// Collects the whole answer; a JSON answer is checked, and corrected once when it fails.
fn complete_chat<A: Aggregator>(
    app: &App,
    request: Request,
    dialect: Dialect,
    aggregator: A,
    caller: Caller<'_>,
    chat: chat::Request,
) -> Outcome {
    let (backend, result) = if chat.output.is_json() {
        checked_answer(app, caller, chat)
    } else {
        whole_answer(app, caller, chat)
    };
    let first_byte = Some(Instant::now());
    match result {
        Ok(answer) => {
            exchange::respond_json(request, 200, aggregator.body(&answer));
            Outcome {
                status: 200,
                dialect: Some(dialect),
                backend,
                chat_id: answer.conversation_id,
                first_byte,
            }
        }
        Err(error) => {
            let error = ended(app, error.into());
            exchange::respond_error(request, dialect, &error, &[]);
            let status = dialect.error_response(&error).0;
            Outcome { status, dialect: Some(dialect), backend, chat_id: None, first_byte }
        }
    }
}

/// One chat, its answer collected.
fn whole_answer(
    app: &App,
    caller: Caller<'_>,
    chat: chat::Request,
) -> (Backend, Result<Answer, kimi::Error>) {
    let mut answer = Answer::default();
    let (backend, result) =
        app.sessions.serve(&app.kimi, caller.credential, caller.owner, chat, caller.raw, |chat, record| {
            let (chat, layers) = Layers::prepare(chat, &app.tools);
            answer = Answer::default();
            let mut sink = layers.over(Recorder::new(record, &mut answer), false);
            let (backend, result) = app.kimi.chat(caller.credential, &chat, &mut sink);
            app.metrics.tools(&sink.report());
            (backend, result)
        });
    (backend, result.map(|_| answer))
}

/// A JSON answer, checked: when it fails, one corrective follow-up (the model's answer and its
/// problems as a new turn, in a new chat or, for a kept conversation, in the same one); when
/// that fails too, the text as it is, marked (`Answer::invalid_output`). Never invented JSON.
fn checked_answer(
    app: &App,
    caller: Caller<'_>,
    chat: chat::Request,
) -> (Backend, Result<Answer, kimi::Error>) {
    let output = chat.output.clone();
    let (backend, result) = whole_answer(app, caller, chat.clone());
    let Ok(mut answer) = result else { return (backend, result) };
    let Err(problems) = output::settle(&mut answer, &output) else { return (backend, Ok(answer)) };
    let (again, second) = whole_answer(app, caller, output::correction(&chat, &answer, &problems));
    match second {
        Ok(mut second) => {
            if let Err(problems) = output::settle(&mut second, &output) {
                second.invalid_output = Some(output::explanation(&problems));
            }
            (again, Ok(second))
        }
        Err(_) => {
            answer.invalid_output = Some(output::explanation(&problems));
            (backend, Ok(answer))
        }
    }
}

/// A request that a shutdown ended says so, whatever its upstream call failed with.
fn ended(app: &App, error: chat::Error) -> chat::Error {
    if app.ending.load(Ordering::Acquire) {
        chat::Error::new(ErrorKind::Overloaded, "the server is shutting down; retry shortly")
    } else {
        error
    }
}

/// `count_tokens` / `countTokens`: an estimate from the parsed request; Kimi is not asked.
fn count_tokens(
    app: &App,
    mut request: Request,
    dialect: Dialect,
    count: impl FnOnce(&[u8]) -> Result<Vec<u8>, chat::Error>,
) -> Outcome {
    match read_body(app, &mut request).and_then(|body| count(&body)) {
        Ok(body) => {
            exchange::respond_json(request, 200, body);
            Outcome {
                status: 200,
                dialect: Some(dialect),
                backend: Backend::None,
                chat_id: None,
                first_byte: None,
            }
        }
        Err(error) => {
            exchange::respond_error(request, dialect, &error, &[]);
            Outcome::failed(dialect, &error)
        }
    }
}

/// `/token/check`'s answer: `live` when every token of the credential works, and what each
/// one is (by fingerprint, never the token).
#[derive(serde::Serialize)]
struct TokenReport<'a> {
    live: bool,
    #[serde(serialize_with = "checks")]
    tokens: &'a [TokenCheck],
}

fn checks<S: serde::Serializer>(checks: &&[TokenCheck], serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct One<'a> {
        fingerprint: &'a str,
        kind: &'a str,
        live: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        problem: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        credits: Option<healthz::CreditsView>,
        #[serde(skip_serializing_if = "Option::is_none")]
        credits_problem: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_mode: Option<&'a str>,
        /// The proxy the check went through (`SCHEME://HOST:PORT`).
        #[serde(skip_serializing_if = "Option::is_none")]
        proxy: Option<&'a str>,
    }
    serializer.collect_seq(checks.iter().map(|c| One {
        fingerprint: &c.fingerprint,
        kind: c.kind,
        live: c.live,
        expires: c.expires,
        note: c.note.as_deref(),
        problem: c.problem.as_deref(),
        credits: c.credits.as_ref().map(|credits| healthz::CreditsView::new(credits, None)),
        credits_problem: c.credits_problem.as_deref(),
        tool_mode: c.tool_mode.as_deref(),
        proxy: c.proxy.as_deref(),
    }))
}

fn token_check(app: &App, mut request: Request) -> Outcome {
    #[derive(serde::Deserialize)]
    struct Body {
        token: String,
    }
    let parsed = read_body(app, &mut request).and_then(|body| {
        serde_json::from_slice::<Body>(&body)
            .map_err(|e| chat::Error::invalid(format!("expected {{\"token\": \"...\"}}: {e}")))
    });
    match parsed {
        Ok(body) => {
            let checks = app.kimi.check_token(&body.token);
            let report =
                TokenReport { live: !checks.is_empty() && checks.iter().all(|c| c.live), tokens: &checks };
            exchange::respond_json(request, 200, serde_json::to_vec(&report).unwrap_or_default());
            Outcome::plain(200)
        }
        Err(error) => {
            exchange::respond_error(request, Dialect::OpenAi, &error, &[]);
            Outcome::failed(Dialect::OpenAi, &error)
        }
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
