// A minimal MCP upstream behind mcp-oauth-proxy in `upstream_auth = "identity"` mode, in
// TypeScript with `jose`: every request must carry the proxy's identity assertion, which
// is verified against the proxy's published keys (signature, `iss`, `aud`, `exp`) before
// anything else happens. Your MCP server's handler goes where `handle` is.
//
//   MOP_PUBLIC_URL=https://mcp.example.com MOP_AUDIENCE=http://127.0.0.1:9000/mcp \
//     node verify.mjs serve 9000        # answers each request with the verified identity
//   node verify.mjs check <jwt>         # prints the identity in one assertion
//
// Needs `npm install jose`.
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { createRemoteJWKSet, jwtVerify } from 'jose';

/// A verifier for assertions `publicUrl` (the proxy's `public_url`) signs for
/// `audience` (`[servers.identity] audience`, by default the upstream URL). The key set
/// is fetched once and again when an unknown `kid` appears (after a key rotation).
export function identityVerifier({ publicUrl, audience }) {
  const jwks = createRemoteJWKSet(new URL(`${publicUrl}/.well-known/jwks.json`));
  return async (jwt) => {
    const { payload } = await jwtVerify(jwt, jwks, { issuer: publicUrl, audience, algorithms: ['EdDSA'] });
    // `email` is present only when the identity provider verified it.
    const { sub, email, name, groups, client_id: clientId, scope } = payload;
    return { sub, email, name, groups: groups ?? [], clientId, scope };
  };
}

/// The assertion in a request: `Authorization: Bearer <jwt>`, or the bare JWT in the
/// header `[servers.identity] header` names.
export function assertionOf(req, header = 'authorization') {
  const value = req.headers[header.toLowerCase()] ?? '';
  return header.toLowerCase() === 'authorization' ? value.replace(/^Bearer\s+/i, '') : value;
}

async function main([command, arg]) {
  const verify = identityVerifier({ publicUrl: process.env.MOP_PUBLIC_URL, audience: process.env.MOP_AUDIENCE });
  if (command === 'check') {
    console.log(JSON.stringify(await verify(arg)));
    return;
  }
  if (command !== 'serve') throw new Error('usage: node verify.mjs serve PORT | check JWT');
  const handle = (identity, req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ identity }));
  };
  http.createServer(async (req, res) => {
    let identity;
    try {
      identity = await verify(assertionOf(req, process.env.MOP_ASSERTION_HEADER));
    } catch (e) {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      return;
    }
    handle(identity, req, res);
  }).listen(Number(arg ?? 9000), '127.0.0.1');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e) => { console.error(`refused: ${e.message}`); process.exit(1); });
}
