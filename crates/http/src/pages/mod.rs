//! The HTML pages the proxy renders: the consent page, the error page, the account page
//! and the operators' console. maud escapes everything it interpolates, so a client's self-given name or a
//! redirect URI cannot become markup. No page has script; forms work without it.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::responses;

mod account;
mod admin;

pub use account::{Account, AccountConnection, account, account_login};
pub use admin::*;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}dt{font-weight:600;margin-top:.6rem}dd{margin:0}code{background:#f3f3f3;padding:0 .2rem}\
button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.6rem;border-radius:4px;border:1px solid #888;background:#f4f4f4}\
button[value=approve]{background:#1a5fb4;border-color:#1a5fb4;color:#fff}.note{color:#a40}small{color:#555}\
.verified{color:#1d6b2f;font-size:1.1rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem .3rem;border-bottom:1px solid #ddd;vertical-align:top}\
td form{margin:0}body:has(table){max-width:72rem}nav{margin-bottom:1rem}label{margin-right:.6rem}@media (max-width:40rem){thead{display:none}tr,td{display:block}td{border:0;padding:.1rem 0}tr{border-bottom:1px solid #ddd;padding:.5rem 0}}";

pub(crate) fn layout(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

/// An error shown to the person in the browser, used when there is no client redirect
/// URI we may trust (unknown client, mismatched redirect URI, lost login session).
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = html! {
        h1 { "Authorization error" }
        p { (message) }
    };
    responses::html(status, layout("Authorization error", body))
}

/// One scope on the consent page: what the operator says it allows, which tools it
/// opens, and whether this client asks for it for the first time in this browser.
pub struct ScopeLine<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub tools: Vec<&'a str>,
    pub added: bool,
}

/// What the consent page shows and carries back.
pub struct Consent<'a> {
    pub server: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    /// Where the answer goes, as the user should judge it (scheme and host).
    pub destination: &'a str,
    pub scopes: Vec<ScopeLine<'a>>,
    pub provider: &'a str,
    pub notice: Option<&'a str>,
    pub action: &'a str,
    /// The authorization parameters the form posts back unchanged.
    pub carried: Vec<(&'a str, &'a str)>,
    pub csrf_token: &'a str,
    /// The login attempt's trace id, carried to the form's answer.
    pub trace_id: &'a str,
    /// The host of a metadata-document client the operator vouches for.
    pub verified_host: Option<&'a str>,
    /// Tools whose definition changed since the proxy first saw them, and whether they are
    /// blocked until an operator accepts the change.
    pub changed_tools: Vec<&'a str>,
    pub changed_tools_blocked: bool,
}

pub fn consent(status: StatusCode, c: &Consent<'_>) -> Response {
    let body = html! {
        h1 { "Allow access to " (c.server) "?" }
        @if let Some(notice) = c.notice {
            p.note { (notice) }
        }
        @if let Some(host) = c.verified_host {
            p.verified { "✓ Verified application from " b { (host) } }
        }
        p { b { (c.client_name) } " wants to use the MCP server " b { (c.server) } " on your behalf." }
        dl {
            dt { "Application" }
            dd { (c.client_name) " " small { "(the name it gives itself; client id " code { (c.client_id) } ")" } }
            dt { "It will receive the answer at" }
            dd { code { (c.destination) } }
            dt { "Access requested" }
            dd {
                @if c.scopes.is_empty() { "(none)" }
                ul.scopes {
                    @for s in &c.scopes {
                        li {
                            code { (s.name) }
                            @if s.added { " " b.note { "new" } }
                            @if let Some(d) = s.description { ": " (d) }
                            @if !s.tools.is_empty() {
                                " " small { "(tools: " (s.tools.join(", ")) ")" }
                            }
                        }
                    }
                }
            }
            dt { "You will sign in with" }
            dd { (c.provider) }
        }
        @if !c.changed_tools.is_empty() {
            p.note {
                "The MCP server changed what these tools say they do since they were first seen: "
                @for (i, tool) in c.changed_tools.iter().enumerate() {
                    @if i > 0 { ", " }
                    code { (tool) }
                }
                @if c.changed_tools_blocked { ". They stay unavailable until an administrator reviews the change." }
                @else { ". An administrator has not reviewed the change yet." }
            }
        }
        p { "Only allow applications you started yourself and trust." }
        form method="post" action=(c.action) {
            @for (name, value) in &c.carried {
                input type="hidden" name=(name) value=(value);
            }
            input type="hidden" name="csrf_token" value=(c.csrf_token);
            input type="hidden" name="trace_id" value=(c.trace_id);
            button type="submit" name="decision" value="approve" { "Allow" }
            button type="submit" name="decision" value="deny" { "Deny" }
        }
    };
    responses::html(status, layout("Allow access?", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_text_is_escaped() {
        let page = layout("t", html! { p { ("<script>alert(\"x\")</script>") } });
        assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"), "{page}");
        assert!(!page.contains("<script>"));
    }
}
