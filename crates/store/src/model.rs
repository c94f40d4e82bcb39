//! The rows the store keeps, as the rest of the proxy sees them.
//!
//! Plain types, free of any database driver: each backend decodes its rows into them
//! (`sqlite::rows`, `postgres::rows`, both through `decode`), converting hash and status
//! columns with core's `TryFrom` impls, so that a corrupted value is an error rather than
//! a silently wrong field.

use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::TokenHash;

/// An authorization request that has passed consent and is waiting for the user to come
/// back from the upstream provider. Keyed by the hash of the proxy's upstream `state`.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    pub state_hash: TokenHash,
    /// Hash of the browser-binding cookie that must come back with the callback.
    pub browser_hash: TokenHash,
    pub server: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub resource: String,
    pub code_challenge: String,
    /// The client's own `state`, returned to it untouched.
    pub client_state: Option<String>,
    /// The proxy's PKCE verifier towards the upstream provider. Not sealed: without the
    /// upstream code, which only the user's browser sees, it is worth nothing.
    pub upstream_verifier: String,
    pub nonce: Option<String>,
    pub expires_at: i64,
    /// The login attempt's trace id (see the HTTP layer's `trace`).
    pub trace_id: Option<String>,
    /// The client address (grouped as the limits group it) the login was started from.
    pub address: Option<String>,
    /// Brokered OAuth: set when this is the second step, the login at the MCP upstream's
    /// authorization server, to what the first step found out (sealed by the HTTP layer,
    /// bound to `state_hash`). `None` for a login at the provider.
    pub broker: Option<String>,
}

/// The proxy's dynamic registration (RFC 7591) at an MCP upstream's authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRegistration {
    pub server: String,
    /// The authorization server's issuer, as its metadata names it.
    pub issuer: String,
    pub client_id: String,
    /// The client secret, sealed by the HTTP layer; `None` for a public client.
    pub secret_sealed: Option<String>,
    pub created_at: i64,
}

/// How many logins may be started and not finished at once.
#[derive(Debug, Clone, Copy)]
pub struct PendingCaps {
    pub per_browser: i64,
    pub per_address: i64,
}

/// A token family (a grant): born when a user completes an authorization, holding the
/// user's upstream credential for all the tokens that descend from it.
#[derive(Debug, Clone)]
pub struct NewFamily {
    pub id: String,
    pub server: String,
    pub client_id: String,
    pub subject: String,
    pub scope: String,
    pub resource: String,
    /// The upstream credential, sealed with the family id as additional data.
    pub upstream_sealed: String,
    /// `None` when the provider gave no expiry (GitHub OAuth apps): never invent one.
    pub upstream_expires_at: Option<i64>,
    pub created_at: i64,
    /// The trace id of the login attempt that created it.
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewCode {
    pub hash: TokenHash,
    pub family_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub expires_at: i64,
}

/// An authorization code with what it was bound to.
#[derive(Debug, Clone)]
pub struct StoredCode {
    pub family_id: String,
    pub server: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub expires_at: i64,
    pub used: bool,
    pub trace_id: Option<String>,
}

/// What [`crate::Store::rotate_refresh_token`] is asked to do: rotate the refresh token
/// `hash` presented by `client_id` at `now`, issuing `pair`; `successor_sealed` is the
/// caller's sealed copy of `pair`'s refresh token, kept for replays within `grace_secs`.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRotation<'a> {
    pub hash: &'a TokenHash,
    pub client_id: &'a str,
    pub now: i64,
    pub grace_secs: i64,
    pub pair: &'a NewTokenPair,
    pub successor_sealed: &'a str,
}

/// A new access and refresh token, issued together into one family.
#[derive(Debug, Clone)]
pub struct NewTokenPair {
    pub access_hash: TokenHash,
    pub access_expires_at: i64,
    /// `None` for a client that did not register the `refresh_token` grant.
    pub refresh: Option<(TokenHash, i64)>,
    pub client_id: String,
    pub scope: String,
    pub issued_at: i64,
}

#[derive(Debug, Clone)]
pub struct StoredRefreshToken {
    pub family_id: String,
    pub server: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: i64,
    pub superseded_at: Option<i64>,
    pub family_status: FamilyStatus,
    /// The grant's sealed provider credential, read in the same lookup: the refresh
    /// grant checks it before rotating. Its `family_status` is the one above.
    pub upstream: UpstreamCredential,
}

