//! `tools/list` answers that match the token: with `hide_unauthorized_tools`, the tools a
//! token may not call are left out, in a JSON answer and in an event stream alike. Only
//! answers to a `tools/list` request pass through here; all other traffic streams as is.

use serde_json::Value;

/// The answer with the tools `keep` refuses removed; `None` when it is not a JSON-RPC
/// answer carrying a tool list (then it is passed on unchanged).
pub fn filter_message(message: &[u8], keep: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(message).ok()?;
    let tools = value.get_mut("result")?.get_mut("tools")?.as_array_mut()?;
    tools.retain(|tool| tool["name"].as_str().is_some_and(keep));
    serde_json::to_vec(&value).ok()
}

/// Filters an event stream event by event: each complete event (up to its blank line)
/// is passed on as soon as it has arrived, its `data` rewritten when it carries a tool
/// list.
#[derive(Default)]
pub struct EventFilter {
    pending: Vec<u8>,
}

impl EventFilter {
    /// What can be passed on after `chunk`: every event completed by it.
    pub fn push(&mut self, chunk: &[u8], keep: &dyn Fn(&str) -> bool) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some((end, separator)) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end + separator).collect();
            out.extend(rewrite(&event[..end], keep));
            out.extend_from_slice(&event[end..]);
        }
        out
    }

    /// What is left when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// Where the first complete event ends, and the length of the blank line after it.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// One event's lines, its `data` replaced by the filtered message if it is a tool list.
fn rewrite(event: &[u8], keep: &dyn Fn(&str) -> bool) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(event) else { return event.to_vec() };
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let data: Vec<&str> =
        lines.iter().filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d))).collect();
    if data.is_empty() {
        return event.to_vec();
    }
    let Some(filtered) = filter_message(data.join("\n").as_bytes(), keep) else { return event.to_vec() };
    let mut out = String::new();
    let mut data_written = false;
    for line in lines {
        if line.starts_with("data:") {
            if !data_written {
                out.push_str("data: ");
                out.push_str(&String::from_utf8_lossy(&filtered));
                out.push('\n');
                data_written = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.pop(); // the event's last line ends where the blank line begins
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(name: &str) -> bool {
        name != "delete_file"
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search"},{"name":"delete_file"}]}}"#;

    #[test]
    fn a_json_answer_loses_the_tools_the_token_may_not_call() {
        let out: Value = serde_json::from_slice(&filter_message(LIST.as_bytes(), &keep).unwrap()).unwrap();
        assert_eq!(out["result"]["tools"], serde_json::json!([{"name": "search"}]));
        assert_eq!(out["id"], 3);
        assert!(filter_message(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, &keep).is_none());
    }

    #[test]
    fn an_event_stream_is_filtered_event_by_event_across_chunks() {
        let stream =
            format!("event: message\nid: 1\ndata: {LIST}\n\n: keep-alive\n\nid: 2\ndata: {{\"jsonrpc\":\"2.0\"}}\n\n");
        let mut filter = EventFilter::default();
        let mut out = Vec::new();
        for chunk in stream.as_bytes().chunks(7) {
            out.extend(filter.push(chunk, &keep));
        }
        out.extend(filter.finish());
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("delete_file"), "{text}");
        assert!(text.contains("\"search\"") && text.contains("event: message\nid: 1\ndata: "), "{text}");
        assert!(text.contains("\n\n: keep-alive\n\nid: 2\ndata: {\"jsonrpc\":\"2.0\"}\n\n"), "{text}");
    }
}
