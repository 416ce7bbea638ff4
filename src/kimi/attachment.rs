//! Images and documents attached to a message: decoded from `data:` URLs or fetched from
//! `http(s)` URLs, ready for a backend to upload to Kimi.
//!
//! Fetching a URL on the caller's behalf is a server-side request: only `http`/`https`, only
//! public addresses (unless the operator allows private ones), bounded in size and time, and
//! never with Kimi's credentials.
//!
//! The address check sits in the fetch agent's resolver (`http.rs`, [`Guarded`]): every
//! connection is checked, each redirect hop included (DNS rebinding too).

use std::io::Read;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ureq::Agent;

use super::Error;
use super::http::{FETCH_TIMEOUT, MAX_REDIRECTS, Refused, Upstream};
use crate::chat::Part;

/// Standard base64, with or without padding (clients differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Largest attachment fetched from a URL.
pub const MAX_FETCH_BYTES: u64 = 50 * 1024 * 1024;
/// An attachment's bytes and what they are.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

impl Attachment {
    pub fn is_image(&self) -> bool {
        self.mime.starts_with("image/")
    }
}

/// Where attachments may come from.
#[derive(Clone, Copy)]
pub struct Fetch<'a> {
    pub upstream: &'a Upstream,
    /// Whether URLs on loopback and private networks may be fetched.
    pub allow_private: bool,
}

impl Fetch<'_> {
    fn agent(&self) -> &Agent {
        self.upstream.fetch_agent(self.allow_private)
    }
}

/// The attachments of the newest message (earlier ones were seen in earlier turns, as in the
/// original project), loaded before any chat is created so a bad one costs nothing upstream.
pub fn of_last_message(request: &crate::chat::Request, fetch: Fetch<'_>) -> Result<Vec<Attachment>, Error> {
    let Some(last) = request.messages.last() else { return Ok(Vec::new()) };
    last.parts
        .iter()
        .filter(|p| matches!(p, Part::Image(_) | Part::File(_)))
        .map(|p| load(p, fetch))
        .collect()
}

/// Loads one image or file part.
pub fn load(part: &Part, fetch: Fetch<'_>) -> Result<Attachment, Error> {
    let (url, image) = match part {
        Part::Image(url) => (url, true),
        Part::File(url) => (url, false),
        _ => return Err(Error::Rejected("only images and files are attachments".into())),
    };
    let mut attachment = if url.starts_with("data:") {
        decode_data_url(url)?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        download(url, fetch)?
    } else {
        return Err(Error::Rejected("an attachment must be a data: URL or an http(s) URL".into()));
    };
    if image && !attachment.is_image() && attachment.mime == "application/octet-stream" {
        attachment.mime = "image/png".into();
    }
    Ok(attachment)
}

/// Decodes `data:<mime>[;base64],<data>`.
pub fn decode_data_url(url: &str) -> Result<Attachment, Error> {
    let bad = |why: &str| Error::Rejected(format!("invalid data URL: {why}"));
    let rest = url.strip_prefix("data:").ok_or_else(|| bad("no data: prefix"))?;
    let (meta, data) = rest.split_once(',').ok_or_else(|| bad("no comma"))?;
    let mut params = meta.split(';');
    let mime = params.next().filter(|m| !m.is_empty()).unwrap_or("text/plain").to_ascii_lowercase();
    let params: Vec<&str> = params.collect();
    // `name=` (RFC 2397 allows parameters) names the file Kimi shows.
    let name =
        params.iter().find_map(|p| p.strip_prefix("name=")).filter(|n| !n.is_empty() && !n.contains('/'));
    let bytes = if params.iter().any(|p| p.eq_ignore_ascii_case("base64")) {
        // google-genai sends the URL-safe alphabet; others send the standard one.
        let cleaned: String = data
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        BASE64.decode(cleaned).map_err(|e| bad(&format!("bad base64 ({e})")))?
    } else {
        data.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err(bad("no data"));
    }
    let name = name.map_or_else(|| format!("upload.{}", extension(&mime)), str::to_string);
    Ok(Attachment { name, mime, bytes })
}

fn extension(mime: &str) -> &str {
    match mime {
        "image/jpeg" => "jpg",
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        "text/markdown" => "md",
        other => other
            .rsplit('/')
            .next()
            .filter(|e| e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or("bin"),
    }
}

/// The host and port of an http(s) URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let default = if scheme == "https" { 443 } else { 80 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map_or(Some(default), |p| p.parse().ok())?;
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
}

fn download(url: &str, fetch: Fetch<'_>) -> Result<Attachment, Error> {
    download_with(fetch.agent(), url)
}

