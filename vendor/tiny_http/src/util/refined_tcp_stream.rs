use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connection::Connection;
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;

pub(crate) enum Stream {
    Http(Connection),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

impl Clone for Stream {
    fn clone(&self) -> Self {
        match self {
            Stream::Http(tcp_stream) => Stream::Http(tcp_stream.try_clone().unwrap()),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Stream::Https(ssl_stream.clone()),
        }
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(tcp_stream)
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.peer_addr(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.read(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.write(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.flush(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    head_deadline: Option<Arc<HeadDeadline>>,
}

/// kimi-free-api patch: the instant by which a request head must have arrived, shared by the
/// connection (which sets it at the head's first byte and clears it once the head is read)
/// and its reading socket. While it is set, every read from the socket waits at most until
/// then (SO_RCVTIMEO lowered to what is left, never raised above the socket's own timeout) and
/// fails with `TimedOut` once it has passed; the socket's own timeout is put back before the
/// first read after it is cleared. Only plain TCP sockets have it.
#[derive(Debug, Default)]
pub(crate) struct HeadDeadline {
    state: Mutex<DeadlineState>,
}

#[derive(Debug, Default)]
struct DeadlineState {
    until: Option<Instant>,
    // the socket's own read timeout, while a lowered one is in place
    saved: Option<Option<Duration>>,
}

impl HeadDeadline {
    pub(crate) fn set(&self, until: Option<Instant>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).until = until;
    }

    fn before_read(&self, socket: &std::net::TcpStream) -> IoResult<Option<Instant>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = state.until else {
            if let Some(saved) = state.saved.take() {
                socket.set_read_timeout(saved)?;
            }
            return Ok(None);
        };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(head_timed_out());
        }
        let own = match state.saved {
            Some(own) => own,
            None => *state.saved.insert(socket.read_timeout()?),
        };
        socket.set_read_timeout(Some(own.map_or(left, |own| own.min(left))))?;
        Ok(Some(until))
    }
}

fn head_timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the request head took too long")
}

impl RefinedTcpStream {
    pub(crate) fn new<S>(stream: S) -> (RefinedTcpStream, RefinedTcpStream)
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.clone(), stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            head_deadline: None,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            head_deadline: None,
        };

        (read, write)
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    /// kimi-free-api patch: reads from this socket keep to `deadline` (see `HeadDeadline`).
    pub(crate) fn set_head_deadline(&mut self, deadline: Arc<HeadDeadline>) {
        self.head_deadline = Some(deadline);
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        // kimi-free-api patch: see `HeadDeadline`.
        let socket = match (&self.head_deadline, &self.stream) {
            (Some(deadline), Stream::Http(Connection::Tcp(socket))) => Some((deadline, socket)),
            _ => None,
        };
        let Some((deadline, socket)) = socket else {
            return self.stream.read(buf);
        };
        let until = deadline.before_read(socket)?;
        match self.stream.read(buf) {
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                    && until.is_some_and(|until| Instant::now() >= until) =>
            {
                Err(head_timed_out())
            }
            result => result,
        }
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
