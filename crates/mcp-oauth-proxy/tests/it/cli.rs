//! The binary itself: `demo`, `check-config`, `keygen`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::mcp::{call, rmcp_oauth_session, text};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-oauth-proxy");

/// Starts `demo` on a free port; returns the process and the MCP URL it printed.
async fn spawn_demo(extra_args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(BIN)
        .args(["demo", "--port", "0"])
        .args(extra_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mcp_url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("MCP URL:") {
                return url.trim().to_owned();
            }
        }
        panic!("demo exited without printing its MCP URL");
    })
    .await
    .expect("demo printed its MCP URL in time");
    // Keep reading, or the demo's next print hits a closed pipe and ends it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, mcp_url)
}

#[tokio::test]
async fn demo_runs_the_whole_flow_offline() {
    let data = std::env::temp_dir().join(format!("mop-demo-{}", mcp_oauth_core::token::random_id()));
    let (mut child, mcp_url) = spawn_demo(&["--data", data.to_str().unwrap()]).await;
    let client = rmcp_oauth_session(&mcp_url).await;
    assert_eq!(text(&call(&client, "whoami", json!({})).await), "demo-user");
    assert_eq!(text(&call(&client, "count_slowly", json!({"steps": 2, "delay_ms": 10})).await), "counted to 2");
    assert!(data.join("proxy.db").exists());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn check_config_names_every_bad_key_and_no_secret() {
    let dir = std::env::temp_dir().join(format!("mop-cfg-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        r#"
public_url = "http://127.0.0.1:8080"
[encryption]
key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[providers.gh]
authorization_endpoint = "https://github.com/login/oauth/authorize"
token_endpoint = "https://github.com/login/oauth/access_token"
client_id = "abc"
client_secret = "super-secret-value"
[[servers]]
slug = "a"
upstream_url = "http://127.0.0.1:9000/mcp"
provider = "missing"
"#,
    )
    .unwrap();
    let out = tokio::process::Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("servers[0].provider"), "{stderr}");
    assert!(!stderr.contains("super-secret-value"));

    let fixed = std::fs::read_to_string(&path).unwrap().replace("\"missing\"", "\"gh\"");
    std::fs::write(&path, fixed).unwrap();
    let out = tokio::process::Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("http://127.0.0.1:8080/oauth/callback"), "{stdout}");
    assert!(stdout.contains("http://127.0.0.1:8080/mcp/a"));
    assert!(!stdout.contains("super-secret-value"));
    assert!(!stdout.contains("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
}

#[tokio::test]
async fn check_config_says_what_each_server_sends_its_upstream_and_no_static_credential() {
    let dir = std::env::temp_dir().join(format!("mop-cfg-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("modes.toml");
    let server = |slug: &str, more: &str| {
        format!(
            "[[servers]]\nslug = \"{slug}\"\nupstream_url = \"http://127.0.0.1:9000/{slug}\"\nprovider = \"gh\"\n{more}\n"
        )
    };
    let text = format!(
        r#"
public_url = "https://p.example"
[encryption]
key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[providers.gh]
preset = "github"
client_id = "abc"
client_secret = "s"
{}{}{}{}{}"#,
        server("plain", "identity_headers = true"),
        server(
            "who",
            "upstream_auth = \"identity\"\n[servers.identity]\nstatic_header = { name = \"X-Api-Key\", value_env = \"WHO_KEY\" }"
        ),
        server(
            "open",
            "upstream_auth = \"none\"\nenterprise_idps = [\"acme\"]\naccess = { clients = [\"ci-bot\"] }\n\
             [enterprise_idps.acme]\nissuer = \"https://acme.okta.com\"\njwks_url = \"https://acme.okta.com/oauth2/v1/keys\"\n\
             [[clients]]\nclient_id = \"ci-bot\"\nclient_secret = \"ci-bot-secret-value\"\ngrant_types = [\"client_credentials\"]"
        ),
        server(
            "files",
            "upstream_auth = \"oauth\"\n[servers.upstream_oauth]\nclient_id = \"mcp-proxy\"\n\
             client_secret_env = \"FILES_SECRET\"\nscopes = [\"files:read\"]"
        ),
        "[[servers]]\nslug = \"solo\"\nupstream_url = \"https://solo.example/mcp\"\nupstream_auth = \"oauth\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .env("WHO_KEY", "static-credential-value")
        .env("FILES_SECRET", "files-secret-value")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let sends: Vec<&str> = stdout.lines().filter(|l| l.trim_start().starts_with("sends:")).collect();
    assert_eq!(sends.len(), 5, "{stdout}");
    assert!(sends[0].contains("provider token") && sends[0].contains("Bearer {token}"), "{}", sends[0]);
    assert!(
        sends[1].contains("identity assertion") && sends[1].contains("aud \"http://127.0.0.1:9000/who\""),
        "{}",
        sends[1]
    );
    assert!(
        sends[1].contains("https://p.example/.well-known/jwks.json") && sends[1].contains("x-api-key"),
        "{}",
        sends[1]
    );
    assert!(sends[2].contains("no credential"), "{}", sends[2]);
    let brokered = sends[3];
    assert!(
        brokered.contains("brokered OAuth") && brokered.contains("pre-registered confidential client \"mcp-proxy\""),
        "{brokered}"
    );
    assert!(brokered.contains("\"files:read\" (configured)"), "{brokered}");
    assert!(brokered.contains("https://p.example/oauth/upstream-callback"), "{brokered}");
    assert!(
        sends[4].contains("https://p.example/oauth/upstream-client.json") && sends[4].contains("dynamic registration"),
        "{}",
        sends[4]
    );
    assert!(stdout.contains("provider:  (none: the upstream's own login only)"), "{stdout}");
    assert!(
        sends[3].contains("after the provider login") && sends[4].contains("logs in only (no provider)"),
        "{stdout}"
    );
    assert!(!stdout.contains("files-secret-value"));
    assert_eq!(stdout.matches("identity headers: X-Forwarded-User").count(), 1, "{stdout}");
    assert!(!stdout.contains("static-credential-value"));
    // Tokens without a browser: who may get them at which server, and from which IdP.
    assert!(stdout.contains("client credentials for: ci-bot (subject client:<id>)"), "{stdout}");
    assert!(stdout.contains("ID-JAGs from: acme"), "{stdout}");
    assert!(
        stdout.contains("acme: issuer https://acme.okta.com, keys at https://acme.okta.com/oauth2/v1/keys"),
        "{stdout}"
    );
    assert!(!stdout.contains("ci-bot-secret-value"));
}

#[tokio::test]
async fn keygen_prints_a_usable_key() {
    let out = tokio::process::Command::new(BIN).arg("keygen").output().await.unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(mcp_oauth_core::seal::decode_key(key.trim()).is_ok());
}

/// A deploy sends SIGTERM: the proxy must exit even while a client holds an MCP event
/// stream open (the rmcp client keeps a GET stream), after a bounded grace period, and
/// write the grants' last uses it noted (batched every 30 s) before it does.
#[tokio::test]
async fn sigterm_ends_the_process_despite_open_streams() {
    let data = std::env::temp_dir().join(format!("mop-demo-{}", mcp_oauth_core::token::random_id()));
    let (mut child, mcp_url) = spawn_demo(&["--data", data.to_str().unwrap()]).await;
    let client = rmcp_oauth_session(&mcp_url).await;
    assert_eq!(text(&call(&client, "add", json!({"a": 1, "b": 2})).await), "3");
    tokio::time::sleep(Duration::from_millis(300)).await; // let the GET stream settle
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(25), child.wait()).await;
    let exit = exit.expect("the proxy exited within the grace period").unwrap();
    assert!(exit.success(), "{exit:?}");
    drop(client);
    let url = format!("sqlite://{}", data.join("proxy.db").display());
    let store = mcp_oauth_store::open(&url).await.unwrap();
    let grants = store.list_grants(&mcp_oauth_store::GrantFilter::default(), 10).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert!(grants[0].last_used_at.is_some(), "the last use was written at shutdown: {:?}", grants[0]);
}

/// `serve` with JSON logs chosen through the environment: the variable is the command
/// line's, not a configuration key, and every log line is one JSON object.
#[tokio::test]
async fn serve_logs_json_lines_when_asked() {
    let dir = std::env::temp_dir().join(format!("mop-json-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[storage]
url = "sqlite://{db}/proxy.db"
[encryption]
key = "{key}"
[providers.gh]
authorization_endpoint = "https://github.com/login/oauth/authorize"
token_endpoint = "https://github.com/login/oauth/access_token"
userinfo_endpoint = "https://api.github.com/user"
client_id = "abc"
client_secret = "s"
[[servers]]
slug = "a"
upstream_url = "http://127.0.0.1:9/mcp"
provider = "gh"
"#,
            db = dir.display(),
            key = crate::harness::KEY
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("MCP_OAUTH_PROXY_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let serving = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            if entry["message"] == "mcp-oauth-proxy is serving" {
                return entry;
            }
        }
        panic!("serve exited without logging that it serves");
    })
    .await
    .expect("serve started in time");
    assert_eq!(serving["storage"], "sqlite");
    child.kill().await.unwrap();
}
