//! OAuth clients: dynamic registration metadata (RFC 7591) and client authentication.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::OAuthError;
use crate::redirect_uri;
use crate::token::TokenHash;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client (native app, CLI, browser app): PKCE is its only proof.
    None,
    ClientSecretPost,
    ClientSecretBasic,
    /// A JWT the client signs with its private key (RFC 7523 §2.2), checked against the
    /// key set it registered (`jwks` or `jwks_uri`): no shared secret exists.
    PrivateKeyJwt,
}

impl AuthMethod {
    pub const SUPPORTED: [&'static str; 4] = ["none", "client_secret_post", "client_secret_basic", "private_key_jwt"];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }

    pub fn is_confidential(self) -> bool {
        self != Self::None
    }

    /// Whether the client is given a secret at registration.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretPost | Self::ClientSecretBasic)
    }
}

/// The registered metadata of a client: what it sent, validated, with defaults filled in.
/// This is also exactly what the registration response echoes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub contacts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub software_version: Option<String>,
    /// What kind of application this is (SEP-837, from OpenID Connect Dynamic Client
    /// Registration). Absent for clients that predate it, which keep today's rules.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub application_type: Option<ApplicationType>,
    /// The client's public keys, for `private_key_jwt` (RFC 7591 §2): inline...
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jwks: Option<jsonwebtoken::jwk::JwkSet>,
    /// ...or where to fetch them (https).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jwks_uri: Option<String>,
}

/// A client's kind, which decides the redirect URIs it may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationType {
    /// Runs on a server: https redirect URIs to a real host only.
    Web,
    /// Runs on the user's device: loopback and private-use-scheme redirect URIs too.
    Native,
}

const MAX_REDIRECT_URIS: usize = 20;
const MAX_URI_LEN: usize = 2048;
const MAX_TEXT_LEN: usize = 256;
/// Lists with a few entries in honest use (grant types, contacts).
const MAX_SHORT_LIST: usize = 10;

fn bad(msg: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client_metadata(msg)
}

fn opt_string(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, OAuthError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(bad(format!("{key} is longer than {max} characters"))),
        Some(_) => Err(bad(format!("{key} must be a string"))),
    }
}

/// A list of strings, at most `max_items` long, each at most `max_len` characters: what
/// an anonymous caller can make the proxy store is bounded item by item.
fn opt_string_list(
    obj: &Map<String, Value>,
    key: &str,
    max_items: usize,
    max_len: usize,
) -> Result<Option<Vec<String>>, OAuthError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() > max_items => {
            Err(bad(format!("{key} may have at most {max_items} entries")))
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) if s.chars().count() <= max_len => Ok(s.clone()),
                Value::String(_) => Err(bad(format!("an entry of {key} is longer than {max_len} characters"))),
                _ => Err(bad(format!("{key} must be an array of strings"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad(format!("{key} must be an array of strings"))),
    }
}

/// Text a client gives about itself, as it may be shown to a person: without anything
/// that is not read but can change what is read. Controls, format characters (the
/// bidirectional overrides and isolates that make "moc.elgoog" show as "google.com",
/// zero-width characters, tag characters), line and paragraph separators, private-use and
/// unassigned code points are dropped; every run of other whitespace becomes one space,
/// and none is left at either end.
pub fn displayable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        match c.general_category() {
            GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned => {}
            _ if c.is_whitespace() => space = !shown.is_empty(),
            _ => {
                if std::mem::take(&mut space) {
                    shown.push(' ');
                }
                shown.push(c);
            }
        }
    }
    shown
}

/// The most keys a client may register, and the longest their set may be as JSON: what
/// anyone who may register can make the proxy store is bounded.
const MAX_KEYS: usize = 10;
const MAX_JWKS_JSON: usize = 16 * 1024;

