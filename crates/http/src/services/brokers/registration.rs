//! The proxy's registration at an upstream's authorization server (see the module
//! comment of `brokers` for the order): pre-registered, a Client ID Metadata Document, or
//! dynamic registration stored per server and issuer.

use mcp_oauth_core::sealed::upstream_registration_aad;
use mcp_oauth_store::UpstreamRegistration;
use mcp_oauth_upstream::brokered::{self, Discovered, Registration, RegistrationMethod};
use mcp_oauth_upstream::{ProviderAuthMethod, UpstreamError};

use super::Brokers;
use crate::settings::{ServerSettings, UpstreamOAuthSettings};

impl Brokers {
    /// The proxy's registration at the discovered authorization server, by the first
    /// method that applies.
    pub(super) async fn registration(
        &self,
        server: &ServerSettings,
        settings: &UpstreamOAuthSettings,
        discovered: &Discovered,
    ) -> Result<(Registration, RegistrationMethod), UpstreamError> {
        match brokered::registration_method(settings.client_id.is_some(), &discovered.server)? {
            RegistrationMethod::PreRegistered => {
                let client_id = settings.client_id.clone().unwrap_or_default();
                let auth_method = auth_method_for(&settings.client_secret, discovered);
                let client_secret = settings.client_secret.clone();
                let registration = Registration { client_id, client_secret, auth_method };
                return Ok((registration, RegistrationMethod::PreRegistered));
            }
            RegistrationMethod::MetadataDocument => {
                let registration = Registration {
                    client_id: self.metadata_url.clone(),
                    client_secret: None,
                    auth_method: ProviderAuthMethod::None,
                };
                return Ok((registration, RegistrationMethod::MetadataDocument));
            }
            RegistrationMethod::Dynamic => {}
        }
        let issuer = discovered.server.issuer.as_str();
        let aad = upstream_registration_aad(&server.slug, issuer);
        let stored = match self.store.upstream_registration(&server.slug, issuer).await.map_err(store_failed)? {
            Some(stored) => stored,
            None => {
                let mut metadata = self.client_metadata_document();
                let object = metadata.as_object_mut().expect("a JSON object");
                object.remove("client_id");
                object.insert(
                    "token_endpoint_auth_method".into(),
                    brokered::preferred_auth_method(&discovered.server).into(),
                );
                let registered = brokered::register(&self.discovery, &discovered.server, &metadata).await?;
                let mine = UpstreamRegistration {
                    server: server.slug.clone(),
                    issuer: issuer.to_owned(),
                    client_id: registered.client_id.clone(),
                    secret_sealed: registered.client_secret.as_ref().map(|s| self.keys.seal(s.as_bytes(), &aad)),
                    created_at: self.clock.now(),
                };
                // Conditional: another replica may have registered first; then its
                // registration is the one every replica uses (ours is left unused).
                let stored = self.store.insert_upstream_registration(&mine).await.map_err(store_failed)?;
                if stored.client_id != mine.client_id {
                    tracing::info!(server = %server.slug, issuer, "another replica registered first; using its registration");
                }
                stored
            }
        };
        let client_secret = match &stored.secret_sealed {
            None => None,
            Some(sealed) => {
                let bytes = self.keys.open(sealed, &aad).map_err(|e| {
                    UpstreamError::Misconfigured(format!("the stored registration's secret cannot be opened: {e}"))
                })?;
                Some(
                    String::from_utf8(bytes)
                        .map_err(|_| UpstreamError::Protocol("stored secret is not text".into()))?,
                )
            }
        };
        let auth_method = auth_method_for(&client_secret, discovered);
        Ok((Registration { client_id: stored.client_id, client_secret, auth_method }, RegistrationMethod::Dynamic))
    }
}

/// How a client with (or without) a secret authenticates at the discovered server.
fn auth_method_for(secret: &Option<String>, discovered: &Discovered) -> ProviderAuthMethod {
    match secret {
        None => ProviderAuthMethod::None,
        Some(_) if brokered::preferred_auth_method(&discovered.server) == "client_secret_basic" => {
            ProviderAuthMethod::ClientSecretBasic
        }
        Some(_) => ProviderAuthMethod::ClientSecretPost,
    }
}

fn store_failed(e: mcp_oauth_store::StoreError) -> UpstreamError {
    UpstreamError::Unavailable(format!("the store: {e}"))
}
