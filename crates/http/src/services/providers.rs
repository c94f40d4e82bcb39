//! The configured identity providers, by name.

use std::collections::HashMap;
use std::sync::Arc;

use mcp_oauth_upstream::Provider;

use crate::settings::ServerSettings;

#[derive(Default)]
pub struct Providers(HashMap<String, Arc<Provider>>);

impl Providers {
    pub fn new(providers: impl IntoIterator<Item = Provider>) -> Self {
        Self(providers.into_iter().map(|p| (p.name().to_owned(), Arc::new(p))).collect())
    }

    /// The provider `server`'s users log in with. Every server's provider exists: the
    /// configuration loader refuses a server that names an unknown one.
    pub fn for_server(&self, server: &ServerSettings) -> &Provider {
        &self.0[&server.provider]
    }

    /// [`Self::for_server`], shared.
    pub fn shared(&self, server: &ServerSettings) -> Arc<Provider> {
        Arc::clone(&self.0[&server.provider])
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.0.values()
    }
}
