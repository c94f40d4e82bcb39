// The official TypeScript SDK against a server in `upstream_auth = "oauth"` mode: the whole
// login (the provider's, then the MCP upstream's own authorization server's, both
// oauth2-mock-server), a tool call whose answer says which issuer's token the upstream
// verified, a second call after the upstream's token has expired (the proxy refreshes it),
// then the client revokes its grant at the proxy.
// Usage: node clients/ts-brokered.mjs MCP_URL EXPECTED WAIT_SECONDS (EXPECTED: what the
// upstream's `whoami` answer must contain: the issuer or user only its own server vouches for)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MemoryProvider } from '../lib/memory-provider.mjs';
import { connectLoggedIn } from '../lib/sdk-login.mjs';

const [mcpUrl, expected, wait] = process.argv.slice(2);
const redirectUrl = 'http://127.0.0.1:31687/callback'; // a prefix the browser stops at; nothing listens
const transport = (provider) => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });

async function connect(provider) {
  const client = new Client({ name: 'interop-brokered', version: '1.0.0' });
  await client.connect(transport(provider));
  return client;
}

async function whoami(client) {
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  const seen = result.content[0].text;
  if (!seen.includes(expected)) {
    throw new Error(`the upstream saw ${seen}, not its own authorization server's token (${expected})`);
  }
  return seen;
}

const provider = new MemoryProvider(redirectUrl, 'interop: brokered');
const client = await connectLoggedIn({ provider, redirectUrl, transport: () => transport(provider), connect: () => connect(provider) });
await whoami(client);
await new Promise((r) => setTimeout(r, Number(wait) * 1000));
const seen = await whoami(client);
await client.close();
// Revoke the grant at the proxy (RFC 7009), which revokes the upstream's tokens there too.
const issuer = mcpUrl.replace('/mcp/', '/oauth/');
const revoked = await fetch(`${issuer}/revoke`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ token: provider.saved.tokens.refresh_token, client_id: provider.saved.client.client_id }),
});
if (revoked.status !== 200) throw new Error(`revocation answered ${revoked.status}`);
console.log(`ok: the upstream verified ${seen}, before and after its expiry`);
