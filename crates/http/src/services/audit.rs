//! The audit trail: one JSON object per line for each security event, written and flushed
//! as it happens (`[audit] path`, a file or `-` for standard output). An event names what
//! happened, to which server, client, user and grant, from which address and user agent;
//! never a token, a code, a secret or a cookie: the types here have no field for one.
//!
//! Lines are written by a thread of their own, so a slow disk never holds a request.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

use serde::Serialize;

use crate::client_address::ClientAddress;

/// One security event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: i64,
    pub event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The grant type of `token.issued`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<&'static str>,
    /// Why: the reason a grant was revoked, a login denied, a refresh failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The login attempt's trace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The MCP tool of `tool.changed` and `tool.accepted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Who acted, where people can: `user` (the account page) or `admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<&'static str>,
    /// The enterprise IdP (its configured name) whose assertion a `token.issued` redeemed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

impl Event {
    pub fn new(event: &'static str, time: i64) -> Self {
        Self {
            time,
            event,
            slug: None,
            client_id: None,
            subject: None,
            grant_id: None,
            client_address: None,
            user_agent: None,
            grant_type: None,
            reason: None,
            trace_id: None,
            tool: None,
            by: None,
            idp: None,
        }
    }

    pub fn by(mut self, who: &'static str) -> Self {
        self.by = Some(who);
        self
    }

    pub fn idp(mut self, idp: Option<&str>) -> Self {
        self.idp = idp.map(str::to_owned);
        self
    }

    pub fn tool(mut self, tool: &str) -> Self {
        self.tool = Some(tool.to_owned());
        self
    }

    pub fn slug(mut self, slug: &str) -> Self {
        self.slug = Some(slug.to_owned());
        self
    }

    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }

    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }

    pub fn grant(mut self, grant_id: &str) -> Self {
        self.grant_id = Some(grant_id.to_owned());
        self
    }

    pub fn grant_type(mut self, grant_type: &'static str) -> Self {
        self.grant_type = Some(grant_type);
        self
    }

    pub fn trace(mut self, trace_id: Option<&str>) -> Self {
        self.trace_id = trace_id.map(str::to_owned);
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The caller: its address and user agent.
    pub fn from(mut self, caller: &Caller) -> Self {
        self.client_address = Some(caller.address.client);
        self.user_agent = caller.user_agent.clone();
        self
    }
}

/// Who sent a request, as the audit trail records it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub address: ClientAddress,
    pub user_agent: Option<String>,
}

/// Where events go: nowhere (not configured), or a line writer.
pub struct Audit {
    lines: Option<Mutex<Sender<String>>>,
}

impl Audit {
    /// No audit trail.
    pub fn off() -> Self {
        Self { lines: None }
    }

    /// Events as JSON lines into `out`, flushed one by one, by a thread of its own.
    pub fn to_writer(mut out: Box<dyn Write + Send>) -> Self {
        let (tx, rx) = channel::<String>();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                for line in rx {
                    if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                        tracing::error!(error = %e, "cannot write the audit trail");
                    }
                }
            })
            .expect("a thread can be started");
        Self { lines: Some(Mutex::new(tx)) }
    }

    pub fn record(&self, event: Event) {
        let Some(lines) = &self.lines else { return };
        let mut line = serde_json::to_string(&event).expect("events serialise");
        line.push('\n');
        let _ = lines.lock().unwrap_or_else(|e| e.into_inner()).send(line);
    }
}
