//! What a configuration sets up, in words: `check-config`'s description (nothing secret
//! in it) and `doctor`'s look at a brokered server's upstream before its first login.

use mcp_oauth_http::settings::{IdpKeys, ServerSettings, Settings, UpstreamAuth};

use crate::BoxError;
use crate::config::Config;

/// `doctor`: what a brokered server's first login will meet, from the upstream's metadata.
pub async fn doctor(config: Config, slug: String) -> Result<String, BoxError> {
    use mcp_oauth_upstream::brokered::{self, RegistrationMethod, UrlPolicy};
    let s = &config.settings;
    let server = s.server(&slug).ok_or_else(|| format!("no server {slug:?} is configured"))?;
    let UpstreamAuth::OAuth(o) = &server.upstream_auth else {
        return Err(format!("server {slug:?} does not broker OAuth (upstream_auth is not \"oauth\")").into());
    };
    let http = mcp_oauth_upstream::http_client::for_provider_calls();
    let policy = UrlPolicy { allow_http_loopback: o.allow_http_loopback };
    let mcp_url = url::Url::parse(&server.mcp_upstream.to_string())?;
    let found = brokered::discover(&http, &mcp_url, policy).await.map_err(|e| format!("discovery failed: {e}"))?;
    let a = &found.server;
    let method = brokered::registration_method(o.client_id.is_some(), a).map_err(|e| e.to_string())?;
    let registration = match method {
        RegistrationMethod::PreRegistered => format!("{} {:?}", method.label(), o.client_id.as_deref().unwrap_or("")),
        RegistrationMethod::MetadataDocument => {
            format!("{}: client_id {}", method.label(), s.upstream_client_metadata_url())
        }
        RegistrationMethod::Dynamic => {
            let store = mcp_oauth_store::open(&config.storage_url).await?;
            match store.upstream_registration(&slug, &a.issuer).await? {
                Some(r) => format!("{}: registered as {:?} (stored)", method.label(), r.client_id),
                None => format!(
                    "{}: at the first login, at {}",
                    method.label(),
                    a.registration_endpoint.as_ref().map_or("", |u| u.as_str())
                ),
            }
        }
    };
    let scopes = match &o.scopes {
        Some(configured) => format!("{} (configured)", configured.join(" ")),
        None if found.scopes.is_empty() => "none named".to_owned(),
        None => format!("{} (named by the upstream)", found.scopes.join(" ")),
    };
    let iss = if a.iss_parameter_supported { "required on every answer (RFC 9207)" } else { "checked when sent" };
    let revocation = a
        .revocation_endpoint
        .as_ref()
        .map_or("none: ended grants' upstream tokens expire by themselves".to_owned(), |u| u.to_string());
    Ok(format!(
        "server {slug}: brokered OAuth\n\
         upstream:              {}\n\
         resource:              {}\n\
         authorization server:  {}\n\
         registration:          {registration}\n\
         scopes:                {scopes}\n\
         redirect URI:          {}\n\
         iss:                   {iss}\n\
         revocation:            {revocation}",
        server.mcp_upstream,
        found.resource,
        a.issuer,
        s.upstream_callback_url(),
    ))
}

/// `url` with its password, if it has one, masked.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// What a server's MCP upstream receives (`upstream_auth`), in one line.
fn upstream_auth(s: &Settings, server: &ServerSettings) -> String {
    match &server.upstream_auth {
        UpstreamAuth::ProviderToken => format!(
            "the user's provider token, as {}: {} (upstream_auth = \"provider_token\")",
            server.upstream_token_header, server.upstream_token_format
        ),
        UpstreamAuth::Identity(identity) => {
            let header = match &identity.header {
                None => "Authorization: Bearer <jwt>".to_owned(),
                Some(name) => format!("{name}: <jwt>"),
            };
            let fixed = match &identity.static_header {
                Some((name, _)) => format!(", and {name} from the environment"),
                None => String::new(),
            };
            format!(
                "an identity assertion (EdDSA JWT, iss {:?}, aud {:?}, {} s), as {header}{fixed}; keys at {} \
                 (upstream_auth = \"identity\")",
                s.public_url,
                identity.audience,
                identity.lifetime_secs,
                s.jwks_url()
            )
        }
        UpstreamAuth::None => {
            "no credential: the client's are removed and none is added (upstream_auth = \"none\")".into()
        }
        UpstreamAuth::OAuth(o) => {
            let registration = match (&o.client_id, &o.client_secret) {
                (Some(id), Some(_)) => format!("the pre-registered confidential client {id:?}"),
                (Some(id), None) => format!("the pre-registered public client {id:?}"),
                (None, _) => format!(
                    "a Client ID Metadata Document at {} where the upstream's authorization server supports them, \
                     else dynamic registration (RFC 7591), stored per issuer",
                    s.upstream_client_metadata_url()
                ),
            };
            let scopes = match &o.scopes {
                Some(scopes) => format!("scopes {:?} (configured)", scopes.join(" ")),
                None => "the scopes the upstream's challenge or metadata names".to_owned(),
            };
            let when = if server.has_provider() {
                "after the provider login the user also logs in"
            } else {
                "the user logs in only (no provider)"
            };
            format!(
                "brokered OAuth: {when} at the upstream's own \
                 authorization server (discovered from its protected-resource metadata at the first login: \
                 `doctor` shows it), the proxy registering as {registration}, asking for {scopes}, with \
                 redirect URI {}; the upstream receives that server's token for the user as Authorization: \
                 Bearer (upstream_auth = \"oauth\")",
                s.upstream_callback_url()
            )
        }
    }
}

