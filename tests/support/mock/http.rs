//! Just enough HTTP/1.1 for a client: requests with `Content-Length` bodies in, keep-alive,
//! JSON answers and chunked streams out (which a fault can cut), and the two protocols' error
//! bodies.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};

use serde_json::{Value, json};

/// One request read off a connection. The mock speaks just enough HTTP/1.1 for a client:
/// `Content-Length` bodies in, keep-alive, and chunked streams out that it can also cut.
pub struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) stream: TcpStream,
}

/// Whether the connection can serve another request.
pub(super) enum Flow {
    KeepAlive,
    Close,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or("").to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let stream = reader.get_ref().try_clone()?;
    Ok(Some(Request { method, path, headers, body, stream }))
}

/// Serves the requests of one connection, in order, until it closes or `serve` closes it.
pub(super) fn connection(stream: TcpStream, mut serve: impl FnMut(Request) -> Flow) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    while let Ok(Some(request)) = read_request(&mut reader) {
        if let Flow::Close = serve(request) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

pub(super) fn json_response(request: Request, status: u16, body: Value) -> Flow {
    json_response_with(request, status, body, "")
}

/// [`json_response`] with extra header lines (each ending in CRLF).
pub(super) fn json_response_with(mut request: Request, status: u16, body: Value, headers: &str) -> Flow {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n",
        status_text(status),
        body.len()
    );
    match request.stream.write_all(format!("{head}{body}").as_bytes()) {
        Ok(()) => Flow::KeepAlive,
        Err(_) => Flow::Close,
    }
}

pub(super) fn legacy_error(request: Request, status: u16, error_type: &str) -> Flow {
    json_response(request, status, json!({"error_type": error_type, "message": format!("mock {error_type}")}))
}

pub(super) fn connect_error(request: Request, status: u16, code: &str) -> Flow {
    json_response(request, status, json!({"code": code, "message": format!("mock {code}")}))
}

pub(super) fn request_header(request: &Request, name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    request.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
}

pub(super) fn bearer(request: &Request) -> String {
    request_header(request, "Authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
        .unwrap_or_default()
}

/// A `Retry-After` header line, or none.
pub(super) fn retry_after_header(seconds: Option<u64>) -> String {
    seconds.map_or_else(String::new, |s| format!("Retry-After: {s}\r\n"))
}

/// A chunked HTTP body written event by event (the socket is unbuffered: one write each).
pub(super) struct Chunked(TcpStream);

impl Chunked {
    pub(super) fn open(mut request: Request) -> io::Result<Chunked> {
        request.stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        )?;
        Ok(Chunked(request.stream))
    }

    pub(super) fn chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
        frame.extend_from_slice(bytes);
        frame.extend_from_slice(b"\r\n");
        self.0.write_all(&frame)
    }

    pub(super) fn end(mut self) -> Flow {
        match self.0.write_all(b"0\r\n\r\n") {
            Ok(()) => Flow::KeepAlive,
            Err(_) => Flow::Close,
        }
    }
}
