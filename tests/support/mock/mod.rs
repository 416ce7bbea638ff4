//! A mock Kimi upstream on 127.0.0.1, speaking both Kimi protocols of `docs/kimi-protocol.md`:
//! the legacy REST + SSE API (§3) and the Connect RPC API (§4), scripted per test, with fault
//! injection and recorded statistics.
//!
//! Since September 2026 (§7) its Connect side also serves the model catalogue and credits, and
//! checks each chat request against the account's catalogue as Kimi does: a request without
//! `options.model`, with a scenario or effort its model does not offer, or an agent scenario
//! without `kimiplus_id`, ends in `invalid_argument` before any chat frame. A token's `mock`
//! claim says what the account is: `plan: "free"`, `catalogue`, `credits_used`, a `fault`.
//! With [`Script::refuse_system_prompt`] it also refuses a chat that sends the system prompt in
//! `options.systemPrompt` (`invalid_argument`, "unknown field options.systemPrompt"), as Kimi may
//! (`docs/kimi-protocol.md` §7.3).
//!
//! Tests script it directly ([`MockKimi::script`]) or over HTTP (`POST /_mock/script` with a
//! JSON [`Script`], `GET /_mock/stats`), which is how the Python SDK tests drive it.
//!
//! The files follow the server's backends: `http` (the HTTP/1.1 the mock speaks), `routes` (which
//! handler answers which request), `legacy` and `connect` (the two chat APIs), `auth` (tokens and
//! identities), `catalogue` (models and credits), `files` (attachment hosts), `script` (what a
//! test asks and what the mock saw) and `state` (what it remembers).

#![allow(dead_code)]

mod auth;
mod catalogue;
mod connect;
mod files;
mod http;
mod legacy;
mod routes;
mod script;
mod state;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[allow(unused_imports)] // each program uses its own subset
pub use {
    auth::mint_jwt,
    http::Request,
    script::{Fault, Script, Seen, Stats, TurnSeen, Upload},
};

/// The server's flags that point every Kimi host at the mock at `url` (both regions: a token of
/// no known shape is first tried at the auth host, which must not be the real one).
#[allow(dead_code)]
pub fn host_flags(url: &str) -> Vec<&str> {
    let flags = [
        "--kimi-base-url",
        "--kimi-connect-base-url",
        "--kimi-auth-base-url",
        "--kimi-global-base-url",
        "--kimi-global-auth-base-url",
    ];
    flags.into_iter().flat_map(|flag| [flag, url]).collect()
}

use http::{Flow, json_response};
use state::State;

/// A running mock; it stops when the process ends.
#[derive(Clone)]
pub struct MockKimi {
    url: String,
    state: Arc<Mutex<State>>,
}

impl MockKimi {
    pub fn start() -> MockKimi {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(addr: &str) -> MockKimi {
        let listener = listen(addr).expect("mock binds");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                thread::spawn(move || http::connection(stream, |request| routes::serve(&state, request)));
            }
        });
        MockKimi { url, state }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn script(&self, script: Script) {
        let mut state = self.state.lock().unwrap();
        state.script = script;
        state.faults_used = 0;
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().unwrap().stats.clone()
    }

    /// Deletes a chat as if its user did (Kimi knows it no more).
    pub fn forget_chat(&self, id: &str) {
        state::delete_chat(&self.state, id);
    }

    /// Forgets what was seen so far (the logins it issued stay).
    pub fn reset_stats(&self) {
        self.state.lock().unwrap().stats = Stats::default();
    }

    /// Waits (bounded) until no chat is live, and returns the stats then.
    pub fn settled(&self) -> Stats {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = self.stats();
            if stats.live_chats.is_empty() || Instant::now() > deadline {
                return stats;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Connections the kernel holds for the accept loop, as the server's (1024, std's is 128):
/// a test's burst of connections must not wait for SYN retries on the mock either.
pub const BACKLOG: i32 = 1024;

/// A listening socket on `addr` (`SO_REUSEADDR`, as std's) with a backlog of [`BACKLOG`].
fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let addr: std::net::SocketAddr =
        addr.parse().map_err(|_| std::io::Error::other("the mock listens on an IP:PORT"))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// `POST /_mock/script`: the next completions' script (how the Python SDK tests drive the mock).
fn set_script(state: &Mutex<State>, request: Request, body: Value) -> Flow {
    match serde_json::from_value::<Script>(body) {
        Ok(script) => {
            let mut st = state.lock().unwrap();
            st.script = script;
            st.faults_used = 0;
            drop(st);
            json_response(request, 200, json!({}))
        }
        Err(e) => json_response(request, 400, json!({"error": e.to_string()})),
    }
}

/// `GET /_mock/stats`: what the mock saw, as JSON.
fn stats(state: &Mutex<State>, request: Request) -> Flow {
    let stats = state.lock().unwrap().stats.clone();
    json_response(request, 200, serde_json::to_value(stats).unwrap())
}
