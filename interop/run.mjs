// The interop suite: real clients, a real OAuth provider and an SDK-built MCP server
// against the mcp-oauth-proxy binary. One line per scenario, then `N passed, N failed`.
// Usage: node run.mjs  (MOP_PROXY_BIN names the binary; default ../target/debug/…)
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBrokeredUpstream } from './lib/brokered-upstream.mjs';
import { startEnterpriseIdp } from './lib/enterprise-idp.mjs';
import { startIdentityUpstream } from './lib/identity-upstream.mjs';
import { startProvider } from './lib/provider.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { runPages } from './clients/pages-browser.mjs';
import { freePort, waitForPort } from './lib/ports.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = process.env.MOP_PROXY_BIN ?? path.join(here, '../target/debug/mcp-oauth-proxy');
const UPSTREAM_TTL = 15; // seconds; the proxy refreshes 5 s before expiry
const ACCESS_TTL = 10; // the proxy's own access tokens
const WAIT = 20; // clients wait this long, so that both have expired, then call again
// Ports that clients listen on for their callback sit below the ephemeral range (32768 and
// up on Linux), where an outgoing connection of this very run could hold them.
const CONFORMANCE_PORT = 31700;

function run(cmd, args, timeoutMs = 120_000, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: here, env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out: out.trim() }); });
    child.on('error', (e) => { clearTimeout(timer); resolve({ code: -1, out: e.message }); });
  });
}

