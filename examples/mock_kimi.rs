//! The test suite's mock Kimi upstream as a program, for the Python SDK tests and the
//! benchmark: prints its base URL on the first line of stdout, then serves until killed.

#[path = "../tests/support/mock/mod.rs"]
mod mock;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let mock = mock::MockKimi::start_on(&addr);
    println!("{}", mock.url());
    loop {
        std::thread::park();
    }
}
