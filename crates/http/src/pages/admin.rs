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
            thead { tr { th { "Server" } th { "MCP upstream" } th { "Upstream receives" } th { "Provider" } th { "Grants" } } }
            tbody {
                @for s in servers {
                    tr {
                        td { code { (s.slug) } }
                        td { code { (s.upstream) } }
                        td { (s.upstream_auth) }
                        td { (s.provider) }
                        td { a href={ (p.prefix) "/admin/grants?server=" (s.slug) } { "grants" } }
                    }
                }
            }
        }
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
