//! Load on the server under test in the proxy bench: bursts of streams released together, idle
//! keep-alive connections, and stuck (silent or half-sent) sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use super::stream::Run;

/// Runs `level` copies of `stream` at once (released together) and returns what each gave.
pub fn burst(level: usize, stream: impl Fn() -> Run + Sync) -> Vec<Run> {
    let barrier = Barrier::new(level);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..level)
            .map(|_| {
                let (barrier, stream) = (&barrier, &stream);
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        barrier.wait();
                        stream()
                    })
                    .unwrap()
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `count` keep-alive connections that each made one request and then stay silent.
pub fn open_idle_keep_alive(base: &str, count: usize) -> Vec<TcpStream> {
    let addr = base.trim_start_matches("http://");
    (0..count)
        .filter_map(|_| {
            let mut socket = TcpStream::connect(addr).ok()?;
            socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            socket.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
            let mut answer = Vec::new();
            let mut buf = [0u8; 512];
            while !answer.ends_with(b"pong") {
                let n = socket.read(&mut buf).ok().filter(|n| *n > 0)?;
                answer.extend_from_slice(&buf[..n]);
            }
            Some(socket)
        })
        .collect()
}

/// Sockets that send nothing, and sockets that sent half a request head.
pub fn open_stuck(base: &str, silent: usize, half: usize) -> Vec<TcpStream> {
    let addr = base.trim_start_matches("http://");
    let mut sockets: Vec<TcpStream> = (0..silent).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    for _ in 0..half {
        if let Ok(mut socket) = TcpStream::connect(addr) {
            let _ = socket.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le");
            sockets.push(socket);
        }
    }
    sockets
}
