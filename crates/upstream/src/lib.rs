//! The proxy's side of the upstream identity provider: one confidential OAuth client.
//!
//! - [`provider`]: the provider's settings, its endpoints, and the operations below, wired;
//! - `discovery`: the endpoints from the issuer (OpenID Connect Discovery, RFC 8414);
//! - `authorization_url`: where the user's browser is sent to log in;
//! - `token_endpoint`: code exchange and refresh, authenticated as the proxy's client;
//! - `identity`: who logged in (id_token or userinfo), and the provider's signing keys;
//! - `id_token`: an OpenID Connect id_token's signature and claims, checked with `jsonwebtoken`;
//! - `answer`: every HTTP answer from the provider read and classified one way;
//! - `error`: [`UpstreamError`], the three kinds of failure callers act on;
//! - [`http_client`]: the one way this workspace builds an outgoing HTTP client;
//! - [`client_metadata_fetch`]: fetching a client's metadata document, guarded against SSRF.

pub mod client_metadata_fetch;
pub mod http_client;
pub mod provider;

mod answer;
mod authorization_url;
mod discovery;
mod error;
mod id_token;
mod identity;
mod token_endpoint;

pub use error::UpstreamError;
pub use provider::{Provider, ProviderAuthMethod, ProviderSettings};
pub use token_endpoint::UpstreamTokens;
