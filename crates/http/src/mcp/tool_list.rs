//! `tools/list` answers, edited before the client sees them: the tools a token may not
//! call are left out (`hide_unauthorized_tools`), in a JSON answer and in an event stream
//! alike. Only answers to a request that lists tools pass through here; all other traffic
//! streams as it is.
//!
//! This fails closed: an answer is read exactly as a client reads it, and one that cannot
//! be read (not JSON, a compressed body, a tool list that is not a list) is refused
//! rather than passed on, since passing it would show the client tools it may not see.
//! Event streams are read as the HTML specification defines them (lines end with CR, LF
//! or CRLF; an event ends at a blank line; `data` lines join with LF; an unfinished event
//! at the end is dropped, as a client drops it).

use std::sync::Arc;

use serde_json::Value;

/// What is done to the `tools` array of each message answering `tools/list`.
pub type ToolEdit = Arc<dyn Fn(&mut Vec<Value>) + Send + Sync>;

/// An event (or a whole JSON answer) larger than this is refused, not read.
pub const MAX_EDITED_MESSAGE: usize = 16 * 1024 * 1024;

/// Why an answer was not passed on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the MCP server's tools/list answer cannot be read: {0}")]
pub struct Unreadable(pub &'static str);

/// A JSON answer (one message, or a batch's answers) with its tool lists edited.
pub fn edit_json(body: &[u8], edit: &ToolEdit) -> Result<Vec<u8>, Unreadable> {
    let mut value: Value = serde_json::from_slice(body).map_err(|_| Unreadable("the answer is not JSON"))?;
    edit_messages(&mut value, edit)?;
    serde_json::to_vec(&value).map_err(|_| Unreadable("the edited answer cannot be written"))
}

/// Edits the tool list of `value`, a message or an array of messages.
fn edit_messages(value: &mut Value, edit: &ToolEdit) -> Result<(), Unreadable> {
    let messages = match value {
        Value::Array(batch) => batch.iter_mut().collect(),
        one => vec![one],
    };
    for message in messages {
        let Some(tools) = message.get_mut("result").and_then(|r| r.get_mut("tools")) else { continue };
        let Value::Array(tools) = tools else { return Err(Unreadable("result.tools is not a list")) };
        edit(tools);
    }
    Ok(())
}

/// An event stream, read line by line as it arrives; each complete event is passed on
/// (with LF line endings) as soon as its blank line has arrived, its `data` rewritten
/// when it carries a tool list.
#[derive(Default)]
pub struct EventStream {
    /// The line being read.
    line: Vec<u8>,
    /// The last byte was CR: an LF right after it belongs to the same line ending.
    after_cr: bool,
    /// A line has been read: a byte order mark is skipped only before the first.
    started: bool,
    /// The lines of the event being read, and their size.
    event: Vec<String>,
    event_bytes: usize,
}

impl EventStream {
    /// What can be passed on after `chunk`: every event completed by it.
    pub fn push(&mut self, chunk: &[u8], edit: &ToolEdit) -> Result<Vec<u8>, Unreadable> {
        let mut out = Vec::new();
        for &b in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match b {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut out, edit)?;
                }
                _ => self.line.push(b),
            }
            if self.event_bytes + self.line.len() > MAX_EDITED_MESSAGE {
                return Err(Unreadable("an event is too large"));
            }
        }
        Ok(out)
    }

    fn end_line(&mut self, out: &mut Vec<u8>, edit: &ToolEdit) -> Result<(), Unreadable> {
        // Decoded as a client decodes it (UTF-8, invalid bytes replaced), so the proxy
        // reads what the client will.
        let mut line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if !std::mem::replace(&mut self.started, true) && line.starts_with('\u{feff}') {
            line.remove(0);
        }
        if !line.is_empty() {
            self.event_bytes += line.len();
            self.event.push(line);
            return Ok(());
        }
        let lines = std::mem::take(&mut self.event);
        self.event_bytes = 0;
        if !lines.is_empty() {
            out.extend(dispatch(lines, edit)?);
        }
        Ok(())
    }
}

