"""The official Python SDK (`mcp`) as an MCP client, with its OAuthClientProvider:
discovery, dynamic registration, login through the consent page and the upstream
provider, tools/list and tools/call; then, after every token has expired, another call.

Usage: python clients/py-sdk.py MCP_URL WAIT_SECONDS
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from py_user import MemoryStorage, play_user  # noqa: E402

from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.auth import OAuthClientMetadata

REDIRECT = "http://127.0.0.1:31683/callback"


async def main(url: str, wait: float) -> None:
    pending: dict[str, str] = {}

    async def redirect_handler(authorization_url: str) -> None:
        pending["url"] = authorization_url

    async def callback_handler() -> tuple[str, str | None]:
        back = await play_user(pending["url"], REDIRECT)
        return back["code"], back["state"]

    storage = MemoryStorage()
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
