// Drives an MCP client that is itself a stdio server (mcp-remote): newline-delimited
// JSON-RPC on its stdin and stdout.
import { spawn } from 'node:child_process';

export function stdioSession(cmd, args, env) {
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let buffer = '';
  let log = '';
  const waiting = new Map();
  child.stdout.on('data', (d) => {
    buffer += d;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i).trim();
      buffer = buffer.slice(i + 1);
      if (!line) continue;
      try {
        const msg = JSON.parse(line);
        if (msg.id !== undefined && waiting.has(msg.id)) {
          waiting.get(msg.id)(msg);
          waiting.delete(msg.id);
        }
      } catch { /* not JSON-RPC */ }
    }
  });
  child.stderr.on('data', (d) => (log += d));
  let next = 1;
  return {
    log: () => log,
    notify(method, params) {
      child.stdin.write(JSON.stringify({ jsonrpc: '2.0', method, params }) + '\n');
    },
    request(method, params, timeoutMs = 60_000) {
      const id = next++;
      child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${method} timed out; log: ${log.slice(-1500)}`)), timeoutMs);
        waiting.set(id, (msg) => {
          clearTimeout(t);
          msg.error ? reject(new Error(`${method}: ${JSON.stringify(msg.error)}`)) : resolve(msg.result);
        });
      });
    },
    close() { child.kill(); },
  };
}
