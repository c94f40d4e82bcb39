//! RFC 7009 at a brokered upstream: the upstream tokens of a grant that has ended are
//! revoked at its authorization server, where it offers revocation.

use std::sync::Arc;

use mcp_oauth_core::sealed::UpstreamSecret;
use mcp_oauth_upstream::brokered;

use super::Brokers;
use crate::settings::ServerSettings;

impl Brokers {
    /// RFC 7009: revokes the upstream tokens of a brokered grant that has just ended at
    /// the upstream authorization server, when it has a revocation endpoint. Off the
    /// request's path and best effort: the outcome is logged, never waited for.
    pub fn revoke_later(self: &Arc<Self>, server: &ServerSettings, family_id: &str) {
        if server.upstream_auth.brokered().is_none() {
            return;
        }
        let (brokers, server, family) = (Arc::clone(self), server.clone(), family_id.to_owned());
        tokio::spawn(async move {
            let _ = brokers.revoke_now(&server, &family).await;
        });
    }

    /// [`Self::revoke_later`]'s work, awaited (the command line's `grants revoke`): how many
    /// tokens the upstream revoked, or why none. The credential is read again here (a
    /// refresh may have replaced the one a caller read). Tokens from a former issuer are
    /// not sent to the current one.
    pub async fn revoke_now(&self, server: &ServerSettings, family: &str) -> Result<usize, String> {
        let failed = |why: String| {
            tracing::warn!(server = %server.slug, family, why, "upstream revocation skipped");
            Err(why)
        };
        let sealed = match self.store.upstream_credential(family).await {
            Ok(Some(credential)) => credential.sealed,
            Ok(None) => return failed("the grant is gone".into()),
            Err(e) => return failed(e.to_string()),
        };
        let Ok(secret) = UpstreamSecret::open(&self.keys, family, &sealed) else {
            return failed("the grant's credential could not be opened".into());
        };
        let broker = match self.broker(server).await {
            Ok(b) => b,
            Err(e) => return failed(e.to_string()),
        };
        if secret.issuer.as_deref().is_some_and(|i| i != broker.issuer()) {
            return failed("the tokens came from a former issuer".into());
        }
        let Some(endpoint) = broker.discovered.server.revocation_endpoint.clone() else {
            tracing::debug!(server = %server.slug, "the upstream offers no revocation endpoint");
            return Ok(0);
        };
        let settings = broker.provider.settings();
        // The refresh token first: revoking it takes the access tokens with it at most
        // servers (RFC 7009 §2.1); the access token too, for those where it does not.
        let mut tokens = vec![(secret.access_token.as_str(), "access_token")];
        if let Some(rt) = secret.refresh_token.as_deref() {
            tokens.insert(0, (rt, "refresh_token"));
        }
        let mut revoked = 0;
        for (token, hint) in tokens {
            match brokered::revoke(&self.http, &endpoint, settings, token, hint).await {
                Ok(()) => {
                    revoked += 1;
                    tracing::info!(server = %server.slug, family, hint, "upstream token revoked");
                }
                Err(e) => {
                    tracing::warn!(server = %server.slug, family, hint, error = %e, "upstream token revocation failed")
                }
            }
        }
        Ok(revoked)
    }
}
