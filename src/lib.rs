//! kimi-free-api: a small synchronous server that lets a person use their own Kimi web-chat
//! account through the client APIs their tools already speak.
//!
//! Client dialects (`dialect`) and the Kimi backends (`kimi`) meet only in the neutral chat
//! model (`chat`); `server` owns sockets and threads and is the one place that wires them.
//! `ARCHITECTURE.md` maps the code; `docs/` holds the protocol knowledge it relies on.
#![forbid(unsafe_code)]

pub mod chat;
pub mod config;
pub mod dialect;
pub mod doctor;
pub mod health;
pub mod kimi;
pub mod server;
