//! A proxy, a development identity provider and a scripted browser, all in-process on
//! loopback ports, sharing one manual clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_core::ManualClock;
use mcp_oauth_core::pkce::s256_challenge;
use mcp_oauth_core::token::random_id;
use mcp_oauth_devsupport::idp::{DevIdp, IdpOptions};
use mcp_oauth_devsupport::mcp_server::{self, Observed};
use mcp_oauth_http::AppState;
use mcp_oauth_proxy::config::Config;
use reqwest::StatusCode;
use serde_json::Value;

pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const REDIRECT: &str = "http://127.0.0.1:7777/callback";

pub struct Harness {
    pub base: String,
    pub idp: DevIdp,
    /// What the sample MCP server behind `demo` saw.
    pub observed: Observed,
    /// The demo server's upstream MCP URL.
    pub upstream_url: String,
    pub clock: ManualClock,
    pub app: AppState,
    pub http: reqwest::Client,
    pub db_dir: std::path::PathBuf,
    pub storage_url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Default)]
pub struct Start {
    /// Tables appended to the configuration.
    pub extra_toml: String,
    /// Top-level keys, put before every table.
    pub top_toml: String,
    /// `MCP_OAUTH_PROXY_*` variables over the configuration; the variables that `*_env`
    /// keys name are read from here too.
    pub env: Vec<(String, String)>,
    /// The demo server's upstream; by default the sample MCP server.
    pub upstream_url: Option<String>,
    pub idp_options: Option<IdpOptions>,
    /// `storage.url`; by default a new SQLite file.
    pub storage_url: Option<String>,
    /// The public URL, when this instance is a replica behind another's URL.
    pub public_url: Option<String>,
    pub db_dir: Option<std::path::PathBuf>,
    pub idp: Option<(DevIdp, String)>,
    pub clock: Option<ManualClock>,
}

pub use mcp_oauth_devsupport::browser::{Browser, client};

