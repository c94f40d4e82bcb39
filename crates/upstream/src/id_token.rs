//! Claim checks on an OpenID Connect id_token received from the token endpoint (OpenID
//! Connect Core §3.1.3.7): issuer, audience, expiry and the nonce we sent. The signature
//! is checked first, against the provider's keys (see `jwks`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("id_token is not a JWT")]
    Malformed,
    #[error("id_token issuer {0:?} is not the configured issuer")]
    WrongIssuer(String),
    #[error("id_token audience does not include our client id")]
    WrongAudience,
    #[error("id_token has expired")]
    Expired,
    #[error("id_token nonce does not match the one sent")]
    WrongNonce,
    #[error("id_token has no subject")]
    NoSubject,
}

pub struct Expectations<'a> {
    pub issuer: Option<&'a str>,
    pub client_id: &'a str,
    pub nonce: Option<&'a str>,
    pub now: i64,
}

/// Returns the subject (`sub`) once every claim checks out.
pub fn subject(id_token: &str, expect: &Expectations<'_>) -> Result<String, IdTokenError> {
    let mut parts = id_token.split('.');
    let (Some(_header), Some(payload), Some(_sig)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(IdTokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).map_err(|_| IdTokenError::Malformed)?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed)?;

    if let Some(issuer) = expect.issuer {
        let iss = claims["iss"].as_str().unwrap_or_default();
        if iss != issuer {
            return Err(IdTokenError::WrongIssuer(iss.to_owned()));
        }
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == expect.client_id,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(expect.client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(IdTokenError::WrongAudience);
    }
    match claims["exp"].as_i64() {
        // A minute of leeway for clock skew between us and the provider.
        Some(exp) if exp + 60 > expect.now => {}
        _ => return Err(IdTokenError::Expired),
    }
    if let Some(nonce) = expect.nonce
        && claims["nonce"].as_str() != Some(nonce)
    {
        return Err(IdTokenError::WrongNonce);
    }
    match &claims["sub"] {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(IdTokenError::NoSubject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: Value) -> String {
        format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    fn expect(nonce: Option<&str>) -> Expectations<'_> {
        Expectations { issuer: Some("https://idp"), client_id: "proxy", nonce, now: 1000 }
    }

    #[test]
    fn valid_token_yields_subject() {
        let t = jwt(serde_json::json!({"iss":"https://idp","aud":["x","proxy"],"exp":2000,"nonce":"n","sub":"u1"}));
        assert_eq!(subject(&t, &expect(Some("n"))).unwrap(), "u1");
    }

    #[test]
    fn each_claim_is_checked() {
        let base = serde_json::json!({"iss":"https://idp","aud":"proxy","exp":2000,"nonce":"n","sub":"u1"});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            jwt(c)
        };
        assert!(matches!(
            subject(&with("iss", "https://evil".into()), &expect(None)),
            Err(IdTokenError::WrongIssuer(_))
        ));
        assert_eq!(subject(&with("aud", "other".into()), &expect(None)), Err(IdTokenError::WrongAudience));
        assert_eq!(subject(&with("exp", 10.into()), &expect(None)), Err(IdTokenError::Expired));
        assert_eq!(subject(&with("nonce", "m".into()), &expect(Some("n"))), Err(IdTokenError::WrongNonce));
        assert_eq!(subject(&with("sub", "".into()), &expect(None)), Err(IdTokenError::NoSubject));
        assert_eq!(subject("not-a-jwt", &expect(None)), Err(IdTokenError::Malformed));
    }
}
