// The upstream MCP server, built with the official TypeScript SDK. It accepts only
// tokens the identity provider signed (checked against its JWKS), has a tool that
// reports who called it and one that keeps notes (which the proxy guards with a scope of
// its own: `stats.notes` shows every call that reached this server).
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { z } from 'zod';

export async function startUpstream({ issuer }) {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const stats = { calls: 0, rejected: 0, notes: [] };
  const server = http.createServer(async (req, res) => {
    const auth = req.headers.authorization ?? '';
    let subject;
    try {
      const { payload } = await jwtVerify(auth.replace(/^Bearer /, ''), jwks, { issuer });
      subject = payload.sub;
    } catch {
      stats.rejected += 1;
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      return;
    }
    stats.calls += 1;
    const mcp = new McpServer({ name: 'interop-upstream', version: '1.0.0' });
    mcp.tool('whoami', 'Tells who called, as the identity provider signed it', async () => ({
      content: [{ type: 'text', text: `upstream user: ${subject}` }],
    }));
    mcp.tool('write_note', 'Keeps a note', { text: z.string() }, async ({ text }) => {
      stats.notes.push(text);
      return { content: [{ type: 'text', text: `note ${stats.notes.length} kept for ${subject}` }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => { transport.close(); mcp.close(); });
    await mcp.connect(transport);
    let body = '';
    for await (const chunk of req) body += chunk;
    await transport.handleRequest(req, res, body ? JSON.parse(body) : undefined);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/mcp`, stats, stop: () => server.close() };
}
