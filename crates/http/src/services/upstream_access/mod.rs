//! The upstream-access service: a usable provider access token for a grant, refreshed
//! once when it needs to be. It owns what that takes: the key ring that seals provider
//! credentials at rest, the single-flight locks, and the store's refresh lease.
//!
//! It takes the credential as the token lookup read it ([`UpstreamCredential`]) and the
//! server, whose provider it knows. The fast path opens the sealed credential (once per
//! sealed value: see `grants`) and returns it. The slow path (expiring soon, or the MCP upstream just answered 401) is
//! single-flight at two levels:
//! - in this process, one async lock per grant: concurrent requests queue behind the
//!   first, then re-read the credential it stored (without the re-read, each would redeem
//!   the provider's single-use refresh token again and lose the grant);
//! - across replicas, a lease row in the database: a replica that cannot take it waits
//!   for the holder's result instead of redeeming the same refresh token twice.
//!
//! An MCP upstream's 401 is not the provider's word: what it leads to is `refusal`'s.

mod flight;
mod grants;
mod refusal;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::seal::{KeyRing, key_id_of};
use mcp_oauth_core::sealed::{UpstreamSecret, UserIdentity};
use mcp_oauth_store::{Lease, SealedKind, SealedValue, Store, StoreError, UpstreamCredential};
use mcp_oauth_upstream::{FailureKind, Provider, UpstreamTokens};

use flight::FlightLocks;
use grants::GrantCache;
use refusal::OnRefusal;

use crate::services::audit::{Audit, Event};
use crate::services::brokers::Brokers;
use crate::services::last_uses::LastUses;
use crate::services::metrics::{Metrics, ProviderLabels, ProviderOutcome};
use crate::services::providers::Providers;
use crate::settings::ServerSettings;

/// How long one replica may hold the right to refresh before others may take over:
/// longer than a provider call may take (30 s), so a live holder never loses it.
const LEASE_SECS: i64 = 45;
const LEASE_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The provider grant is gone for good: the user must log in again.
    #[error("the upstream grant needs a new login")]
    NeedsLogin,
    /// The MCP upstream refused the provider token and the provider has not (it accepts
    /// the token, could not be asked, or was asked within the last minute): there is no
    /// other token to try, and the grant is kept.
    #[error("the MCP upstream refused a credential the provider has not refused")]
    UpstreamRefused,
    /// The provider or the database is unavailable right now; the grant is kept.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AccessError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(d) => Self::Unavailable(d),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Why the slow path is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The credential expires within the provider's margin (or has expired).
    Expiring,
    /// The MCP upstream refused the token we sent (the credential sealed as given).
    Rejected,
}

/// A provider access token and the sealed credential it was opened from (to recognise,
/// after the MCP upstream refuses it, whether someone has refreshed since): the one
/// presented, borrowed, or one stored since.
#[derive(Debug, Clone)]
pub struct ProviderToken<'a> {
    pub token: Arc<str>,
    pub sealed: Cow<'a, str>,
    /// The grant's first use in this process (as far as it remembers).
    pub first_use: bool,
}

impl ProviderToken<'_> {
    fn stored(token: impl Into<Arc<str>>, sealed: String) -> ProviderToken<'static> {
        ProviderToken { token: token.into(), sealed: Cow::Owned(sealed), first_use: false }
    }

    /// `presented` with the sealed value this token came from, to ask for another after
    /// the MCP upstream refused this one.
    pub fn credential(&self, presented: &UpstreamCredential) -> UpstreamCredential {
        UpstreamCredential { sealed: self.sealed.clone().into_owned(), ..presented.clone() }
    }
}

/// The issuer sealed with the tokens of `server`'s grants (`UpstreamSecret::issuer`):
/// brokered OAuth's authorization server, whose provider `provider` is; `None` for a
/// provider's grants, which seal none.
fn sealed_issuer<'p>(server: &ServerSettings, provider: &'p Provider) -> Option<&'p str> {
    server.upstream_auth.brokered().and(provider.settings().issuer.as_deref())
}

pub fn needs_refresh(expires_at: Option<i64>, now: i64, margin: i64) -> bool {
    expires_at.is_some_and(|e| now >= e - margin)
}

pub struct UpstreamAccess {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    clock: SharedClock,
    providers: Arc<Providers>,
    brokers: Arc<Brokers>,
    flights: FlightLocks,
    grants: GrantCache,
    /// Where the grants' uses are noted for the account page.
    uses: Arc<LastUses>,
    metrics: Arc<Metrics>,
    audit: Arc<Audit>,
}

