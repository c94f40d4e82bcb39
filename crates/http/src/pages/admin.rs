//! The operators' console: servers, grants, clients and the audit trail, as tables with
//! a filter form above and a form per action. Every form carries the session's CSRF token.

use maud::{Markup, html};
use mcp_oauth_store::GrantFilter;
use serde_json::Value;

use super::layout;

/// What every console page shows around its content.
pub struct AdminPage<'a> {
    pub prefix: &'a str,
    pub operator: &'a str,
    pub csrf_token: &'a str,
}

pub struct AdminServer {
    pub slug: String,
    pub upstream: String,
    pub provider: String,
    pub upstream_auth: String,
    /// How the upstream and the provider did lately, in words.
    pub health: Vec<String>,
    /// The last hour, a minute each, oldest first: [answers, 5xx, 401s, provider refreshes].
    pub last_hour: Vec<[u64; 4]>,
}

const SERIES: [(&str, &str); 4] =
    [("answers", "#1a5fb4"), ("5xx", "#c01c28"), ("401s", "#e66100"), ("provider refreshes", "#26a269")];

/// A small chart of the last hour: one line per series, drawn here (no script).
fn chart(slug: &str, minutes: &[[u64; 4]]) -> Markup {
    let (w, h) = (240.0_f64, 48.0_f64);
    let top = minutes.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let step = w / 59.0;
    // The newest minute at the right edge; an hour not yet sampled leaves the left empty.
    let x0 = w - step * minutes.len().saturating_sub(1) as f64;
    let points = |i: usize| {
        minutes
            .iter()
            .enumerate()
            .map(|(n, m)| format!("{:.1},{:.1}", x0 + step * n as f64, h - 1.0 - (h - 2.0) * m[i] as f64 / top))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sums: Vec<u64> = (0..4).map(|i| minutes.iter().map(|m| m[i]).sum()).collect();
    let label = format!(
        "{slug}, last hour: {} answers, {} 5xx, {} 401s, {} provider refreshes; at most {top} a minute",
        sums[0], sums[1], sums[2], sums[3]
    );
    html! {
        svg width="240" height="48" viewBox="0 0 240 48" role="img" aria-label=(label) {
            rect x="0" y="0" width="240" height="48" fill="#fafafa" stroke="#ddd" {}
            @if minutes.len() > 1 {
                @for (i, (_, color)) in SERIES.iter().enumerate() {
                    polyline points=(points(i)) fill="none" stroke=(color) stroke-width="1.5" {}
                }
            }
        }
        br;
        small {
            @for (i, (name, color)) in SERIES.iter().enumerate() {
                span style={ "color:" (color) } { "■ " } (name) " " (sums[i]) " "
            }
        }
    }
}

pub struct AdminGrant {
    pub id: String,
    pub server: String,
    pub client_id: String,
    pub subject: String,
    pub scope: String,
    pub created: String,
    pub last_used: Option<String>,
    pub status: String,
    pub active: bool,
}

pub struct AdminClient {
    pub client_id: String,
    pub server: String,
    pub name: String,
    pub redirect_uris: String,
    pub confidential: bool,
    pub registered: String,
}

fn frame(p: &AdminPage<'_>, title: &str, content: Markup) -> String {
    let body = html! {
        nav.wide {
            a href={ (p.prefix) "/admin" } { "Servers" } " · "
            a href={ (p.prefix) "/admin/grants" } { "Grants" } " · "
            a href={ (p.prefix) "/admin/clients" } { "Clients" } " · "
            a href={ (p.prefix) "/admin/audit" } { "Audit" }
        }
        h1 { (title) }
        (content)
        form method="post" action={ (p.prefix) "/admin/logout" } {
            input type="hidden" name="csrf" value=(p.csrf_token);
            p { small { "Operator " code { (p.operator) } " " } button type="submit" { "Log out" } }
        }
    };
    layout(title, body)
}

fn csrf(p: &AdminPage<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(p.csrf_token); }
}

pub fn admin_overview(p: &AdminPage<'_>, servers: &[AdminServer]) -> String {
    let content = html! {
        table {
            thead { tr { th { "Server" } th { "MCP upstream" } th { "Health" } th { "Last hour (this replica)" } } }
            tbody {
                @for s in servers {
                    tr {
                        td {
                            code { (s.slug) } br;
                            small { "provider " (s.provider) "; the upstream receives " (s.upstream_auth) } br;
                            a href={ (p.prefix) "/admin/grants?server=" (s.slug) } { "grants" }
                        }
                        td { code { (s.upstream) } }
                        td { @for line in &s.health { (line) br; } }
                        td { (chart(&s.slug, &s.last_hour)) }
                    }
                }
            }
        }
        p { small { "Counted by this replica since it started, a sample a minute; Prometheus has every replica's." } }
    };
    frame(p, "Servers", content)
}

fn text_input(label: &str, name: &str, value: Option<&str>) -> Markup {
    html! {
        label { (label) " " input type="text" name=(name) value=(value.unwrap_or_default()); } " "
    }
}

