//! `[[clients]]`: clients the operator registers in advance, valid at every server.

use mcp_oauth_core::client::{AuthMethod, Client, ClientMetadata};
use mcp_oauth_core::token::TokenHash;

use super::problems::{Lookup, Problems};
use super::raw::RawClient;

pub(super) fn validate(problems: &mut Problems, raw: Vec<RawClient>, lookup: Lookup<'_>) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        if let Some(client) = client(problems, i, c, &clients, lookup) {
            clients.push(client);
        }
    }
    debug_assert!(clients.iter().all(|c| c.metadata.token_endpoint_auth_method != AuthMethod::ClientSecretPost));
    clients
}

/// `None` when the registration itself is refused; the problem is noted.
fn client(problems: &mut Problems, i: usize, c: RawClient, earlier: &[Client], lookup: Lookup<'_>) -> Option<Client> {
    let key = |k: &str| format!("clients[{i}].{k}");
    let client_id = c.client_id.unwrap_or_default();
    if client_id.is_empty() {
        problems.required(&key("client_id"));
    } else if earlier.iter().any(|o| o.client_id == client_id) {
        problems.push(&key("client_id"), format_args!("{client_id:?} is listed twice"));
    }
    let secret = problems.secret(&key("client_secret"), c.client_secret, c.client_secret_env, lookup);
    // Built through the rules of dynamic registration, so that a static client is held
    // to the same redirect URI checks.
    let method = if secret.is_some() { "client_secret_basic" } else { "none" };
    let registration = serde_json::json!({
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": c.client_name.unwrap_or_else(|| client_id.clone()),
    });
    match ClientMetadata::from_registration(&registration) {
        Ok(metadata) => Some(Client {
            client_id,
            secret_hash: secret.as_deref().map(TokenHash::of),
            metadata,
            trusted: c.trusted.unwrap_or(false),
            created_at: 0,
        }),
        Err(e) => {
            problems.push(&key("redirect_uris"), e.description);
            None
        }
    }
}
