//! The URL that sends the user's browser to the provider to log in.

use url::Url;

use crate::settings::ProviderSettings;

/// What one login adds to the provider's authorization endpoint.
pub(crate) struct Login<'a> {
    pub redirect_uri: &'a str,
    /// Our own state and PKCE challenge, never the client's: the provider talks to the
    /// proxy, and the client's values stay between the client and us.
    pub state: &'a str,
    pub code_challenge: &'a str,
    /// Sent when the provider speaks OpenID Connect for us, and checked in the id_token.
    pub nonce: Option<&'a str>,
    /// The client's resource indicator; forwarded only where the provider is known to accept it.
    pub resource: Option<&'a str>,
    /// The scopes to ask for instead of the configured ones (brokered OAuth: per login).
    pub scopes: Option<&'a [String]>,
}

pub(crate) fn build(endpoint: &Url, settings: &ProviderSettings, login: &Login<'_>) -> String {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", login.redirect_uri)
            .append_pair("state", login.state)
            .append_pair("code_challenge", login.code_challenge)
            .append_pair("code_challenge_method", "S256");
        let scopes = login.scopes.unwrap_or(&settings.scopes);
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.join(" "));
        }
        if let Some(nonce) = login.nonce {
            q.append_pair("nonce", nonce);
        }
        if let (true, Some(resource)) = (settings.forward_resource, login.resource) {
            q.append_pair("resource", resource);
        }
        for (k, v) in &settings.extra_authorize_params {
            q.append_pair(k, v);
        }
    }
    url.into()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::settings::ProviderAuthMethod;

    fn settings(forward_resource: bool) -> ProviderSettings {
        ProviderSettings {
            name: "idp".into(),
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: None,
            userinfo_endpoint: None,
            jwks_uri: None,
            client_id: "proxy".into(),
            client_secret: "secret".into(),
            auth_method: ProviderAuthMethod::ClientSecretPost,
            scopes: vec!["openid".into(), "email".into()],
            refresh_margin_secs: 60,
            extra_authorize_params: vec![("prompt".into(), "consent".into())],
            forward_resource,
            refresh_resource: None,
            groups_claim: "groups".into(),
        }
    }

    fn query(url: &str) -> HashMap<String, String> {
        Url::parse(url).unwrap().query_pairs().into_owned().collect()
    }

    const LOGIN: Login<'static> = Login {
        redirect_uri: "https://proxy/cb",
        state: "s",
        code_challenge: "c",
        nonce: Some("n"),
        resource: Some("https://proxy/mcp"),
        scopes: None,
    };

    #[test]
    fn carries_our_pkce_state_nonce_scopes_and_extra_parameters() {
        let endpoint = Url::parse("https://idp/authorize?tenant=t").unwrap();
        let q = query(&build(&endpoint, &settings(false), &LOGIN));
        assert_eq!(q["tenant"], "t", "the endpoint's own query survives");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "proxy");
        assert_eq!(q["redirect_uri"], "https://proxy/cb");
        assert_eq!((q["state"].as_str(), q["code_challenge"].as_str()), ("s", "c"));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "openid email");
        assert_eq!(q["nonce"], "n");
        assert_eq!(q["prompt"], "consent");
        assert!(!q.contains_key("resource"), "resource is not forwarded unless configured");
    }

    #[test]
    fn resource_is_forwarded_only_when_configured() {
        let endpoint = Url::parse("https://idp/authorize").unwrap();
        let q = query(&build(&endpoint, &settings(true), &LOGIN));
        assert_eq!(q["resource"], "https://proxy/mcp");
        let no_nonce = Login { nonce: None, ..LOGIN };
        assert!(!query(&build(&endpoint, &settings(true), &no_nonce)).contains_key("nonce"));
    }
}
