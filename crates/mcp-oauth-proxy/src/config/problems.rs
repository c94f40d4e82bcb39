//! The problems found in a configuration, collected rather than returned: an operator
//! fixing a file wants every problem from one run, not one per run.

use std::fmt::Display;

use url::Url;

use super::ConfigErrors;

/// Reads the environment variable a `*_env` key names.
pub(super) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Every problem found so far, each a line `key: message`. The helpers check one value,
/// note a problem if there is one and return what the caller can go on with.
#[derive(Default)]
pub(super) struct Problems(Vec<String>);

impl Problems {
    pub fn push(&mut self, key: &str, message: impl Display) {
        self.0.push(format!("{key}: {message}"));
    }

    pub fn required(&mut self, key: &str) {
        self.push(key, "required");
    }

    /// An http or https URL with a host; `None` (and a problem) otherwise.
    pub fn url(&mut self, key: &str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.push(key, format_args!("{value:?} must be an http or https URL"));
                None
            }
            Err(e) => {
                self.push(key, format_args!("{value:?} is not a URL ({e})"));
                None
            }
        }
    }

    /// A whole number within `min..=max`.
    pub fn range(&mut self, key: &str, value: i64, min: i64, max: i64) {
        if !(min..=max).contains(&value) {
            self.push(key, format_args!("must be between {min} and {max}"));
        }
    }

    /// A secret given either inline as `key` or through the environment variable that
    /// `key_env` names. The messages name the keys, never the value.
    pub fn secret(
        &mut self,
        key: &str,
        value: Option<String>,
        env: Option<String>,
        lookup: Lookup<'_>,
    ) -> Option<String> {
        match (value, env) {
            (Some(_), Some(_)) => {
                self.push(key, format_args!("set either {key} or {key}_env, not both"));
                None
            }
            (Some(v), None) => Some(v),
            (None, Some(var)) => match lookup(&var) {
                // An empty variable counts as unset: an empty secret is a mistake that
                // would otherwise show only at the first login.
                Some(v) if !v.is_empty() => Some(v),
                _ => {
                    self.push(&format!("{key}_env"), format_args!("the environment variable {var} is not set"));
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// `Err` with every problem if there is one.
    pub fn finish(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(ConfigErrors(self.0)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_accepts_only_http_and_https_with_a_host() {
        let mut p = Problems::default();
        assert!(p.url("k", "https://a.example/x").is_some());
        assert!(p.url("k", "http://127.0.0.1:1").is_some());
        assert!(p.url("k", "file:///etc/passwd").is_none());
        assert!(p.url("k", "https:").is_none());
        assert_eq!(p.0.len(), 2, "{:?}", p.0);
        assert!(p.0.iter().all(|m| m.starts_with("k: ")), "{:?}", p.0);
    }

    #[test]
    fn range_includes_both_ends() {
        let mut p = Problems::default();
        p.range("k", 0, 0, 10);
        p.range("k", 10, 0, 10);
        assert!(p.0.is_empty());
        p.range("k", 11, 0, 10);
        p.range("k", -1, 0, 10);
        assert_eq!(p.0, ["k: must be between 0 and 10", "k: must be between 0 and 10"]);
    }

    #[test]
    fn secret_comes_from_the_file_or_a_set_variable_and_is_never_echoed() {
        let lookup = |name: &str| match name {
            "SET" => Some("from-env".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let mut p = Problems::default();
        assert_eq!(p.secret("k", Some("inline".into()), None, &lookup).as_deref(), Some("inline"));
        assert_eq!(p.secret("k", None, Some("SET".into()), &lookup).as_deref(), Some("from-env"));
        assert_eq!(p.secret("k", None, None, &lookup), None);
        assert!(p.0.is_empty());

        assert_eq!(p.secret("k", Some("inline".into()), Some("SET".into()), &lookup), None);
        assert_eq!(p.secret("k", None, Some("EMPTY".into()), &lookup), None);
        assert_eq!(p.secret("k", None, Some("UNSET".into()), &lookup), None);
        assert_eq!(
            p.0,
            [
                "k: set either k or k_env, not both",
                "k_env: the environment variable EMPTY is not set",
                "k_env: the environment variable UNSET is not set",
            ]
        );
        assert!(p.finish().is_err());
    }

    #[test]
    fn no_problem_is_ok() {
        assert!(Problems::default().finish().is_ok());
    }
}
