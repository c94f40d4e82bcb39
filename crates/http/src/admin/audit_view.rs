//! The console's view of the audit trail: the newest events of its file, filtered. The
//! trail is append-only JSON lines; the view reads at most its last few MiB, so a trail of
//! any size costs the same to look at (older events are `mcp-oauth-proxy trace`'s job, or
//! the log pipeline's).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

/// How much of the file's end is read.
const TAIL_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub event: Option<String>,
    pub subject: Option<String>,
    pub trace: Option<String>,
}

impl Filter {
    fn admits(&self, e: &Value) -> bool {
        let is = |key: &str, want: &Option<String>| want.as_deref().is_none_or(|w| e[key].as_str() == Some(w));
        is("event", &self.event) && is("subject", &self.subject) && is("trace_id", &self.trace)
    }
}

/// The newest `limit` events matching `filter`, newest first; or why there are none.
pub fn latest(path: &Path, filter: &Filter, limit: usize) -> Result<Vec<Value>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let mut tail = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut tail).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&tail);
    // A tail that starts inside a line drops that partial line.
    let lines = text.lines().skip(usize::from(start > 0));
    let mut events: Vec<Value> =
        lines.filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|e| filter.admits(e)).collect();
    events.reverse();
    events.truncate(limit);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_matching_events_come_first() {
        let dir = std::env::temp_dir().join(format!("mop-audit-view-{}", mcp_oauth_core::token::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let lines = [
            r#"{"time":1,"event":"login.completed","subject":"a","trace_id":"t1"}"#,
            r#"{"time":2,"event":"grant.revoked","subject":"b"}"#,
            "not json",
            r#"{"time":3,"event":"login.completed","subject":"b","trace_id":"t2"}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let all = latest(&path, &Filter::default(), 10).unwrap();
        assert_eq!(all.iter().map(|e| e["time"].as_i64().unwrap()).collect::<Vec<_>>(), [3, 2, 1]);
        let logins = Filter { event: Some("login.completed".into()), ..Filter::default() };
        assert_eq!(latest(&path, &logins, 1).unwrap()[0]["time"], 3);
        let b = Filter { subject: Some("b".into()), trace: Some("t2".into()), ..Filter::default() };
        assert_eq!(latest(&path, &b, 10).unwrap().len(), 1);
        assert!(latest(&dir.join("missing"), &Filter::default(), 10).is_err());
    }
}