/// `jwks` (a JWK set) or `jwks_uri` (an https URL), never both (RFC 7591 §2).
#[allow(clippy::type_complexity)]
fn keys(obj: &Map<String, Value>) -> Result<(Option<jsonwebtoken::jwk::JwkSet>, Option<String>), OAuthError> {
    let jwks = match obj.get("jwks") {
        None | Some(Value::Null) => None,
        Some(v) if v.to_string().len() > MAX_JWKS_JSON => return Err(bad("jwks is too large")),
        Some(v) => {
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_value(v.clone()).map_err(|_| bad("jwks must be a JWK set"))?;
            if set.keys.is_empty() || set.keys.len() > MAX_KEYS {
                return Err(bad(format!("jwks must hold 1 to {MAX_KEYS} keys")));
            }
            Some(set)
        }
    };
    let jwks_uri = opt_string(obj, "jwks_uri", MAX_URI_LEN)?;
    if let Some(uri) = &jwks_uri
        && !url::Url::parse(uri).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some())
    {
        return Err(bad("jwks_uri must be an https URL"));
    }
    if jwks.is_some() && jwks_uri.is_some() {
        return Err(bad("give jwks or jwks_uri, not both"));
    }
    Ok((jwks, jwks_uri))
}

impl ClientMetadata {
    /// Validates a registration request body (RFC 7591 §2). Unknown fields are ignored,
    /// as §2 asks; everything kept is checked.
    pub fn from_registration(body: &Value) -> Result<Self, OAuthError> {
        let obj = body.as_object().ok_or_else(|| bad("the registration request must be a JSON object"))?;

        let redirect_uris = match opt_string_list(obj, "redirect_uris", MAX_REDIRECT_URIS, MAX_URI_LEN) {
            Ok(list) => list.unwrap_or_default(),
            Err(_) => {
                return Err(OAuthError::invalid_redirect_uri("redirect_uris must be an array of strings"));
            }
        };
        // Which grants decide what else is needed; read first, checked below.
        let grant_types = opt_string_list(obj, "grant_types", MAX_SHORT_LIST, MAX_TEXT_LEN)?
            .unwrap_or_else(|| vec!["authorization_code".to_owned()]);
        let code_flow = grant_types.iter().any(|g| g == "authorization_code");
        if code_flow && redirect_uris.is_empty() {
            return Err(OAuthError::invalid_redirect_uri("redirect_uris is required for the authorization code flow"));
        }
        if !code_flow && !redirect_uris.is_empty() {
            return Err(bad("redirect_uris apply only to the authorization_code grant"));
        }
        for uri in &redirect_uris {
            redirect_uri::validate_for_registration(uri)?;
        }

        // RFC 7591 §2 makes client_secret_basic the default; MCP clients that want to be
        // public say `none` explicitly.
        let token_endpoint_auth_method = match opt_string(obj, "token_endpoint_auth_method", MAX_TEXT_LEN)? {
            None => AuthMethod::ClientSecretBasic,
            Some(m) => AuthMethod::parse(&m).ok_or_else(|| {
                bad(format!(
                    "token_endpoint_auth_method {m:?} is not supported; use one of {}",
                    AuthMethod::SUPPORTED.join(", ")
                ))
            })?,
        };

        for g in &grant_types {
            if !["authorization_code", "refresh_token", "client_credentials"].contains(&g.as_str()) {
                return Err(bad(format!("grant type {g:?} is not supported")));
            }
        }
        let client_credentials = grant_types.iter().any(|g| g == "client_credentials");
        if !code_flow && !client_credentials {
            return Err(bad("grant_types must include authorization_code or client_credentials"));
        }
        if !code_flow && grant_types.iter().any(|g| g == "refresh_token") {
            return Err(bad("refresh_token comes with authorization_code; client credentials get none"));
        }
        // A token for the client itself only for a client that proves who it is (SEP-1046);
        // which servers let it in is theirs to say (`access.clients`).
        if client_credentials && !token_endpoint_auth_method.is_confidential() {
            return Err(bad("client_credentials needs a confidential client (a secret or private_key_jwt)"));
        }
        let response_types = opt_string_list(obj, "response_types", MAX_SHORT_LIST, MAX_TEXT_LEN)?
            .unwrap_or_else(|| if code_flow { vec!["code".to_owned()] } else { Vec::new() });
        if code_flow && response_types != ["code"] {
            return Err(bad("response_types must be [\"code\"]"));
        }
        if !code_flow && !response_types.is_empty() {
            return Err(bad("response_types apply only to the authorization_code grant"));
        }

        let application_type = match opt_string(obj, "application_type", MAX_TEXT_LEN)?.as_deref() {
            None => None,
            Some("web") => Some(ApplicationType::Web),
            Some("native") => Some(ApplicationType::Native),
            Some(other) => return Err(bad(format!("application_type {other:?} is not web or native"))),
        };
        if application_type == Some(ApplicationType::Web)
            && let Some(uri) = redirect_uris.iter().find(|u| !redirect_uri::is_for_the_web(u))
        {
            return Err(OAuthError::invalid_redirect_uri(format!(
                "a web application may register only https redirect URIs to a real host, not {uri:?} \
                 (register as application_type native for loopback or app-scheme URIs)"
            )));
        }
        let contacts = opt_string_list(obj, "contacts", MAX_SHORT_LIST, MAX_TEXT_LEN)?;
        let scope = opt_string(obj, "scope", 1024)?;
        if let Some(s) = &scope {
            crate::scope::Scopes::parse(s).map_err(|e| bad(e.description))?;
        }

        let (jwks, jwks_uri) = keys(obj)?;
        if token_endpoint_auth_method == AuthMethod::PrivateKeyJwt && jwks.is_none() && jwks_uri.is_none() {
            return Err(bad("private_key_jwt needs the client's keys: jwks or jwks_uri"));
        }
        Ok(Self {
            redirect_uris,
            token_endpoint_auth_method,
            grant_types,
            response_types,
            client_name: opt_string(obj, "client_name", MAX_TEXT_LEN)?
                .map(|n| displayable(&n))
                .filter(|n| !n.is_empty()),
            client_uri: opt_string(obj, "client_uri", MAX_URI_LEN)?,
            logo_uri: opt_string(obj, "logo_uri", MAX_URI_LEN)?,
            scope,
            contacts,
            tos_uri: opt_string(obj, "tos_uri", MAX_URI_LEN)?,
            policy_uri: opt_string(obj, "policy_uri", MAX_URI_LEN)?,
            software_id: opt_string(obj, "software_id", MAX_TEXT_LEN)?,
            software_version: opt_string(obj, "software_version", MAX_TEXT_LEN)?,
            application_type,
            jwks,
            jwks_uri,
        })
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

/// A client as the authorization server knows it.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    /// SHA-256 of the secret; `None` for public clients.
    pub secret_hash: Option<TokenHash>,
    pub metadata: ClientMetadata,
    /// Pre-registered by the operator and allowed to skip the consent page.
    pub trusted: bool,
    pub created_at: i64,
}

/// The credentials a token request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedCredentials {
    pub client_id: String,
    pub secret: Option<String>,
    /// A signed client assertion (`client_assertion`, RFC 7523 §2.2); checked by the
    /// caller, which holds the client's keys and the store its `jti` is spent in.
    pub assertion: Option<String>,
}

