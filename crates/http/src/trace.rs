//! Trace ids for login attempts. The most common complaint about MCP connectors is an
//! opaque "authorization failed" with nothing to look up: every authorization attempt
//! gets a short id at `/authorize`, carried through consent, the provider's login, the
//! callback and the code exchange, shown with every error of the attempt, written into
//! its log lines and audit events; `mcp-oauth-proxy trace ID` prints its steps.

use mcp_oauth_core::token::random_b64;

/// A login attempt's trace id: 8 to 32 URL-safe characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceId(String);

impl TraceId {
    pub fn new() -> Self {
        // Operators paste ids into `mcp-oauth-proxy trace ID`, where one that starts with
        // '-' (one in 64 of URL-safe base64) would be read as an option.
        loop {
            let id = random_b64(9);
            if !id.starts_with('-') {
                return Self(id);
            }
        }
    }

    /// The id a form carried back, if it is one (anything else is replaced, not echoed).
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (8..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }

    /// The id a request carries, or a new one.
    pub fn carried_or_new(carried: Option<&str>) -> Self {
        carried.and_then(Self::parse).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TraceId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message with the trace id to quote, as people and client developers see it.
pub fn quoting(message: &str, trace_id: Option<&str>) -> String {
    match trace_id {
        Some(id) => format!("{message} (trace id {id})"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_only_well_formed_ones_are_carried() {
        let id = TraceId::new();
        assert!(TraceId::parse(id.as_str()).is_some());
        assert!(TraceId::parse("short").is_none());
        assert!(TraceId::parse("<script>alert(1)</script>").is_none());
        assert_ne!(TraceId::carried_or_new(Some("bad id!")).as_str(), "bad id!");
        assert_eq!(TraceId::carried_or_new(Some("abcdefgh")).as_str(), "abcdefgh");
    }

    #[test]
    fn no_id_reads_as_a_command_line_option() {
        // One in 64 would start with '-' by chance: 2,000 draws miss it with odds of 1e-14.
        assert!((0..2000).all(|_| !TraceId::new().as_str().starts_with('-')));
    }
}
