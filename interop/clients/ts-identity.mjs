// The official TypeScript SDK against a server in `upstream_auth = "identity"` mode: the
// whole login, then a tool call whose answer is the identity the MCP upstream verified in
// the proxy's assertion. Every request also carries identity headers a client could
// forge (`X-Forwarded-User: admin`, …), which must never reach the upstream.
// Usage: node clients/ts-identity.mjs MCP_URL
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MemoryProvider } from '../lib/memory-provider.mjs';
import { connectLoggedIn } from '../lib/sdk-login.mjs';

const mcpUrl = process.argv[2];
const redirectUrl = 'http://127.0.0.1:31686/callback';
const forged = {
  'X-Forwarded-User': 'admin',
  'X-Forwarded-Email': 'root@evil.example',
  'X-Forwarded-Groups': 'admins',
  'X-Auth-Request-User': 'admin',
  'Remote-User': 'admin',
};
const transport = (provider) =>
  new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, requestInit: { headers: forged } });

async function connect(provider) {
  const client = new Client({ name: 'interop-identity', version: '1.0.0' });
  await client.connect(transport(provider));
  return client;
}

const provider = new MemoryProvider(redirectUrl, 'interop: identity assertion');
const client = await connectLoggedIn({ provider, redirectUrl, transport: () => transport(provider), connect: () => connect(provider) });
const result = await client.callTool({ name: 'whoami', arguments: {} });
const seen = JSON.parse(result.content[0].text);
await client.close();
const problems = [];
if (seen.sub !== 'johndoe') problems.push(`sub ${seen.sub}`);
if (seen.email !== 'johndoe@interop.example') problems.push(`email ${seen.email}`);
if (JSON.stringify(seen.groups) !== JSON.stringify(['interop-staff'])) problems.push(`groups ${JSON.stringify(seen.groups)}`);
if (!seen.clientId || !seen.scope) problems.push('no client_id or scope');
if (JSON.stringify(seen).includes('admin') || JSON.stringify(seen).includes('evil')) problems.push('a forged value');
if (problems.length) throw new Error(`the upstream saw ${JSON.stringify(seen)}: ${problems.join(', ')}`);
console.log(`ok: the upstream verified ${seen.sub} <${seen.email}> in ${seen.groups.join(',')} (client ${seen.clientId}, scope "${seen.scope}")`);