impl Client {
    /// Authenticates a token or revocation request (RFC 6749 §2.3). A public client must
    /// not send a secret; a confidential one must send its secret by its registered method.
    pub fn authenticate(&self, presented: &PresentedCredentials) -> Result<(), OAuthError> {
        if self.metadata.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
            // Its assertion is checked by the caller; without one it has not proved anything.
            return Err(OAuthError::invalid_client("this client authenticates with a signed client assertion"));
        }
        if presented.assertion.is_some() {
            return Err(OAuthError::invalid_client("this client has registered no keys"));
        }
        match (&self.secret_hash, &presented.secret) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(OAuthError::invalid_client("this client is public and has no secret")),
            (Some(_), None) => Err(OAuthError::invalid_client("client authentication is required")),
            (Some(hash), Some(secret)) => {
                let matches = bool::from(TokenHash::of(secret).as_bytes().ct_eq(hash.as_bytes()));
                if !matches {
                    return Err(OAuthError::invalid_client("client authentication failed"));
                }
                // A client registered for Basic that posts its secret (or the reverse)
                // has still proved it holds the secret; refusing it would only break
                // clients that ignore the echoed method.
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn public_client_registration_gets_defaults() {
        let m = ClientMetadata::from_registration(&json!({
            "redirect_uris": ["http://127.0.0.1:3000/cb"],
            "token_endpoint_auth_method": "none",
            "client_name": "Inspector",
            "unknown_field": {"nested": true}
        }))
        .unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::None);
        assert_eq!(m.grant_types, ["authorization_code"]);
        assert_eq!(m.response_types, ["code"]);
        assert_eq!(m.client_name.as_deref(), Some("Inspector"));
    }

