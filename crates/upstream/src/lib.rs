//! The proxy's side of the upstream identity provider: one confidential OAuth client.
//!
//! - [`provider`]: endpoints (configured or discovered), the authorization URL, code
//!   exchange, refresh and finding out who the user is;
//! - [`id_token`]: the claim checks on an OpenID Connect id_token;
//! - [`http_client`]: the one way this workspace builds an outgoing HTTP client.

pub mod client_metadata_fetch;
pub mod http_client;
pub mod id_token;
pub mod jwks;
pub mod provider;

pub use provider::{Provider, ProviderAuthMethod, ProviderSettings, UpstreamError, UpstreamTokens};
