//! Who the user of a grant is, for MCP upstreams that want to know it rather than hold
//! the user's provider token: the identity assertion (`upstream_auth = "identity"`), the
//! identity headers (`identity_headers = true`), and the key set verifiers fetch.
//!
//! The identity is sealed with the grant's provider credential (see
//! `mcp_oauth_core::sealed::UserIdentity`) and never changes for a grant, so it is opened
//! once per grant and kept (a sharded LRU, like the opened provider tokens). An assertion is signed
//! once per grant and then reused while more than a fifth of its lifetime remains, so the
//! MCP path does not sign per request; a token of the grant with other scopes (a refresh
//! may narrow them) gets its own. The signing keys are fixed for the life of the process
//! (they derive from the configured encryption keys), so a kept assertion is always one
//! the current key signed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue};
use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::identity_assertion::{AssertionKeys, Claims, Subject};
use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_core::sealed::{UpstreamSecret, UserIdentity};
use mcp_oauth_store::AccessTokenInfo;

use crate::services::sharded_lru::ShardedLru;
use crate::settings::IdentitySettings;

/// Grants whose identity is kept opened: the ones in use; others are opened again.
const CAPACITY: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("internal error: {0}")]
    Internal(String),
}

/// The user of a grant, as the provider said at the login.
pub struct Known {
    pub subject: String,
    pub identity: UserIdentity,
    /// `X-Forwarded-User`, `-Email` (verified only) and `-Groups`, made once.
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The identity headers of one grant, attached to a request (as an extension, so that a
/// request sent twice carries them both times) for `mcp::forward` to send.
#[derive(Clone)]
pub struct IdentityHeaders(Arc<Known>);

impl IdentityHeaders {
    pub fn iter(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.0.headers.iter()
    }
}

struct Entry {
    known: Arc<Known>,
    assertion: Option<Assertion>,
}

/// A signed assertion, as the header value it is sent as.
struct Assertion {
    scope: String,
    value: HeaderValue,
    /// From then on a new one is signed.
    renew_at: i64,
}

pub struct Identities {
    keys: AssertionKeys,
    /// Opens the sealed credential the identity is kept in.
    ring: Arc<KeyRing>,
    /// The assertions' `iss`: the proxy's `public_url`.
    issuer: String,
    clock: SharedClock,
    /// The key set as served, made once.
    jwks: Bytes,
    grants: ShardedLru<Entry>,
    signed: AtomicU64,
}

impl Identities {
    pub fn new(ring: Arc<KeyRing>, issuer: String, clock: SharedClock) -> Self {
        let keys = AssertionKeys::from_key_ring(&ring);
        let jwks = serde_json::to_vec(&keys.jwks()).expect("a key set serialises").into();
        Self { keys, ring, issuer, clock, jwks, grants: ShardedLru::new(CAPACITY), signed: AtomicU64::new(0) }
    }

    /// The public signing keys, current first: `P/.well-known/jwks.json`.
    pub fn jwks_json(&self) -> Bytes {
        self.jwks.clone()
    }

    /// How many assertions this process has signed (each reused until due again).
    pub fn signed(&self) -> u64 {
        self.signed.load(Ordering::Relaxed)
    }

    /// The identity headers for `token`'s grant.
    pub fn headers(&self, token: &AccessTokenInfo) -> Result<IdentityHeaders, IdentityError> {
        let kept = self
            .grants
            .lock(&token.upstream.family_id)
            .get(token.upstream.family_id.as_str())
            .map(|e| Arc::clone(&e.known));
        match kept {
            Some(known) => Ok(IdentityHeaders(known)),
            None => Ok(IdentityHeaders(self.open(token)?)),
        }
    }

    /// The value of the header that carries the assertion for `token` (`Bearer <jwt>`
    /// for `Authorization`, else the bare JWT), signed now or kept from before.
    pub fn assertion(
        &self,
        settings: &IdentitySettings,
        token: &AccessTokenInfo,
    ) -> Result<HeaderValue, IdentityError> {
        let now = self.clock.now();
        let family_id = token.upstream.family_id.as_str();
        let kept = match self.grants.lock(family_id).get(family_id) {
            Some(Entry { assertion: Some(a), .. }) if a.scope == token.scope && now < a.renew_at => {
                return Ok(a.value.clone());
            }
            Some(entry) => Some(Arc::clone(&entry.known)),
            None => None,
        };
        let known = match kept {
            Some(known) => known,
            None => self.open(token)?,
        };
        let subject = Subject {
            sub: &known.subject,
            identity: &known.identity,
            client_id: &token.client_id,
            scope: &token.scope,
        };
        let claims = Claims::new(&self.issuer, &settings.audience, subject, now, settings.lifetime_secs);
        let jwt = self.keys.sign(&claims).map_err(|e| IdentityError::Internal(e.to_string()))?;
        self.signed.fetch_add(1, Ordering::Relaxed);
        let value = match settings.header {
            None => format!("Bearer {jwt}"),
            Some(_) => jwt,
        };
        let mut value = HeaderValue::try_from(value).map_err(|e| IdentityError::Internal(e.to_string()))?;
        value.set_sensitive(true);
        // Renewed while more than a fifth of its lifetime remains: an upstream whose clock
        // runs a little ahead, or a request that takes a while, still meets a valid one.
        let renew_at = claims.exp - settings.lifetime_secs / 5;
        let assertion = Assertion { scope: token.scope.clone(), value: value.clone(), renew_at };
        self.grants.lock(family_id).put(family_id.to_owned(), Entry { known, assertion: Some(assertion) });
        Ok(value)
    }

    /// Opens the identity sealed with `token`'s grant, and keeps it.
    fn open(&self, token: &AccessTokenInfo) -> Result<Arc<Known>, IdentityError> {
        let family_id = token.upstream.family_id.as_str();
        let secret = UpstreamSecret::open(&self.ring, family_id, &token.upstream.sealed).map_err(|e| {
            tracing::error!(family = family_id, error = %e, "cannot open the sealed upstream credential");
            IdentityError::Internal("cannot open the upstream credential".into())
        })?;
        // A grant made before identities were kept knows its subject alone.
        let identity = secret.identity.unwrap_or_default();
        let headers = identity_headers(&token.subject, &identity);
        let known = Arc::new(Known { subject: token.subject.clone(), identity, headers });
        let mut grants = self.grants.lock(family_id);
        match grants.get_mut(family_id) {
            Some(entry) => entry.known = Arc::clone(&known),
            None => {
                grants.put(family_id.to_owned(), Entry { known: Arc::clone(&known), assertion: None });
            }
        }
        Ok(known)
    }
}

/// The headers oauth2-proxy sets, from the verified identity: the email only when the
/// provider verified it, the groups joined with commas. A value that cannot be a header
/// (control characters) is left out rather than sent altered.
fn identity_headers(subject: &str, identity: &UserIdentity) -> Vec<(HeaderName, HeaderValue)> {
    let groups = identity.groups.join(",");
    let values = [
        ("x-forwarded-user", Some(subject)),
        ("x-forwarded-email", identity.verified_email()),
        ("x-forwarded-groups", (!groups.is_empty()).then_some(groups.as_str())),
    ];
    let mut headers = Vec::with_capacity(values.len());
    for (name, value) in values {
        let Some(value) = value else { continue };
        match HeaderValue::from_str(value) {
            Ok(value) => headers.push((HeaderName::from_static(name), value)),
            Err(_) => tracing::warn!(header = name, "an identity value is not a valid header value; left out"),
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use mcp_oauth_core::ManualClock;
    use mcp_oauth_core::family::FamilyStatus;
    use mcp_oauth_store::UpstreamCredential;

    use super::*;

    fn token(ring: &KeyRing, family_id: &str, scope: &str) -> AccessTokenInfo {
        let identity = UserIdentity { email: Some("a@example.com".into()), email_verified: true, ..Default::default() };
        let secret = UpstreamSecret {
            access_token: "at".into(),
            refresh_token: None,
            refusal_checked_at: None,
            identity: Some(identity),
            issuer: None,
        };
        AccessTokenInfo {
            server: "s".into(),
            client_id: "c".into(),
            subject: "u1".into(),
            scope: scope.into(),
            resource: "r".into(),
            expires_at: i64::MAX,
            revoked: false,
            upstream: UpstreamCredential {
                family_id: family_id.into(),
                sealed: secret.seal(ring, family_id),
                expires_at: None,
                family_status: FamilyStatus::Active,
            },
            trace_id: None,
        }
    }

    #[test]
    fn an_assertion_is_signed_once_per_grant_and_scope_until_a_fifth_of_its_life_remains() {
        let ring = Arc::new(KeyRing::new([5; 32], &[]));
        let clock = ManualClock::new(1_000_000);
        let identities = Identities::new(Arc::clone(&ring), "https://p.example".into(), Arc::new(clock.clone()));
        let settings = IdentitySettings::new("aud");
        let (a, b) = (token(&ring, "f1", "mcp"), token(&ring, "f2", "mcp"));
        let first = identities.assertion(&settings, &a).unwrap();
        assert!(first.to_str().unwrap().starts_with("Bearer ey"));
        assert_eq!(identities.assertion(&settings, &a).unwrap(), first);
        assert_eq!(identities.signed(), 1, "the second request reused the first assertion");
        assert_ne!(identities.assertion(&settings, &b).unwrap(), first, "another grant has its own");
        let narrowed = token(&ring, "f1", "mcp:read");
        assert_ne!(identities.assertion(&settings, &narrowed).unwrap(), first, "other scopes, another assertion");
        assert_eq!(identities.signed(), 3);
        // Reused until a fifth of its 300 seconds remains (240 s), then signed anew.
        let again = identities.assertion(&settings, &a).unwrap();
        clock.advance(239);
        assert_eq!(identities.assertion(&settings, &a).unwrap(), again);
        clock.advance(1);
        assert_ne!(identities.assertion(&settings, &a).unwrap(), again);
        assert_eq!(identities.signed(), 5);
        // A custom header carries the bare JWT.
        let mut custom = IdentitySettings::new("aud");
        custom.header = Some(HeaderName::from_static("x-identity"));
        assert!(identities.assertion(&custom, &token(&ring, "f3", "mcp")).unwrap().to_str().unwrap().starts_with("ey"));
    }

    #[test]
    fn a_grant_sealed_before_identities_were_kept_is_known_by_its_subject() {
        let ring = Arc::new(KeyRing::new([5; 32], &[]));
        let identities = Identities::new(Arc::clone(&ring), "https://p".into(), Arc::new(ManualClock::new(0)));
        let mut t = token(&ring, "f1", "mcp");
        let old = UpstreamSecret {
            access_token: "at".into(),
            refresh_token: None,
            refusal_checked_at: None,
            identity: None,
            issuer: None,
        };
        t.upstream.sealed = old.seal(&ring, "f1");
        let names: Vec<String> = identities.headers(&t).unwrap().iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, ["x-forwarded-user"]);
        t.upstream.sealed = "v1.nope.garbage".into();
        t.upstream.family_id = "f2".into();
        assert!(identities.headers(&t).is_err(), "a credential that does not open is an error, not an anonymous user");
    }

    #[test]
    fn identity_headers_carry_the_verified_email_only() {
        let mut identity = UserIdentity {
            email: Some("ada@example.com".into()),
            email_verified: true,
            name: None,
            groups: vec!["staff".into(), "admins".into()],
        };
        let headers = identity_headers("u1", &identity);
        let find = |headers: &[(HeaderName, HeaderValue)], name: &str| {
            headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(find(&headers, "x-forwarded-user").as_deref(), Some("u1"));
        assert_eq!(find(&headers, "x-forwarded-email").as_deref(), Some("ada@example.com"));
        assert_eq!(find(&headers, "x-forwarded-groups").as_deref(), Some("staff,admins"));
        identity.email_verified = false;
        identity.groups.clear();
        let headers = identity_headers("u1", &identity);
        assert_eq!(find(&headers, "x-forwarded-email"), None);
        assert_eq!(find(&headers, "x-forwarded-groups"), None);
        assert!(identity_headers("bad\nsubject", &identity).is_empty());
    }
}
