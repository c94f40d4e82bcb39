//! `mop-bench`: how much does the proxy cost?
//!
//! Starts the development identity provider and a nearly free MCP server (`upstream`),
//! runs the real `mcp-oauth-proxy serve` binary in front of it as a separate process, logs
//! in as a user would, and measures in one run:
//! - the MCP path: the same `tools/call` at several concurrencies, straight to the
//!   server, through nginx as a plain pass-through proxy (the reference for one hop), and
//!   through mcp-oauth-proxy; requests per second, p50/p99 latency and, for the two
//!   proxies, their CPU time per request (from `/proc`);
//! - the refresh grant: N token families refreshing in chains, on SQLite and (given a
//!   database) on PostgreSQL;
//! - N event streams held open through the proxy, with its resident memory.
//!
//! Every answer is checked; errors are counted and shown.
//!
//! Run: `scripts/bench.sh` (builds in release mode first, installs nginx and PostgreSQL
//! when it can).

mod cpu;
mod memory;
mod nginx;
mod proxy;
mod refresh;
mod stats;
mod streams;
mod upstream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mcp_oauth_core::SystemClock;
use mcp_oauth_devsupport::idp::{DevIdp, IdpOptions};

use crate::proxy::Proxy;

#[derive(Parser)]
struct Args {
    /// The proxy binary to measure.
    #[arg(long, default_value = "target/release/mcp-oauth-proxy")]
    proxy_bin: PathBuf,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrencies to measure, comma-separated (empty: leave the MCP path out).
    #[arg(long, default_value = "1,16")]
    concurrency: String,
    /// The nginx binary for the reference hop; the comparison is left out without one.
    #[arg(long, default_value = "nginx")]
    nginx_bin: String,
    /// Token families refreshing at once in the refresh-grant measurement, comma-separated:
    /// real refresh traffic arrives a few at a time, where group commit has little to
    /// batch (empty or 0: leave it out).
    #[arg(long, default_value = "1,4,16")]
    families: String,
    /// An empty PostgreSQL database, to measure the refresh grant on PostgreSQL too.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Event streams to hold open through the proxy at once (0: leave it out).
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
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

/// The request as a client of the current revision sends it: its protocol version, and the
/// method and tool in headers beside the body.
async fn send(client: &reqwest::Client, url: &str, token: &str) -> Result<String, reqwest::Error> {
    client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "add")
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let concurrencies = counts(&args.concurrency)?;
    let families = counts(&args.families)?;
    if !args.proxy_bin.exists() {
        return Err(format!("{} not found: build it with `cargo build --release`", args.proxy_bin.display()).into());
    }
    // Each held stream is two sockets in the proxy (client, server) and two here (the
    // client's and the server's end): as many as the open-file limit allows.
    let mut stream_count = args.streams;
    if args.streams > 0 {
        let limit = streams::raise_open_file_limit(2 * args.streams + 256)? as usize;
        stream_count = stream_count.min(limit.saturating_sub(256) / 2);
    }