pub fn admin_grants(p: &AdminPage<'_>, filter: &GrantFilter, grants: &[AdminGrant]) -> String {
    let revoke = format!("{}/admin/grants/revoke", p.prefix);
    let filtered = filter.subject.is_some() || filter.client_id.is_some() || filter.server.is_some();
    let active = grants.iter().filter(|g| g.active).count();
    let content = html! {
        form method="get" action={ (p.prefix) "/admin/grants" } {
            (text_input("Subject", "subject", filter.subject.as_deref()))
            (text_input("Client", "client", filter.client_id.as_deref()))
            (text_input("Server", "server", filter.server.as_deref()))
            button type="submit" { "Filter" }
        }
        @if grants.is_empty() { p { "No grants." } }
        @else {
            table {
                thead { tr { th { "Subject" } th { "Client" } th { "Server" } th { "Scope" } th { "Created" } th { "Last used" } th { "Status" } th { span { "Action" } } } }
                tbody {
                    @for g in grants {
                        tr {
                            td { code { (g.subject) } }
                            td { code { (g.client_id) } }
                            td { code { (g.server) } }
                            td { code { (g.scope) } }
                            td { (g.created) }
                            td { (g.last_used.as_deref().unwrap_or("-")) }
                            td { (g.status) }
                            td {
                                @if g.active {
                                    form method="post" action=(revoke) {
                                        (csrf(p))
                                        input type="hidden" name="grant" value=(g.id);
                                        button type="submit" aria-label={ "Revoke the grant of " (g.subject) " to " (g.client_id) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if filtered && active > 0 {
                form method="post" action=(revoke) {
                    (csrf(p))
                    input type="hidden" name="matching" value="1";
                    @if let Some(v) = &filter.subject { input type="hidden" name="subject" value=(v); }
                    @if let Some(v) = &filter.client_id { input type="hidden" name="client" value=(v); }
                    @if let Some(v) = &filter.server { input type="hidden" name="server" value=(v); }
                    p { button type="submit" { "Revoke all " (active) " active grants matching" } }
                }
            }
        }
    };
    frame(p, "Grants", content)
}

pub fn admin_clients(p: &AdminPage<'_>, query: &str, clients: &[AdminClient]) -> String {
    let content = html! {
        form method="get" action={ (p.prefix) "/admin/clients" } {
            (text_input("Client id or name", "q", Some(query)))
            button type="submit" { "Search" }
        }
        p { small { "Dynamically registered clients. Configured clients are in the configuration file; metadata-document clients are their documents." } }
        @if clients.is_empty() { p { "No clients." } }
        @else {
            table {
                thead { tr { th { "Client" } th { "Server" } th { "Redirect URIs" } th { "Registered" } th { span { "Action" } } } }
                tbody {
                    @for c in clients {
                        tr {
                            td {
                                @if !c.name.is_empty() { b { (c.name) } br; }
                                code { (c.client_id) }
                                @if c.confidential { " " small { "(confidential)" } }
                            }
                            td { code { (c.server) } }
                            td { small { (c.redirect_uris) } }
                            td { (c.registered) }
                            td {
                                form method="post" action={ (p.prefix) "/admin/clients/delete" } {
                                    (csrf(p))
                                    input type="hidden" name="client_id" value=(c.client_id);
                                    input type="hidden" name="q" value=(query);
                                    button type="submit" aria-label={ "Delete client " (c.client_id) } { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    frame(p, "Clients", content)
}

/// The audit view's filter as given: event, subject, trace id.
pub type AuditFilter<'a> = [Option<&'a str>; 3];

pub fn admin_audit(p: &AdminPage<'_>, filter: AuditFilter<'_>, events: Option<&Result<Vec<Value>, String>>) -> String {
    let [event, subject, trace] = filter;
    let field = |e: &Value, k: &str| e[k].as_str().map(str::to_owned).or_else(|| e[k].as_i64().map(|n| n.to_string()));
    let content = html! {
        form method="get" action={ (p.prefix) "/admin/audit" } {
            (text_input("Event", "event", event))
            (text_input("Subject", "subject", subject))
            (text_input("Trace id", "trace", trace))
            button type="submit" { "Filter" }
        }
        @match events {
            None => p { "The audit trail is not written to a file (" code { "[audit] path" } "), so there is nothing to show here." },
            Some(Err(why)) => p.note { "The audit trail cannot be read: " (why) },
            Some(Ok(events)) if events.is_empty() => p { "No matching events." },
            Some(Ok(events)) => table {
                thead { tr { th { "Time" } th { "Event" } th { "Subject" } th { "Client" } th { "Server" } th { "Details" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (e["time"].as_i64().map(mcp_oauth_core::clock::utc).unwrap_or_default()) }
                            td { code { (field(e, "event").unwrap_or_default()) } }
                            td { (field(e, "subject").unwrap_or_default()) }
                            td { small { (field(e, "client_id").unwrap_or_default()) } }
                            td { (field(e, "slug").unwrap_or_default()) }
                            td { small {
                                @for k in ["by", "reason", "grant_type", "grant_id", "trace_id", "client_address", "tool"] {
                                    @if let Some(v) = field(e, k) { (k) ": " (v) br; }
                                }
                            } }
                        }
                    }
                }
            },
        }
    };
    frame(p, "Audit trail", content)
}
