// Step-up authorization (SEP-2350) with the official TypeScript SDK: the client logs in
// with only what the 401 names (`tools:read`), calls a tool that needs `notes:write`, is
// answered 403 insufficient_scope naming it, authorizes again for the union and succeeds.
// The SDK's transport handles the 403 itself, but its 1.x line first tries a refresh, which
// cannot widen a grant (the proxy keeps it as it was), and then gives up; the client then
// authorizes again with the SDK's own `auth()`, asking for what it had and what was named
// (the union SEP-2350 asks clients for, which this SDK line does not compute yet).
// Usage: node clients/ts-step-up.mjs MCP_URL
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, auth, extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { browse } from '../lib/browser.mjs';
import { MemoryProvider } from '../lib/memory-provider.mjs';

const mcpUrl = process.argv[2];
const redirectUrl = 'http://127.0.0.1:31684/callback';
const NOTE = 'typescript-sdk step-up';

// The transport's fetch, watched: the last 403 challenge, as the MCP endpoint sent it.
let lastForbidden;
const watching = async (input, init) => {
  const response = await fetch(input, init);
  if (response.status === 403) lastForbidden = response.clone();
  return response;
};

const provider = new MemoryProvider(redirectUrl, 'interop: TypeScript SDK (step-up)');
const transport = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: watching });

async function connect() {
  const client = new Client({ name: 'interop-ts-step-up', version: '1.0.0' });
  await client.connect(transport());
  return client;
}

// Plays the user at the authorization URL the SDK produced; returns the scope it asked for.
async function authorize() {
  const asked = new URL(provider.authorizationUrl).searchParams.get('scope');
  const back = await browse(provider.authorizationUrl, redirectUrl);
  const code = new URL(back).searchParams.get('code');
  if (!code) throw new Error(`no code: ${back}`);
  await transport().finishAuth(code);
  return asked;
}

try {
  await connect();
  throw new Error('connected without authorization');
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
const firstAsked = await authorize();
if (firstAsked !== 'tools:read') throw new Error(`the first login asked for ${firstAsked}, not what the 401 named`);
if (provider.saved.tokens.scope !== 'tools:read') throw new Error(`granted ${provider.saved.tokens.scope}`);
let client = await connect();
const who = (await client.callTool({ name: 'whoami', arguments: {} })).content[0].text;
if (!who.includes('johndoe')) throw new Error(`unexpected caller: ${who}`);

let sdkRetry;
try {
  await client.callTool({ name: 'write_note', arguments: { text: NOTE } });
  throw new Error('a tools:read token wrote a note');
} catch (e) {
  if (e instanceof UnauthorizedError) {
    sdkRetry = 'the SDK started the authorization itself';
  } else if (e?.code === 403) {
    // The SDK refreshed (same scope) and met the same challenge again: it stops there.
    sdkRetry = `the SDK refreshed and stopped (${e.message})`;
    const { scope, error, resourceMetadataUrl } = extractWWWAuthenticateParams(lastForbidden);
    if (error !== 'insufficient_scope' || !scope) throw new Error(`challenge: ${lastForbidden.headers.get('www-authenticate')}`);
    const granted = provider.saved.tokens.scope.split(' ');
    const union = [...new Set([...granted, ...scope.split(' ')])].join(' ');
    provider.invalidateCredentials('tokens');
    const result = await auth(provider, { serverUrl: new URL(mcpUrl), scope: union, resourceMetadataUrl });
    if (result !== 'REDIRECT') throw new Error(`auth() answered ${result}`);
  } else {
    throw e;
  }
}
const challenge = lastForbidden?.headers.get('www-authenticate') ?? '';
if (!challenge.includes('error="insufficient_scope"') || !challenge.includes('scope="notes:write"')) {
  throw new Error(`the 403 named: ${challenge}`);
}
await client.close();
const secondAsked = await authorize();
if (!secondAsked.split(' ').includes('notes:write')) throw new Error(`the step-up asked for ${secondAsked}`);
client = await connect();
const kept = (await client.callTool({ name: 'write_note', arguments: { text: NOTE } })).content[0].text;
if (!kept.includes('kept for johndoe')) throw new Error(`write_note: ${kept}`);
await client.close();
console.log(`ok: 403 ${challenge.match(/scope="[^"]*"/)[0]}; ${sdkRetry}; authorized again for "${secondAsked}", granted "${provider.saved.tokens.scope}"; ${kept}`);
