//! What `deploy/` ships: the container image's recipe, the systemd unit, the Kubernetes
//! manifest and its configuration, and the health check the image runs. (No container
//! engine runs here, so the Dockerfile is checked, not built.)

use mcp_oauth_proxy::config::Config;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-oauth-proxy");

fn deploy(file: &str) -> String {
    std::fs::read_to_string(format!("{}/../../deploy/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_unprivileged_with_a_health_check() {
    let d = deploy("Dockerfile");
    let from: Vec<&str> = d.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "a build stage and a small runtime stage");
    assert!(from[1].contains("slim"), "{}", from[1]);
    let user = d.lines().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    assert!(user.trim() != "0" && user.trim() != "root", "{user}");
    assert!(d.contains("VOLUME [\"/data\"]"));
    assert!(d.contains("HEALTHCHECK") && d.contains("\"healthcheck\""));
    assert!(d.contains("--locked"), "built from the committed lock file");
    // The builder is at least the toolchain the workspace needs.
    let workspace = std::fs::read_to_string(format!("{}/../../Cargo.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let needed = workspace.lines().find_map(|l| l.strip_prefix("rust-version = ")).unwrap().trim_matches('"');
    let builder = from[0].split(':').nth(1).unwrap().split('-').next().unwrap();
    let version = |v: &str| v.split('.').map(|n| n.parse::<u32>().unwrap()).collect::<Vec<_>>();
    assert!(version(builder) >= version(needed), "builder {builder} < rust-version {needed}");
}

#[tokio::test]
async fn the_health_check_command_follows_the_liveness_probe() {
    let h = crate::harness::Harness::start().await;
    let ok =
        tokio::process::Command::new(BIN).args(["healthcheck", "--url", &h.url("/healthz")]).output().await.unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let port = crate::processes::free_port();
    let down = tokio::process::Command::new(BIN)
        .args(["healthcheck", "--url", &format!("http://127.0.0.1:{port}/healthz")])
        .output()
        .await
        .unwrap();
    assert!(!down.status.success());
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(analyze) = which("systemd-analyze") else {
        assert!(std::env::var("CI").is_err(), "CI machines have systemd-analyze");
        return;
    };
    let unit = deploy("mcp-oauth-proxy.service").replace("/usr/local/bin/mcp-oauth-proxy", BIN);
    assert!(
        unit.contains("NoNewPrivileges=yes")
            && unit.contains("DynamicUser=yes")
            && unit.contains("ProtectSystem=strict")
    );
    let dir = std::env::temp_dir().join(format!("mop-unit-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mcp-oauth-proxy.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new(analyze).arg("verify").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !said.contains("mcp-oauth-proxy.service:"), "{said}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
        .ok_or(())
}

#[test]
fn the_kubernetes_manifest_carries_a_valid_configuration_and_probes() {
    let m = deploy("kubernetes/mcp-oauth-proxy.yaml");
    let toml: String = m
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("proxy.toml: |"))
        .skip(1)
        .take_while(|l| !l.starts_with("---"))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let env = [
        ("MCP_OAUTH_PROXY_ENCRYPTION_KEY", mcp_oauth_core::seal::generate_key()),
        ("MCP_OAUTH_PROXY_STORAGE__URL", "postgres://mop@postgres/mcp_oauth_proxy".to_owned()),
    ];
    let vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let config =
        Config::from_parts(&toml, vars.into_iter(), &|name| (name == "GITHUB_CLIENT_SECRET").then(|| "s".into()))
            .unwrap_or_else(|e| panic!("the manifest's proxy.toml: {e}\n{toml}"));
    assert!(config.metrics_listen.is_some());
    assert!(config.storage_url.starts_with("postgres://"));
    for needle in ["path: /readyz", "path: /healthz", "runAsNonRoot: true", "readOnlyRootFilesystem: true"] {
        assert!(m.contains(needle), "{needle}");
    }
}
