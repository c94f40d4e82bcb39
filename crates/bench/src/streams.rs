//! Open event streams: N clients each holding a `GET /mcp/S` open through the proxy, as
//! MCP clients listening for server notifications do, with the proxy's resident memory
//! while they are all open.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

pub struct Held {
    /// Streams that opened (200, an event stream, its first event read).
    pub opened: usize,
    /// Streams that did not open, or closed before the memory was read.
    pub errors: usize,
    pub seconds_to_open: f64,
    /// The proxy's resident memory with every stream open, in KiB.
    pub rss_kib: Option<u64>,
}

/// Opens `n` streams at `url` (at most 256 being set up at once, as clients arriving over
/// some time would), holds them all open, reads the resident memory of `pid`, and closes
/// them. Gives up on streams not open within two minutes.
pub async fn hold(url: &str, token: &str, n: usize, pid: u32) -> Held {
    // One connection per stream, as separate clients have; none kept after.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("a client");
    let opening = Arc::new(Semaphore::new(256));
    let (stop, stopped) = watch::channel(false);
    let (open, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let streams: Vec<_> = (0..n)
        .map(|_| {
            let (http, url, token, opening) = (http.clone(), url.to_owned(), token.to_owned(), opening.clone());
            let (open, failed, mut stopped) = (open.clone(), failed.clone(), stopped.clone());
            tokio::spawn(async move {
                let permit = opening.acquire_owned().await;
                let sent = http
                    .get(&url)
                    .bearer_auth(&token)
                    .header("accept", "text/event-stream")
                    .header("mcp-protocol-version", "2025-06-18")
                    .send()
                    .await;
                let Ok(mut response) = sent else { return failed.fetch_add(1, SeqCst) };
                let is_stream = response.headers().get("content-type").is_some_and(|t| t == "text/event-stream");
                let first = response.chunk().await;
                drop(permit);
                if !response.status().is_success() || !is_stream || !matches!(first, Ok(Some(_))) {
                    return failed.fetch_add(1, SeqCst);
                }
                open.fetch_add(1, SeqCst);
                // Held until the end; a stream that ends before is a failure.
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => 0,
                    _ = response.chunk() => {
                        open.fetch_sub(1, SeqCst);
                        failed.fetch_add(1, SeqCst)
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(120);
    while open.load(SeqCst) + failed.load(SeqCst) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds_to_open = started.elapsed().as_secs_f64();
    // Let the proxy settle, then read its memory with everything open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_kib = crate::memory::kib(pid, "VmRSS");
    let opened = open.load(SeqCst);
    let _ = stop.send(true);
    for s in streams {
        s.abort();
    }
    Held { opened, errors: n - opened, seconds_to_open, rss_kib }
}

/// Raises this process's open-file limit (and so its children's: the proxy) towards
/// `wanted`, as far as the hard limit allows (raising that needs a privilege this may not
/// have); returns the limit now in force.
pub fn raise_open_file_limit(wanted: usize) -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct passed, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let wanted = wanted as libc::rlim_t;
        if limit.rlim_cur >= wanted {
            return Ok(limit.rlim_cur);
        }
        let raised = libc::rlimit { rlim_cur: wanted, rlim_max: wanted.max(limit.rlim_max) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return Ok(wanted);
        }
        let soft = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(limit.rlim_max)
    }
}
