//! `[[clients]]`: clients the operator registers in advance, valid at every server.

use mcp_oauth_core::client::{AuthMethod, Client, ClientMetadata};
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::token::TokenHash;

use super::problems::{Lookup, Problems};
use super::raw::RawClient;

/// The grants a pre-registered client may be given.
const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

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
    let jwks = c.jwks.and_then(|text| {
        serde_json::from_str::<mcp_oauth_core::jwt_grant::KeySet>(&text)
            .map_err(|e| problems.push(&key("jwks"), format_args!("is not a JWK set ({{\"keys\": [...]}}): {e}")))
            .ok()
    });
    let jwks_uri = c.jwks_uri.and_then(|uri| problems.url(&key("jwks_uri"), &uri).map(|u| u.to_string()));
    let has_keys = jwks.is_some() || jwks_uri.is_some();
    if jwks.is_some() && jwks_uri.is_some() {
        problems.push(&key("jwks"), "give jwks or jwks_uri, not both");
    }
    if has_keys && secret.is_some() {
        problems.push(&key("jwks"), "a client authenticates with a secret or with keys, not both");
    }
    let grant_types =
        c.grant_types.unwrap_or_else(|| vec!["authorization_code".to_owned(), "refresh_token".to_owned()]);
    for g in &grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            problems.push(&key("grant_types"), format_args!("{g:?} is not one of {}", GRANT_TYPES.join(", ")));
        }
    }
    let grants = |g: &str| grant_types.iter().any(|x| x == g);
    if grant_types.is_empty() {
        problems.push(&key("grant_types"), "names no grant type");
    }
    // A token for the client itself is given only to a client that proves who it is.
    if grants("client_credentials") && secret.is_none() && !has_keys {
        problems.push(
            &key("grant_types"),
            "client_credentials needs a client_secret (or client_secret_env), jwks or jwks_uri",
        );
    }
    if grants("refresh_token") && !grants("authorization_code") {
        problems.push(&key("grant_types"), "refresh_token needs authorization_code (client credentials get none)");
    }
    let scope = c.scopes.map(|list| list.join(" "));
    if let Some(s) = &scope
        && let Err(e) = Scopes::parse(s)
    {
        problems.push(&key("scopes"), e.description);
    }
    let method = match (&secret, has_keys) {
        (_, true) => AuthMethod::PrivateKeyJwt,
        (Some(_), false) => AuthMethod::ClientSecretBasic,
        (None, false) => AuthMethod::None,
    };
    let client_name = c.client_name.unwrap_or_else(|| client_id.clone());
    let metadata = if grants("authorization_code") {
        // Built through the rules of dynamic registration, so that a static client is held
        // to the same redirect URI checks.
        let registration = serde_json::json!({
            "redirect_uris": c.redirect_uris,
            "token_endpoint_auth_method": method.as_str(),
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": client_name,
            "jwks": jwks,
            "jwks_uri": jwks_uri,
        });
        match ClientMetadata::from_registration(&registration) {
            Ok(metadata) => metadata,
            Err(e) => {
                problems.push(&key("redirect_uris"), e.description);
                return None;
            }
        }
    } else {
        if !c.redirect_uris.is_empty() {
            problems.push(&key("redirect_uris"), "apply only with the authorization_code grant");
        }
        ClientMetadata {
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: method,
            grant_types: Vec::new(),
            response_types: Vec::new(),
            client_name: Some(client_name),
            client_uri: None,
            logo_uri: None,
            scope: None,
            contacts: None,
            tos_uri: None,
            policy_uri: None,
            software_id: None,
            software_version: None,
            application_type: None,
            jwks: jwks.clone(),
            jwks_uri: jwks_uri.clone(),
        }
    };
    let metadata = ClientMetadata { grant_types, scope, ..metadata };
    Some(Client {
        client_id,
        secret_hash: secret.as_deref().map(TokenHash::of),
        metadata,
        trusted: c.trusted.unwrap_or(false),
        created_at: 0,
    })
}