/// What [`UpstreamAccess`] is built from.
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub clock: SharedClock,
    pub providers: Arc<Providers>,
    pub brokers: Arc<Brokers>,
    pub uses: Arc<LastUses>,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<Audit>,
}

impl UpstreamAccess {
    pub fn new(parts: Parts) -> Self {
        let Parts { store, keys, clock, providers, brokers, uses, metrics, audit } = parts;
        let (flights, grants) = (FlightLocks::default(), GrantCache::default());
        Self { store, keys, clock, providers, brokers, flights, grants, uses, metrics, audit }
    }

    /// Who issued the tokens of `server`'s grants, and refreshes them: the server's
    /// provider, or (brokered OAuth) the MCP upstream's own authorization server, as an
    /// ordinary provider (see `services::brokers`).
    async fn provider(&self, server: &ServerSettings) -> Result<Arc<Provider>, AccessError> {
        match server.upstream_auth.brokered() {
            None => Ok(self.providers.shared(server)),
            Some(_) => match self.brokers.broker(server).await {
                Ok(broker) => Ok(Arc::clone(&broker.provider)),
                Err(e) => Err(AccessError::Unavailable(format!("the MCP upstream's authorization server: {e}"))),
            },
        }
    }

    /// The provider's name for metrics and logs, without discovering anything.
    fn provider_name(&self, server: &ServerSettings) -> String {
        match server.upstream_auth.brokered() {
            None => self.providers.for_server(server).name().to_owned(),
            Some(_) => format!("upstream:{}", server.slug),
        }
    }

    /// Grants whose credential is being refreshed in this process right now.
    pub fn refreshes_in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The provider's tokens, and who the user is, sealed for storage in grant `family_id`.
    /// `issuer`: brokered OAuth, the upstream authorization server that issued `tokens`.
    pub fn seal(
        &self,
        family_id: &str,
        tokens: &UpstreamTokens,
        identity: UserIdentity,
        issuer: Option<&str>,
    ) -> String {
        let secret = UpstreamSecret {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            refusal_checked_at: None,
            identity: Some(identity),
            issuer: issuer.map(str::to_owned),
        };
        secret.seal(&self.keys, family_id)
    }