    let idp = DevIdp::new(IdpOptions { access_ttl_secs: Some(24 * 3600), ..Default::default() }, Arc::new(SystemClock));
    let issuer = idp.spawn().await?;
    let upstream = upstream::spawn(idp.token_check()).await?;
    let dir = std::env::temp_dir().join(format!("mop-bench-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite = format!("sqlite://{}", dir.join("proxy.db").display());
    let proxy = Proxy::start(&args.proxy_bin, &dir, &sqlite, &issuer, &upstream).await?;

    // Log in once, as a user would, to get the proxy's token.
    let tokens = proxy.log_in().await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let proxy_token = tokens["access_token"].as_str().ok_or("no access token")?.to_owned();
    let direct_token = idp.mint_access_token();
    send(&http, &upstream, &direct_token).await?;
    send(&http, &proxy.mcp_url(), &proxy_token).await?;
    let idle_kib = memory::kib(proxy.pid, "VmRSS");

    println!("mcp-oauth-proxy benchmark, {}s per run", args.seconds);
    println!(
        "machine: {} cores; load generator, MCP server and identity provider share them with the proxies",
        std::thread::available_parallelism()?.get()
    );
    if let Some(kib) = idle_kib {
        println!("proxy resident memory, idle after a login and a call (VmRSS): {:.1} MiB", memory::mib(kib));
    }
    let nginx = if concurrencies.is_empty() {
        None
    } else {
        nginx::Nginx::start(&args.nginx_bin, &dir, &url::Url::parse(&upstream)?, &direct_token).await
    };
    let mut targets = vec![Target { name: "direct", url: upstream.clone(), token: direct_token.clone(), pid: None }];
    match &nginx {
        Some(n) => {
            send(&http, &n.url, "unused").await?;
            targets.push(Target { name: "nginx", url: n.url.clone(), token: "unused".into(), pid: n.child.id() });
        }
        None if !concurrencies.is_empty() => {
            println!("({} could not be started: no nginx reference in this run)", args.nginx_bin)
        }
        None => {}
    }
    targets.push(Target { name: "proxy", url: proxy.mcp_url(), token: proxy_token.clone(), pid: Some(proxy.pid) });

    if !concurrencies.is_empty() {
        println!("\nMCP path: tools/call (JSON)");
        println!("{:>4} {:>7} | {:>9} {:>9} {:>9} | {:>10}", "conc", "path", "rps", "p50 µs", "p99 µs", "CPU µs/req");
    }
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
    drop(nginx);

    if !families.is_empty() {
        println!();
        for &n in &families {
            refresh_grant("SQLite", &proxy, &http, n, args.seconds).await?;
        }
        if let Some(url) = &args.postgres_url {
            let pg = Proxy::start(&args.proxy_bin, &dir, url, &issuer, &upstream).await?;
            for &n in &families {
                refresh_grant("PostgreSQL", &pg, &http, n, args.seconds).await?;
            }
        }
    }

    if stream_count > 0 {
        if stream_count < args.streams {
            println!("\n({stream_count} streams instead of {}: the open-file limit allows no more)", args.streams);
        }
        let before = memory::kib(proxy.pid, "VmRSS").unwrap_or(0);
        let held = streams::hold(&proxy.mcp_url(), &proxy_token, stream_count, proxy.pid).await;
        let rss = held.rss_kib.map_or("-".to_owned(), |k| {
            let per_stream = k.saturating_sub(before) as f64 / held.opened.max(1) as f64;
            format!("{:.1} MiB, {per_stream:.1} KiB per stream", memory::mib(k))
        });
        println!(
            "\nevent streams held open through the proxy: {} of {stream_count} in {:.1} s, proxy resident memory (VmRSS) {rss}",
            held.opened, held.seconds_to_open,
        );
        if held.errors > 0 {
            println!("     streams that failed or closed early: {}", held.errors);
        }
    }
    if let Some(kib) = memory::kib(proxy.pid, "VmHWM") {
        println!("\nproxy peak memory (VmHWM): {:.1} MiB", memory::mib(kib));
    }
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A comma-separated list of counts; zeros and blanks left out.
fn counts(list: &str) -> Result<Vec<usize>, std::num::ParseIntError> {
    let parsed: Result<Vec<usize>, _> =
        list.split(',').filter(|c| !c.trim().is_empty()).map(|c| c.trim().parse()).collect();
    parsed.map(|counts| counts.into_iter().filter(|&c| c > 0).collect())
}

/// The refresh grant at `proxy`, `families` chains at once, each family one login as each
/// client of a real deployment would have.
async fn refresh_grant(
    store: &str,
    proxy: &Proxy,
    http: &reqwest::Client,
    families: usize,
    seconds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut chains = Vec::with_capacity(families);
    for _ in 0..families {
        let tokens = proxy.log_in().await;
        chains.push(tokens["refresh_token"].as_str().ok_or("no refresh token")?.to_owned());
    }
    let (before, server_before) = (cpu::used(proxy.pid), cpu::used_by_name("postgres"));
    let r = refresh::measure(http, &proxy.token_url(), &proxy.mcp_url(), "bench", chains, seconds).await;
    let per_refresh = |d: Duration| d.as_secs_f64() * 1e6 / r.count.max(1) as f64;
    let cpu_us = per_refresh(cpu::used(proxy.pid) - before);
    // Outside the proxy's process: PostgreSQL's server processes.
    let server_us = per_refresh(cpu::used_by_name("postgres") - server_before);
    let server = if server_us > 0.0 { format!(", PostgreSQL CPU {server_us:.0} µs") } else { String::new() };
    println!(
        "refresh grant, {store}, {families} families in chains: {:.0}/s, p50 {} µs, p99 {} µs, proxy CPU {cpu_us:.0} µs{server} per refresh",
        r.per_second, r.p50_us, r.p99_us
    );
    if r.errors > 0 {
        println!("     broken chains: {}", r.errors);
    }
    Ok(())
}
