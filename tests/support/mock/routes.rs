//! Which handler answers which request: one line per route, tried in order; a `*` in a path
//! matches any text (the handler gets it), and the query string is ignored.

use std::sync::Mutex;

use serde_json::Value;

use super::http::{Flow, Request, legacy_error};
use super::script::Seen;
use super::state::State;
use super::{auth, catalogue, connect, files, legacy};

/// A handler: the state, the request, its JSON body (`null` if none) and what the path's `*` matched.
type Handler = fn(&Mutex<State>, Request, Value, &str) -> Flow;

/// Requests remembered at most (the newest): a long run (the SDK suites, the bench) would
/// otherwise grow the list without bound.
const MAX_SEEN: usize = 4096;

/// The routes, in the order they are tried.
#[rustfmt::skip]
const ROUTES: &[(&str, &str, Handler)] = &[
    ("POST",   "/_mock/script",                                                            |s, r, body, _| super::set_script(s, r, body)),
    ("GET",    "/_mock/stats",                                                             |s, r, _, _| super::stats(s, r)),
    ("GET",    "/api/auth/token/refresh",                                                  |s, r, _, _| legacy::refresh(s, r)),
    ("POST",   "/api/account.gateway.v1.AuthService/RefreshToken",                         |s, r, body, _| auth::web_refresh(s, r, &body)),
    ("GET",    "/api/user",                                                                |s, r, _, _| legacy::user(s, r)),
    ("GET",    "/api/chat/research/usage",                                                 |s, r, _, _| legacy::research_usage(s, r)),
    ("POST",   "/api/chat",                                                                |s, r, body, _| legacy::create_chat(s, r, body)),
    ("DELETE", "/api/chat/*",                                                              |s, r, _, id| legacy::delete(s, r, id)),
    ("POST",   "/api/chat/*/completion/stream",                                            |s, r, body, id| legacy::completion(s, r, id, body)),
    ("POST",   "/apiv2/kimi.gateway.chat.v1.ChatService/Chat",                             |s, r, _, _| connect::chat(s, r)),
    ("POST",   "/apiv2/kimi.gateway.config.v1.ConfigService/GetAvailableModels",           |s, r, _, _| catalogue::available_models(s, r)),
    ("POST",   "/apiv2/kimi.gateway.membership.v2.MembershipService/GetSubscriptionStats", |s, r, _, _| catalogue::subscription_stats(s, r)),
    ("POST",   "/api/pre-sign-url",                                                        |s, r, body, _| legacy::pre_sign_url(s, r, body)),
    ("PUT",    "/_oss/*",                                                                  |s, r, _, object| files::store(s, r, object)),
    ("POST",   "/api/file",                                                                |s, r, body, _| legacy::create_file(s, r, body)),
    ("POST",   "/api/file/parse_process",                                                  |s, r, _, _| legacy::parse_process(s, r)),
    ("POST",   "/apiv2-files/file/upload",                                                 |s, r, _, _| files::upload(s, r)),
    ("POST",   "/apiv2-files/kimi.gateway.file.v1.FileService/GetFileParseProgress",       |s, r, body, _| files::parse_progress(s, r, body)),
    ("GET",    "/_files/*",                                                                |_, r, _, name| files::download(r, name)),
    ("POST",   "/apiv2/kimi.chat.v1.ChatService/DeleteChat",                               |s, r, body, _| connect::delete(s, r, body)),
    ("POST",   "/apiv2/kimi.gateway.chat.v1.ChatService/CancelChat",                       |s, r, body, _| connect::cancel(s, r, body)),
    ("POST",   "/apiv2/kimi.gateway.order.v1.SubscriptionService/GetSubscription",         |s, r, _, _| catalogue::subscription(s, r)),
];

/// Answers a request by the first route that matches it, or 404 `mock.no_route`.
pub(super) fn serve(state: &Mutex<State>, request: Request) -> Flow {
    let path = request.path.split('?').next().unwrap_or("").to_string();
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let seen = Seen {
        route: format!("{} {path}", request.method),
        peer: request.stream.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
        authorization: request.headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.clone()),
    };
    {
        let mut state = state.lock().unwrap();
        let requests = &mut state.stats.requests;
        if requests.len() >= MAX_SEEN {
            requests.remove(0);
        }
        requests.push(seen);
    }
    let route = ROUTES
        .iter()
        .filter(|(method, _, _)| request.method == *method)
        .find_map(|(_, pattern, handler)| Some((handler, matched(pattern, &path)?)));
    match route {
        Some((handler, tail)) => handler(state, request, body, tail),
        None => legacy_error(request, 404, "mock.no_route"),
    }
}

/// What the `*` of `pattern` matched in `path` (empty for a pattern without one), if it matches.
fn matched<'a>(pattern: &str, path: &'a str) -> Option<&'a str> {
    match pattern.split_once('*') {
        None => (pattern == path).then_some(""),
        Some((prefix, suffix)) => (path.starts_with(prefix) && path.ends_with(suffix))
            .then(|| &path[prefix.len()..path.len() - suffix.len()]),
    }
}
