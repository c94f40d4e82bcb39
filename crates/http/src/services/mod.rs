//! The services [`App`](crate::App) holds: each owns what its job needs, and none knows
//! about routes, requests or HTTP answers (their errors are their own; `error` turns them
//! into answers).
//!
//! - `clients`: the client directory: who a `client_id` is (configured, metadata
//!   documents, registered);
//! - `providers`: the identity providers, by name;
//! - `brokers`: brokered OAuth (`upstream_auth = "oauth"`): each such MCP upstream's own
//!   authorization server, discovered, registered at, and then used as a provider;
//! - `upstream_access`: provider tokens for the MCP path, refreshed once when due, and
//!   what this process keeps per grant (its opened token, whether it was used before);
//! - `mcp_client`: pooled connections to the MCP upstreams;
//! - `limits`: bounds on anonymous work;
//! - `audit`: the security events' trail; `metrics`: what Prometheus reads;
//! - `identities`: who a grant's user is, for MCP upstreams that want to know it: the
//!   identity assertion (signed, cached per grant), identity headers, the key set;
//! - `history`: each server's last hour, a sample a minute, for the operators' console;
//! - `last_uses`: when grants were last used, recorded coarsely for the account page;
//! - `revocations`: open event streams, ended when their grant or token is revoked;
//! - `sharded_lru`: recently used entries by key, in shards with a lock each (what the
//!   MCP path keeps per grant);
//! - `tool_pins`: the tool definitions each server's tools were first seen with;
//! - `enterprise_idps`: the IdPs whose ID-JAGs servers accept, and their signing keys.

pub(crate) mod audit;
pub(crate) mod brokers;
pub(crate) mod clients;
pub(crate) mod enterprise_idps;
pub(crate) mod history;
pub(crate) mod identities;
pub(crate) mod last_uses;
pub(crate) mod limits;
pub(crate) mod mcp_client;
pub(crate) mod metrics;
pub(crate) mod providers;
pub(crate) mod revocations;
pub(crate) mod sharded_lru;
pub(crate) mod tool_pins;
pub(crate) mod upstream_access;

/// Runs `work` on `owner` every `interval` (the first at once), off the request path, until
/// `owner` is dropped: the task holds it only weakly, so dropping the `App` ends the task
/// (as it must in tests, which build many). A tick that comes late waits for the next
/// rather than bunching up.
pub(crate) fn every<T, F, Fut>(owner: &std::sync::Arc<T>, interval: std::time::Duration, work: F)
where
    T: Send + Sync + 'static,
    F: Fn(std::sync::Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let weak = std::sync::Arc::downgrade(owner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(this) = weak.upgrade() else { return };
            work(this).await;
        }
    });
}
