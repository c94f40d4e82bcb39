//! Scope strings (RFC 6749 §3.3): space-separated, order-free sets.

use std::collections::BTreeSet;

use crate::OAuthError;

/// A set of scope tokens, kept sorted so that equal sets print equally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Parses a scope parameter. RFC 6749 §3.3 allows %x21 / %x23-5B / %x5D-7E in a token.
    pub fn parse(s: &str) -> Result<Self, OAuthError> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
                return Err(OAuthError::invalid_scope("scope contains a character RFC 6749 does not allow"));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    pub fn from_list<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Self {
        Self(items.into_iter().map(Into::into).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// Decides the scope of a new grant: what was asked for, within what the server offers.
///
/// Scopes the server does not offer are dropped rather than refused (RFC 6749 §3.3 lets
/// the server ignore part of a request, and the token response then names what was
/// granted). Real clients send scopes they picked up elsewhere, or none at all, and some
/// ignore the advertised ones; refusing them would only lock their users out. An absent,
/// empty or wholly unknown request gets the server's `default` (within what it offers),
/// so that least privilege does not depend on the client asking for less.
pub fn grant_scope(requested: Option<&str>, offered: &Scopes, default: &Scopes) -> Result<Scopes, OAuthError> {
    let requested = match requested {
        Some(s) => Scopes::parse(s)?,
        None => Scopes::default(),
    };
    let kept: BTreeSet<String> = requested.0.intersection(&offered.0).cloned().collect();
    if kept.is_empty() {
        let default: BTreeSet<String> = default.0.intersection(&offered.0).cloned().collect();
        return Ok(if default.is_empty() { offered.clone() } else { Scopes(default) });
    }
    Ok(Scopes(kept))
}

/// RFC 6749 §6: a refresh may narrow the scope, never widen it.
pub fn refresh_scope(requested: Option<&str>, granted: &Scopes) -> Result<Scopes, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.clone());
    };
    let requested = Scopes::parse(requested)?;
    if requested.is_empty() {
        return Ok(granted.clone());
    }
    if !requested.is_subset_of(granted) {
        return Err(OAuthError::invalid_scope("a refresh may not ask for scopes beyond the original grant"));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_order_free_and_ignores_extra_spaces() {
        let a = Scopes::parse("b  a").unwrap();
        assert_eq!(a, Scopes::parse("a b").unwrap());
        assert_eq!(a.to_string(), "a b");
        assert!(Scopes::parse("a\"b").is_err());
    }

    #[test]
    fn grant_defaults_to_the_default_and_drops_unknown_scopes() {
        let offered = Scopes::from_list(["mcp", "read", "write"]);
        let default = Scopes::from_list(["mcp"]);
        assert_eq!(grant_scope(None, &offered, &default).unwrap(), default);
        assert_eq!(grant_scope(Some(""), &offered, &default).unwrap(), default);
        assert_eq!(grant_scope(Some("read"), &offered, &default).unwrap().to_string(), "read");
        assert_eq!(grant_scope(Some("read admin"), &offered, &default).unwrap().to_string(), "read");
        assert_eq!(grant_scope(Some("admin"), &offered, &default).unwrap(), default);
        assert!(grant_scope(Some("bad\\scope"), &offered, &default).is_err());
        // A default outside the offer is never granted.
        assert_eq!(grant_scope(None, &offered, &Scopes::from_list(["admin"])).unwrap(), offered);
    }

    #[test]
    fn refresh_narrows_but_never_widens() {
        let granted = Scopes::from_list(["a", "b"]);
        assert_eq!(refresh_scope(None, &granted).unwrap(), granted);
        assert_eq!(refresh_scope(Some("a"), &granted).unwrap().to_string(), "a");
        assert!(refresh_scope(Some("a c"), &granted).is_err());
    }
}