    #[test]
    fn private_key_jwt_clients_register_their_keys_and_never_authenticate_without_them() {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let m = ClientMetadata::from_registration(&json!({"redirect_uris": ["https://a/cb"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}}))
        .unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
        assert!(!m.token_endpoint_auth_method.uses_secret(), "no secret is minted for it");
        assert_eq!(serde_json::to_value(&m).unwrap()["jwks"]["keys"][0]["crv"], "Ed25519", "echoed and stored");
        let both = json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [jwk]}, "jwks_uri": "https://a.example/jwks"});
        assert!(ClientMetadata::from_registration(&both).is_err());
        let keyed = Client { client_id: "c".into(), secret_hash: None, metadata: m, trusted: false, created_at: 0 };
        // The caller checks its assertion; a secret or nothing never does for it.
        assert!(keyed.authenticate(&presented(None)).is_err());
        assert!(keyed.authenticate(&presented(Some("x"))).is_err());
        // And a client without keys cannot use an assertion.
        let with_assertion = PresentedCredentials { assertion: Some("a.b.c".into()), ..presented(None) };
        assert!(client(None).authenticate(&with_assertion).is_err());
    }

    #[test]
    fn a_confidential_client_may_register_for_client_credentials_alone() {
        let m =
            ClientMetadata::from_registration(&json!({"grant_types": ["client_credentials"], "scope": "mcp"})).unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert!(m.redirect_uris.is_empty() && m.response_types.is_empty());
        assert!(m.allows_grant("client_credentials") && !m.allows_grant("authorization_code"));
        let both =
            json!({"grant_types": ["authorization_code", "client_credentials"], "redirect_uris": ["https://a/cb"]});
        assert!(ClientMetadata::from_registration(&both).unwrap().allows_grant("client_credentials"));
    }

    #[test]
    fn registration_defaults_to_client_secret_basic() {
        let m = ClientMetadata::from_registration(&json!({"redirect_uris": ["https://a.example/cb"]})).unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    }

    #[test]
    fn bad_registrations_name_the_problem() {
        let cases = [
            (json!({}), "invalid_redirect_uri"),
            (json!({"redirect_uris": "https://a/cb"}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["javascript:alert(1)"]}), "invalid_redirect_uri"),
            (
                json!({"redirect_uris": ["https://a/cb"], "grant_types": ["client_credentials"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
                "invalid_client_metadata",
            ),
            (json!({"grant_types": ["client_credentials", "refresh_token"]}), "invalid_client_metadata"),
            (json!({"grant_types": ["refresh_token"], "redirect_uris": ["https://a/cb"]}), "invalid_client_metadata"),
            (json!({"grant_types": ["password"], "redirect_uris": ["https://a/cb"]}), "invalid_client_metadata"),
            (json!({"redirect_uris": ["https://a/cb"], "response_types": ["token"]}), "invalid_client_metadata"),
            (
                json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "private_key_jwt",
                       "jwks_uri": "http://a.example/jwks"}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "private_key_jwt",
                       "jwks": {"keys": []}}),
                "invalid_client_metadata",
            ),
            (json!({"redirect_uris": ["https://a/cb"], "client_name": 5}), "invalid_client_metadata"),
            (json!([1]), "invalid_client_metadata"),
        ];
        for (body, code) in cases {
            let e = ClientMetadata::from_registration(&body).expect_err(&body.to_string());
            assert_eq!(e.code.as_str(), code, "{body}");
        }
    }

    fn client(secret: Option<&str>) -> Client {
        Client {
            client_id: "c".into(),
            secret_hash: secret.map(TokenHash::of),
            metadata: ClientMetadata::from_registration(&json!({"redirect_uris": ["https://a/cb"]})).unwrap(),
            trusted: false,
            created_at: 0,
        }
    }

    fn presented(secret: Option<&str>) -> PresentedCredentials {
        PresentedCredentials { client_id: "c".into(), secret: secret.map(str::to_owned), assertion: None }
    }

    #[test]
    fn application_types_decide_the_redirect_uris() {
        let register = |kind: &str, uri: &str| {
            ClientMetadata::from_registration(&json!({"redirect_uris": [uri], "application_type": kind}))
        };
        assert!(register("web", "https://app.example/cb").is_ok());
        for native_only in [
            "http://127.0.0.1:33418/cb",
            "http://localhost:6274/cb",
            "cursor://anysphere.cursor/cb",
            "https://localhost/cb",
        ] {
            assert_eq!(
                register("web", native_only).unwrap_err().code,
                crate::OAuthErrorCode::InvalidRedirectUri,
                "{native_only}"
            );
            assert!(register("native", native_only).is_ok(), "{native_only}");
        }
        assert!(register("native", "https://app.example/cb").is_ok());
        assert!(register("desktop", "https://app.example/cb").is_err());
        let kept = register("native", "http://127.0.0.1:1/cb").unwrap();
        assert_eq!(serde_json::to_value(&kept).unwrap()["application_type"], "native", "echoed and stored");
        let unsaid = ClientMetadata::from_registration(&json!({"redirect_uris": ["http://127.0.0.1:1/cb"]})).unwrap();
        assert_eq!(unsaid.application_type, None, "clients that predate SEP-837 keep today's rules");
    }

    #[test]
    fn lists_and_texts_are_bounded() {
        let uris: Vec<String> = (0..21).map(|i| format!("https://a.example/cb{i}")).collect();
        let e = ClientMetadata::from_registration(&json!({"redirect_uris": uris})).unwrap_err();
        assert_eq!(e.code, crate::OAuthErrorCode::InvalidRedirectUri);
        let long = format!("https://a.example/{}", "x".repeat(2048));
        assert!(ClientMetadata::from_registration(&json!({"redirect_uris": [long]})).is_err());
        let contacts: Vec<String> = (0..11).map(|i| format!("c{i}@a.example")).collect();
        let e = ClientMetadata::from_registration(&json!({"redirect_uris": ["https://a/cb"], "contacts": contacts}))
            .unwrap_err();
        assert!(e.description.contains("contacts"), "{e}");
        let many = vec!["authorization_code"; 11];
        assert!(
            ClientMetadata::from_registration(&json!({"redirect_uris": ["https://a/cb"], "grant_types": many}))
                .is_err()
        );
    }

    #[test]
    fn client_names_lose_control_and_direction_characters() {
        let m = ClientMetadata::from_registration(
            &json!({"redirect_uris": ["https://a/cb"], "client_name": "Good\u{202e}moc.live\u{2066} App\n\u{0007}"}),
        )
        .unwrap();
        assert_eq!(m.client_name.as_deref(), Some("Goodmoc.live App"));
        let m =
            ClientMetadata::from_registration(&json!({"redirect_uris": ["https://a/cb"], "client_name": "\u{202e}"}))
                .unwrap();
        assert_eq!(m.client_name, None);
    }

    #[test]
    fn client_names_lose_every_invisible_character() {
        let name = |n: &str| displayable(n);
        for invisible in [
            '\u{200b}', // zero-width space
            '\u{200c}', // zero-width non-joiner
            '\u{200d}', // zero-width joiner
            '\u{2060}', // word joiner
            '\u{feff}', // zero-width no-break space (byte order mark)
            '\u{e0000}',
            '\u{e0001}', // language tag
            '\u{e0041}', // tag latin capital letter a
            '\u{e007f}', // cancel tag
            '\u{2028}',  // line separator
            '\u{2029}',  // paragraph separator
            '\u{00ad}',  // soft hyphen
            '\u{e000}',  // private use
            '\u{0378}',  // unassigned
        ] {
            assert_eq!(name(&format!("Go{invisible}od")), "Good", "U+{:04X}", invisible as u32);
            assert_eq!(name(&format!("{invisible}")), "", "U+{:04X}", invisible as u32);
        }
    }

    #[test]
    fn client_names_keep_what_people_read_with_whitespace_collapsed() {
        for kept in ["Claude", "Café Ünïcødé", "東京アプリ", "앱", "Rocket 🚀", "שלום", "Ёлка-2 (beta)"]
        {
            assert_eq!(displayable(kept), kept);
        }
        assert_eq!(displayable("  My \u{00a0}\u{3000}\u{2003} App  "), "My App");
        assert_eq!(displayable("My\u{200b} \u{200b} App"), "My App");
    }

    #[test]
    fn authentication() {
        assert!(client(None).authenticate(&presented(None)).is_ok());
        assert!(client(None).authenticate(&presented(Some("x"))).is_err());
        assert!(client(Some("s")).authenticate(&presented(Some("s"))).is_ok());
        assert!(client(Some("s")).authenticate(&presented(Some("t"))).is_err());
        assert!(client(Some("s")).authenticate(&presented(None)).is_err());
    }
}
