"""The HTTP server's own cost: CPU per request of uvicorn (httptools, uvloop: what `dizuo serve`
runs) serving a fixed whole answer from a bare ASGI app, against a bare asyncio protocol on the
same parser (httptools) and loop writing the same answer, with nothing else.

The difference bounds what replacing the server could save the gateway per call; compare it with
the gateway's CPU per call (`bench/gateway.py`). Targets alternate round by round.

    .venv/bin/python bench/server.py [--seconds 8] [--rounds 2]

Needs wrk (a Debian package).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from gateway import cpu_seconds, free_port, wait_port  # noqa: E402  (the bench folder, not a package)

# A chat completion's size, with the headers the gateway's answers carry.
ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","model":"bench-json","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"' + "你好，世界".encode() * 20 + b'"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":40,"total_tokens":52}}'
)
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ANSWER)).encode()),
    (b"x-request-id", b"req_01a2498fa8cd765bb0bc2e3cdb79f997"),
    (b"x-dizuo-deployment", b"bench-json"),
]

SERVER = """
import asyncio, sys
import httptools, uvloop
sys.path.insert(0, {bench!r})
from server import ANSWER, HEADERS

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()
    await send({{"type": "http.response.start", "status": 200, "headers": HEADERS}})
    await send({{"type": "http.response.body", "body": ANSWER}})

WHOLE = b"HTTP/1.1 200 OK\\r\\n" + b"".join(n + b": " + v + b"\\r\\n" for n, v in HEADERS) + b"\\r\\n" + ANSWER

class Bare(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_message_complete(self):
        # A task per request, as an ASGI server runs the app in one.
        asyncio.get_running_loop().create_task(self.answer())

    async def answer(self):
        self.transport.write(WHOLE)

port = int(sys.argv[2])
if sys.argv[1] == "uvicorn":
    import uvicorn
    uvicorn.run(app, port=port, loop="uvloop", http="httptools", access_log=False, log_level="warning")
else:
    async def main():
        server = await asyncio.get_running_loop().create_server(Bare, "127.0.0.1", port)
        await server.serve_forever()
    uvloop.run(main())
"""


def check(port: int) -> None:
    """One request: stop the run unless it is a 200 with the whole answer."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=b"{}")
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
        assert response.status == 200 and body == ANSWER, (response.status, body[:80])


def load(port: int, seconds: int) -> tuple[float, float]:
    """Requests a second and requests made, 64 connections."""
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{seconds}s", "-s", str(BENCH / "post.lua"), f"http://127.0.0.1:{port}/"],
        env={**os.environ, "BENCH_BODY": '{"model":"m","messages":[]}', "BENCH_KEY": "none"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps, float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    code = SERVER.format(bench=str(BENCH))
    servers = {}
    for name in ("uvicorn", "bare"):
        port = free_port()
        servers[name] = (subprocess.Popen([sys.executable, "-c", code, name, str(port)]), port)
    try:
        for _, port in servers.values():
            wait_port(port)
            check(port)
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (process, port) in servers.items():
                load(port, 2)  # warm
                before = cpu_seconds(process.pid)
                rps, requests = load(port, args.seconds)
                used = cpu_seconds(process.pid) - before
                figures[name].append((rps, used / requests * 1000))
                check(port)
                time.sleep(0.5)
        best = {name: min(ms for _, ms in rounds) for name, rounds in figures.items()}
        for name, rounds in figures.items():
            rates = ", ".join(f"{rps:,.0f}" for rps, _ in rounds)
            print(f"{name:8s} CPU per request {best[name]:.4f} ms (best of {len(rounds)}); req/s {rates}")
        print(f"uvicorn ÷ bare, CPU per request: {best['uvicorn'] / best['bare']:.2f}×")
        print(
            f"what the server costs beyond the bare protocol: {best['uvicorn'] - best['bare']:.4f} ms a request"
        )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
