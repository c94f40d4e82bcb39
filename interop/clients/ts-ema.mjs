// Enterprise-managed authorization (SEP-990) with the official TypeScript SDK's client
// (`@modelcontextprotocol/client`, the 2.x line, whose `CrossAppAccessProvider` the 1.x line
// lacks): it discovers the proxy's authorization server from the 401, exchanges the user's
// ID token at the enterprise IdP for an ID-JAG (`requestJwtAuthorizationGrant`, RFC 8693),
// presents it with the jwt-bearer grant as a confidential client, and calls `whoami`, whose
// answer is the identity the MCP upstream verified in the proxy's assertion: the IdP's user.
// Then a replay of the same ID-JAG is refused. No browser at any point.
// Usage: node clients/ts-ema.mjs MCP_URL ISSUER CLIENT_ID CLIENT_SECRET IDP_URL IDP_CLIENT_ID IDP_SECRET ID_TOKEN
import { Client, CrossAppAccessProvider, StreamableHTTPClientTransport, requestJwtAuthorizationGrant } from '@modelcontextprotocol/client';

const [mcpUrl, issuer, clientId, clientSecret, idpUrl, idpClientId, idpSecret, idToken] = process.argv.slice(2);

let lastGrant;
const provider = new CrossAppAccessProvider({
  clientId,
  clientSecret,
  expectedIssuer: issuer,
  assertion: async (ctx) => {
    const result = await requestJwtAuthorizationGrant({
      tokenEndpoint: `${idpUrl}/token`,
      audience: ctx.authorizationServerUrl,
      resource: ctx.resourceUrl,
      idToken,
      clientId: idpClientId,
      clientSecret: idpSecret,
      scope: ctx.scope,
      fetchFn: ctx.fetchFn,
    });
    lastGrant = result.jwtAuthGrant;
    return lastGrant;
  },
});
const client = new Client({ name: 'interop-ema', version: '1.0.0' });
await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
const result = await client.callTool({ name: 'whoami', arguments: {} });
await client.close();
const who = JSON.parse(result.content[0].text);
// The IdP is not the proxy's provider: its users' subjects are in its own namespace.
if (who.sub !== 'idp:interop-idp:ema-user-1' || who.email !== 'ema.user@acme.example' || !who.groups?.includes('acme-staff') || who.clientId !== clientId) {
  throw new Error(`the upstream saw ${JSON.stringify(who)}`);
}
// The same ID-JAG again, at the token endpoint: its jti is spent.
const replay = await fetch(`${issuer}/token`, {
  method: 'POST',
  headers: {
    'content-type': 'application/x-www-form-urlencoded',
    authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
  },
  body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: lastGrant }),
});
const body = await replay.json();
if (replay.status !== 400 || body.error !== 'invalid_grant') throw new Error(`a replayed ID-JAG got ${replay.status} ${JSON.stringify(body)}`);
console.log(`ok: the upstream verified ${who.sub} <${who.email}> in ${who.groups.join(',')} (client ${who.clientId}); the replayed ID-JAG was refused`);
