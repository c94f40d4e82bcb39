//! The mcp-oauth-proxy binary's library half: configuration and start-up, shared by
//! `main.rs` and the integration tests.

pub mod admin;
pub mod config;
pub mod demo;
pub mod logging;
pub mod runtime;
