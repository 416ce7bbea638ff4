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
//!
//! The listening socket's backlog is [`BACKLOG`] (1024, std's is 128), so a burst of
//! connections waits in the kernel rather than for SYN retries.
//!
//! Every accepted socket has a read timeout (`--idle-timeout`) and a write timeout
//! (`--write-timeout`), set once on the listening socket: on Linux an accepted socket inherits
//! both. A silent connection is then closed by tiny_http, a body that stops arriving gets 408,
//! and a client that stops reading a stream fails the next write, which stops the upstream
//! read and deletes the chat. The patched tiny_http also bounds every head
//! ([`tiny_http::HeadLimits`]): `--request-timeout` from its first byte (408; the body gets
//! what is left) and `--max-header-bytes` (431), the connection closed either way.
//!
//! [`RunningServer::drain`] is the graceful stop: the listening socket is shut down (the port
//! closes at once), requests still arriving on open connections get 503, running requests
//! may finish until the deadline, then every upstream call is interrupted: each request ends
//! with its dialect's error, and its chat is deleted.

mod accounts;
mod doctor;
mod exchange;
mod healthz;
mod keys;
mod metrics;
mod prefix;
mod routes;
mod sessions;
mod siphash;
mod transcript;

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use socket2::{Domain, Protocol, Socket, Type};

use crate::chat;
use crate::chat::tools;
use crate::config::Config;
use crate::kimi::Kimi;

/// Stack of each worker thread: room for JSON and TLS work, small enough for hundreds of
/// workers on a small VPS (only touched pages count toward memory).
const WORKER_STACK: usize = 256 * 1024;
/// Workers kept even when idle.
const MIN_WORKERS: usize = 2;
/// How long an extra worker waits for work before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(60);
/// After the drain deadline, how long interrupted requests have to answer their clients and
/// delete their chats (a deletion is bounded by `kimi::http::CLEANUP_TIMEOUT`, 10 s).
pub const END_GRACE: Duration = Duration::from_secs(15);

/// What every request handler shares.
struct App {
    config: Config,
    tools: tools::Settings,
    /// The address the listener is bound to (the configured port may be 0).
    addr: SocketAddr,
    kimi: Kimi,
    /// Set when the drain deadline passed and running requests are being ended.
    ending: AtomicBool,
    /// The keys callers present in server-pool mode, and that guard `/metrics`.
    keys: keys::ApiKeys,
    metrics: metrics::Metrics,
    /// Agent sessions, each on one Kimi chat (`sessions.rs`).
    sessions: sessions::Sessions,
    started: Instant,
}

/// A server that is running; dropping it stops the listener and lets the workers finish.
pub struct RunningServer {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    listener: Option<JoinHandle<()>>,
    /// Another descriptor of the listening socket: shutting it down closes the port.
    socket: TcpStream,
    pool: Arc<Pool>,
    /// Reloads the tokens file on SIGHUP (server-pool mode with a file).
    _reloader: Option<accounts::Reloader>,
}

/// How a drain went: requests that finished by themselves, and those ended at the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub finished: usize,
    pub ended: usize,
    /// Requests still running when the server gave up waiting (0 unless a client or Kimi
    /// held a request past [`END_GRACE`]).
    pub abandoned: usize,
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

    /// Requests accepted and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.pool.in_flight.load(Ordering::Acquire)
    }

    /// Stops the server gracefully (SIGTERM, SIGINT): the port closes at once; running
    /// requests may finish until `deadline` passes or `hurry` receives (a second signal); then
    /// every upstream call is interrupted, so each request left ends with its dialect's error
    /// and its chat is deleted. Returns when no request runs (waiting [`END_GRACE`] at most).
    pub fn drain(&self, deadline: Duration, hurry: &Receiver<()>) -> Drained {
        self.pool.draining.store(true, Ordering::Release);
        let _ = self.socket.shutdown(Shutdown::Both);
        let running = self.in_flight();
        self.pool.wait_idle(Instant::now() + deadline, Some(hurry));
        let left = self.in_flight();
        if left > 0 {
            self.pool.app.ending.store(true, Ordering::Release);
            self.pool.app.kimi.interrupt();
            self.pool.wait_idle(Instant::now() + END_GRACE, None);
        }
        let closed = self.pool.app.sessions.close(&self.pool.app.kimi);
        if closed > 0 {
            eprintln!("kimi-free-api: deleted the chats of {closed} agent sessions");
        }
        Drained { finished: running.saturating_sub(left), ended: left, abandoned: self.in_flight() }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.pool.stopped.store(true, Ordering::Release);
        let _ = self.socket.shutdown(Shutdown::Both);
        self.http.unblock();
    }
}

