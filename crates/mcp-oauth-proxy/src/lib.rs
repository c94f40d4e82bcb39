//! The mcp-oauth-proxy binary's library half: configuration and start-up, shared by
//! `main.rs` and the integration tests; what a configuration sets up, in words
//! (`explain`); and the work on the store that is not HTTP: key rotation for sealed
//! values (`rekey`) and the background clean-up (`purge`).

pub mod admin;
pub mod config;
pub mod demo;
pub mod explain;
pub mod logging;
pub mod purge;
pub mod rekey;
pub mod runtime;

/// The error of a command-line task: whatever went wrong, said to the operator.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