/// What a bearer token check needs, read in one indexed lookup.
#[derive(Debug, Clone)]
pub struct AccessTokenInfo {
    pub server: String,
    pub client_id: String,
    pub subject: String,
    pub scope: String,
    pub resource: String,
    pub expires_at: i64,
    pub revoked: bool,
    /// The grant (its id and status) with its sealed provider credential, read in the
    /// same lookup so that the hot path needs no second query, and passed on as one value.
    pub upstream: UpstreamCredential,
    /// The trace id of the login attempt that created the grant.
    pub trace_id: Option<String>,
}

/// The sealed upstream credential of a family (a grant), with the family's id and status.
#[derive(Debug, Clone)]
pub struct UpstreamCredential {
    pub family_id: String,
    pub sealed: String,
    pub expires_at: Option<i64>,
    pub family_status: FamilyStatus,
}

/// How many rows a purge removed, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub pending: u64,
    pub codes: u64,
    pub access_tokens: u64,
    pub refresh_tokens: u64,
    /// Sealed successors of rotated refresh tokens whose grace window has closed.
    pub successors: u64,
    pub families: u64,
    pub clients: u64,
    /// Used assertion ids (`jti`) past their expiry.
    pub assertions: u64,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.pending
            + self.codes
            + self.access_tokens
            + self.refresh_tokens
            + self.successors
            + self.families
            + self.clients
            + self.assertions
    }
}

/// The right to refresh one grant's provider credential, held by one request on one
/// replica until it stores a result, gives it back, or the lease runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub family_id: String,
    /// Random, so that a holder whose lease ran out and was taken over can tell.
    pub holder: String,
}

/// A value the store keeps sealed (see `mcp_oauth_core::seal`), as key rotation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub kind: SealedKind,
    pub sealed: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedKind {
    /// A family's provider credential, bound to the family id.
    ProviderCredential { family_id: String },
    /// A rotated refresh token's successor, bound to the replaced token's hash.
    RefreshSuccessor { token_hash: TokenHash },
    /// The client secret of a brokered upstream registration, bound to its server and issuer.
    UpstreamRegistration { server: String, issuer: String },
}

/// Which grants an operator means; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    pub grant_id: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub server: Option<String>,
}

/// A grant as an operator lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSummary {
    pub id: String,
    pub server: String,
    pub client_id: String,
    pub subject: String,
    /// The scope granted at the login (a refresh may have narrowed its tokens' scope).
    pub scope: String,
    pub created_at: i64,
    /// When a token was last issued in it (code redemption or refresh).
    pub last_issued_at: Option<i64>,
    /// When it was last used on the MCP path, to a few minutes (see `record_uses`).
    pub last_used_at: Option<i64>,
    pub upstream_expires_at: Option<i64>,
    pub status: FamilyStatus,
}

/// A dynamically registered client, with the server it registered at.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub server: String,
    pub client: Client,
}

/// What was revoked since a moment, on the database's clock; see
/// [`crate::Store::revocations_since`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedSince {
    /// The database's clock when it was asked, in epoch seconds.
    pub now: i64,
    /// Grants (family ids) ended: revoked, or needing a new login.
    pub grants: Vec<String>,
    pub access_tokens: Vec<TokenHash>,
}

/// One tool definition as a `tools/list` answer carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenTool {
    pub name: String,
    /// Hex SHA-256 of the canonical definition, computed by the caller; compared as given.
    pub digest: String,
    /// The canonical definition (JSON text), bounded by the caller.
    pub definition: String,
}

/// A pinned tool: the definition first seen (or last accepted), with the changed definition
/// seen since, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPin {
    pub server: String,
    pub tool: String,
    pub digest: String,
    pub definition: String,
    /// When it was first seen, or when its last change was accepted.
    pub pinned_at: i64,
    pub changed: Option<ToolChange>,
}

/// A definition of a pinned tool that differs from its pin, waiting for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolChange {
    pub digest: String,
    pub definition: String,
    /// When this definition was first seen (a further different one restarts it).
    pub seen_at: i64,
}
