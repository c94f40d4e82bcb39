//! The account page: a user's connected applications.

use maud::html;

use super::layout;

/// One connection on the account page.
pub struct AccountConnection {
    pub grant_id: String,
    pub server: String,
    /// As the client names itself, or its id when it gives no name.
    pub client_name: String,
    pub client_id: String,
    /// The host of a metadata-document client the operator vouches for.
    pub verified_host: Option<String>,
    pub scope: String,
    pub connected: String,
    /// When the grant was last used: an MCP call (to a few minutes), a login or a refresh.
    pub last_used: Option<String>,
}

/// What the account page shows.
pub struct Account<'a> {
    pub provider: &'a str,
    pub subject: &'a str,
    pub connections: &'a [AccountConnection],
    pub csrf_token: &'a str,
    /// The path prefix of the proxy's routes, for the forms' actions.
    pub prefix: &'a str,
}

pub fn account(a: &Account<'_>) -> String {
    let revoke = format!("{}/account/revoke", a.prefix);
    let body = html! {
        h1 { "Connected applications" }
        p { "Signed in at " b { (a.provider) } " as " code { (a.subject) } "." }
        @if a.connections.is_empty() {
            p { "No application holds access to your account through this proxy." }
        } @else {
            p { "These applications can use MCP servers on your behalf. Revoking one takes its access away at once; it must ask you again to get it back." }
            table {
                thead { tr { th { "Application" } th { "Server" } th { "Access" } th { "Connected" } th { "Last used" } th { span { "Action" } } } }
                tbody {
                    @for c in a.connections {
                        tr {
                            td {
                                b { (c.client_name) }
                                @if let Some(host) = &c.verified_host { br; span.verified { "✓ " (host) } }
                                br; small { "client id " code { (c.client_id) } }
                            }
                            td { code { (c.server) } }
                            td { @if c.scope.is_empty() { "(none)" } @else { code { (c.scope) } } }
                            td { (c.connected) }
                            td { (c.last_used.as_deref().unwrap_or("-")) }
                            td {
                                form method="post" action=(revoke) {
                                    input type="hidden" name="csrf" value=(a.csrf_token);
                                    input type="hidden" name="grant" value=(c.grant_id);
                                    button type="submit" aria-label={ "Revoke " (c.client_name) " on " (c.server) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action=(revoke) {
                input type="hidden" name="csrf" value=(a.csrf_token);
                input type="hidden" name="all" value="1";
                p { button type="submit" { "Revoke all" } }
            }
        }
        form method="post" action={ (a.prefix) "/account/logout" } {
            input type="hidden" name="csrf" value=(a.csrf_token);
            p { button type="submit" { "Log out" } }
        }
    };
    layout("Connected applications", body)
}

/// The account page without a session, where several providers could log the user in.
pub fn account_login(providers: &[(&str, String)]) -> String {
    let body = html! {
        h1 { "Connected applications" }
        p { "Log in to see which applications hold access to your account." }
        ul {
            @for (name, url) in providers {
                li { a href=(url) { "Log in with " (name) } }
            }
        }
    };
    layout("Log in", body)
}
