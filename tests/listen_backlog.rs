//! The listen backlog: the server binary and the mock listen with a backlog of 1024 (capped by
//! the kernel's `net.core.somaxconn`) rather than std's 128, so a burst of connections waits
//! in the kernel instead of for SYN retries (1, 3, 7 s).
//!
//! The backlog is read as the kernel reports it: `ss -ltn` shows a listening socket's backlog
//! in its Send-Q column (`ss` is iproute2's; `make unit` installs it on a machine without it).
//! No timing is asserted: the burst test checks only that every connection is served.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::MockKimi;
use support::process::ServerProcess;

/// The backlog the kernel reports for the socket listening on `port`.
fn backlog(port: u16) -> u32 {
    let output = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss runs (iproute2; `make unit` installs it)");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let line = text.lines().next().unwrap_or_else(|| panic!("no listening socket on {port}: {text:?}"));
    // State, Recv-Q, Send-Q (the backlog), local address, peer address.
    line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

/// 1024, or less where the kernel caps backlogs lower.
fn expected() -> u32 {
    let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap_or_default();
    cap.trim().parse::<u32>().map_or(1024, |cap| cap.min(1024))
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).unwrap()
}

#[test]
fn the_server_and_the_mock_listen_with_a_backlog_of_1024() {
    let mock = MockKimi::start();
    let server = ServerProcess::start(&mock, &[]);
    assert_eq!(backlog(port_of(&server.base)), expected(), "the server");
    assert_eq!(backlog(port_of(mock.url())), expected(), "the mock");
    assert!(expected() > 128, "the kernel caps backlogs at 128 here: the test shows nothing");
}

/// Open files this process may hold (its soft limit), from /proc.
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or_default();
    line.split_whitespace().nth(3).and_then(|n| n.parse().ok()).unwrap_or(1024)
}

#[test]
fn a_burst_of_a_thousand_connects_is_all_served() {
    // 1000, or fewer where the open-files limit would refuse them (here or in the server).
    let n = 1000.min(open_files_limit().saturating_sub(100));
    let mock = MockKimi::start();
    // The request queue as deep as the burst: a full queue answers 503 by design (`--queue`),
    // which is not what this test is about.
    let server = ServerProcess::start(&mock, &["--queue", "1024"]);
    // Every connection opened before any is read: they wait in the backlog together.
    let mut sockets: Vec<TcpStream> = (0..n)
        .map(|i| TcpStream::connect(&server.addr).unwrap_or_else(|e| panic!("connect {i} of {n}: {e}")))
        .collect();
    for socket in &mut sockets {
        socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        socket.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    }
    let answers: Vec<String> = sockets
        .iter_mut()
        .map(|socket| {
            let mut answer = String::new();
            let _ = socket.read_to_string(&mut answer);
            answer
        })
        .collect();
    let odd: Vec<&String> =
        answers.iter().filter(|a| !(a.starts_with("HTTP/1.1 200") && a.ends_with("pong"))).collect();
    assert!(
        odd.is_empty(),
        "{} of {n} connections not answered pong, the first: {:?}",
        odd.len(),
        odd.first()
    );
}