const provider = await startProvider({ ttl: UPSTREAM_TTL });
const upstream = await startUpstream({ issuer: provider.url });
const port = await freePort();
const publicUrl = `http://127.0.0.1:${port}`;
const identityUpstream = await startIdentityUpstream({ publicUrl });
const brokered = await startBrokeredUpstream({ ttl: UPSTREAM_TTL });
// The Python SDK's own authorization server (dynamic registration) in front of its FastMCP.
const dcrPort = await freePort();
const dcrBase = `http://127.0.0.1:${dcrPort}`;
const dcrUpstream = spawn(path.join(here, '.venv/bin/python'), [path.join(here, 'lib/py_brokered_upstream.py'), String(dcrPort), String(UPSTREAM_TTL)], { stdio: 'ignore' });
process.on('exit', () => dcrUpstream.kill());
await waitForPort(dcrPort);
const dir = mkdtempSync(path.join(os.tmpdir(), 'mop-interop-'));
// Machine clients (client credentials): one with a secret, one with an ES256 key pair.
const machineSecret = randomBytes(24).toString('base64url');
const machineKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const machineJwks = JSON.stringify({ keys: [{ ...machineKey.publicKey.export({ format: 'jwk' }), kid: 'interop-1', alg: 'ES256', use: 'sig' }] });
const machinePem = machineKey.privateKey.export({ format: 'pem', type: 'pkcs8' });
// Enterprise-managed authorization: an IdP that issues ID-JAGs to a confidential MCP client.
const ema = { clientId: 'interop-ema-client', secret: randomBytes(24).toString('base64url'), idpClientId: 'interop-idp-client', idpSecret: randomBytes(24).toString('base64url') };
const enterpriseIdp = await startEnterpriseIdp({ idpClientId: ema.idpClientId, idpClientSecret: ema.idpSecret, mcpClientId: ema.clientId });
const config = path.join(dir, 'proxy.toml');
writeFileSync(config, `listen = "127.0.0.1:${port}"
public_url = "${publicUrl}"
[storage]
url = "sqlite://${dir}/proxy.db"
[encryption]
key = "${randomBytes(32).toString('base64')}"
[tokens]
access_ttl_secs = ${ACCESS_TTL}
[providers.mock]
issuer = "${provider.url}"
client_id = "mcp-oauth-proxy"
client_secret = "interop-secret"
scopes = ["openid"]
refresh_margin_secs = 5
[[servers]]
slug = "interop"
upstream_url = "${upstream.url}"
provider = "mock"
[[servers]]
slug = "interop-scoped"
upstream_url = "${upstream.url}"
provider = "mock"
scopes = ["tools:read"]
tool_scopes = { "write_note" = ["notes:write"] }
[[servers]]
slug = "interop-identity"
upstream_url = "${identityUpstream.url}"
provider = "mock"
upstream_auth = "identity"
[[servers]]
slug = "interop-brokered"
upstream_url = "${brokered.url}"
provider = "mock"
upstream_auth = "oauth"
[servers.upstream_oauth]
client_id = "mcp-oauth-proxy-brokered"
allow_http_loopback = true
refresh_margin_secs = 5
[[servers]]
slug = "interop-brokered-dcr"
upstream_url = "${dcrBase}/mcp"
provider = "mock"
upstream_auth = "oauth"
[servers.upstream_oauth]
allow_http_loopback = true
refresh_margin_secs = 5
[audit]
path = "${dir}/audit.log"
[admin]
emails = ["johndoe@interop.example"]
[[servers]]
slug = "interop-machines"
upstream_url = "${identityUpstream.url}"
provider = "mock"
upstream_auth = "identity"
access = { clients = ["interop-cc", "interop-pkjwt"] }
[[servers]]
slug = "interop-ema"
upstream_url = "${identityUpstream.url}"
provider = "mock"
upstream_auth = "identity"
enterprise_idps = ["interop-idp"]
access = { groups = ["acme-staff"] }
[enterprise_idps.interop-idp]
issuer = "${enterpriseIdp.url}"
jwks_url = "${enterpriseIdp.url}/jwks"
clients = ["${ema.clientId}"]
[[clients]]
client_id = "${ema.clientId}"
client_secret = "${ema.secret}"
redirect_uris = ["https://ema-client.example/callback"]
[[clients]]
client_id = "interop-cc"
client_secret = "${machineSecret}"
grant_types = ["client_credentials"]
[[clients]]
client_id = "interop-pkjwt"
jwks = '${machineJwks}'
grant_types = ["client_credentials"]
[[clients]]
client_id = "conformance"
redirect_uris = ["http://127.0.0.1:${CONFORMANCE_PORT}/callback"]
trusted = true
`);
const proxy = spawn(bin, ['serve', '--config', config], { env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' }, stdio: ['ignore', 'inherit', 'inherit'] });
// The proxy goes when the suite goes, however it ends (an orphan would hold the port and
// the output pipe of whoever ran the suite).
process.on('exit', () => proxy.kill());
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));
await waitForPort(port);
const mcpUrl = `${publicUrl}/mcp/interop`;
const scopedUrl = `${publicUrl}/mcp/interop-scoped`; // write_note needs notes:write
const identityUrl = `${publicUrl}/mcp/interop-identity`; // the upstream gets an identity assertion
const brokeredUrl = `${publicUrl}/mcp/interop-brokered`; // the upstream has its own authorization server

