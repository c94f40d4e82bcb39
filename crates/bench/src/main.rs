//! `mop-bench`: how much does the proxy cost?
//!
//! Starts the development identity provider and the sample MCP server (stateless JSON
//! mode), runs the real `mcp-oauth-proxy serve` binary in front of it as a separate
//! process, logs in once, and then sends the same MCP `tools/call` at several
//! concurrencies: straight to the MCP server, through nginx as a plain pass-through proxy
//! (the reference for one hop), and through mcp-oauth-proxy. Prints requests per second,
//! p50 and p99 latency and, for the two proxies, their CPU time per request (from
//! `/proc`), the proxy's figures against nginx's, and the proxy's peak memory (VmHWM).
//! Every request is checked; errors are counted and shown.
//!
//! Run: `scripts/bench.sh` (builds in release mode first, installs nginx when it can).

mod cpu;
mod nginx;
mod refresh;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mcp_oauth_core::SystemClock;
use mcp_oauth_devsupport::idp::{DevIdp, IdpOptions};
use mcp_oauth_devsupport::mcp_server::{self, Observed};

#[derive(Parser)]
struct Args {
    /// The proxy binary to measure.
    #[arg(long, default_value = "target/release/mcp-oauth-proxy")]
    proxy_bin: PathBuf,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrencies to measure, comma-separated.
    #[arg(long, default_value = "1,8,32")]
    concurrency: String,
    /// The nginx binary for the reference hop; the comparison is left out without one.
    #[arg(long, default_value = "nginx")]
    nginx_bin: String,
    /// Token families refreshing at once in the refresh-grant measurement (0: leave it out).
    #[arg(long, default_value_t = 16)]
    families: usize,
}

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}"#;

