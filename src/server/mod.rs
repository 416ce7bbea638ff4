//! The listener, the bounded queue and the bounded worker pool.
//!
//! tiny_http reads requests on its own connection threads and hands them to one listener
//! thread. The listener `try_send`s each into a bounded channel; a full channel answers `503`
//! with `Retry-After` at once instead of letting requests pile up. Workers take requests from
//! the channel; a panic in one request is contained to that request.
//!
//! The pool is bounded by `--workers` but grown on demand: a worker is started only when a
//! request arrives and none is idle, and a worker idle for a minute exits (a few stay). A long
//! stream holds its worker for its whole life, so the bound must be high (hundreds), and an
//! idle server should not pay for hundreds of threads it is not using.

mod accounts;
mod exchange;
mod healthz;
mod keys;
mod metrics;
mod routes;

use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TrySendError};

use crate::chat;
use crate::config::Config;
use crate::kimi::{self, Kimi};

/// Stack of each worker thread: room for JSON and TLS work, small enough for hundreds of
/// workers on a small VPS (only touched pages count toward memory).
const WORKER_STACK: usize = 256 * 1024;
/// Workers kept even when idle.
const MIN_WORKERS: usize = 2;
/// How long an extra worker waits for work before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(60);

/// What every request handler shares.
struct App {
    config: Config,
    /// The address the listener is bound to (the configured port may be 0).
    addr: SocketAddr,
    kimi: Kimi,
    /// The keys callers present in server-pool mode, and that guard `/metrics`.
    keys: keys::ApiKeys,
    metrics: metrics::Metrics,
    started: Instant,
}

/// A server that is running; dropping it stops the listener and lets the workers finish.
pub struct RunningServer {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    listener: Option<JoinHandle<()>>,
    /// Reloads the tokens file on SIGHUP (server-pool mode with a file).
    _reloader: Option<accounts::Reloader>,
}

impl RunningServer {
    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server stops.
    pub fn wait(mut self) {
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.http.unblock();
    }
}

/// Binds the configured address and starts the listener and the workers.
pub fn start(config: Config) -> io::Result<RunningServer> {
    let http = tiny_http::Server::http((config.host.as_str(), config.port)).map_err(io::Error::other)?;
    let addr = http.server_addr().to_ip().ok_or_else(|| io::Error::other("not an IP listener"))?;
    let http = Arc::new(http);
    let (sender, receiver) = crossbeam_channel::bounded(config.queue_depth);
    let tokens = accounts::initial(&config)?;
    let (kimi, problem) = Kimi::new(kimi_settings(&config));
    if let Some(problem) = problem {
        eprintln!("kimi-free-api: {problem}");
    }
    if let Some(tokens) = &tokens {
        kimi.set_pool(tokens);
        eprintln!("kimi-free-api: server pool of {} Kimi accounts; callers present API keys", tokens.len());
    } else if !config.api_keys.0.is_empty() {
        eprintln!(
            "kimi-free-api: pass-through mode: callers' keys are their Kimi tokens; API keys guard /metrics"
        );
    }
    let keys = keys::ApiKeys::new(&config.api_keys.0);
    let pool = Arc::new(Pool {
        app: App { kimi, addr, config, keys, metrics: metrics::Metrics::default(), started: Instant::now() },
        receiver,
        started: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
    });
    for _ in 0..MIN_WORKERS.min(pool.app.config.workers) {
        pool.grow()?;
    }
    let reloader = match (&pool.app.config.tokens_file, tokens.is_some()) {
        (Some(path), true) => {
            let pool = pool.clone();
            Some(accounts::watch(path.clone(), move |tokens| pool.app.kimi.set_pool(tokens))?)
        }
        _ => None,
    };
    let listener_http = http.clone();
    let listener = thread::Builder::new().name("listener".into()).spawn(move || {
        while let Ok(request) = listener_http.recv() {
            // Every request accepted and not yet finished has a worker of its own (up to the
            // bound, past which requests wait in the queue).
            let in_flight = pool.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
            if in_flight > pool.started.load(Ordering::Acquire) {
                let _ = pool.grow();
            }
            match sender.try_send(request) {
                Ok(()) => {}
                Err(TrySendError::Full(request)) => {
                    pool.in_flight.fetch_sub(1, Ordering::AcqRel);
                    let error =
                        chat::Error::new(chat::ErrorKind::Overloaded, "the server is busy; retry shortly");
                    let dialect = routes::dialect_for_path(request.url());
                    exchange::respond_error(request, dialect, &error, &[]);
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
    })?;
    Ok(RunningServer { http, addr, listener: Some(listener), _reloader: reloader })
}

/// The part of the configuration the Kimi side needs.
pub fn kimi_settings(config: &Config) -> kimi::Settings {
    kimi::Settings {
        legacy_base_url: config.kimi_base_url.clone(),
        connect_base_url: config.kimi_connect_base_url.clone(),
        auth_base_url: config.kimi_auth_base_url.clone(),
        global_connect_base_url: config.kimi_global_base_url.clone(),
        global_auth_base_url: config.kimi_global_auth_base_url.clone(),
        region: config.kimi_region,
        state_dir: Some(config.state_dir.clone()),
        upstream_timeout: config.upstream_timeout,
        allow_private_urls: config.allow_private_urls,
        account_streams: config.account_streams,
        account_wait: config.account_wait,
    }
}

/// The workers and what they share.
struct Pool {
    app: App,
    receiver: Receiver<tiny_http::Request>,
    /// Workers running.
    started: AtomicUsize,
    /// Requests queued or being served.
    in_flight: AtomicUsize,
}

impl Pool {
    /// Starts one more worker unless the pool is at its bound.
    fn grow(self: &Arc<Self>) -> io::Result<()> {
        let bound = self.app.config.workers;
        if self
            .started
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < bound).then_some(n + 1))
            .is_err()
        {
            return Ok(());
        }
        let pool = self.clone();
        let spawned =
            thread::Builder::new().name("worker".into()).stack_size(WORKER_STACK).spawn(move || pool.work());
        if let Err(error) = spawned {
            self.started.fetch_sub(1, Ordering::AcqRel);
            return Err(error);
        }
        Ok(())
    }

    fn work(&self) {
        loop {
            match self.receiver.recv_timeout(IDLE_EXIT) {
                Ok(request) => {
                    if panic::catch_unwind(AssertUnwindSafe(|| routes::handle(&self.app, request))).is_err() {
                        // The request was dropped while unwinding, which answers it with a 500.
                        eprintln!("worker: a request panicked; the worker carries on");
                    }
                    self.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
                Err(RecvTimeoutError::Timeout) => {
                    let shrink = |n: usize| (n > MIN_WORKERS).then(|| n - 1);
                    if self.started.fetch_update(Ordering::AcqRel, Ordering::Acquire, shrink).is_ok() {
                        return;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}
