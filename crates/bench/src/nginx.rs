//! nginx as a pass-through proxy in front of the same MCP server: the reference for what
//! one proxy hop costs. It does what the proxy does on the MCP path minus the token check:
//! forwards the request over pooled keep-alive connections and sets the upstream's
//! `Authorization` header. No access log, as the hop itself is what is compared.

use std::path::Path;
use std::time::Duration;

pub struct Nginx {
    pub child: tokio::process::Child,
    pub url: String,
}

impl Drop for Nginx {
    /// Asks the master to stop, which takes its workers with it (a killed master would
    /// leave them running); `kill_on_drop` is the fallback.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Nginx {
    /// Starts `bin` in the foreground with a configuration in `dir`; `None` when there is
    /// no nginx to start.
    pub async fn start(bin: &str, dir: &Path, upstream: &url::Url, upstream_token: &str) -> Option<Self> {
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?.local_addr().ok()?.port();
        let host = format!("{}:{}", upstream.host_str()?, upstream.port_or_known_default()?);
        let d = dir.display();
        let conf = format!(
            r#"daemon off;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-tmp;
    proxy_temp_path {d}/nginx-tmp;
    upstream mcp {{ server {host}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location = /mcp/demo {{
            proxy_pass http://mcp{path};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {host};
            proxy_set_header Authorization "Bearer {upstream_token}";
            proxy_buffering off;
        }}
    }}
}}
"#,
            path = upstream.path(),
        );
        let file = dir.join("nginx.conf");
        std::fs::create_dir_all(dir.join("nginx-tmp")).ok()?;
        std::fs::write(&file, conf).ok()?;
        let child = tokio::process::Command::new(bin)
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(Self { child, url: format!("http://127.0.0.1:{port}/mcp/demo") });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}
