// The TypeScript SDK's OAuthClientProvider for the interop clients: keeps everything in
// memory and, instead of opening a browser, remembers where it was sent to authorize.
export class MemoryProvider {
  constructor(redirectUrl, clientName) {
    this.saved = {};
    this.redirect = redirectUrl;
    this.name = clientName;
  }
  get redirectUrl() { return this.redirect; }
  get clientMetadata() {
    return {
      client_name: this.name,
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() { return this.saved.client; }
  saveClientInformation(info) { this.saved.client = info; }
  tokens() { return this.saved.tokens; }
  saveTokens(tokens) { this.saved.tokens = tokens; this.saved.tokenSaves = (this.saved.tokenSaves ?? 0) + 1; }
  invalidateCredentials(which) {
    if (which === 'tokens' || which === 'all') delete this.saved.tokens;
    if (which === 'all') delete this.saved.client;
  }
  redirectToAuthorization(url) { this.authorizationUrl = url.toString(); }
  saveCodeVerifier(v) { this.saved.verifier = v; }
  codeVerifier() { return this.saved.verifier; }
}
