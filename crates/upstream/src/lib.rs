//! The proxy's side of the upstream identity provider: one confidential OAuth client.
//!
//! - [`provider`]: [`Provider`], the public operations, each delegated to a job module below;
//! - `settings`: [`ProviderSettings`] as configured, and the endpoints once resolved;
//! - `discovery`: the missing endpoints from the issuer (OpenID Connect Discovery, RFC 8414);
//! - `authorization_url`: where the user's browser is sent to log in;
//! - `token_endpoint`: code exchange and refresh as the proxy's client; [`UpstreamTokens`];
//! - `identity`: who logged in (id_token or userinfo), whether the provider still accepts a
//!   user's access token (userinfo), and the cache of signing keys;
//! - `id_token`: an id_token's signature and claims, checked with `jsonwebtoken`;
//! - `answer`: every HTTP answer from the provider, read and classified one way;
//! - `error`: [`UpstreamError`] and its [`FailureKind`], the three kinds of failure callers act on;
//! - [`http_client`]: the outgoing HTTP clients (provider calls, MCP forwarding) and TLS setup;
//! - [`brokered`]: brokered OAuth, the proxy as the client of an OAuth-protected MCP
//!   upstream: discovering it (RFC 9728, RFC 8414), registering (RFC 7591), revoking
//!   (RFC 7009); the registered authorization server is then an ordinary [`Provider`].

pub mod brokered;
pub mod http_client;
pub mod provider;

mod answer;
mod authorization_url;
mod discovery;
mod error;
mod id_token;
mod identity;
mod settings;
mod token_endpoint;

pub use error::{FailureKind, UpstreamError};
pub use identity::{Identity, TokenStatus};
pub use provider::Provider;
pub use settings::{ProviderAuthMethod, ProviderSettings};
pub use token_endpoint::UpstreamTokens;