/// What `check-config` prints: what the configuration sets up, and nothing secret.
pub fn describe(c: &Config) -> String {
    let s = &c.settings;
    let storage = redact_password(&c.storage_url);
    let mut out = format!(
        "configuration is valid\n\nlisten:      {}\npublic_url:  {}\nstorage:     {storage}\nencryption:  key id {}\n\
         callback URL to register at every upstream provider:\n  {}\n\nservers:\n",
        c.listen,
        s.public_url,
        c.keys.current_key_id(),
        s.callback_url()
    );
    for server in &s.servers {
        out += &format!(
            "  {slug}\n    MCP URL:   {}\n    issuer:    {}\n    metadata:  {}\n    upstream:  {}\n    provider:  {}\n    scopes:    {}\n",
            s.resource(&server.slug),
            s.issuer(&server.slug),
            s.resource_metadata_url(&server.slug),
            server.mcp_upstream,
            if server.has_provider() { server.provider.as_str() } else { "(none: the upstream's own login only)" },
            server.scopes,
            slug = server.slug,
        );
        out += &format!("    sends:     {}\n", upstream_auth(s, server));
        if server.identity_headers {
            out += "    identity headers: X-Forwarded-User, X-Forwarded-Email (verified only), X-Forwarded-Groups\n";
        }
        if let Some(clients) = server.access.as_ref().map(|a| &a.clients).filter(|c| !c.is_empty()) {
            out += &format!("    client credentials for: {} (subject client:<id>)\n", clients.join(", "));
        }
        if !server.enterprise_idps.is_empty() {
            out += &format!("    ID-JAGs from: {}\n", server.enterprise_idps.join(", "));
        }
    }
    if !s.enterprise_idps.is_empty() {
        out += "enterprise IdPs:\n";
        for idp in &s.enterprise_idps {
            let keys = match &idp.keys {
                IdpKeys::Url(url) => format!("keys at {url}"),
                IdpKeys::Inline(set) => format!("{} inline key(s)", set.keys.len()),
            };
            let clients = idp.clients.as_ref().map_or("any client it names".to_owned(), |c| c.join(", "));
            out += &format!("  {}: issuer {}, {keys}, clients: {clients}\n", idp.name, idp.issuer);
        }
    }
    out += "providers:\n";
    for p in &c.providers {
        out += &format!(
            "  {}: client_id {}, issuer {}, scopes [{}]\n",
            p.name,
            p.client_id,
            p.issuer.as_deref().unwrap_or("(none; explicit endpoints)"),
            p.scopes.join(" ")
        );
        let discovered = "(discovered from the issuer)";
        for (what, url) in [
            ("authorization", &p.authorization_endpoint),
            ("token", &p.token_endpoint),
            ("userinfo", &p.userinfo_endpoint),
            ("jwks", &p.jwks_uri),
        ] {
            out += &format!("    {what:<14} {}\n", url.as_deref().unwrap_or(discovered));
        }
    }
    if !s.static_clients.is_empty() {
        out += "pre-registered clients:\n";
        for client in &s.static_clients {
            out += &format!(
                "  {} ({}{})\n",
                client.client_id,
                if client.secret_hash.is_some() { "confidential" } else { "public" },
                if client.trusted { ", trusted: no consent page" } else { "" }
            );
        }
    }
    out
}
