//! Integration tests: the real HTTP server, a real HTTP client, the development identity
//! provider as upstream. One test binary (fast to link), one module per area.

mod harness;

mod access_rules;
mod account;
mod admin;
mod admin_console;
mod audit;
mod authorization;
mod brokered;
mod browserless;
mod cli;
mod connections;
mod crash;
mod discovery;
mod edge;
mod file_modes;
mod id_jag;
mod identity;
mod key_rotation;
mod limits;
mod mcp;
mod metadata_documents;
mod metrics;
mod migrate_storage;
mod outage;
mod packaging;
mod pinned_tools;
mod processes;
mod raw_upstream;
mod registration;
mod regressions;
mod replicas;
mod revision;
mod revocations;
mod secrets;
mod tokens;
mod tool_changes;
mod tool_lists;
mod tool_scopes;
mod trace;
mod upstream_refusals;
