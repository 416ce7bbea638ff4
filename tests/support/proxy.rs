//! Loopback proxies for the upstream-proxy tests: an HTTP CONNECT proxy and a SOCKS5 proxy
//! (RFC 1928, with the username/password login of RFC 1929 when asked for), each counting
//! what passes through it.
//!
//! ureq 3 reaches an `http://` target through an HTTP proxy with `CONNECT` too (it tunnels
//! every target; it never sends absolute-form `GET http://...` requests), so the HTTP proxy
//! speaks `CONNECT` only and answers anything else `405` (counted in [`Counts::refused`]).
//!
//! Bounds: at most [`MAX_TUNNELS`] tunnels at once (more are closed at once), each socket with
//! a read timeout of [`IDLE`], two threads per tunnel; the proxies connect only to loopback
//! addresses. Dropping a proxy stops its accept loop.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine;

/// Tunnels open at once at most.
pub const MAX_TUNNELS: usize = 64;
/// Longest silence on either side of a tunnel before it is closed.
pub const IDLE: Duration = Duration::from_secs(20);

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    HttpConnect,
    Socks5,
}

/// What went through a proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections accepted from clients.
    pub connections: usize,
    /// Tunnels opened (after the handshake and, if asked, the login).
    pub tunnels: usize,
    /// Handshakes refused: a wrong login, another method than CONNECT, a target not on loopback.
    pub refused: usize,
    /// Bytes from clients to targets, and back.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Where the tunnels went (`127.0.0.1:PORT`), in order.
    pub targets: Vec<String>,
    /// The proxy's own address of each tunnel's connection to its target: the peer the target
    /// saw (what tells a request the proxy carried from one it did not).
    pub outgoing: Vec<String>,
}

pub struct Proxy {
    kind: Kind,
    addr: SocketAddr,
    counts: Arc<Mutex<Counts>>,
    stop: Arc<AtomicBool>,
}

/// The login a proxy asks for.
#[derive(Clone)]
struct Login {
    user: String,
    password: String,
}

