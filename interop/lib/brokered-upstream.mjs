// The brokered scenario's MCP upstream (`upstream_auth = "oauth"`): an MCP server built with
// the official TypeScript SDK and protected by its own authorization server, a second
// oauth2-mock-server, as an OAuth-protected MCP server on the internet is. Without a valid
// token of that server it answers 401 with `resource_metadata` (RFC 9728) naming its
// metadata, which names that server; its `whoami` tool says which issuer's token it was sent.
// Counts what its authorization server saw: logins (code exchanges), refreshes, revocations.
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { OAuth2Server } from 'oauth2-mock-server';

export async function startBrokeredUpstream({ ttl }) {
  const as = new OAuth2Server();
  await as.issuer.keys.generate('RS256');
  const stats = { calls: 0, rejected: 0, codeExchanges: 0, refreshes: 0, revocations: 0, authorizeQueries: [], issuers: new Set() };
  as.service.on('beforeTokenSigning', (token) => { token.payload.exp = token.payload.iat + ttl; });
  as.service.on('beforeResponse', (response, req) => {
    if (response.body && response.body.expires_in !== undefined) response.body.expires_in = ttl;
    if (req.body.grant_type === 'refresh_token') stats.refreshes += 1;
    if (req.body.grant_type === 'authorization_code') stats.codeExchanges += 1;
  });
  as.service.on('beforeAuthorizeRedirect', (_redirect, req) => {
    stats.authorizeQueries.push(Object.fromEntries(new URL(req.url, 'http://x').searchParams));
  });
  as.service.on('beforeRevoke', () => { stats.revocations += 1; });
  await as.start(0, '127.0.0.1');
  as.issuer.url = `http://127.0.0.1:${as.address().port}`;
  const issuer = as.issuer.url;
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));

  let base;
  const server = http.createServer(async (req, res) => {
    if (req.method === 'GET' && req.url === '/.well-known/oauth-protected-resource/mcp') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ resource: `${base}/mcp`, authorization_servers: [issuer], scopes_supported: ['files:read'] }));
      return;
    }
    let payload;
    try {
      ({ payload } = await jwtVerify((req.headers.authorization ?? '').replace(/^Bearer /, ''), jwks, { issuer }));
    } catch {
      stats.rejected += 1;
      const challenge = `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", scope="files:read"`;
      res.writeHead(401, { 'www-authenticate': challenge }).end();
      return;
    }
    stats.calls += 1;
    stats.issuers.add(payload.iss);
    const mcp = new McpServer({ name: 'interop-brokered-upstream', version: '1.0.0' });
    mcp.tool('whoami', 'Tells who called and which authorization server vouched for them', async () => ({
      content: [{ type: 'text', text: JSON.stringify({ sub: payload.sub, iss: payload.iss }) }],
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => { transport.close(); mcp.close(); });
    await mcp.connect(transport);
    let body = '';
    for await (const chunk of req) body += chunk;
    await transport.handleRequest(req, res, body ? JSON.parse(body) : undefined);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  return { url: `${base}/mcp`, issuer, stats, stop: async () => { server.close(); await as.stop(); } };
}
