//! The token family: every access and refresh token that descends from one authorization.
//!
//! A family is born when a user completes an authorization (it holds the user's upstream
//! credential). Redeeming its authorization code issues the first token pair; each
//! refresh supersedes the presented refresh token and issues a new pair.
//!
//! ```text
//!   refresh token:   Active ──refresh──▶ Superseded(at) ──(grace passes)──▶ reuse ⇒ family Revoked
//!                      │                    │
//!                      │                    └─ replay within grace ⇒ the same successor again
//!                      └─ expires / family revoked ⇒ refused
//! ```
//!
//! The grace window exists because honest clients race themselves (two tabs, a retry after
//! a lost response) and must not be logged out for it, as hosted clients refreshing from two
//! places at once are by stricter servers; after the window,
//! a superseded token being presented means two parties hold it, and RFC 9700 §4.14.2 says
//! to revoke the family.
//!
//! The storage layer performs rotation as a single conditional write whose condition is
//! exactly [`judge_refresh`] returning a `Rotate…` verdict; when that write finds nothing
//! to rotate, the handler reads the token back and asks [`judge_refresh`] why.

/// What a family can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyStatus {
    Active,
    /// Ended by revocation, refresh-token reuse or code replay. Nothing in it works.
    Revoked,
    /// The upstream provider refused to refresh the user's credential for good: the
    /// user must log in again. Tokens in the family no longer work.
    NeedsLogin,
}

impl FamilyStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::NeedsLogin => "needs_login",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "revoked" => Some(Self::Revoked),
            "needs_login" => Some(Self::NeedsLogin),
            _ => None,
        }
    }
}

/// A stored family status this version does not know: a corrupted row, or a row written
/// by a newer version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown family status {0:?}")]
pub struct UnknownFamilyStatus(pub String);

/// From an owned string, because that is what a database column decodes to.
impl TryFrom<String> for FamilyStatus {
    type Error = UnknownFamilyStatus;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or(UnknownFamilyStatus(s))
    }
}

/// A stored refresh token as the state machine sees it.
#[derive(Debug, Clone)]
pub struct RefreshTokenState {
    pub client_id: String,
    pub family_status: FamilyStatus,
    pub expires_at: i64,
    pub superseded_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// The current token of its branch: supersede it and issue a new pair.
    Rotate,
    /// Superseded moments ago (an honest race or a retry): answer again what its
    /// rotation answered (the same successor, a new access token).
    RotateWithinGrace,
    /// Superseded longer ago than the grace window: stolen or badly broken client.
    /// The whole family must be revoked.
    Reuse,
    Expired,
    FamilyEnded,
    /// Presented by a client it was not issued to (RFC 6749 §6).
    WrongClient,
}

impl RefreshVerdict {
    pub fn rotates(self) -> bool {
        matches!(self, Self::Rotate | Self::RotateWithinGrace)
    }

    pub fn revokes_family(self) -> bool {
        self == Self::Reuse
    }

    /// Why a refresh was refused, for `error_description`.
    pub fn refusal(self) -> &'static str {
        match self {
            Self::Rotate | Self::RotateWithinGrace => "refresh token was rotated concurrently; retry",
            Self::Reuse => "refresh token was already used; the grant has been revoked",
            Self::Expired => "refresh token has expired",
            Self::FamilyEnded => "the grant has been revoked or needs a new login",
            Self::WrongClient => "refresh token was issued to another client",
        }
    }
}

pub fn judge_refresh(t: &RefreshTokenState, presenting_client: &str, now: i64, grace_secs: i64) -> RefreshVerdict {
    if t.client_id != presenting_client {
        return RefreshVerdict::WrongClient;
    }
    if t.family_status != FamilyStatus::Active {
        return RefreshVerdict::FamilyEnded;
    }
    if now >= t.expires_at {
        return RefreshVerdict::Expired;
    }
    match t.superseded_at {
        None => RefreshVerdict::Rotate,
        Some(at) if now - at <= grace_secs => RefreshVerdict::RotateWithinGrace,
        Some(_) => RefreshVerdict::Reuse,
    }
}

/// A stored authorization code as the state machine sees it.
#[derive(Debug, Clone)]
pub struct CodeState {
    pub used: bool,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeVerdict {
    Redeem,
    /// A second redemption: the code leaked. RFC 6749 §4.1.2 and OAuth 2.1 §4.1.2 say
    /// the tokens already issued for it should be revoked.
    Replay,
    Expired,
}

pub fn judge_code(c: &CodeState, now: i64) -> CodeVerdict {
    if c.used {
        CodeVerdict::Replay
    } else if now >= c.expires_at {
        CodeVerdict::Expired
    } else {
        CodeVerdict::Redeem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(superseded_at: Option<i64>) -> RefreshTokenState {
        RefreshTokenState {
            client_id: "c".into(),
            family_status: FamilyStatus::Active,
            expires_at: 1_000,
            superseded_at,
        }
    }

    #[test]
    fn current_token_rotates() {
        assert_eq!(judge_refresh(&token(None), "c", 10, 30), RefreshVerdict::Rotate);
    }

    #[test]
    fn superseded_token_rotates_within_grace_and_is_reuse_after() {
        let t = token(Some(100));
        assert_eq!(judge_refresh(&t, "c", 100, 30), RefreshVerdict::RotateWithinGrace);
        assert_eq!(judge_refresh(&t, "c", 130, 30), RefreshVerdict::RotateWithinGrace);
        let v = judge_refresh(&t, "c", 131, 30);
        assert_eq!(v, RefreshVerdict::Reuse);
        assert!(v.revokes_family());
        assert_eq!(judge_refresh(&t, "c", 100, 0), RefreshVerdict::RotateWithinGrace);
        assert_eq!(judge_refresh(&t, "c", 101, 0), RefreshVerdict::Reuse);
    }

    #[test]
    fn expiry_client_and_family_are_checked_first() {
        assert_eq!(judge_refresh(&token(None), "c", 1_000, 30), RefreshVerdict::Expired);
        assert_eq!(judge_refresh(&token(None), "other", 10, 30), RefreshVerdict::WrongClient);
        // A stolen superseded token presented by another client does not revoke anything.
        assert!(!judge_refresh(&token(Some(1)), "other", 500, 30).revokes_family());
        let mut t = token(None);
        t.family_status = FamilyStatus::Revoked;
        assert_eq!(judge_refresh(&t, "c", 10, 30), RefreshVerdict::FamilyEnded);
        t.family_status = FamilyStatus::NeedsLogin;
        assert!(!judge_refresh(&t, "c", 10, 30).rotates());
    }

    #[test]
    fn codes_are_single_use_and_short_lived() {
        assert_eq!(judge_code(&CodeState { used: false, expires_at: 60 }, 59), CodeVerdict::Redeem);
        assert_eq!(judge_code(&CodeState { used: false, expires_at: 60 }, 60), CodeVerdict::Expired);
        assert_eq!(judge_code(&CodeState { used: true, expires_at: 60 }, 10), CodeVerdict::Replay);
        assert_eq!(judge_code(&CodeState { used: true, expires_at: 60 }, 100), CodeVerdict::Replay);
    }

    #[test]
    fn status_round_trips() {
        for s in [FamilyStatus::Active, FamilyStatus::Revoked, FamilyStatus::NeedsLogin] {
            assert_eq!(FamilyStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(FamilyStatus::parse("x"), None);
        assert_eq!(FamilyStatus::try_from("revoked".to_owned()), Ok(FamilyStatus::Revoked));
        assert_eq!(FamilyStatus::try_from("x".to_owned()), Err(UnknownFamilyStatus("x".into())));
    }
}
