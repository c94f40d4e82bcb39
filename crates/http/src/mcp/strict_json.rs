//! The MCP request body as the tool rules judge it, parsed so that it cannot mean one
//! thing to the proxy and another to the MCP upstream.
//!
//! The proxy forwards the bytes it received, so what it judges must be what any JSON
//! parser upstream would read. Parsers disagree on two things that matter here: a key
//! given twice (serde_json and Go's `encoding/json` keep the last, others the first) and
//! the spelling of keys (Go matches struct fields without regard to case, and folds `ſ`
//! to `s` and `K` to `k` as Unicode simple folding does). So the keys that decide which
//! tool runs (`jsonrpc`, `method`, `params`, `id`, and `name` inside `params`) must each
//! appear at most once, spelled exactly; a body with a variant is refused, not guessed at.
//!
//! Written as a serde visitor rather than a pass over `serde_json::Value`, because the
//! `Value` has already kept one of two duplicates and dropped the other.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Scalars become the `Value` serde_json would have made of them.
macro_rules! forward_scalars {
    () => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
    };
}

/// Keys of a JSON-RPC message that decide what the upstream does.
const MESSAGE_KEYS: &[&str] = &["jsonrpc", "method", "params", "id"];
/// Keys of `params` that name what a `tools/call` (or `prompts/get`) reaches.
const PARAMS_KEYS: &[&str] = &["name"];

/// Why a body was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not JSON at all.
    NotJson,
    /// JSON, with a key an upstream could read differently from the proxy.
    Ambiguous(String),
}

/// The body, parsed: one message or a batch.
pub fn parse(body: &[u8]) -> Result<Value, Rejected> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Body.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Rejected::Ambiguous(e.to_string()),
        _ => Rejected::NotJson,
    })
}

/// The whole body: a message, or an array of them (a batch).
struct Body;

impl<'de> DeserializeSeed<'de> for Body {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut batch = Vec::new();
        while let Some(message) = seq.next_element_seed(Checked(MESSAGE_KEYS))? {
            batch.push(message);
        }
        Ok(Value::Array(batch))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        CheckedVisitor(MESSAGE_KEYS).visit_map(map)
    }

    forward_scalars!();
}

/// A value whose object keys are checked against `keys`; anything but an object is taken
/// as it is.
struct Checked(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(CheckedVisitor(self.0))
    }
}

struct CheckedVisitor(&'static [&'static str]);

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let folded = fold(&key);
            if let Some(&meant) = self.0.iter().find(|k| **k == folded) {
                if key != meant {
                    return Err(de::Error::custom(format!("the key {key:?} could be read as {meant:?}")));
                }
                if out.contains_key(meant) {
                    return Err(de::Error::custom(format!("the key {meant:?} appears more than once")));
                }
            }
            let value = if self.0 == MESSAGE_KEYS && key == "params" {
                map.next_value_seed(Checked(PARAMS_KEYS))?
            } else {
                map.next_value::<Value>()?
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
    }

    forward_scalars!();
}

/// A key as a case-insensitive matcher sees it: lower case, with the two non-ASCII
/// letters that Unicode simple case folding maps onto ASCII ones (`ſ` → `s`, the Kelvin
/// sign → `k`, which `to_lowercase` already does) mapped too.
fn fold(key: &str) -> String {
    key.chars().flat_map(char::to_lowercase).map(|c| if c == 'ſ' { 's' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ambiguous(body: &str) -> bool {
        matches!(parse(body.as_bytes()), Err(Rejected::Ambiguous(_)))
    }

    #[test]
    fn plain_messages_and_batches_parse_as_serde_json_would() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":1,"Name":2}}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"result":{}}]"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"x","params":[1,"a",null,true]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","Extra":1,"extra":2}"#,
        ] {
            let want: Value = serde_json::from_str(body).unwrap();
            assert_eq!(parse(body.as_bytes()), Ok(want), "{body}");
        }
    }

    #[test]
    fn keys_an_upstream_could_read_differently_are_refused() {
        // Review findings: Go's encoding/json matches keys without case, last one wins.
        assert!(ambiguous(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","Name":"echo"}}"#
        ));
        assert!(ambiguous(r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"x"}}"#));
        // Duplicates, including one spelled with an escape.
        assert!(ambiguous(r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#));
        assert!(ambiguous(r#"{"jsonrpc":"2.0","id":1,"method":"ping","meth\u006fd":"tools/call"}"#));
        assert!(ambiguous(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#));
        assert!(ambiguous(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{}}"#));
        // Unicode letters that fold onto ASCII ones.
        assert!(ambiguous(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"echo"}}"#));
        assert!(ambiguous(r#"{"JSONRPC":"2.0","id":1,"method":"ping"}"#));
        // Inside a batch, each element is checked.
        assert!(ambiguous(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","ID":2,"method":"ping"}]"#));
        assert_eq!(parse(b"{not json"), Err(Rejected::NotJson));
        assert_eq!(parse(br#"{"method":"ping"} {}"#), Err(Rejected::NotJson));
    }
}
