//! The user's answer from the identity provider, redeemed: the code exchanged (with the
//! PKCE verifier and nonce the login was sent with), the `iss` and error parameters
//! checked, the user identified. Shared by the logins of MCP clients' requests
//! (`oauth::login`) and of the people's pages (`account`).

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::form::Params;
use mcp_oauth_upstream::{FailureKind, Identity, Provider, UpstreamError, UpstreamTokens};

use crate::error::HttpError;
use crate::state::App;

/// The answer `params` of `provider` to a login it was sent to with the PKCE verifier
/// and nonce given: its tokens, and who logged in. Shared by the logins of MCP clients'
/// requests and of the account page.
pub async fn redeem(
    app: &App,
    provider: &Provider,
    (verifier, nonce): (&str, Option<&str>),
    params: &Params,
) -> Result<(UpstreamTokens, Identity), HttpError> {
    // RFC 9207: the callback is shared by every provider; a response that names another
    // issuer than the one this login was sent to is a mix-up attack, or a misrouting.
    if let (Some(iss), Some(expected)) = (params.get("iss"), provider.settings().issuer.as_deref())
        && iss.trim_end_matches('/') != expected.trim_end_matches('/')
    {
        tracing::warn!(provider = provider.name(), iss, "the login response names another issuer");
        return Err(OAuthError::access_denied("the login response came from another identity provider").into());
    }
    if let Some(error) = params.get("error") {
        tracing::info!(provider = provider.name(), error, "upstream login did not succeed");
        return Err(match error {
            "access_denied" => OAuthError::access_denied("the user did not log in at the upstream identity provider"),
            "temporarily_unavailable" => {
                OAuthError::temporarily_unavailable("the upstream identity provider is unavailable; try again", 5)
            }
            other => OAuthError::server_error(format!("the upstream identity provider answered {other}")),
        }
        .into());
    }
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::server_error("the upstream identity provider sent neither a code nor an error"))?;
    let tokens = provider
        .exchange_code(code, verifier, &app.settings.callback_url(), None)
        .await
        .map_err(failed(provider, "code exchange"))?;
    let who = provider.identify(&tokens, nonce, app.now()).await.map_err(failed(provider, "identify user"))?;
    Ok((tokens, who))
}

/// A failure at the provider during a login at `stage`, logged by its kind (a refusal of
/// the proxy is the operator's to fix) and answered as every provider failure is.
pub fn failed<'a>(provider: &'a Provider, stage: &'static str) -> impl Fn(UpstreamError) -> HttpError + 'a {
    move |e| {
        if e.kind() == FailureKind::Misconfigured {
            tracing::error!(
                provider = provider.name(),
                stage,
                error = %e,
                "the provider refused the proxy: check the provider's client_id, client secret and endpoints"
            );
        } else {
            tracing::warn!(provider = provider.name(), stage, error = %e, "upstream login failed");
        }
        HttpError::from(e)
    }
}
