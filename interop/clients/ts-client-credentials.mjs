// The official TypeScript SDK's machine-to-machine providers (SEP-1046) against a server
// that lets two clients in on their own behalf: `ClientCredentialsProvider`
// (client_secret_basic) and `PrivateKeyJwtProvider` (an ES256 client assertion). Each
// connects with no browser and calls `whoami`, whose answer is the identity the MCP
// upstream verified in the proxy's assertion: the client itself.
// Usage: node clients/ts-client-credentials.mjs MCP_URL ISSUER SECRET PRIVATE_KEY_PEM
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider, PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const [mcpUrl, issuer, secret, privateKey] = process.argv.slice(2);

async function whoami(provider) {
  const client = new Client({ name: 'interop-machine', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  await client.close();
  return JSON.parse(result.content[0].text);
}

const bySecret = await whoami(
  new ClientCredentialsProvider({ clientId: 'interop-cc', clientSecret: secret, expectedIssuer: issuer }),
);
const byKey = await whoami(
  new PrivateKeyJwtProvider({ clientId: 'interop-pkjwt', privateKey, algorithm: 'ES256', expectedIssuer: issuer }),
);
const problems = [];
if (bySecret.sub !== 'client:interop-cc') problems.push(`client_secret_basic: sub ${bySecret.sub}`);
if (byKey.sub !== 'client:interop-pkjwt') problems.push(`private_key_jwt: sub ${byKey.sub}`);
if (problems.length) throw new Error(problems.join(', '));
console.log(`ok: the upstream verified ${bySecret.sub} (client_secret_basic) and ${byKey.sub} (private_key_jwt)`);
