//! A scripted browser for the tests, the demo check and the benchmark: it keeps cookies,
//! follows nothing by itself, reads hidden form fields and submits forms, and can walk a
//! whole login (consent page, then the development provider's login page).

use std::collections::HashMap;

use reqwest::StatusCode;

/// A client that never follows redirects, so each hop can be inspected.
pub fn client() -> reqwest::Client {
    mcp_oauth_upstream::http_client::install_crypto_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("static client configuration")
}

/// A browser: follows nothing by itself, keeps cookies, submits forms.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .unwrap_or_else(|| panic!("no Location ({}): {}", self.status, self.body))
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// The hidden inputs of the page's form.
    pub fn hidden_fields(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for chunk in self.body.split("<input ").skip(1) {
            let tag = &chunk[..chunk.find('>').unwrap()];
            let attr = |name: &str| {
                let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
                let end = start + tag[start..].find('"')?;
                Some(unescape(&tag[start..end]))
            };
            if attr("type").as_deref() == Some("hidden") {
                out.push((attr("name").unwrap(), attr("value").unwrap()));
            }
        }
        out
    }

    pub fn form_action(&self) -> String {
        let start = self.body.find("action=\"").unwrap() + 8;
        unescape(&self.body[start..start + self.body[start..].find('"').unwrap()])
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self { http: client(), cookies: HashMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn absorb(&mut self, r: reqwest::Response) -> Page {
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), val.to_owned());
        }
        Page { status: r.status(), headers: r.headers().clone(), body: r.text().await.unwrap() }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let r = self.http.get(url).header("cookie", self.cookie_header()).send().await.unwrap();
        self.absorb(r).await
    }

    pub async fn post_form(&mut self, url: &str, fields: &[(String, String)]) -> Page {
        let r = self.http.post(url).header("cookie", self.cookie_header()).form(fields).send().await.unwrap();
        self.absorb(r).await
    }

    /// Submits the page's form with its hidden fields plus `extra`.
    pub async fn submit(&mut self, page: &Page, base: &str, extra: &[(&str, &str)]) -> Page {
        let mut fields = page.hidden_fields();
        fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let action = page.form_action();
        let url = if action.starts_with("http") { action } else { format!("{base}{action}") };
        self.post_form(&url, &fields).await
    }

    /// Runs the login from the authorization URL to the redirect back to the client,
    /// approving the consent page if one is shown. Returns the client redirect URL.
    pub async fn login(&mut self, authorize_url: &str, approve_upstream: bool) -> String {
        let decision = if approve_upstream { "approve" } else { "deny" };
        let done = self.through_callback(authorize_url, &[("login", decision)]).await;
        assert_eq!(done.status, StatusCode::FOUND, "callback: {}", done.body);
        done.location()
    }

    /// The login up to the proxy's answer to the provider's callback: the consent page
    /// approved (if shown), the provider's login page submitted with `at_provider`.
    pub async fn through_callback(&mut self, authorize_url: &str, at_provider: &[(&str, &str)]) -> Page {
        let page = self.get(authorize_url).await;
        let upstream = match page.status {
            StatusCode::OK => {
                let approved = self.submit(&page, "", &[("decision", "approve")]).await;
                assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
                approved.location()
            }
            StatusCode::FOUND => page.location(),
            other => panic!("authorize answered {other}: {}", page.body),
        };
        let login = self.get(&upstream).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let origin = url::Url::parse(&upstream).unwrap().origin().ascii_serialization();
        let back = self.submit(&login, &origin, at_provider).await;
        self.get(&back.location()).await
    }
}

impl Browser {
    /// Brokered OAuth: from the proxy's answer to the provider's callback (a redirect to
    /// the MCP upstream's authorization server), that server's login page submitted with
    /// `at_upstream`, to the proxy's answer at its upstream callback.
    pub async fn through_upstream(&mut self, sent: &Page, at_upstream: &[(&str, &str)]) -> Page {
        assert_eq!(sent.status, StatusCode::FOUND, "the provider's callback: {}", sent.body);
        let upstream = sent.location();
        let login = self.get(&upstream).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let origin = url::Url::parse(&upstream).unwrap().origin().ascii_serialization();
        let back = self.submit(&login, &origin, at_upstream).await;
        self.get(&back.location()).await
    }
}

/// The whole login of a public client at a proxy, as a user who approves everything:
/// authorization request with PKCE, consent (if shown), the development provider's login,
/// and the code exchange. Returns the token response.
pub async fn log_in(public_url: &str, slug: &str, client_id: &str, redirect_uri: &str) -> serde_json::Value {
    let verifier = mcp_oauth_core::pkce::new_verifier();
    let mut url = url::Url::parse(&format!("{public_url}/oauth/{slug}/authorize")).expect("public URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &mcp_oauth_core::pkce::s256_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let back = Browser::new().login(url.as_str(), true).await;
    let code = url::Url::parse(&back)
        .expect("redirect URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("no code in {back}"))
        .1
        .into_owned();
    client()
        .post(format!("{public_url}/oauth/{slug}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .await
        .expect("token endpoint answers")
        .json()
        .await
        .expect("token response is JSON")
}
