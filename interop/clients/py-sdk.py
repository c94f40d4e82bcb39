"""The official Python SDK (`mcp`) as an MCP client, with its OAuthClientProvider:
discovery, dynamic registration, login through the consent page and the upstream
provider, tools/list and tools/call; then, after every token has expired, another call.

Usage: python clients/py-sdk.py MCP_URL WAIT_SECONDS
"""

import asyncio
import sys
from urllib.parse import parse_qs, urlparse

from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://127.0.0.1:31683/callback"


class Memory(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.token_saves = 0

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.token_saves += 1

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def main(url: str, wait: float) -> None:
    pending: dict[str, str] = {}

    async def redirect_handler(authorization_url: str) -> None:
        pending["url"] = authorization_url

    async def callback_handler() -> tuple[str, str | None]:
        # The shared headless browser plays the user: consent, then the provider's login.
        proc = await asyncio.create_subprocess_exec(
            "node", "lib/browser.mjs", pending["url"], REDIRECT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"browser: {err.decode()}")
        query = parse_qs(urlparse(out.decode().strip()).query)
        return query["code"][0], query.get("state", [None])[0]

    storage = Memory()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="interop: Python SDK",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def whoami(list_tools: bool) -> str:
        async with streamablehttp_client(url, auth=auth) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                if list_tools:
                    tools = await session.list_tools()
                    if not any(t.name == "whoami" for t in tools.tools):
                        raise RuntimeError("whoami not listed")
                result = await session.call_tool("whoami", {})
                return result.content[0].text

    first = await whoami(True)
    if "johndoe" not in first:
        raise RuntimeError(f"unexpected caller: {first}")
    saves = storage.token_saves
    await asyncio.sleep(wait)
    second = await whoami(False)
    if "johndoe" not in second:
        raise RuntimeError(f"after refresh: {second}")
    if storage.token_saves <= saves:
        raise RuntimeError("the client never refreshed its token")
    print(f"ok: {first}; refreshed after {wait:.0f}s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