/// Binds the listening socket, with a backlog of [`BACKLOG`] and the timeouts every accepted
/// socket inherits, and returns it with a second descriptor of it (to close the port later).
fn listen(config: &Config) -> io::Result<(TcpListener, TcpStream)> {
    let socket = bind(&config.host, config.port)?;
    socket.set_read_timeout(Some(config.idle_timeout))?;
    socket.set_write_timeout(Some(config.write_timeout))?;
    let handle = TcpStream::from(socket.try_clone()?);
    Ok((TcpListener::from(socket), handle))
}

/// Connections the kernel completes and holds for the accept loop: a burst beyond the backlog
/// waits for SYN retries (1, 3, 7 s). The kernel caps it at `net.core.somaxconn` (4096 on
/// Linux since 5.4). std's `TcpListener::bind` asks for 128.
pub const BACKLOG: i32 = 1024;

/// A listening socket on the first address of `host` that binds (as `TcpListener::bind`
/// would: `SO_REUSEADDR` set), with a backlog of [`BACKLOG`].
fn bind(host: &str, port: u16) -> io::Result<Socket> {
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "the host has no address");
    for addr in (host, port).to_socket_addrs()? {
        let bound =
            Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).and_then(|socket| {
                socket.set_reuse_address(true)?;
                socket.bind(&addr.into())?;
                socket.listen(BACKLOG)?;
                Ok(socket)
            });
        match bound {
            Ok(socket) => return Ok(socket),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Binds the configured address and starts the listener and the workers.
pub fn start(config: Config) -> io::Result<RunningServer> {
    let (listener, socket) = listen(&config)?;
    let limits =
        tiny_http::HeadLimits { max_bytes: config.max_header_bytes, timeout: Some(config.request_timeout) };
    let http =
        tiny_http::Server::from_listener_with_limits(listener, None, limits).map_err(io::Error::other)?;
    let addr = http.server_addr().to_ip().ok_or_else(|| io::Error::other("not an IP listener"))?;
    let http = Arc::new(http);
    let (sender, receiver) = crossbeam_channel::bounded(config.queue_depth);
    let tools = tool_settings(&config)?;
    let tokens = accounts::initial(&config)?;
    let (kimi, problem) = Kimi::new(config.kimi_settings());
    if let Some(problem) = problem {
        eprintln!("kimi-free-api: {problem}");
    }
    if let Some(proxy) = &config.upstream_proxy {
        eprintln!("kimi-free-api: calls to Kimi go through the proxy {proxy}");
    }
    if let Some(tokens) = &tokens {
        kimi.set_pool(tokens);
        let own = tokens.iter().filter(|entry| entry.proxy.is_some()).count();
        eprintln!(
            "kimi-free-api: server pool of {} Kimi accounts ({own} through a proxy of their own); callers \
             present API keys",
            tokens.len()
        );
    } else if !config.api_keys.0.is_empty() {
        eprintln!(
            "kimi-free-api: pass-through mode: callers' keys are their Kimi tokens; API keys guard /metrics"
        );
    }
    let keys = keys::ApiKeys::new(&config.api_keys.0);
    let session_settings = sessions::Settings {
        limit: config.sessions,
        max_turns: config.session_max_turns,
        idle: config.session_idle,
    };
    let pool = Arc::new(Pool {
        app: App {
            kimi,
            addr,
            tools,
            config,
            ending: AtomicBool::new(false),
            keys,
            metrics: metrics::Metrics::default(),
            sessions: sessions::Sessions::new(session_settings),
            started: Instant::now(),
        },
        receiver,
        started: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        draining: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
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
    if pool.app.config.sessions > 0 {
        janitor(pool.clone())?;
    }
    let listener_http = http.clone();
    let listener_pool = pool.clone();
    let listener = thread::Builder::new().name("listener".into()).spawn(move || {
        let pool = listener_pool;
        loop {
            match listener_http.recv() {
                Ok(request) if pool.draining.load(Ordering::Acquire) => refuse_while_draining(request),
                Ok(request) => {
                    if !pool.dispatch(request, &sender) {
                        break;
                    }
                }
                // The accept thread ended as the port closed for a drain; requests still
                // arrive on connections that were open.
                Err(_) if pool.draining.load(Ordering::Acquire) && !pool.stopped.load(Ordering::Acquire) => {}
                Err(error) => {
                    if !pool.stopped.load(Ordering::Acquire) {
                        eprintln!("kimi-free-api: the listener stopped: {error}");
                    }
                    break;
                }
            }
        }
    })?;
    Ok(RunningServer { http, addr, listener: Some(listener), socket, pool, _reloader: reloader })
}

/// The one thread that deletes idle agent sessions' chats; it ends with the server.
fn janitor(pool: Arc<Pool>) -> io::Result<()> {
    let tick = pool.app.sessions.tick();
    thread::Builder::new().name("sessions".into()).stack_size(WORKER_STACK).spawn(move || {
        while !pool.stopped.load(Ordering::Acquire) && !pool.draining.load(Ordering::Acquire) {
            thread::sleep(tick);
            pool.app.sessions.sweep(&pool.app.kimi);
        }
    })?;
    Ok(())
}

/// A request that arrives on an open connection once a drain began.
fn refuse_while_draining(request: tiny_http::Request) {
    let error = chat::Error::new(chat::ErrorKind::Overloaded, "the server is shutting down; retry shortly");
    let dialect = routes::dialect_for_path(request.url());
    exchange::respond_error(request, dialect, &error, &[("Connection", "close")]);
}
/// How tools are offered: the shipped prompt templates or the operator's files.
pub fn tool_settings(config: &Config) -> io::Result<tools::Settings> {
    let read = |path: &Option<std::path::PathBuf>, flag: &str, shipped: &str| match path {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read the {flag} file: {e}"))),
        None => Ok(shipped.to_string()),
    };
    Ok(tools::Settings {
        template: read(&config.tool_prompt, "--tool-prompt", tools::DEFAULT_TEMPLATE)?,
        native_template: read(&config.native_tool_prompt, "--native-tool-prompt", tools::NATIVE_TEMPLATE)?,
        max_inline_prompt: config.max_inline_prompt,
    })
}

/// The workers and what they share.
struct Pool {
    app: App,
    receiver: Receiver<tiny_http::Request>,
    /// Workers running.
    started: AtomicUsize,
    /// Requests queued or being served.
    in_flight: AtomicUsize,
    /// A drain began: the port is closed and new requests are refused.
    draining: AtomicBool,
    /// The server was dropped.
    stopped: AtomicBool,
}

impl Pool {
    /// Hands a request to a worker, or answers 503 when the queue is full; false when the
    /// workers are gone.
    fn dispatch(self: &Arc<Self>, request: tiny_http::Request, sender: &Sender<tiny_http::Request>) -> bool {
        // Every request accepted and not yet finished has a worker of its own (up to the
        // bound, past which requests wait in the queue).
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        if in_flight > self.started.load(Ordering::Acquire) {
            let _ = self.grow();
        }
        match sender.try_send(request) {
            Ok(()) => true,
            Err(TrySendError::Full(request)) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                let error =
                    chat::Error::new(chat::ErrorKind::Overloaded, "the server is busy; retry shortly");
                let dialect = routes::dialect_for_path(request.url());
                exchange::respond_error(request, dialect, &error, &[]);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Waits until no request runs, `until` passes, or `hurry` receives.
    fn wait_idle(&self, until: Instant, hurry: Option<&Receiver<()>>) {
        const TICK: Duration = Duration::from_millis(10);
        while self.in_flight.load(Ordering::Acquire) > 0 {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let tick = TICK.min(until - now);
            match hurry {
                Some(hurry) => match hurry.recv_timeout(tick) {
                    Ok(()) => return,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => thread::sleep(tick),
                },
                None => thread::sleep(tick),
            }
        }
    }

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
