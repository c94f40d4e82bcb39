//! The protocol core of mcp-oauth-proxy.
//!
//! Everything here is pure: no sockets, no files, no database. The HTTP layer and the
//! storage layer call into these modules to decide *what* the protocol says; they only
//! decide *how* to carry it out. That split keeps every OAuth rule testable in isolation.

pub mod client;
pub mod client_metadata_document;
pub mod clock;
pub mod error;
pub mod family;
pub mod form;
pub mod identity_assertion;
pub mod jose;
pub mod jwt_grant;
pub mod pkce;
pub mod redirect_uri;
pub mod scope;
pub mod seal;
pub mod sealed;
pub mod sign;
pub mod token;
pub mod tool_definition;
pub mod tool_scopes;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{OAuthError, OAuthErrorCode};