const issuer = `${publicUrl}/oauth/interop`;
// [name, command, arguments, how many upstream logins it makes]
const scenarios = [
  ['typescript-sdk', 'node', ['clients/ts-sdk.mjs', mcpUrl, String(WAIT)], 1],
  ['python-sdk', path.join(here, '.venv/bin/python'), ['clients/py-sdk.py', mcpUrl, String(WAIT)], 1],
  // Each step-up logs in twice: once for what the 401 names, once for the union.
  ['python-sdk 2.x (step-up)', path.join(here, '.venv2/bin/python'), ['clients/py-sdk2.py', scopedUrl, String(WAIT)], 2],
  ['typescript-sdk (step-up)', 'node', ['clients/ts-step-up.mjs', scopedUrl], 2],
  ['mcp-remote', 'node', ['clients/mcp-remote.mjs', mcpUrl, String(WAIT)], 1],
  ['inspector-cli', 'node', ['clients/inspector-cli.mjs', mcpUrl, String(WAIT)], 1],
  ['typescript-sdk (identity assertion)', 'node', ['clients/ts-identity.mjs', identityUrl], 1],
  ['typescript-sdk (brokered OAuth)', 'node', ['clients/ts-brokered.mjs', brokeredUrl, `"iss":"${brokered.issuer}"`, String(WAIT)], 1],
  ['typescript-sdk (brokered OAuth, dynamic registration)', 'node', ['clients/ts-brokered.mjs', `${publicUrl}/mcp/interop-brokered-dcr`, 'ada via ', String(WAIT)], 1],
  // No browser, no login: the SDK's client-credentials providers (secret, then private_key_jwt).
  ['typescript-sdk 2.x (enterprise-managed authorization)', 'node', ['clients/ts-ema.mjs', `${publicUrl}/mcp/interop-ema`, `${publicUrl}/oauth/interop-ema`, ema.clientId, ema.secret, enterpriseIdp.url, ema.idpClientId, ema.idpSecret, enterpriseIdp.idToken], 0],
  ['typescript-sdk (client credentials)', 'node', ['clients/ts-client-credentials.mjs', `${publicUrl}/mcp/interop-machines`, `${publicUrl}/oauth/interop-machines`, machineSecret, machinePem], 0],
];
// The conformance suite listens on a fixed port for its callback: run it on its own.
const afterwards = [
  ['conformance (authorization server)', 'node', ['clients/conformance.mjs', issuer, mcpUrl, String(CONFORMANCE_PORT)], 1],
  // The suite's client authorization scenarios, the proxy as the OAuth client of the suite's
  // MCP server (brokered mode): each scenario starts its own proxy through the adapter.
  ['conformance client (brokered OAuth)', 'node', ['clients/conformance-client.mjs'], 0, 300_000],
];
const only = process.env.MOP_INTEROP_ONLY; // a name fragment, to run fewer scenarios while debugging
const chosen = (list) => list.filter(([name]) => !only || name.includes(only));
const results = await Promise.all(chosen(scenarios).map(async ([name, cmd, args]) => [name, await run(cmd, args)]));
for (const [name, cmd, args, , timeout] of chosen(afterwards)) results.push([name, await run(cmd, args, timeout)]);
// The pages in a real browser, in this process (it logs another user in for a moment, so
// it runs alone): two SDK logins, the account page's, the console's and a stranger's.
const PAGES = 'pages (account and console in Chromium)';
const pagesLogins = !only || PAGES.includes(only) ? 5 : 0;
if (pagesLogins) {
  const lines = [];
  const log = console.log;
  console.log = (...a) => lines.push(a.join(' '));
  try {
    await runPages({ publicUrl, mcpUrl, setUser: provider.setUser });
    results.push([PAGES, { code: 0, out: lines.join('\n') }]);
  } catch (e) {
    results.push([PAGES, { code: 1, out: [...lines, String(e?.stack ?? e)].join('\n') }]);
  } finally {
    console.log = log;
  }
}
const expectedLogins = [...chosen(scenarios), ...chosen(afterwards)].reduce((n, s) => n + s[3], 0) + pagesLogins;
let passed = 0;
let failed = 0;
for (const [name, { code, out }] of results) {
  const ok = code === 0;
  ok ? passed++ : failed++;
  // The conformance client runner prints one line per scenario: all of them are kept.
  const last = process.env.MOP_INTEROP_VERBOSE || name.startsWith('conformance client') ? `\n${out}` : out.split('\n').filter(Boolean).slice(ok ? -1 : -8).join(' | ');
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${last}`);
}
// Every client logged in exactly once (so each kept working by refreshing, not by sending
// the user back to log in), and the proxy refreshed upstream tokens during the run.
const refreshed = provider.stats.refreshes >= 1 && provider.stats.codeExchanges === expectedLogins;
if (!only) {
refreshed ? passed++ : failed++;
console.log(`${refreshed ? 'PASS' : 'FAIL'} upstream-refresh: the provider answered ${provider.stats.refreshes} refresh grant(s) for ${provider.stats.codeExchanges} login(s) (expected ${expectedLogins})`);
}
// The refused calls never reached the MCP upstream: it kept each step-up client's note
// once, from the call made after the step-up.
const stepUps = { 'python-sdk 2.x (step-up)': 'python-sdk 2.x step-up', 'typescript-sdk (step-up)': 'typescript-sdk step-up' };
const expectedNotes = chosen(scenarios).filter(([name]) => name in stepUps).map(([name]) => stepUps[name]).sort();
const notes = [...upstream.stats.notes].sort();
if (expectedNotes.length) {
  const same = JSON.stringify(notes) === JSON.stringify(expectedNotes);
  same ? passed++ : failed++;
  console.log(`${same ? 'PASS' : 'FAIL'} step-up-upstream: the MCP upstream kept ${JSON.stringify(notes)} (expected ${JSON.stringify(expectedNotes)}: refused calls never reach it)`);
}
// The identity upstream verified every call's assertion, and never saw a client's
// X-Forwarded-User; the Python example verifies the last assertion it was sent too.
if (chosen(scenarios).some(([name]) => name.includes('identity assertion'))) {
  const { calls, rejected, forwardedUsers, assertions } = identityUpstream.stats;
  const lastAssertion = assertions.johndoe;
  const clean = calls > 0 && rejected === 0 && forwardedUsers.length === 0;
  clean ? passed++ : failed++;
  console.log(`${clean ? 'PASS' : 'FAIL'} identity-upstream: ${calls} call(s) with a verified assertion, ${rejected} refused, X-Forwarded-User arrived ${forwardedUsers.length} time(s) (expected none)`);
  const python = await run(path.join(here, '.venv/bin/python'), [path.join(here, '../examples/identity-upstream/verify.py'), 'check', lastAssertion ?? 'none'], 30_000, { MOP_PUBLIC_URL: publicUrl, MOP_AUDIENCE: identityUpstream.url });
  const ok = python.code === 0 && python.out.includes('"sub": "johndoe"') && python.out.includes('johndoe@interop.example');
  ok ? passed++ : failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'} identity-example-python: ${python.out.split('\n').slice(-1)[0]}`);
}
// The brokered upstream's own authorization server: one login, a refresh by the proxy when
// its token expired, the grant's revocation reaching it; the upstream saw only its tokens.
if (chosen(scenarios).some(([name]) => name.includes('brokered'))) {
  const s = brokered.stats;
  for (let i = 0; i < 50 && s.revocations === 0; i++) await new Promise((r) => setTimeout(r, 100));
  const asked = s.authorizeQueries[0] ?? {};
  const ok = s.codeExchanges === 1 && s.refreshes >= 1 && s.revocations >= 1 && s.rejected >= 1
    && [...s.issuers].join() === brokered.issuer && asked.code_challenge_method === 'S256'
    && asked.resource === brokered.url && asked.client_id === 'mcp-oauth-proxy-brokered';
  ok ? passed++ : failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'} brokered-upstream: ${s.codeExchanges} login(s), ${s.refreshes} refresh(es), ${s.revocations} revocation(s) at its authorization server; it verified ${s.calls} call(s) with tokens from ${JSON.stringify([...s.issuers])}; authorize ${JSON.stringify({ client_id: asked.client_id, resource: asked.resource, code_challenge_method: asked.code_challenge_method, scope: asked.scope })}`);
}
// The Python SDK's authorization server: the proxy registered once (RFC 7591), logged in once
// with the upstream's resource, refreshed, and the revocation reached it.
if (chosen(scenarios).some(([name]) => name.includes('dynamic registration'))) {
  let s = {};
  for (let i = 0; i < 50; i++) {
    s = await (await fetch(`${dcrBase}/stats`)).json();
    if (s.revocations > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const ok = s.registrations === 1 && s.code_exchanges === 1 && s.refreshes >= 1 && s.revocations >= 1
    && s.resources.length === 1 && s.resources[0] === `${dcrBase}/mcp`;
  ok ? passed++ : failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'} brokered-upstream-dcr: the Python SDK's authorization server saw ${JSON.stringify(s)}`);
}
console.log(`${passed} passed, ${failed} failed`);
proxy.kill();
await provider.stop();
upstream.stop();
identityUpstream.stop();
await brokered.stop();
dcrUpstream.kill();
enterpriseIdp.stop();
process.exit(failed === 0 ? 0 : 1);
