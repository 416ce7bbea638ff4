//! The listener, the bounded queue and the fixed worker pool.
//!
//! tiny_http reads requests on its own connection threads and hands them to one listener
//! thread. The listener `try_send`s each into a bounded channel; a full channel answers `503`
//! with `Retry-After` at once instead of letting requests pile up. A fixed pool of workers
//! takes requests from the channel; a panic in one request is contained to that request.

mod exchange;
mod routes;

use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, TrySendError};

use crate::chat;
use crate::config::Config;
use crate::kimi::Kimi;

/// Stack of each worker thread: room for JSON and TLS work, small enough for hundreds of
/// workers on a small VPS (only touched pages count toward memory).
const WORKER_STACK: usize = 512 * 1024;

/// What every worker shares.
pub struct App {
    pub config: Config,
    pub kimi: Kimi,
}

/// A server that is running; dropping it stops the listener and lets the workers finish.
pub struct RunningServer {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    listener: Option<JoinHandle<()>>,
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
    let app = Arc::new(App { kimi: Kimi::new(&config), config });
    for index in 0..app.config.workers {
        let (app, receiver) = (app.clone(), receiver.clone());
        thread::Builder::new()
            .name(format!("worker-{index}"))
            .stack_size(WORKER_STACK)
            .spawn(move || work(&app, &receiver))?;
    }
    let listener_http = http.clone();
    let listener = thread::Builder::new().name("listener".into()).spawn(move || {
        while let Ok(request) = listener_http.recv() {
            match sender.try_send(request) {
                Ok(()) => {}
                Err(TrySendError::Full(request)) => {
                    let error =
                        chat::Error::new(chat::ErrorKind::Overloaded, "the server is busy; retry shortly");
                    let dialect = routes::dialect_for_path(request.url());
                    exchange::respond_error(request, dialect, &error, &[]);
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
    })?;
    Ok(RunningServer { http, addr, listener: Some(listener) })
}

fn work(app: &App, receiver: &Receiver<tiny_http::Request>) {
    for request in receiver {
        if panic::catch_unwind(AssertUnwindSafe(|| routes::handle(app, request))).is_err() {
            // The request was dropped while unwinding, which answers it with a 500.
            eprintln!("worker: a request panicked; the worker carries on");
        }
    }
}
