// The MCP upstream of the identity scenario (`upstream_auth = "identity"`), built with the
// official TypeScript SDK. It trusts nothing but the proxy's identity assertion, verified
// with the repository's example verifier (examples/identity-upstream/verify.mjs, `jose`)
// against the proxy's published key set; its `whoami` tool answers with the identity the
// assertion carried. It records every `X-Forwarded-User` that reaches it (none should:
// the proxy drops what clients write, and this server does not ask for identity headers).
import { copyFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/// The example, copied beside this suite's packages so that its `import 'jose'` resolves
/// to the pinned one (examples/ has no packages of its own).
async function exampleVerifier() {
  const dir = path.join(here, '../node_modules/.mop-examples');
  mkdirSync(dir, { recursive: true });
  const copy = path.join(dir, 'identity-verify.mjs');
  copyFileSync(path.join(here, '../../examples/identity-upstream/verify.mjs'), copy);
  return import(pathToFileURL(copy).href);
}

export async function startIdentityUpstream({ publicUrl }) {
  const { identityVerifier, assertionOf } = await exampleVerifier();
  const stats = { calls: 0, rejected: 0, forwardedUsers: [], assertions: {} };
  let verify;
  const server = http.createServer(async (req, res) => {
    if (req.headers['x-forwarded-user'] !== undefined) stats.forwardedUsers.push(req.headers['x-forwarded-user']);
    let identity;
    try {
      const jwt = assertionOf(req);
      identity = await verify(jwt);
      // The last one of each subject, for the Python example's check of the provider's user
      // (machine clients and the enterprise IdP's user call it too, at the same time).
      stats.assertions[identity.sub] = jwt;
    } catch {
      stats.rejected += 1;
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      return;
    }
    stats.calls += 1;
    const mcp = new McpServer({ name: 'interop-identity-upstream', version: '1.0.0' });
    mcp.tool('whoami', 'Tells who called, as the proxy asserted it', async () => ({
      content: [{ type: 'text', text: JSON.stringify(identity) }],
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => { transport.close(); mcp.close(); });
    await mcp.connect(transport);
    let body = '';
    for await (const chunk of req) body += chunk;
    await transport.handleRequest(req, res, body ? JSON.parse(body) : undefined);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/mcp`;
  // The assertion's audience is the upstream URL the proxy is configured with.
  verify = identityVerifier({ publicUrl, audience: url });
  return { url, stats, stop: () => server.close() };
}
