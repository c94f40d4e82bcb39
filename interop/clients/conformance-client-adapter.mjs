// The command the official conformance suite runs for its *client* authorization scenarios
// (`conformance client --command "node …/conformance-client-adapter.mjs" --scenario X`),
// scoring the proxy as the OAuth client of the suite's MCP server. The suite appends its MCP
// server's URL; this script writes a proxy configuration with that server as a brokered
// upstream (`upstream_auth = "oauth"`, no provider), starts the proxy, and then plays both the
// MCP client (the TypeScript SDK against the proxy) and the user (the stand-in browser, which
// approves the proxy's consent page and follows the redirect to the suite's mock
// authorization server and back). Then it lists and calls the suite's tool. It kills the proxy
// on exit. The suite's verdict is about what the proxy did at the mock authorization server.
// Environment: MCP_CONFORMANCE_SCENARIO, MCP_CONFORMANCE_CONTEXT (pre-registered client),
// MOP_PROXY_BIN (default ../target/debug/mcp-oauth-proxy).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { browse } from '../lib/browser.mjs';
import { MemoryProvider } from '../lib/memory-provider.mjs';
import { freePort, waitForPort } from '../lib/ports.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const upstreamUrl = process.argv[process.argv.length - 1];
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const context = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) : {};
const bin = process.env.MOP_PROXY_BIN ?? path.join(here, '../../target/debug/mcp-oauth-proxy');
const log = (...a) => console.error('[adapter]', ...a);

// The scopes the proxy offers its own clients: in brokered mode proxy scopes map to the
// upstream's by name, so a scenario whose upstream asks for scopes lists them here.
const SERVER_SCOPES = {
  'auth/scope-step-up': ['mcp:basic', 'mcp:write'],
  'auth/scope-from-www-authenticate': ['mcp:basic'],
  'auth/scope-from-scopes-supported': ['mcp:basic', 'mcp:read', 'mcp:write'],
  'auth/scope-retry-limit': ['mcp:admin'],
  'auth/authorization-server-migration': ['mcp:basic'],
};

const dir = mkdtempSync(path.join(os.tmpdir(), 'mop-conformance-client-'));
const port = await freePort();
const publicUrl = `http://127.0.0.1:${port}`;
const scopes = SERVER_SCOPES[scenario];
const secretEnv = 'MOP_CONFORMANCE_UPSTREAM_SECRET';
writeFileSync(path.join(dir, 'proxy.toml'), `listen = "127.0.0.1:${port}"
public_url = "${publicUrl}"
[storage]
url = "sqlite://${dir}/proxy.db"
[encryption]
key = "${randomBytes(32).toString('base64')}"
[[servers]]
slug = "conformance"
upstream_url = "${upstreamUrl}"
upstream_auth = "oauth"
${scopes ? `scopes = ${JSON.stringify(scopes)}\n` : ''}${scopes ? `default_scopes = ${JSON.stringify(scopes.slice(0, 1))}\n` : ''}[servers.upstream_oauth]
allow_http_loopback = true
${context.client_id ? `client_id = "${context.client_id}"\n` : ''}${context.client_secret ? `client_secret_env = "${secretEnv}"\n` : ''}`);

let proxyOut = '';
const proxy = spawn(bin, ['serve', '--config', path.join(dir, 'proxy.toml')], {
  env: { ...process.env, [secretEnv]: context.client_secret ?? '', RUST_LOG: process.env.RUST_LOG ?? 'info' },
  stdio: ['ignore', 'pipe', 'pipe'],
});
proxy.stdout.on('data', (d) => (proxyOut += d));
proxy.stderr.on('data', (d) => (proxyOut += d));
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  proxy.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup(); process.exit(1); });

const mcpUrl = `${publicUrl}/mcp/conformance`;
const redirectUrl = 'http://127.0.0.1:31688/callback'; // a prefix the browser stops at; nothing listens
const provider = new MemoryProvider(redirectUrl, 'conformance adapter');
const transport = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });

// The user: the consent page at the proxy, the suite's authorization server (which answers
// at once), the proxy's upstream callback, and back to the client with the proxy's code.
async function login() {
  const back = await browse(provider.authorizationUrl, redirectUrl);
  const u = new URL(back);
  const code = u.searchParams.get('code');
  if (!code) throw new Error(`the proxy sent the user back without a code: ${back}`);
  await transport().finishAuth(code);
}

