//! Whether the server answers `GET /ping`: the readiness check of the tests' server processes
//! and of the benches' (which include this file by path).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Whether `GET /ping` answers 2xx within a second.
pub fn ping(addr: &str) -> bool {
    let Ok(mut socket) = TcpStream::connect(addr) else { return false };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    if socket.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 12];
    socket.read_exact(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 2")
}
