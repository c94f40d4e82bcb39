//! Per-tool authorization: which scopes a tool call needs.
//!
//! A server maps tool-name patterns to scopes: exact names and globs, where `*` stands for
//! any run of characters. When several patterns match a tool, the most specific one
//! decides, alone: an exact name before any glob, then the glob with the most literal
//! characters (`delete_*` before `*`), then the one listed first. So `"*"` sets what every
//! other tool needs, and a longer pattern replaces it for the tools it names. A tool that
//! no pattern matches needs nothing beyond a valid token for the server.

use crate::scope::Scopes;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolScopes(Vec<(String, Scopes)>);

impl ToolScopes {
    pub fn new(rules: impl IntoIterator<Item = (String, Scopes)>) -> Self {
        Self(rules.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every scope some tool needs.
    pub fn all_scopes(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|(_, s)| s.iter())
    }

    /// The rules, as configured.
    pub fn rules(&self) -> impl Iterator<Item = (&str, &Scopes)> {
        self.0.iter().map(|(p, s)| (p.as_str(), s))
    }

    /// The scopes a call of `tool` needs (empty when no pattern matches).
    pub fn required(&self, tool: &str) -> Scopes {
        let mut best: Option<(&Scopes, (bool, usize))> = None;
        for (pattern, scopes) in &self.0 {
            let key = specificity(pattern);
            // Strictly more specific replaces: among equals, the first listed stays.
            if glob_matches(pattern, tool) && best.is_none_or(|(_, k)| key > k) {
                best = Some((scopes, key));
            }
        }
        best.map(|(scopes, _)| scopes.clone()).unwrap_or_default()
    }

    /// The tools' patterns that need `scope`, for the consent page.
    pub fn patterns_needing<'a>(&'a self, scope: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(_, s)| s.iter().any(|x| x == scope)).map(|(p, _)| p.as_str())
    }
}

/// How specific a pattern is: exact names first, then by literal characters.
fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.contains('*'), pattern.chars().filter(|c| *c != '*').count())
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &str) -> Scopes {
        Scopes::parse(s).unwrap()
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("delete_*", "delete_file"));
        assert!(glob_matches("delete_*", "delete_"));
        assert!(!glob_matches("delete_*", "undelete_file"));
        assert!(glob_matches("*_admin", "user_admin"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXcYYb"));
        assert!(!glob_matches("ab*ba", "aba"), "the ends may not overlap");
        assert!(glob_matches("exact", "exact") && !glob_matches("exact", "exactly"));
    }

    #[test]
    fn the_most_specific_pattern_decides() {
        let rules = ToolScopes::new([
            ("*".to_owned(), scopes("tools:read")),
            ("delete_*".to_owned(), scopes("tools:write")),
            ("delete_everything".to_owned(), scopes("tools:admin")),
            ("d*".to_owned(), scopes("tools:d")),
        ]);
        assert_eq!(rules.required("search"), scopes("tools:read"));
        assert_eq!(rules.required("delete_file"), scopes("tools:write"));
        assert_eq!(rules.required("delete_everything"), scopes("tools:admin"));
        assert_eq!(rules.required("download"), scopes("tools:d"));
        assert_eq!(ToolScopes::new([("x".to_owned(), scopes("a"))]).required("y"), Scopes::default());
        let tie = ToolScopes::new([("a*".to_owned(), scopes("first")), ("*a".to_owned(), scopes("second"))]);
        assert_eq!(tie.required("aa"), scopes("first"), "equally specific: the first listed");
    }
}
