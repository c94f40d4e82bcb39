//! Pinned tool definitions: the defence against a "rug pull", an approved tool whose
//! definition the MCP server later changes (a description that tells the model to send
//! secrets somewhere, a schema that takes more than it did). The first `tools/list`
//! answer that carries a tool pins its definition (see `mcp_oauth_core::tool_definition`);
//! a later answer with another definition is reported once (audit `tool.changed`, a
//! metric, the consent page), and with `tool_changes = "block"` the changed tool is left
//! out of tool lists and its calls refused until an operator accepts the change
//! (`mcp-oauth-proxy tools accept`).
//!
//! Answers are checked against a snapshot of the server's pins read before the request is
//! sent (cached for a few seconds), so the answer's stream is never held up by the store;
//! what is new or changed is written after, off the answer's path. The store reports each
//! change to exactly one caller across replicas, so each is audited once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::tool_definition::ToolDefinition;
use mcp_oauth_store::{SeenTool, Store, StoreError};
use serde_json::Value;

use crate::services::audit::{Audit, Event};
use crate::services::metrics::{Metrics, SlugLabels};
use crate::settings::{ServerSettings, ToolChanges};

/// How long a snapshot of a server's pins is used before it is read again: how late a
/// replica may learn that an operator accepted a change, or that another replica saw one.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// What is known of one server's tools.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Each pinned tool's digest.
    pinned: HashMap<String, String>,
    /// The tools with a change not yet accepted: the changed digest, and when it was seen.
    changed: HashMap<String, (String, i64)>,
}

impl Snapshot {
    /// The tools changed since they were pinned, with when the change was first seen.
    pub fn changed(&self) -> impl Iterator<Item = (&str, i64)> {
        self.changed.iter().map(|(name, (_, seen_at))| (name.as_str(), *seen_at))
    }

    pub fn is_changed(&self, tool: &str) -> bool {
        self.changed.contains_key(tool)
    }
}

pub struct ToolPins {
    store: Arc<dyn Store>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    audit: Arc<Audit>,
    snapshots: Mutex<HashMap<String, (Instant, Arc<Snapshot>)>>,
}

impl ToolPins {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, metrics: Arc<Metrics>, audit: Arc<Audit>) -> Self {
        Self { store, clock, metrics, audit, snapshots: Mutex::default() }
    }

    /// The server's pins, read at most `FRESH_FOR` ago.
    pub async fn snapshot(&self, slug: &str) -> Result<Arc<Snapshot>, StoreError> {
        if let Some((read_at, snapshot)) = self.snapshots.lock().unwrap().get(slug)
            && read_at.elapsed() < FRESH_FOR
        {
            return Ok(Arc::clone(snapshot));
        }
        let mut snapshot = Snapshot::default();
        for pin in self.store.tool_pins(Some(slug)).await? {
            if let Some(change) = pin.changed {
                snapshot.changed.insert(pin.tool.clone(), (change.digest, change.seen_at));
            }
            snapshot.pinned.insert(pin.tool, pin.digest);
        }
        let snapshot = Arc::new(snapshot);
        self.snapshots.lock().unwrap().insert(slug.to_owned(), (Instant::now(), Arc::clone(&snapshot)));
        Ok(snapshot)
    }

    /// Checks the tools of one tool list against `snapshot`: records what is new or
    /// changed (in the background) and, when the server blocks changes, leaves out the
    /// tools whose definition is not the pinned one.
    pub fn check(self: &Arc<Self>, server: &ServerSettings, snapshot: &Snapshot, tools: &mut Vec<Value>) {
        let block = server.tool_changes == ToolChanges::Block;
        let mut seen = Vec::new();
        tools.retain(|tool| {
            let Some(definition) = ToolDefinition::of(tool) else { return true };
            let pinned = snapshot.pinned.get(&definition.name);
            let known_change = snapshot.changed.get(&definition.name).map(|(digest, _)| digest);
            let matches_pin = pinned == Some(&definition.digest);
            // New; changed and not yet recorded so; or back to the pin with a change on
            // record (which the store then clears).
            let record = pinned.is_none()
                || (!matches_pin && known_change != Some(&definition.digest))
                || (matches_pin && known_change.is_some());
            let keep = !block || pinned.is_none() || matches_pin;
            if record {
                seen.push(SeenTool {
                    name: definition.name.clone(),
                    digest: definition.digest.clone(),
                    definition: definition.kept(),
                });
            }
            keep
        });
        if !seen.is_empty() {
            let pins = Arc::clone(self);
            let slug = server.slug.clone();
            tokio::spawn(async move { pins.record(&slug, seen).await });
        }
    }

    async fn record(&self, slug: &str, seen: Vec<SeenTool>) {
        let now = self.clock.now();
        match self.store.pin_tools(slug, &seen, now).await {
            Ok(changed) => {
                for tool in &changed {
                    tracing::warn!(server = slug, tool, "a tool's definition changed since it was pinned");
                    self.audit.record(Event::new("tool.changed", now).slug(slug).tool(tool));
                    self.metrics.tool_changes.get_or_create(&SlugLabels { slug: slug.to_owned() }).inc();
                }
            }
            // Seen again with the next tool list.
            Err(e) => tracing::warn!(server = slug, error = %e, "tool definitions could not be pinned"),
        }
        // The next request reads what this one wrote.
        self.snapshots.lock().unwrap().remove(slug);
    }
}
