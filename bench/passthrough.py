"""A bare pass-through proxy of a few dozen lines: the ceiling for Python on this machine.

It forwards the body to one upstream and streams the answer back, with no auth, no parsing and
no error handling, on aiohttp with uvloop, like the gateway's own stack.
"""

from __future__ import annotations

import argparse

import aiohttp
import uvloop
from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9000/json/v1")
    args = parser.parse_args()
    session: aiohttp.ClientSession | None = None

    async def forward(request: web.Request) -> web.StreamResponse:
        nonlocal session
        if session is None:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        body = await request.read()
        async with session.post(
            args.upstream + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status, headers={"Content-Type": upstream.content_type}
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", forward)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