/// What a failed fetch tells the caller: a refusal of ours, or what went wrong.
fn fetch_error(error: ureq::Error) -> Error {
    match error {
        ureq::Error::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<Refused>()) => {
            Error::Rejected(e.into_inner().map_or_else(String::new, |inner| inner.to_string()))
        }
        ureq::Error::TooManyRedirects => {
            Error::Rejected(format!("the attachment URL redirects more than {MAX_REDIRECTS} times"))
        }
        ureq::Error::HostNotFound => Error::Rejected("cannot resolve the attachment host".into()),
        ureq::Error::Timeout(_) => {
            Error::Rejected(format!("the attachment did not arrive within {} s", FETCH_TIMEOUT.as_secs()))
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            Error::Rejected("the attachment URL cannot be read".into())
        }
        other => Error::Rejected(format!("the attachment could not be fetched: {other}")),
    }
}

fn download_with(agent: &Agent, url: &str) -> Result<Attachment, Error> {
    host_port(url).ok_or_else(|| Error::Rejected("the attachment URL cannot be read".into()))?;
    let response = agent.get(url).call().map_err(fetch_error)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(Error::Rejected(format!("fetching the attachment answered HTTP {status}")));
    }
    let mime = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("application/octet-stream")
        .trim()
        .to_ascii_lowercase();
    let mut bytes = Vec::new();
    response.into_body().into_reader().take(MAX_FETCH_BYTES + 1).read_to_end(&mut bytes).map_err(
        |e| match e.into_inner().map(|inner| inner.downcast::<ureq::Error>()) {
            Some(Ok(inner)) => fetch_error(*inner),
            _ => Error::Rejected("the attachment could not be read to its end".into()),
        },
    )?;
    if bytes.len() as u64 > MAX_FETCH_BYTES {
        return Err(Error::Rejected(format!("the attachment is larger than {MAX_FETCH_BYTES} bytes")));
    }
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && n.len() < 200)
        .map_or_else(|| format!("upload.{}", extension(&mime)), str::to_string);
    Ok(Attachment { name, mime, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        let png = decode_data_url("data:image/png;base64,iVBORw0KGgo=").unwrap();
        assert_eq!(png.mime, "image/png");
        assert_eq!(png.bytes, b"\x89PNG\r\n\x1a\n");
        assert_eq!(png.name, "upload.png");
        let unpadded = decode_data_url("data:image/png;base64,iVBORw0KGgo").unwrap();
        assert_eq!(unpadded.bytes, png.bytes);
        let url_safe = decode_data_url("data:application/octet-stream;base64,-_8=").unwrap();
        assert_eq!(url_safe.bytes, [0xfb, 0xff]);
        let text = decode_data_url("data:text/plain,hello").unwrap();
        assert_eq!((text.bytes.as_slice(), text.name.as_str()), (&b"hello"[..], "upload.txt"));
        assert!(decode_data_url("data:image/png;base64,!!!").is_err());
        assert!(decode_data_url("data:image/png;base64,").is_err());
        assert!(decode_data_url("data:nocomma").is_err());
    }

    use std::collections::{HashMap, VecDeque};
    use std::io::Write;
    use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use ureq::http::Uri;
    use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
    use ureq::unversioned::transport::NextTimeout;

    use super::super::http::{Guarded, guarded_agent};

    /// A loopback HTTP server: `/r/N/then/URL` redirects N more times, then to URL;
    /// `/file` is a small PNG; `/drip` sends its body a byte a second. Counts connections.
    struct Site {
        addr: SocketAddr,
        hits: Arc<AtomicUsize>,
    }

    impl Site {
        fn start(ip: &str) -> Site {
            let listener = TcpListener::bind((ip, 0)).unwrap();
            let addr = listener.local_addr().unwrap();
            let hits = Arc::new(AtomicUsize::new(0));
            let counter = hits.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().take(64).flatten() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || Site::serve(stream, addr));
                }
            });
            Site { addr, hits }
        }

        fn serve(mut stream: TcpStream, addr: SocketAddr) {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                if stream.read(&mut byte).unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let answer = |status: &str, extra: &str, body: &[u8]| {
                let mut out = format!(
                    "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(body);
                out
            };
            let out = if let Some(rest) = path.strip_prefix("/r/") {
                let (n, then) = rest.split_once("/then/").unwrap();
                let n: u32 = n.parse().unwrap();
                let next =
                    if n == 0 { then.to_string() } else { format!("http://{addr}/r/{}/then/{then}", n - 1) };
                answer("302 Found", &format!("Location: {next}\r\n"), b"")
            } else if path == "/file" {
                answer("200 OK", "Content-Type: image/png\r\n", b"\x89PNG")
            } else if path == "/drip" {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
                for _ in 0..100 {
                    if stream.write_all(b"x").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                return;
            } else {
                answer("404 Not Found", "", b"")
            };
            let _ = stream.write_all(&out);
        }
    }

    /// In these tests 127.0.0.1 plays a public host and every other address a private one.
    fn only_127_0_0_1(ip: IpAddr) -> bool {
        ip == IpAddr::from([127, 0, 0, 1])
    }

    /// A resolver double: each name answers its addresses in turn (the last one stays).
    #[derive(Debug, Default)]
    struct Table {
        answers: Mutex<HashMap<String, VecDeque<IpAddr>>>,
        asked: AtomicUsize,
    }

    /// The guard's view of a [`Table`] shared with the test.
    #[derive(Debug)]
    struct Double(Arc<Table>);

    impl Resolver for Double {
        fn resolve(
            &self,
            uri: &Uri,
            config: &ureq::config::Config,
            timeout: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            self.0.asked.fetch_add(1, Ordering::SeqCst);
            let host = uri.host().unwrap_or_default().to_string();
            let mut answers = self.0.answers.lock().unwrap();
            let Some(list) = answers.get_mut(&host) else {
                return DefaultResolver::default().resolve(uri, config, timeout);
            };
            let ip = if list.len() > 1 { list.pop_front().unwrap() } else { list[0] };
            let mut out = DefaultResolver::default().empty();
            out.push(SocketAddr::new(ip, uri.port_u16().unwrap_or(80)));
            Ok(out)
        }
    }

    fn agent_with(table: &Arc<Table>, timeout: Duration) -> Agent {
        let user_agent = super::super::browser::DEFAULT_USER_AGENT;
        guarded_agent(Guarded { inner: Double(table.clone()), allowed: only_127_0_0_1 }, timeout, user_agent)
    }

    fn refused(result: Result<Attachment, Error>) -> String {
        match result {
            Err(Error::Rejected(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_redirect_to_a_private_address_is_refused_before_connecting() {
        let (public, private) = (Site::start("127.0.0.1"), Site::start("127.0.0.2"));
        let table = Arc::new(Table::default());
        let agent = agent_with(&table, Duration::from_secs(10));
        let ok =
            download_with(&agent, &format!("http://{}/r/1/then/http://{}/file", public.addr, public.addr));
        assert_eq!(ok.unwrap().bytes, b"\x89PNG", "public hops are followed");
        let url = format!("http://{}/r/0/then/http://{}/file", public.addr, private.addr);
        let message = refused(download_with(&agent, &url));
        assert!(message.contains("private or local addresses are refused (127.0.0.2)"), "{message}");
        let message = refused(download_with(&agent, &format!("http://{}/file", private.addr)));
        assert!(message.contains("private or local"), "{message}");
        assert_eq!(private.hits.load(Ordering::SeqCst), 0, "nothing connected to the private address");
    }

    #[test]
    fn a_name_that_rebinds_to_a_private_address_is_refused_at_its_next_connect() {
        let (public, private) = (Site::start("127.0.0.1"), Site::start("127.0.0.2"));
        let table = Arc::new(Table::default());
        // files.test answers the public address once, then the private one (DNS rebinding).
        let ips: VecDeque<IpAddr> = ["127.0.0.1", "127.0.0.2"].iter().map(|ip| ip.parse().unwrap()).collect();
        table.answers.lock().unwrap().insert("files.test".into(), ips);
        let agent = agent_with(&table, Duration::from_secs(10));
        // The first hop reaches the public server, which redirects to the same name on the
        // private server's port: that connect resolves again, and is refused.
        let url = format!(
            "http://files.test:{}/r/0/then/http://files.test:{}/file",
            public.addr.port(),
            private.addr.port()
        );
        let message = refused(download_with(&agent, &url));
        assert!(message.contains("private or local addresses are refused (files.test)"), "{message}");
        assert_eq!(table.asked.load(Ordering::SeqCst), 2, "every connect asked the guarded resolver");
        assert_eq!(public.hits.load(Ordering::SeqCst), 1);
        assert_eq!(private.hits.load(Ordering::SeqCst), 0, "nothing connected to the private address");
    }

    #[test]
    fn at_most_three_redirects_are_followed() {
        let public = Site::start("127.0.0.1");
        let agent = agent_with(&Arc::new(Table::default()), Duration::from_secs(10));
        let file = format!("http://{}/file", public.addr);
        let three = format!("http://{}/r/2/then/{file}", public.addr);
        assert_eq!(download_with(&agent, &three).unwrap().bytes, b"\x89PNG");
        let four = format!("http://{}/r/3/then/{file}", public.addr);
        let message = refused(download_with(&agent, &four));
        assert!(message.contains("redirects more than 3 times"), "{message}");
        assert_eq!(MAX_REDIRECTS, 3);
    }

    #[test]
    fn the_whole_fetch_is_bounded_in_time() {
        let public = Site::start("127.0.0.1");
        let agent = agent_with(&Arc::new(Table::default()), Duration::from_secs(2));
        let started = Instant::now();
        let message = refused(download_with(&agent, &format!("http://{}/drip", public.addr)));
        assert!(message.contains("did not arrive") || message.contains("could not"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        assert_eq!(FETCH_TIMEOUT, Duration::from_secs(30));
    }

    #[test]
    fn hosts_and_ports() {
        assert_eq!(host_port("https://a.b/c?d"), Some(("a.b".into(), 443)));
        assert_eq!(host_port("http://u:p@a.b:8080/x"), Some(("a.b".into(), 8080)));
        assert_eq!(host_port("http://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(host_port("http://a.b:notaport/"), None);
    }
}