/// The first message of an MCP session, for status-level checks of the MCP path.
pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// Sends `initialize` to `base`'s demo MCP server with `token`; returns the answer.
pub async fn send_initialize(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    http.post(format!("{base}/mcp/demo"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
}

/// [`send_initialize`]'s status.
pub async fn mcp_initialize(http: &reqwest::Client, base: &str, token: &str) -> Result<StatusCode, reqwest::Error> {
    Ok(send_initialize(http, base, token).await?.status())
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(Start::default()).await
    }

    pub async fn start_with(opts: Start) -> Self {
        let clock = opts.clock.unwrap_or_else(ManualClock::starting_now);
        let (idp, issuer) = match opts.idp {
            Some(x) => x,
            None => {
                let idp = DevIdp::new(opts.idp_options.unwrap_or_default(), Arc::new(clock.clone()));
                let issuer = idp.spawn().await.unwrap();
                (idp, issuer)
            }
        };
        let observed = Observed::default();
        let upstream_url = match opts.upstream_url {
            Some(u) => u,
            None => mcp_server::spawn(idp.token_check(), observed.clone()).await.unwrap(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let db_dir = opts.db_dir.unwrap_or_else(|| std::env::temp_dir().join(format!("mop-it-{}", random_id())));
        let storage_url = opts.storage_url.unwrap_or_else(|| format!("sqlite://{}/proxy.db", db_dir.display()));
        let public_url = opts.public_url.unwrap_or_else(|| base.clone());
        let more = format!(
            "[[servers]]\nslug = \"other\"\nupstream_url = \"http://127.0.0.1:9/mcp\"\nprovider = \"dev\"\n\n{}",
            opts.extra_toml
        );
        let toml = mcp_oauth_devsupport::DevProxyConfig {
            public_url: &public_url,
            storage_url: &storage_url,
            encryption_key: KEY,
            issuer: &issuer,
            upstream_url: &upstream_url,
            more_tables: &more,
        }
        .toml();
        let toml = format!("{}\n{toml}", opts.top_toml);
        let named = opts.env.clone();
        let lookup = move |name: &str| named.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let config = Config::from_parts(&toml, opts.env.into_iter(), &lookup).unwrap();
        let app = mcp_oauth_proxy::runtime::build(config, Arc::new(clock.clone())).await.unwrap();
        let router = mcp_oauth_http::router(app.clone());
        let admission = mcp_oauth_http::serve::Admission::for_app(&app);
        let server = tokio::spawn(async move {
            let forever = std::future::pending();
            mcp_oauth_http::serve::serve(listener, router, admission, forever, Duration::ZERO).await.unwrap();
        });
        Self { base, idp, observed, upstream_url, clock, app, http: client(), db_dir, storage_url, server }
    }

    /// This proxy stopped and started again on the same database, provider, MCP server
    /// and clock, with `env` over its configuration (a deploy, a key rotation).
    pub async fn restarted(self, env: Vec<(String, String)>) -> Harness {
        let start = Start {
            db_dir: Some(self.db_dir.clone()),
            clock: Some(self.clock.clone()),
            idp: Some((self.idp.clone(), self.idp_issuer())),
            upstream_url: Some(self.upstream_url.clone()),
            env,
            ..Default::default()
        };
        drop(self);
        Harness::start_with(start).await
    }

    /// Runs the binary with this proxy's configuration (its storage, provider and MCP
    /// server), `env` over it: the operator's commands, run beside the serving proxy.
    pub async fn cli(&self, args: &[&str], env: &[(String, String)]) -> std::process::Output {
        let config = self.db_dir.join(format!("cli-{}.toml", random_id()));
        std::fs::create_dir_all(&self.db_dir).unwrap();
        let toml = mcp_oauth_devsupport::DevProxyConfig {
            public_url: &self.base,
            storage_url: &self.storage_url,
            encryption_key: KEY,
            issuer: &self.idp_issuer(),
            upstream_url: &self.upstream_url,
            more_tables: "",
        }
        .toml();
        std::fs::write(&config, toml).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-oauth-proxy"));
        cmd.args(args).arg("--config").arg(&config).env("RUST_LOG", "error").kill_on_drop(true);
        cmd.envs(env.iter().cloned());
        tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("the binary ends").unwrap()
    }

    pub fn idp_issuer(&self) -> String {
        self.app.providers.get("dev").expect("configured").settings().issuer.clone().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET of `path` on the proxy, its JSON body (discovery documents and the like).
    pub async fn get_json(&self, path: &str) -> Value {
        self.http.get(self.url(path)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn register(&self, body: Value) -> (StatusCode, Value) {
        let r = self.http.post(self.url("/oauth/demo/register")).json(&body).send().await.unwrap();
        (r.status(), r.json().await.unwrap())
    }

    pub async fn register_public(&self) -> String {
        let (status, body) = self
            .register(serde_json::json!({
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "client_name": "Test client",
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["client_id"].as_str().unwrap().to_owned()
    }

    pub fn authorize_url(&self, client_id: &str, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.url("/oauth/demo/authorize")).unwrap();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", client_id)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("code_challenge", &s256_challenge(VERIFIER))
                .append_pair("code_challenge_method", "S256");
            if !extra.iter().any(|(k, _)| *k == "state") {
                q.append_pair("state", "client-state");
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url.into()
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let r = self.http.post(self.url("/oauth/demo/token")).form(form).send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    /// The whole login, as a user who approves everything; returns the client's code.
    pub async fn authorize(&self, browser: &mut Browser, client_id: &str) -> String {
        let redirect = browser.login(&self.authorize_url(client_id, &[]), true).await;
        let url = url::Url::parse(&redirect).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("state").map(String::as_str), Some("client-state"), "{redirect}");
        assert_eq!(q.get("iss"), Some(&self.app.settings.issuer("demo")));
        q.get("code").unwrap_or_else(|| panic!("no code in {redirect}")).clone()
    }

    pub async fn exchange(&self, client_id: &str, code: &str) -> Value {
        let (status, body, _) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", client_id),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn refresh(&self, client_id: &str, refresh_token: &str) -> (StatusCode, Value) {
        let (s, b, _) = self
            .token(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)])
            .await;
        (s, b)
    }

    /// A registered client with a completed login: (client id, token response).
    pub async fn logged_in(&self) -> (String, Value) {
        let client_id = self.register_public().await;
        let mut browser = Browser::new();
        let code = self.authorize(&mut browser, &client_id).await;
        let tokens = self.exchange(&client_id, &code).await;
        (client_id, tokens)
    }

    pub async fn mcp_status(&self, token: &str) -> StatusCode {
        mcp_initialize(&self.http, &self.base, token).await.expect("the proxy answers")
    }

    pub async fn access_token_works(&self, token: &str) -> bool {
        let info = self.app.store.find_access_token(&mcp_oauth_core::token::TokenHash::of(token)).await.unwrap();
        info.is_some_and(|i| {
            !i.revoked
                && i.upstream.family_status == mcp_oauth_core::family::FamilyStatus::Active
                && i.expires_at > mcp_oauth_core::Clock::now(&self.clock)
        })
    }
}