impl Proxy {
    /// A proxy on a free loopback port, asking for `login` (user, password) if given.
    pub fn start(kind: Kind, login: Option<(&str, &str)>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy binds");
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Mutex::new(Counts::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let login = login.map(|(user, password)| Login { user: user.into(), password: password.into() });
        let (shared, stopped) = (counts.clone(), stop.clone());
        thread::spawn(move || accept(listener, kind, login, shared, stopped));
        Proxy { kind, addr, counts, stop }
    }

    /// The proxy's URL, with `userinfo@` (percent-encoded already) if given.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        let scheme = match self.kind {
            Kind::HttpConnect => "http",
            Kind::Socks5 => "socks5h",
        };
        let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{userinfo}{}", self.addr)
    }

    /// The URL the server shows for it (no credentials).
    pub fn shown(&self) -> String {
        self.url(None)
    }

    pub fn counts(&self) -> Counts {
        self.counts.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept(
    listener: TcpListener,
    kind: Kind,
    login: Option<Login>,
    counts: Arc<Mutex<Counts>>,
    stop: Arc<AtomicBool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    for client in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        counts.lock().unwrap().connections += 1;
        if open.fetch_add(1, Ordering::AcqRel) >= MAX_TUNNELS {
            open.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let (login, counts, open) = (login.clone(), counts.clone(), open.clone());
        thread::spawn(move || {
            let _ = client.set_read_timeout(Some(IDLE));
            let outcome = match kind {
                Kind::HttpConnect => http_connect(&client, login.as_ref()),
                Kind::Socks5 => socks5(&client, login.as_ref()),
            };
            match outcome {
                Ok(target) => tunnel(client, target, &counts),
                Err(_) => counts.lock().unwrap().refused += 1,
            }
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Connects to a loopback target only.
fn connect(target: SocketAddr) -> io::Result<TcpStream> {
    if !target.ip().is_loopback() {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not a loopback target"));
    }
    let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(IDLE))?;
    Ok(stream)
}

/// `CONNECT host:port HTTP/1.1`, the login checked (`Proxy-Authorization: Basic`), then `200`.
fn http_connect(client: &TcpStream, login: Option<&Login>) -> io::Result<TcpStream> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut authorization = None;
    for _ in 0..64 {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("proxy-authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let mut out = client.try_clone()?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    if method != "CONNECT" {
        out.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Err(io::Error::other("not CONNECT"));
    }
    if let Some(login) = login {
        let expected =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", login.user, login.password));
        if authorization.as_deref() != Some(&format!("Basic {expected}")) {
            out.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")?;
            return Err(io::Error::other("wrong login"));
        }
    }
    let target: SocketAddr = target.parse().map_err(|_| io::Error::other("not ip:port"))?;
    match connect(target) {
        Ok(stream) => {
            out.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            Ok(stream)
        }
        Err(error) => {
            out.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")?;
            Err(error)
        }
    }
}

/// RFC 1928: greeting and method (no login, or RFC 1929's username/password), then CONNECT
/// to an IPv4, IPv6 or domain target (a domain must be `localhost`).
fn socks5(client: &TcpStream, login: Option<&Login>) -> io::Result<TcpStream> {
    let mut stream = client.try_clone()?;
    let [version, n] = read_array::<2>(&mut stream)?;
    let methods = read_vec(&mut stream, n as usize)?;
    if version != 5 {
        return Err(io::Error::other("not SOCKS5"));
    }
    let wanted = if login.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        stream.write_all(&[5, 0xff])?;
        return Err(io::Error::other("no acceptable method"));
    }
    stream.write_all(&[5, wanted])?;
    if let Some(login) = login {
        let [_version, ulen] = read_array::<2>(&mut stream)?;
        let user = read_vec(&mut stream, ulen as usize)?;
        let [plen] = read_array::<1>(&mut stream)?;
        let password = read_vec(&mut stream, plen as usize)?;
        let ok = user == login.user.as_bytes() && password == login.password.as_bytes();
        stream.write_all(&[1, if ok { 0 } else { 1 }])?;
        if !ok {
            return Err(io::Error::other("wrong login"));
        }
    }
    let [_version, command, _reserved, kind] = read_array::<4>(&mut stream)?;
    let ip = match kind {
        1 => Ipv4Addr::from(read_array::<4>(&mut stream)?).into(),
        4 => Ipv6Addr::from(read_array::<16>(&mut stream)?).into(),
        3 => {
            let [len] = read_array::<1>(&mut stream)?;
            let name = read_vec(&mut stream, len as usize)?;
            if name != b"localhost" {
                return Err(io::Error::other("only localhost by name"));
            }
            Ipv4Addr::LOCALHOST.into()
        }
        _ => return Err(io::Error::other("unknown address type")),
    };
    let port = u16::from_be_bytes(read_array::<2>(&mut stream)?);
    let target = (command == 1).then(|| connect(SocketAddr::new(ip, port)));
    match target {
        Some(Ok(target)) => {
            stream.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
            Ok(target)
        }
        _ => {
            stream.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])?;
            Err(io::Error::other("cannot connect"))
        }
    }
}

fn read_array<const N: usize>(stream: &mut TcpStream) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    stream.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_vec(stream: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; n];
    stream.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Copies both ways until either side closes or falls silent, counting the bytes.
fn tunnel(client: TcpStream, target: TcpStream, counts: &Arc<Mutex<Counts>>) {
    {
        let mut counts = counts.lock().unwrap();
        counts.tunnels += 1;
        counts.targets.push(target.peer_addr().map(|a| a.to_string()).unwrap_or_default());
        counts.outgoing.push(target.local_addr().map(|a| a.to_string()).unwrap_or_default());
    }
    let (Ok(client_in), Ok(target_out)) = (client.try_clone(), target.try_clone()) else { return };
    let shared = counts.clone();
    let up = thread::spawn(move || {
        let n = copy(client_in, target_out);
        shared.lock().unwrap().bytes_up += n;
    });
    let n = copy(target, client);
    counts.lock().unwrap().bytes_down += n;
    let _ = up.join();
}

/// Copies `from` into `to` until `from` ends or fails; then ends `to`'s writing side and
/// `from`'s reading side.
fn copy(mut from: TcpStream, mut to: TcpStream) -> u64 {
    let mut buffer = [0u8; 16 * 1024];
    let mut total = 0;
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 || to.write_all(&buffer[..n]).is_err() {
            break;
        }
        total += n as u64;
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
    total
}

/// A loopback port nothing listens on (bound, then closed): a proxy that cannot be reached.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
