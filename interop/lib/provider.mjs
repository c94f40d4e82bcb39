// The upstream identity provider: oauth2-mock-server, an independent OAuth 2.0 / OpenID
// Connect implementation, with short token lifetimes so that upstream refreshes happen
// during a run. Counts the refresh grants it answers. Its user has a verified email and
// a group, for what the identity scenario's upstream is told; `setUser` logs another user
// in from then on (the pages' scenario runs alone, and puts the default back).
import { OAuth2Server } from 'oauth2-mock-server';

export async function startProvider({ ttl }) {
  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  const stats = { refreshes: 0, codeExchanges: 0 };
  const johndoe = { sub: 'johndoe', email: 'johndoe@interop.example', email_verified: true, groups: ['interop-staff'] };
  let user = johndoe;
  server.service.on('beforeTokenSigning', (token) => {
    token.payload.exp = token.payload.iat + ttl;
    Object.assign(token.payload, user);
  });
  server.service.on('beforeUserinfo', (userInfo) => {
    Object.assign(userInfo.body, user);
  });
  server.service.on('beforeResponse', (response, req) => {
    if (response.body && response.body.expires_in !== undefined) response.body.expires_in = ttl;
    if (req.body.grant_type === 'refresh_token') stats.refreshes += 1;
    if (req.body.grant_type === 'authorization_code') stats.codeExchanges += 1;
  });
  await server.start(0, '127.0.0.1');
  const { port } = server.address();
  server.issuer.url = `http://127.0.0.1:${port}`;
  const setUser = (claims) => { user = claims ?? johndoe; };
  return { url: server.issuer.url, stats, setUser, stop: () => server.stop() };
}