    /// The provider access token to send to `server`'s MCP upstream for the grant whose
    /// credential the token lookup read. `trigger` forces the slow path. With `Rejected`
    /// (`credential` holding the token the MCP upstream refused: see
    /// [`ProviderToken::credential`]), the answer is a different token to replay with, or
    /// an error: `NeedsLogin` when the provider refused too (the grant has ended),
    /// `UpstreamRefused` when it has not.
    pub async fn token<'a>(
        &self,
        server: &ServerSettings,
        credential: &'a UpstreamCredential,
        trigger: Option<Trigger>,
    ) -> Result<ProviderToken<'a>, AccessError> {
        let (family_id, sealed) = (credential.family_id.as_str(), credential.sealed.as_str());
        let seen = self.see(credential);
        if trigger == Some(Trigger::Rejected) && server.upstream_auth.brokered().is_some() {
            // The upstream may have moved to another authorization server: if so, the
            // grant cannot be refreshed (see `refresh`) and needs a new authorization.
            self.brokers.rediscover(server).await;
        }
        let provider = self.provider(server).await?;
        let provider = provider.as_ref();
        let mut token = match trigger {
            None if !self.due(provider, credential.expires_at) => match seen.access_token {
                Some(token) if self.is_current(sealed) => {
                    ProviderToken { token, sealed: sealed.into(), first_use: false }
                }
                _ => ProviderToken {
                    token: self.open_current(family_id, sealed)?,
                    sealed: sealed.into(),
                    first_use: false,
                },
            },
            _ => {
                let issuer = sealed_issuer(server, provider);
                self.in_flight(provider, issuer, family_id, sealed, trigger.unwrap_or(Trigger::Expiring)).await?
            }
        };
        if token.token.is_empty() {
            // A grant made without a browser (client credentials, an ID-JAG), which holds
            // no provider token, on a server that has since been switched to sending one:
            // the client must authorize again, and nothing goes upstream meanwhile.
            return self
                .needs_login(family_id, "the grant holds no provider token: it was made without a browser")
                .await;
        }
        token.first_use = seen.first;
        Ok(token)
    }

    /// Whether this process sees `credential`'s grant for the first time (marking it seen),
    /// for the MCP path of servers that need no provider token (`upstream_auth` other
    /// than `provider_token`), where [`Self::token`] is not asked.
    pub fn first_use(&self, credential: &UpstreamCredential) -> bool {
        self.see(credential).first
    }

    /// The grant's entry for a request now, its use noted when that is due.
    fn see(&self, credential: &UpstreamCredential) -> grants::Seen {
        let now = self.clock.now();
        let seen = self.grants.see(&credential.family_id, &credential.sealed, now);
        if seen.note_use {
            self.uses.note(&credential.family_id, now);
        }
        seen
    }

    /// Makes sure the grant's provider token is usable for a while (refreshing it if it is
    /// due), as the refresh grant does before issuing the client a new token: a client
    /// must not be given a token that cannot work.
    pub async fn ensure_fresh(
        &self,
        server: &ServerSettings,
        credential: &UpstreamCredential,
    ) -> Result<(), AccessError> {
        let provider = self.provider(server).await?;
        let provider = provider.as_ref();
        if self.due(provider, credential.expires_at) {
            let issuer = sealed_issuer(server, provider);
            self.in_flight(provider, issuer, &credential.family_id, &credential.sealed, Trigger::Expiring).await?;
        }
        Ok(())
    }

    fn due(&self, provider: &Provider, expires_at: Option<i64>) -> bool {
        needs_refresh(expires_at, self.clock.now(), provider.settings().refresh_margin_secs)
    }

    /// The slow path, single-flight in this process (see the module's comment).
    async fn in_flight(
        &self,
        provider: &Provider,
        issuer: Option<&str>,
        family_id: &str,
        sealed: &str,
        trigger: Trigger,
    ) -> Result<ProviderToken<'static>, AccessError> {
        // The flight is left (and the lock forgotten when nobody else needs it) when this
        // future ends or is dropped, as it is when the client goes away mid-wait.
        let flight = self.flights.join(family_id);
        let _turn = flight.lock().await;
        self.refresh(provider, issuer, family_id, sealed, trigger).await
    }

    fn is_current(&self, sealed: &str) -> bool {
        key_id_of(sealed) == Some(self.keys.current_key_id())
    }

    /// The token in `sealed`, which is current, opened and kept for the next request. A
    /// credential sealed with a previous key is sealed again with the current one as it is
    /// used (and not kept until then), so that a key rotation completes by itself for
    /// every grant in use.
    fn open_current(&self, family_id: &str, sealed: &str) -> Result<Arc<str>, AccessError> {
        let current_key = self.is_current(sealed);
        let secret = self.open(family_id, sealed)?;
        let token: Arc<str> = secret.access_token.as_str().into();
        if current_key {
            self.grants.keep(family_id, sealed, Arc::clone(&token));
        } else {
            let value = SealedValue {
                kind: SealedKind::ProviderCredential { family_id: family_id.to_owned() },
                sealed: sealed.into(),
            };
            let resealed = secret.seal(&self.keys, family_id);
            let store = Arc::clone(&self.store);
            // Off the request's path: a failure only means it is done on the next use.
            tokio::spawn(async move {
                if let Err(e) = store.reseal(&value, &resealed).await {
                    tracing::debug!(error = %e, "re-sealing a credential with the current key failed; will retry on use");
                }
            });
        }
        Ok(token)
    }

    fn open(&self, family_id: &str, sealed: &str) -> Result<UpstreamSecret, AccessError> {
        UpstreamSecret::open(&self.keys, family_id, sealed).map_err(|e| {
            tracing::error!(family = family_id, error = %e, "cannot open the sealed upstream credential");
            AccessError::Internal("cannot open the upstream credential".into())
        })
    }

    async fn refresh(
        &self,
        provider: &Provider,
        issuer: Option<&str>,
        family_id: &str,
        seen_sealed: &str,
        trigger: Trigger,
    ) -> Result<ProviderToken<'static>, AccessError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(LEASE_SECS as u64 + 5);
        // After a refusal, the token refused: compared by value, since a check's time
        // stamped into the credential seals the same token anew.
        let refused = match trigger {
            Trigger::Expiring => None,
            Trigger::Rejected => Some(self.open_current(family_id, seen_sealed)?),
        };
        let refused = refused.as_deref();
        loop {
            // Someone (a request before us, or another replica) may have refreshed already.
            let current = self.current_credential(family_id).await?;
            if self.issued_elsewhere(issuer, &current)? {
                return self.needs_login(family_id, "the grant's tokens come from another authorization server").await;
            }
            if let Some(token) = self.usable(provider, &current, seen_sealed, refused)? {
                return Ok(token);
            }
            // Without the lease, too, so that an MCP upstream refusing every request costs
            // each a read within the minute, not a lease taken and given back.
            if refused.is_some() && self.on_refusal(&current)? == OnRefusal::AskedRecently {
                return Err(self.refusal_stands(provider, family_id));
            }
            if let Some(lease) = self.store.take_refresh_lease(family_id, LEASE_SECS).await? {
                // Read again under the lease: another replica may have stored a fresh
                // credential (and released its lease) between our read and our take, and
                // refreshing with the refresh token we read before would redeem a token
                // the provider has already rotated away.
                let current = self.current_credential(family_id).await?;
                if let Some(token) = self.usable(provider, &current, seen_sealed, refused)? {
                    self.store.release_refresh_lease(&lease).await?;
                    return Ok(token);
                }
                let secret = self.open(family_id, &current.sealed)?;
                if refused.is_none() {
                    return self.refresh_with_lease(provider, &lease, &current, secret, trigger).await;
                }
                return self.refused_with_lease(provider, &lease, &current, secret).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AccessError::Unavailable("another replica is refreshing this grant".into()));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    /// The stored credential's token, if it makes going to the provider needless: it is
    /// not expiring, or (after a refusal) it is not the token refused.
    fn usable(
        &self,
        provider: &Provider,
        current: &UpstreamCredential,
        seen_sealed: &str,
        refused: Option<&str>,
    ) -> Result<Option<ProviderToken<'static>>, AccessError> {
        let family_id = current.family_id.as_str();
        match refused {
            None => {
                if self.due(provider, current.expires_at) {
                    return Ok(None);
                }
                let token = self.open_current(family_id, &current.sealed)?;
                Ok(Some(ProviderToken::stored(token, current.sealed.clone())))
            }
            Some(_) if current.sealed == seen_sealed => Ok(None),
            Some(refused) => {
                let token = self.open_current(family_id, &current.sealed)?;
                Ok((*token != *refused).then(|| ProviderToken::stored(token, current.sealed.clone())))
            }
        }
    }

    /// Whether the grant's tokens were issued by someone other than `issuer` (see
    /// [`sealed_issuer`]): brokered OAuth's authorization server that the upstream no
    /// longer names, or a server whose `upstream_auth` changed between `provider_token`
    /// and `oauth` since the grant began. Such tokens cannot be refreshed (nor revoked)
    /// here, and a refresh token must never be sent to a server that did not issue it: the
    /// user must authorize again, which the client learns from the 401 challenge, rather
    /// than failing at every request for ever. Asked before anything else on the slow path,
    /// so that neither a token stored since nor a refusal checked within the minute keeps
    /// such a grant alive.
    fn issued_elsewhere(&self, issuer: Option<&str>, current: &UpstreamCredential) -> Result<bool, AccessError> {
        let secret = self.open(&current.family_id, &current.sealed)?;
        Ok(secret.issuer.as_deref() != issuer)
    }

    /// The stored credential of an active grant.
    async fn current_credential(&self, family_id: &str) -> Result<UpstreamCredential, AccessError> {
        match self.store.upstream_credential(family_id).await? {
            Some(c) if c.family_status == FamilyStatus::Active => Ok(c),
            _ => Err(AccessError::NeedsLogin),
        }
    }

    /// We hold the lease: call the provider, store the result, and release. `secret` is
    /// the stored credential, with the time of this check when a refusal asked for it.
    async fn refresh_with_lease(
        &self,
        provider: &Provider,
        lease: &Lease,
        current: &UpstreamCredential,
        secret: UpstreamSecret,
        trigger: Trigger,
    ) -> Result<ProviderToken<'static>, AccessError> {
        let family_id = current.family_id.as_str();
        let Some(refresh_token) = secret.refresh_token.clone() else {
            // Nothing to refresh with (only an expiring token comes here; a refused one
            // is asked about instead). A token that has not expired yet is still worth
            // using; one that has means a new login.
            self.store.release_refresh_lease(lease).await?;
            if current.expires_at.is_some_and(|e| self.clock.now() < e) {
                return Ok(ProviderToken::stored(secret.access_token, current.sealed.clone()));
            }
            return self.needs_login(family_id, "the upstream credential expired and has no refresh token").await;
        };
        let started = std::time::Instant::now();
        let result = provider.refresh(&refresh_token).await;
        let labels = ProviderLabels { provider: provider.name().to_owned() };
        self.metrics.upstream_refresh_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind().label(),
        };
        let labels = ProviderOutcome { provider: provider.name().to_owned(), outcome };
        self.metrics.upstream_refreshes.get_or_create(&labels).inc();
        if let Err(e) = &result {
            let event = Event::new("upstream.refresh_failed", self.clock.now()).grant(family_id);
            self.audit.record(event.reason(format!("{outcome}: {e}")));
        }
        match result {
            Ok(tokens) => {
                let renewed = UpstreamSecret {
                    access_token: tokens.access_token,
                    // Providers that do not rotate send no new refresh token: keep ours.
                    refresh_token: tokens.refresh_token.or(Some(refresh_token)),
                    refusal_checked_at: secret.refusal_checked_at,
                    // Who the user is does not change with a refresh, nor who issued it.
                    identity: secret.identity,
                    issuer: secret.issuer,
                };
                let expires_at = tokens.expires_in.map(|s| self.clock.now() + s);
                let sealed = renewed.seal(&self.keys, family_id);
                match self.store.store_upstream_credential(lease, &sealed, expires_at).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Our lease ran out (the provider took longer than the lease) and
                        // another holder took over: its credential stands, not ours.
                        tracing::error!(family = family_id, "the refresh lease ran out before the result was stored");
                        return Err(AccessError::Unavailable("the refresh took longer than its lease".into()));
                    }
                    Err(e) => {
                        // The provider may have rotated its refresh token, which we now
                        // failed to keep; nothing better can be done than to say so loudly.
                        tracing::error!(family = family_id, error = %e, "refreshed upstream credential could not be stored");
                        return Err(e.into());
                    }
                }
                tracing::info!(provider = provider.name(), family = family_id, "upstream credential refreshed");
                Ok(ProviderToken::stored(renewed.access_token, sealed))
            }
            Err(e) => match e.kind() {
                FailureKind::Permanent => {
                    tracing::warn!(provider = provider.name(), family = family_id, error = %e, "upstream refresh refused");
                    self.needs_login(family_id, "the upstream provider refused to refresh").await
                }
                FailureKind::Misconfigured => {
                    // About the proxy, not the user: every grant that needs a refresh would
                    // end for an operator's mistake (an expired client secret, a firewall).
                    // Keep the grant; the same token works again once the provider answers.
                    tracing::error!(
                        provider = provider.name(),
                        family = family_id,
                        error = %e,
                        "the provider refused the proxy's refresh request: check the provider's client_id, \
                         client secret and token endpoint; users keep their grants meanwhile"
                    );
                    self.give_back(lease, current, &secret, trigger).await;
                    Err(AccessError::Unavailable(e.to_string()))
                }
                FailureKind::Transient => {
                    tracing::warn!(provider = provider.name(), family = family_id, error = %e, "upstream refresh failed; will retry");
                    self.give_back(lease, current, &secret, trigger).await;
                    Err(AccessError::Unavailable(e.to_string()))
                }
            },
        }
    }

    /// Gives the lease back after a refresh that failed without refusing the grant. One
    /// asked for by an MCP upstream's refusal keeps its time, so that a provider failing
    /// is not asked again for every refused request within the minute.
    async fn give_back(&self, lease: &Lease, current: &UpstreamCredential, secret: &UpstreamSecret, trigger: Trigger) {
        match trigger {
            Trigger::Rejected => self.store_check_time(lease, current, secret).await,
            Trigger::Expiring => {
                let _ = self.store.release_refresh_lease(lease).await;
            }
        }
    }

    async fn needs_login(&self, family_id: &str, why: &str) -> Result<ProviderToken<'static>, AccessError> {
        if self.store.end_family(family_id, FamilyStatus::NeedsLogin, self.clock.now()).await? {
            self.metrics.grant_revoked("upstream_refusal");
            let event = Event::new("grant.revoked", self.clock.now()).grant(family_id);
            self.audit.record(event.reason("upstream_refusal"));
        }
        tracing::info!(family = family_id, why, "grant needs a new login");
        Err(AccessError::NeedsLogin)
    }
}

#[cfg(test)]
mod tests {
    use super::needs_refresh;

    #[test]
    fn refresh_is_due_within_the_margin_and_never_without_expiry() {
        assert!(!needs_refresh(None, 1_000_000, 60));
        assert!(!needs_refresh(Some(1000), 939, 60));
        assert!(needs_refresh(Some(1000), 940, 60));
        assert!(needs_refresh(Some(1000), 2000, 60));
    }
}
