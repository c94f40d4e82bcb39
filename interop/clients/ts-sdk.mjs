// The official TypeScript SDK as an MCP client: discovery from the 401, dynamic
// registration, PKCE login through the consent page and the upstream provider, then
// tools/list and tools/call; then, after every token has expired, another call, which
// the SDK makes work by refreshing (and the proxy by refreshing upstream).
// Usage: node clients/ts-sdk.mjs MCP_URL WAIT_SECONDS
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MemoryProvider } from '../lib/memory-provider.mjs';
import { connectLoggedIn } from '../lib/sdk-login.mjs';

const [mcpUrl, waitSeconds] = [process.argv[2], Number(process.argv[3] ?? 0)];
const redirectUrl = 'http://127.0.0.1:31682/callback';

async function connect(provider) {
  const client = new Client({ name: 'interop-ts', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
  return client;
}

const provider = new MemoryProvider(redirectUrl, 'interop: TypeScript SDK');
let client = await connectLoggedIn({
  provider,
  redirectUrl,
  transport: () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }),
  connect: () => connect(provider),
});
const tools = await client.listTools();
if (!tools.tools.some((t) => t.name === 'whoami')) throw new Error('whoami not listed');
const first = await client.callTool({ name: 'whoami', arguments: {} });
const who = first.content[0].text;
if (!who.includes('johndoe')) throw new Error(`unexpected caller: ${who}`);
await client.close();
const savesBefore = provider.saved.tokenSaves;
await new Promise((r) => setTimeout(r, waitSeconds * 1000));
client = await connect(provider);
const second = await client.callTool({ name: 'whoami', arguments: {} });
if (!second.content[0].text.includes('johndoe')) throw new Error(`after refresh: ${second.content[0].text}`);
if (provider.saved.tokenSaves <= savesBefore) throw new Error('the client never refreshed its token');
await client.close();
console.log(`ok: ${who}; refreshed after ${waitSeconds}s`);