/// One event: its lines as read, its `data` replaced by the edited message if it is an
/// answer carrying a tool list.
fn dispatch(lines: Vec<String>, edit: &ToolEdit) -> Result<Vec<u8>, Unreadable> {
    let data: Vec<&str> = lines.iter().filter_map(|l| field(l, "data")).collect();
    let joined = data.join("\n");
    let mut out = String::new();
    if joined.trim().is_empty() {
        // No message (a keep-alive, a priming event with only an id).
        for line in &lines {
            out.push_str(line);
            out.push('\n');
        }
    } else {
        let edited = edit_json(joined.as_bytes(), edit)?;
        let edited = String::from_utf8(edited).map_err(|_| Unreadable("the edited answer is not UTF-8"))?;
        let mut data_written = false;
        for line in &lines {
            if field(line, "data").is_none() {
                out.push_str(line);
                out.push('\n');
            } else if !std::mem::replace(&mut data_written, true) {
                out.push_str("data: ");
                out.push_str(&edited);
                out.push('\n');
            }
        }
    }
    out.push('\n');
    Ok(out.into_bytes())
}

/// The value of `line` if it is the field `name` (the part after the first colon, one
/// leading space removed; a line without a colon is a field with an empty value).
fn field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let (field, value) = line.split_once(':').unwrap_or((line, ""));
    (field == name).then(|| value.strip_prefix(' ').unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hide_delete() -> ToolEdit {
        Arc::new(|tools: &mut Vec<Value>| tools.retain(|t| t["name"] != "delete_file"))
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search"},{"name":"delete_file"}]}}"#;

    fn stream(input: &[u8], chunk: usize) -> Result<String, Unreadable> {
        let mut events = EventStream::default();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            out.extend(events.push(piece, &hide_delete())?);
        }
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_json_answer_loses_the_tools_the_token_may_not_call() {
        let out: Value = serde_json::from_slice(&edit_json(LIST.as_bytes(), &hide_delete()).unwrap()).unwrap();
        assert_eq!(out["result"]["tools"], json!([{"name": "search"}]));
        assert_eq!(out["id"], 3);
        // A batch's answers, each edited (review finding: a batch passed unfiltered).
        let batch = format!("[{LIST},{LIST},{{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{{}}}}]");
        let out = String::from_utf8(edit_json(batch.as_bytes(), &hide_delete()).unwrap()).unwrap();
        assert!(!out.contains("delete_file") && out.matches("search").count() == 2, "{out}");
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        let gzip = [0x1f, 0x8b, 0x08, 0x00, 0x00];
        assert!(edit_json(&gzip, &hide_delete()).is_err());
        assert!(edit_json(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"x"}}}"#, &hide_delete()).is_err());
        assert!(stream(b"data: {not json\n\n", 64).is_err());
    }

    #[test]
    fn every_line_ending_the_specification_allows_is_read() {
        // Review finding: CR-only line endings passed the tool list unfiltered.
        for eol in ["\n", "\r\n", "\r"] {
            let input = format!("event: message{eol}id: 1{eol}data: {LIST}{eol}{eol}: keep-alive{eol}{eol}");
            for chunk in [1, 2, 7, 4096] {
                let out = stream(input.as_bytes(), chunk).unwrap();
                assert!(!out.contains("delete_file"), "{eol:?} {chunk}: {out}");
                assert!(out.starts_with("event: message\nid: 1\ndata: {"), "{eol:?} {chunk}: {out}");
                assert!(out.ends_with("}\n\n: keep-alive\n\n"), "{eol:?} {chunk}: {out}");
            }
        }
    }

    #[test]
    fn data_split_over_lines_is_joined_as_a_client_joins_it() {
        let input = "\u{feff}data: {\"jsonrpc\":\"2.0\",\"id\":3,\ndata:\"result\":{\"tools\":[{\"name\":\"delete_file\"}]}}\n\n";
        let out = stream(input.as_bytes(), 3).unwrap();
        let data = out.strip_prefix("data: ").and_then(|d| d.strip_suffix("\n\n")).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(data).unwrap(),
            json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": []}})
        );
        // A priming event without a message passes as it is; an unfinished event is dropped.
        let out = stream(b"id: 0\ndata:\n\ndata: {\"jsonrpc\"", 5).unwrap();
        assert_eq!(out, "id: 0\ndata:\n\n");
    }
}
