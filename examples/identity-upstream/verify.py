"""A minimal MCP upstream behind mcp-oauth-proxy in `upstream_auth = "identity"` mode, in
Python with PyJWT: every request must carry the proxy's identity assertion, verified
against the proxy's published keys (signature, `iss`, `aud`, `exp`) before anything else
happens. Your MCP server's handler goes where `answer` is.

    MOP_PUBLIC_URL=https://mcp.example.com MOP_AUDIENCE=http://127.0.0.1:9000/mcp \\
        python verify.py serve 9000     # answers each request with the verified identity
    python verify.py check <jwt>        # prints the identity in one assertion

Needs `pip install "PyJWT[crypto]"` (EdDSA needs `cryptography`).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt


class IdentityVerifier:
    """Verifies assertions that `public_url` (the proxy's `public_url`) signs for
    `audience` (`[servers.identity] audience`, by default the upstream URL). The key set
    is cached, and fetched again when an unknown `kid` appears (after a key rotation)."""

    def __init__(self, public_url: str, audience: str):
        self.issuer = public_url
        self.audience = audience
        self.keys = jwt.PyJWKClient(f"{public_url}/.well-known/jwks.json", cache_keys=True, lifespan=300)

    def verify(self, token: str) -> dict:
        key = self.keys.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["EdDSA"],
            issuer=self.issuer,
            audience=self.audience,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
        # `email` is present only when the identity provider verified it.
        return {
            "sub": claims["sub"],
            "email": claims.get("email"),
            "name": claims.get("name"),
            "groups": claims.get("groups", []),
            "client_id": claims.get("client_id"),
            "scope": claims.get("scope"),
        }


def assertion_of(headers, header: str = "authorization") -> str:
    """The assertion in a request: `Authorization: Bearer <jwt>`, or the bare JWT in the
    header `[servers.identity] header` names."""
    value = headers.get(header, "")
    if header.lower() == "authorization":
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""
    return value


def main(argv: list) -> int:
    verifier = IdentityVerifier(os.environ["MOP_PUBLIC_URL"], os.environ["MOP_AUDIENCE"])
    if len(argv) == 2 and argv[0] == "check":
        print(json.dumps(verifier.verify(argv[1])))
        return 0
    if not argv or argv[0] != "serve":
        print("usage: python verify.py serve PORT | check JWT", file=sys.stderr)
        return 2
    header = os.environ.get("MOP_ASSERTION_HEADER", "authorization")

    class Upstream(BaseHTTPRequestHandler):
        def handle_request(self):
            try:
                identity = verifier.verify(assertion_of(self.headers, header))
            except jwt.PyJWTError:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
                self.end_headers()
                return
            self.answer(identity)

        def answer(self, identity):
            """Your MCP server's handler goes here; this one says who called."""
            body = json.dumps({"identity": identity}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = handle_request

    port = int(argv[1]) if len(argv) > 1 else 9000
    ThreadingHTTPServer(("127.0.0.1", port), Upstream).serve_forever()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except jwt.PyJWTError as e:
        print(f"refused: {e}", file=sys.stderr)
        sys.exit(1)
