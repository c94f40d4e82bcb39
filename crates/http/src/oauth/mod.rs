//! The OAuth 2.1 authorization server, one per protected MCP server.

pub mod authorize;
pub mod callback;
pub mod client_auth;
pub mod consent;
pub mod metadata;
pub mod register;
pub mod revoke;
pub mod token;
pub mod upstream_credential;
