//! kimi-free-api: a small synchronous server that lets a person use their own Kimi web-chat
//! account through the client APIs their tools already speak.
//!
//! The crate is laid out as in `DESIGN.md`: client dialects (`dialect`) and upstream backends
//! (`kimi`) meet only in the neutral chat model (`chat`); `server` owns sockets and threads.
#![forbid(unsafe_code)]

pub mod chat;
pub mod config;
pub mod dialect;
pub mod kimi;
pub mod server;
