// mcp-remote, the stdio bridge desktop clients (Claude Desktop among them) use for remote
// servers. It opens "the browser" (our stand-in, via $BROWSER) and receives the code on
// its own loopback callback; we speak MCP to it over stdio.
// Usage: node clients/mcp-remote.mjs MCP_URL WAIT_SECONDS
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stdioSession } from './stdio-session.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [mcpUrl, waitSeconds] = [process.argv[2], Number(process.argv[3] ?? 0)];
const port = 31690;
const env = {
  ...process.env,
  BROWSER: path.join(here, '../lib/open-url.mjs'),
  MOP_DELIVER_PREFIX: `http://127.0.0.1:${port}/`,
  MCP_REMOTE_CONFIG_DIR: mkdtempSync(path.join(os.tmpdir(), 'mcp-remote-')),
};
const bin = path.join(here, '../node_modules/mcp-remote/dist/proxy.js');
const s = stdioSession(process.execPath, [bin, mcpUrl, String(port), '--host', '127.0.0.1', '--transport', 'http-only'], env);
try {
  await s.request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'interop-mcp-remote', version: '1' } }, 90_000);
  s.notify('notifications/initialized', {});
  const tools = await s.request('tools/list', {});
  if (!tools.tools.some((t) => t.name === 'whoami')) throw new Error('whoami not listed');
  const first = (await s.request('tools/call', { name: 'whoami', arguments: {} })).content[0].text;
  if (!first.includes('johndoe')) throw new Error(`unexpected caller: ${first}`);
  await new Promise((r) => setTimeout(r, waitSeconds * 1000));
  const second = (await s.request('tools/call', { name: 'whoami', arguments: {} })).content[0].text;
  if (!second.includes('johndoe')) throw new Error(`after refresh: ${second}`);
  console.log(`ok: ${first}; still working after ${waitSeconds}s`);
} finally {
  s.close();
}
process.exit(0);
