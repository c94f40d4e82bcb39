//! The OAuth 2.1 authorization server, one per protected MCP server.
//!
//! Handlers, one per endpoint: `metadata`, `register`, `authorize` (with its `consent`
//! page), `callback`, `token`, `revoke`. What they share: `request` (a checked
//! authorization request and where its answers go), `login` (the user's login at the
//! identity provider), `upstream_login` (brokered OAuth: the user's second login, at an
//! OAuth-protected MCP upstream's own authorization server), `grants` (the token endpoint's
//! grants, answered as a `token_response`), `browserless` (the grants made at the token
//! endpoint alone: client credentials, and the grant they share with `id_jag`, an enterprise
//! IdP's ID-JAG), `client_auth` (the client credentials a request carries, and their check).

pub(crate) mod authorize;
mod browserless;
pub(crate) mod callback;
mod client_auth;
mod consent;
mod grants;
mod id_jag;
mod login;
mod login_grant;
pub(crate) mod metadata;
pub(crate) mod register;
pub(crate) mod request;
pub(crate) mod revoke;
pub(crate) mod token;
mod token_response;
mod upstream_login;
