//! The last hour of each server, a sample a minute, for the operators' console: what the
//! metrics already count (the MCP upstream's answers, its errors and its 401s; the
//! provider's refreshes and their failures), as counts per minute. Per process: each
//! replica's console shows its own traffic (Prometheus has every replica's).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth_core::clock::SharedClock;

use crate::services::metrics::Metrics;

/// Samples kept: an hour of minutes, and the one before it to count the first minute.
const KEPT: usize = 61;
pub const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// The counters of one server at one moment, since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    at: i64,
    answers: u64,
    errors: u64,
    refusals: u64,
    refreshes: u64,
    refresh_failures: u64,
}

/// One minute of one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// The minute's end.
    pub at: i64,
    /// Answers of the MCP upstream.
    pub answers: u64,
    /// Of them, 5xx.
    pub errors: u64,
    /// Of them, 401: the upstream refused the credential sent.
    pub refusals: u64,
    /// Refreshes at the server's provider (shared by its other servers).
    pub refreshes: u64,
    pub refresh_failures: u64,
}

pub struct History {
    metrics: Arc<Metrics>,
    clock: SharedClock,
    /// (slug, provider) of every server.
    servers: Vec<(String, String)>,
    samples: Mutex<HashMap<String, VecDeque<Totals>>>,
}

impl History {
    pub fn new(metrics: Arc<Metrics>, clock: SharedClock, servers: Vec<(String, String)>) -> Self {
        Self { metrics, clock, servers, samples: Mutex::default() }
    }

    fn totals(&self, slug: &str, provider: &str, at: i64) -> Totals {
        let (mut answers, mut errors, mut refusals) = (0, 0, 0);
        for (status, n) in self.metrics.server(slug).responses.by_status() {
            answers += n;
            errors += if status >= 500 { n } else { 0 };
            refusals += if status == 401 { n } else { 0 };
        }
        let (refreshes, refresh_failures) = self.metrics.provider_refreshes(provider);
        Totals { at, answers, errors, refusals, refreshes, refresh_failures }
    }

    /// Takes a sample of every server now.
    pub fn sample(&self) {
        let now = self.clock.now();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        for (slug, provider) in &self.servers {
            let kept = samples.entry(slug.clone()).or_default();
            kept.push_back(self.totals(slug, provider, now));
            while kept.len() > KEPT {
                kept.pop_front();
            }
        }
    }

    /// The minutes sampled of the last hour, oldest first.
    pub fn last_hour(&self, slug: &str) -> Vec<Minute> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let Some(kept) = samples.get(slug) else { return Vec::new() };
        kept.iter()
            .zip(kept.iter().skip(1))
            .map(|(a, b)| Minute {
                at: b.at,
                answers: b.answers - a.answers,
                errors: b.errors - a.errors,
                refusals: b.refusals - a.refusals,
                refreshes: b.refreshes - a.refreshes,
                refresh_failures: b.refresh_failures - a.refresh_failures,
            })
            .collect()
    }

    /// Samples every `every` until this is dropped (the first at once, as the baseline).
    pub fn sample_every(self: &Arc<Self>, every: Duration) {
        super::every(self, every, |this| async move { this.sample() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_core::clock::ManualClock;

    #[test]
    fn minutes_count_what_happened_between_samples() {
        let metrics = Arc::new(Metrics::new(["demo"]));
        let clock = ManualClock::new(1_000);
        let history = History::new(Arc::clone(&metrics), Arc::new(clock.clone()), vec![("demo".into(), "gh".into())]);
        assert!(history.last_hour("demo").is_empty());
        history.sample();
        for status in [200, 200, 502, 401] {
            metrics.server("demo").responses.inc(status);
        }
        clock.advance(60);
        history.sample();
        metrics.server("demo").responses.inc(200);
        clock.advance(60);
        history.sample();
        let minutes = history.last_hour("demo");
        assert_eq!(minutes.len(), 2);
        assert_eq!((minutes[0].at, minutes[0].answers, minutes[0].errors, minutes[0].refusals), (1_060, 4, 1, 1));
        assert_eq!((minutes[1].answers, minutes[1].errors), (1, 0));
        for _ in 0..100 {
            history.sample();
        }
        assert_eq!(history.last_hour("demo").len(), KEPT - 1, "an hour at most");
    }
}
