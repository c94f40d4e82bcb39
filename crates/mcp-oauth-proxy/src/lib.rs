//! The mcp-oauth-proxy binary's library half: configuration and start-up, shared by
//! `main.rs` and the integration tests, and the work on the store that is not HTTP: key
//! rotation for sealed values (`rekey`) and the background clean-up (`purge`).

pub mod admin;
pub mod config;
pub mod demo;
pub mod logging;
pub mod purge;
pub mod rekey;
pub mod runtime;
