"""What the Python interop clients share, whichever line of the SDK they use: token storage in
memory (the SDKs' TokenStorage is a protocol, so no SDK type is needed here) and the user,
played by the shared headless browser (consent, then the provider's login)."""

import asyncio
from urllib.parse import parse_qs, urlparse


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens = None
        self.client = None
        self.token_saves = 0

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens
        self.token_saves += 1

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info) -> None:
        self.client = client_info


async def play_user(authorization_url: str, redirect: str) -> dict[str, str | None]:
    """Approves `authorization_url` as the user; the parameters the client's redirect got."""
    proc = await asyncio.create_subprocess_exec(
        "node", "lib/browser.mjs", authorization_url, redirect,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"browser: {err.decode()}")
    query = parse_qs(urlparse(out.decode().strip()).query)
    return {k: query.get(k, [None])[0] for k in ("code", "state", "iss")}