async fn measure(client: &reqwest::Client, url: &str, token: &str, concurrency: usize, seconds: u64) -> stats::Summary {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(100_000);
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let ok = match send(&client, &url, &token).await {
                        Ok(body) => body.contains("\"3\""),
                        Err(_) => false,
                    };
                    if ok {
                        latencies.push(t0.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    stats::gather(workers, started).await
}

async fn send(client: &reqwest::Client, url: &str, token: &str) -> Result<String, reqwest::Error> {
    client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(CALL)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

/// One way to the MCP server: straight, through nginx, through the proxy (with the pid
/// whose CPU time is counted).
struct Target {
    name: &'static str,
    url: String,
    token: String,
    pid: Option<u32>,
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let concurrencies: Vec<usize> = args.concurrency.split(',').map(|c| c.trim().parse()).collect::<Result<_, _>>()?;
    if !args.proxy_bin.exists() {
        return Err(format!("{} not found: build it with `cargo build --release`", args.proxy_bin.display()).into());
    }

    let idp = DevIdp::new(IdpOptions { access_ttl_secs: Some(24 * 3600), ..Default::default() }, Arc::new(SystemClock));
    let issuer = idp.spawn().await?;
    let router = mcp_server::router_with(idp.token_check(), Observed::default(), true);
    let (upstream_base, _) = mcp_oauth_devsupport::serve_on_loopback(router).await?;
    let upstream = format!("{upstream_base}/mcp");

    let dir = std::env::temp_dir().join(format!("mop-bench-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir)?;
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let public_url = format!("http://127.0.0.1:{port}");
    let redirect = "http://127.0.0.1:1/callback";
    let config = dir.join("proxy.toml");
    let db = format!("sqlite://{}", dir.join("proxy.db").display());
    let toml = mcp_oauth_devsupport::DevProxyConfig {
        public_url: &public_url,
        storage_url: &db,
        encryption_key: &mcp_oauth_core::seal::generate_key(),
        issuer: &issuer,
        upstream_url: &upstream,
        more_tables: &format!("[[clients]]\nclient_id = \"bench\"\nredirect_uris = [\"{redirect}\"]\ntrusted = true\n"),
    }
    .toml();
    std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\n{toml}"))?;
    let mut proxy = tokio::process::Command::new(&args.proxy_bin)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let pid = proxy.id().ok_or("proxy exited at once")?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Log in once, as a user would, to get the proxy's token.
    let tokens = mcp_oauth_devsupport::browser::log_in(&public_url, "demo", "bench", redirect).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let proxy_token = tokens["access_token"].as_str().ok_or("no access token")?.to_owned();
    let direct_token = idp.mint_access_token();
    let proxied = format!("{public_url}/mcp/demo");
    send(&http, &upstream, &direct_token).await?;
    send(&http, &proxied, &proxy_token).await?;

    let nginx = nginx::Nginx::start(&args.nginx_bin, &dir, &url::Url::parse(&upstream)?, &direct_token).await;
    let mut targets = vec![Target { name: "direct", url: upstream.clone(), token: direct_token.clone(), pid: None }];
    match &nginx {
        Some(n) => {
            send(&http, &n.url, "unused").await?;
            targets.push(Target { name: "nginx", url: n.url.clone(), token: "unused".into(), pid: n.child.id() });
        }
        None => println!("({} could not be started: no nginx reference in this run)", args.nginx_bin),
    }
    targets.push(Target { name: "proxy", url: proxied, token: proxy_token, pid: Some(pid) });

    println!("mcp-oauth-proxy benchmark: MCP tools/call (JSON), {}s per run", args.seconds);
    println!(
        "machine: {} cores; load generator, MCP server and identity provider share them with the proxies",
        std::thread::available_parallelism()?.get()
    );
    println!();
    println!("{:>4} {:>7} | {:>9} {:>9} {:>9} | {:>10}", "conc", "path", "rps", "p50 µs", "p99 µs", "CPU µs/req");
    for c in concurrencies {
        let mut runs = Vec::new();
        for t in &targets {
            let before = t.pid.map(cpu::used);
            let r = measure(&http, &t.url, &t.token, c, args.seconds).await;
            let cpu_us =
                before.zip(t.pid).map(|(b, pid)| (cpu::used(pid) - b).as_secs_f64() * 1e6 / r.count.max(1) as f64);
            let cpu = cpu_us.map_or("-".to_owned(), |u| format!("{u:.1}"));
            println!("{c:>4} {:>7} | {:>9.0} {:>9} {:>9} | {cpu:>10}", t.name, r.per_second, r.p50_us, r.p99_us);
            if r.errors > 0 {
                println!("             errors: {}", r.errors);
            }
            runs.push((t.name, r, cpu_us));
        }
        let find = |name| runs.iter().find(|(n, ..)| *n == name);
        if let (Some((_, d, _)), Some((_, n, n_cpu)), Some((_, p, p_cpu))) =
            (find("direct"), find("nginx"), find("proxy"))
        {
            println!(
                "             proxy vs nginx: CPU/req {}, throughput {:.0}%, added p50 {} µs vs {} µs",
                p_cpu.zip(*n_cpu).map_or("-".to_owned(), |(p, n)| format!("{:.2}×", p / n)),
                100.0 * p.per_second / n.per_second,
                p.p50_us as i64 - d.p50_us as i64,
                n.p50_us as i64 - d.p50_us as i64,
            );
        }
    }
    if args.families > 0 {
        // Each family is one login, as each client of a real deployment would have.
        let mut families = Vec::with_capacity(args.families);
        for _ in 0..args.families {
            let t = mcp_oauth_devsupport::browser::log_in(&public_url, "demo", "bench", redirect).await;
            families.push(t["refresh_token"].as_str().ok_or("no refresh token")?.to_owned());
        }
        let before = cpu::used(pid);
        let token_url = format!("{public_url}/oauth/demo/token");
        let r = refresh::measure(&http, &token_url, "bench", families, args.seconds).await;
        let cpu_us = (cpu::used(pid) - before).as_secs_f64() * 1e6 / r.count.max(1) as f64;
        println!(
            "\nrefresh grant, SQLite, {} families in chains: {:.0}/s, p50 {} µs, p99 {} µs, proxy CPU {cpu_us:.0} µs per refresh",
            args.families, r.per_second, r.p50_us, r.p99_us
        );
        if r.errors > 0 {
            println!("     broken chains: {}", r.errors);
        }
    }
    if let Some(kib) = peak_rss_kib(pid) {
        println!("\nproxy peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0);
    }
    proxy.kill().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
