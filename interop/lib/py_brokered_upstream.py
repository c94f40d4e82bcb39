"""The brokered scenario's second MCP upstream: a Python-SDK FastMCP server that is its own
authorization server, built with the SDK's auth support (its metadata, dynamic registration,
authorize, token and revocation handlers; only the storage below is ours, in memory, and the
user approves at once). The proxy reaches it with `upstream_auth = "oauth"` and no client_id,
so it registers dynamically (RFC 7591). `GET /stats` says what the authorization server saw.

Usage: python lib/py_brokered_upstream.py PORT TOKEN_TTL_SECONDS"""

import secrets
import sys
import time

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.server import Context
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.requests import Request
from starlette.responses import JSONResponse

PORT = int(sys.argv[1])
TTL = int(sys.argv[2])
BASE = f"http://127.0.0.1:{PORT}"
STATS = {"registrations": 0, "code_exchanges": 0, "refreshes": 0, "revocations": 0, "resources": [], "calls": 0}


class MemoryProvider:
    def __init__(self) -> None:
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.access: dict[str, AccessToken] = {}

    async def get_client(self, client_id: str):
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        STATS["registrations"] += 1
        self.clients[client_info.client_id] = client_info

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        code = secrets.token_urlsafe(24)
        STATS["resources"].append(params.resource)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or [],
            expires_at=time.time() + 300,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject="ada",
        )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(self, client, authorization_code: str):
        return self.codes.get(authorization_code)

    def _issue(self, client_id: str, scopes: list[str], resource, subject) -> OAuthToken:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = AccessToken(
            token=access, client_id=client_id, scopes=scopes, expires_at=int(time.time()) + TTL,
            resource=resource, subject=subject,
        )
        self.refresh[refresh] = RefreshToken(token=refresh, client_id=client_id, scopes=scopes, resource=resource, subject=subject)
        return OAuthToken(access_token=access, token_type="Bearer", expires_in=TTL, refresh_token=refresh, scope=" ".join(scopes))

    async def exchange_authorization_code(self, client, authorization_code: AuthorizationCode) -> OAuthToken:
        STATS["code_exchanges"] += 1
        self.codes.pop(authorization_code.code, None)
        a = authorization_code
        return self._issue(client.client_id, a.scopes, a.resource, a.subject)

    async def load_refresh_token(self, client, refresh_token: str):
        token = self.refresh.get(refresh_token)
        return token if token and token.client_id == client.client_id else None

    async def exchange_refresh_token(self, client, refresh_token: RefreshToken, scopes: list[str]) -> OAuthToken:
        STATS["refreshes"] += 1
        self.refresh.pop(refresh_token.token, None)
        r = refresh_token
        return self._issue(client.client_id, scopes or r.scopes, r.resource, r.subject)

    async def load_access_token(self, token: str):
        found = self.access.get(token)
        if found is None or (found.expires_at is not None and found.expires_at < time.time()):
            return None
        return found

    async def revoke_token(self, token) -> None:
        STATS["revocations"] += 1
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)


mcp = FastMCP(
    "interop-brokered-dcr-upstream",
    host="127.0.0.1",
    port=PORT,
    auth_server_provider=MemoryProvider(),
    auth=AuthSettings(
        issuer_url=BASE,
        resource_server_url=f"{BASE}/mcp",
        client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=["files:read"], default_scopes=["files:read"]),
        revocation_options=RevocationOptions(enabled=True),
        required_scopes=["files:read"],
    ),
)


@mcp.tool()
async def whoami(ctx: Context) -> str:
    """Tells which client and user the token this server issued belongs to."""
    STATS["calls"] += 1
    token = get_access_token()
    return f"{token.subject} via {token.client_id}" if token else "nobody"


@mcp.custom_route("/stats", methods=["GET"])
async def stats(_request: Request) -> JSONResponse:
    return JSONResponse(STATS)


if __name__ == "__main__":
    mcp.run(transport="streamable-http")
