//! What the measurements share: gathering each worker's latencies and errors, and the
//! figures made of them.

use std::time::Instant;

pub struct Summary {
    pub count: usize,
    pub per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub errors: u64,
}

/// Waits for `workers` (each returns its latencies in µs and its error count), started at
/// `started`, and sums them up.
pub async fn gather(workers: Vec<tokio::task::JoinHandle<(Vec<u64>, u64)>>, started: Instant) -> Summary {
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.expect("worker");
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    Summary { count: all.len(), per_second: all.len() as f64 / elapsed, p50_us: pct(0.50), p99_us: pct(0.99), errors }
}
