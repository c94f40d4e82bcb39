"""The official Python SDK's 2.x line (`mcp` 2, which speaks the 2026-07-28 revision) as an
MCP client, with its OAuthClientProvider, against a server whose `write_note` tool needs
`notes:write`: discovery (the SDK probes `server/discover` first, then falls back to the
handshake the upstream speaks), dynamic registration with `application_type`, login for
what the 401 names (plus `offline_access`, which the authorization server's metadata
lists), tools/list and tools/call; then `write_note`, which the proxy answers 403
insufficient_scope and the SDK steps up by itself, asking for the union (SEP-2350); then,
after every token has expired, another call.

Usage: python clients/py-sdk2.py MCP_URL WAIT_SECONDS
"""

import asyncio
import os
import sys
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from py_user import MemoryStorage, play_user  # noqa: E402

import httpx2
from mcp.client import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

REDIRECT = "http://127.0.0.1:31685/callback"
NOTE = "python-sdk 2.x step-up"


async def main(url: str, wait: float) -> None:
    asked: list[str] = []
    pending: dict[str, str] = {}

    async def redirect_handler(authorization_url: str) -> None:
        pending["url"] = authorization_url
        asked.append(parse_qs(urlparse(authorization_url).query).get("scope", [""])[0])

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(**await play_user(pending["url"], REDIRECT))

    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="interop: Python SDK 2.x",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    def client() -> Client:
        return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(auth=auth)))

    async with client() as c:
        tools = await c.list_tools()
        if not {"whoami", "write_note"} <= {t.name for t in tools.tools}:
            raise RuntimeError(f"tools listed: {[t.name for t in tools.tools]}")
        who = (await c.call_tool("whoami", {})).content[0].text
        if "johndoe" not in who:
            raise RuntimeError(f"unexpected caller: {who}")
        if storage.tokens is None or set((storage.tokens.scope or "").split()) != {"tools:read", "offline_access"}:
            raise RuntimeError(f"the first login asked for {asked}, granted {storage.tokens}")
        kept = (await c.call_tool("write_note", {"text": NOTE})).content[0].text
        if "kept for johndoe" not in kept:
            raise RuntimeError(f"write_note: {kept}")
    granted = set((storage.tokens.scope or "").split())
    if len(asked) != 2 or granted != {"tools:read", "offline_access", "notes:write"}:
        raise RuntimeError(f"the step-up asked for {asked[1:]}, granted {granted}")

    saves = storage.token_saves
    await asyncio.sleep(wait)
    async with client() as c:
        again = (await c.call_tool("whoami", {})).content[0].text
    if "johndoe" not in again:
        raise RuntimeError(f"after refresh: {again}")
    if storage.token_saves <= saves:
        raise RuntimeError("the client never refreshed its token")
    print(f"ok: asked {asked[0]!r}, stepped up asking {asked[1]!r}; {kept}; refreshed after {wait:.0f}s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
