//! The refresh grant under load: N token families, each refreshing in a chain (every
//! answer checked, the rotated refresh token used for the next call), as N clients keeping
//! their sessions alive would. Reports refreshes per second, p50/p99 and the proxy's CPU
//! time per refresh: what the store's write path sustains.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::stats::{self, Summary};

/// Runs one chain per refresh token in `families` for `seconds`. Each request is what a
/// client sends: the RFC 8707 `resource` it wants the token for, and its client id (the
/// benchmark's client is public, so that is its authentication as registered).
pub async fn measure(
    http: &reqwest::Client,
    token_url: &str,
    resource: &str,
    client_id: &str,
    families: Vec<String>,
    seconds: u64,
) -> Summary {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let chains: Vec<_> = families
        .into_iter()
        .map(|mut refresh_token| {
            let (http, url, client_id) = (http.clone(), token_url.to_owned(), client_id.to_owned());
            let resource = resource.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(50_000);
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let form = [
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &refresh_token),
                        ("client_id", &client_id),
                        ("resource", &resource),
                    ];
                    let answer = match http.post(&url).form(&form).send().await {
                        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                        _ => None,
                    };
                    match answer.as_ref().and_then(|a| a["refresh_token"].as_str()) {
                        Some(next) if answer.as_ref().is_some_and(|a| a["access_token"].is_string()) => {
                            latencies.push(t0.elapsed().as_micros() as u64);
                            refresh_token = next.to_owned();
                        }
                        // A broken chain cannot go on: its token is spent or unknown.
                        _ => {
                            errors += 1;
                            break;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    stats::gather(chains, started).await
}