async function connect() {
  const client = new Client({ name: 'conformance-adapter', version: '1.0.0' });
  try {
    await client.connect(transport());
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    await login();
    await client.connect(transport());
  }
  return client;
}

// Step-up: the proxy turns the upstream's 403 insufficient_scope into its own; this SDK line
// gives up after one refresh, so the adapter authorizes again for the union of what it had
// and what the challenge named (SEP-2350), as clients/ts-step-up.mjs does.
async function withStepUp(client, fn) {
  try {
    return await fn(client);
  } catch (e) {
    const m = /insufficient_scope|403/.exec(String(e?.message ?? e));
    if (!m || !['auth/scope-step-up', 'auth/scope-retry-limit'].includes(scenario)) throw e;
    log('step-up:', e.message);
    const had = (provider.saved.tokens?.scope ?? '').split(' ').filter(Boolean);
    const want = [...new Set([...had, ...scopes])].join(' ');
    provider.invalidateCredentials('tokens'); // else auth() only refreshes, which cannot widen a grant
    const result = await auth(provider, { serverUrl: mcpUrl, scope: want });
    if (result !== 'REDIRECT') throw new Error(`step-up authorization: ${result}`);
    await login();
    await client.close();
    const again = await connect();
    return fn(again);
  }
}

// The 2026-07-28 scenarios' MCP server is stateless (no initialize; every request carries
// the protocol version in a header and in `_meta`), which this SDK line does not speak: the
// adapter logs in with the SDK's `auth()` and then sends the requests itself.
const version = process.env.MCP_CONFORMANCE_PROTOCOL_VERSION ?? '2025-11-25';
const stateless = !['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25'].includes(version);
let nextId = 1;
async function statelessLogin(scope) {
  const result = await auth(provider, { serverUrl: mcpUrl, ...(scope ? { scope } : {}) });
  if (result === 'REDIRECT') await login();
}
async function statelessRequest(method, params = {}) {
  const body = {
    jsonrpc: '2.0', id: nextId++, method,
    params: { ...params, _meta: { 'io.modelcontextprotocol/protocolVersion': version, 'io.modelcontextprotocol/clientCapabilities': {} } },
  };
  const res = await fetch(mcpUrl, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${provider.tokens()?.access_token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': version,
      'mcp-method': method,
      ...(params.name ? { 'mcp-name': params.name } : {}),
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status === 401 || res.status === 403) {
    const e = new Error(`${res.status}: ${res.headers.get('www-authenticate')}`);
    e.status = res.status;
    throw e;
  }
  const json = text.startsWith('{') ? JSON.parse(text) : JSON.parse(text.split('\n').find((l) => l.startsWith('data:')).slice(5));
  if (json.error) throw new Error(`${method}: ${JSON.stringify(json.error)}`);
  return json.result;
}

let exitCode = 0;
try {
  await waitForPort(port);
  if (stateless) {
    await statelessLogin();
    const tools = await statelessRequest('tools/list');
    log('tools:', tools.tools.map((t) => t.name).join(', '));
    const name = tools.tools[0]?.name ?? 'test-tool';
    // `auth/authorization-server-migration`: the upstream moves to another authorization
    // server after its first authenticated request, and the proxy answers the next one
    // with its own 401 challenge: the client authorizes again, once, as a client does.
    let r1;
    try {
      r1 = await statelessRequest('tools/call', { name, arguments: {} });
    } catch (e) {
      if (e.status !== 401 || scenario !== 'auth/authorization-server-migration') throw e;
      log('call refused:', e.message);
      provider.invalidateCredentials('tokens');
      await statelessLogin();
      r1 = await statelessRequest('tools/call', { name, arguments: {} });
      log('after authorizing again:');
    }
    log('call:', JSON.stringify(r1.content));
  } else {
    const client = await connect();
    const tools = await client.listTools();
    log('tools:', tools.tools.map((t) => t.name).join(', '));
    const name = tools.tools[0]?.name ?? 'test-tool';
    const result = await withStepUp(client, (c) => c.callTool({ name, arguments: {} }));
    log('call:', JSON.stringify(result.content));
    await client.close().catch(() => {});
  }
  console.log(`ok: ${scenario}`);
} catch (e) {
  exitCode = 1;
  console.log(`error: ${e?.stack ?? e}`);
}
if (process.env.MOP_INTEROP_VERBOSE || exitCode) console.error(proxyOut.split('\n').slice(-40).join('\n'));
cleanup();
process.exit(exitCode);
