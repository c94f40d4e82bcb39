//! Strict parsing of `application/x-www-form-urlencoded` bodies and query strings.
//!
//! OAuth has two rules that generic extractors get wrong: a parameter sent twice is an
//! `invalid_request` (RFC 6749 §3.1 and §3.2), and a parameter sent with an empty value is
//! treated as absent (§3.1). axum's `Form` answers the first with a 422 and turns the
//! second into `Some("")`, so the OAuth endpoints parse with this instead.

use std::collections::HashMap;

use crate::OAuthError;

#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(input) {
            if map.contains_key(k.as_ref()) {
                return Err(OAuthError::invalid_request(format!("parameter {k:?} is repeated")));
            }
            map.insert(k.into_owned(), v.into_owned());
        }
        Ok(Self(map))
    }

    /// The value of `name`, with an empty value meaning absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("parameter {name:?} is required")))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_invalid_request() {
        let e = Params::parse(b"code=a&code=b").unwrap_err();
        assert_eq!(e.code, crate::OAuthErrorCode::InvalidRequest);
    }

    #[test]
    fn empty_means_absent_and_values_are_decoded() {
        let p = Params::parse(b"code=&state=a%20b+c").unwrap();
        assert_eq!(p.get("code"), None);
        assert!(p.require("code").is_err());
        assert_eq!(p.get("state"), Some("a b c"));
    }
}
