// An enterprise IdP for enterprise-managed authorization (SEP-990), as far as the MCP client
// and the proxy see it: it signed the user in (an ID token, made at start), exchanges that ID
// token (RFC 8693) for an ID-JAG for a given MCP authorization server, and publishes its keys.
// Ours, because no IdP runs here; the MCP client that uses it (the SDK's
// CrossAppAccessProvider) and the proxy that checks its ID-JAGs are what is tested.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, jwtVerify, createLocalJWKSet } from 'jose';

export const EMA_USER = { sub: 'ema-user-1', email: 'ema.user@acme.example', groups: ['acme-staff'] };

export async function startEnterpriseIdp({ idpClientId, idpClientSecret, mcpClientId }) {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'interop-idp-1', alg: 'ES256', use: 'sig' };
  const jwks = { keys: [jwk] };
  const stats = { exchanges: 0, refused: 0 };
  let url;
  const server = http.createServer(async (req, res) => {
    const send = (status, body) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method === 'GET' && req.url === '/jwks') return send(200, jwks);
    if (req.method !== 'POST' || req.url !== '/token') return send(404, { error: 'not_found' });
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const form = new URLSearchParams(raw);
    const refuse = (error) => { stats.refused += 1; send(400, { error }); };
    if (form.get('client_id') !== idpClientId || form.get('client_secret') !== idpClientSecret) return refuse('invalid_client');
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange'
      || form.get('requested_token_type') !== 'urn:ietf:params:oauth:token-type:id-jag'
      || form.get('subject_token_type') !== 'urn:ietf:params:oauth:token-type:id_token') return refuse('invalid_request');
    let user;
    try {
      ({ payload: user } = await jwtVerify(form.get('subject_token'), createLocalJWKSet(jwks), { issuer: url, audience: idpClientId }));
    } catch {
      return refuse('invalid_grant');
    }
    const now = Math.floor(Date.now() / 1000);
    const idJag = await new SignJWT({
      client_id: mcpClientId,
      resource: form.get('resource'),
      scope: form.get('scope') ?? undefined,
      email: user.email,
      groups: user.groups,
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt', kid: jwk.kid })
      .setIssuer(url)
      .setSubject(user.sub)
      .setAudience(form.get('audience'))
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .setJti(randomUUID())
      .sign(privateKey);
    stats.exchanges += 1;
    send(200, { issued_token_type: 'urn:ietf:params:oauth:token-type:id-jag', access_token: idJag, token_type: 'N_A', expires_in: 300 });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${server.address().port}`;
  // The user's sign-in at the IdP, done: the ID token the MCP client holds.
  const idToken = await new SignJWT({ email: EMA_USER.email, groups: EMA_USER.groups })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
    .setIssuer(url).setSubject(EMA_USER.sub).setAudience(idpClientId).setIssuedAt().setExpirationTime('1h')
    .sign(privateKey);
  return { url, idToken, stats, stop: () => server.close() };
}
