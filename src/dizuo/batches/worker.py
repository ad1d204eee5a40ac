"""A batch's worker: what runs on the pool's node (``python -m dizuo.batches.worker --job ID``).

It asks the platform (``DIZUO_BASE_URL``, with the key made for the job alone, ``DIZUO_API_KEY``) for
lines not answered yet, a page at a time, and sends each to the gateway's endpoint with
``X-Dizuo-Batch-Line``, a bounded number at a time. A refusal worth trying again (429, 5xx, the
platform away while it restarts) is tried again with backoff, honouring ``Retry-After``; a final
refusal is written back onto its line. The gateway writes every answer it charged for onto the line
itself, so a worker that stops at any moment loses nothing: the next one asks only for what is left,
and a line asked twice is answered from what was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from typing import Any

import aiohttp
import orjson

__all__ = ["main", "run"]

PAGE = 256
CONCURRENCY = 16
TRIES = 6  # sends of one line that got a refusal worth retrying
AWAY_SECONDS = 600.0  # how long the platform may be unreachable before the worker gives up
RETRY = frozenset({408, 429, 500, 502, 503, 504})


class Away(Exception):
    """The platform did not answer for too long."""


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """One request; connection failures are retried with backoff for up to :data:`AWAY_SECONDS`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AWAY_SECONDS
    delay = 0.5
    data = orjson.dumps(body) if body is not None else None
    while True:
        try:
            async with session.request(method, url, data=data, headers=headers) as response:
                return response.status, await response.read(), dict(response.headers)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            if loop.time() > deadline:
                raise Away(f"{url}: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _send(session: aiohttp.ClientSession, url: str, item: dict[str, Any]) -> tuple[int, bytes]:
    headers = {"x-dizuo-batch-line": str(item["line"])}
    delay = 1.0
    for attempt in range(TRIES):
        status, body, answer_headers = await _request(session, "POST", url, item["body"], headers)
        if status < 300 or status not in RETRY or attempt == TRIES - 1:
            return status, body
        wait = answer_headers.get("Retry-After") or answer_headers.get("retry-after")
        pause = float(wait) if wait and wait.replace(".", "", 1).isdigit() else delay
        await asyncio.sleep(min(pause, 60.0) * (1 + random.random() / 4))
        delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


async def run(
    base_url: str, api_key: str, job_id: str, concurrency: int = CONCURRENCY, page: int = PAGE
) -> int:
    """Send every line left; how many were sent."""
    base = base_url.rstrip("/")
    routes = f"{base}/compute/jobs/{job_id}/batch"
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    sent = 0
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=900)) as session:
        while True:
            status, raw, _ = await _request(session, "GET", f"{routes}/lines?limit={page}")
            if status != 200:
                raise RuntimeError(f"{status}: {raw[:500]!r}")
            answer = orjson.loads(raw)
            items = answer["data"]
            if not items:
                return sent
            url = base + str(answer["endpoint"]).removeprefix("/v1")
            refused: list[dict[str, Any]] = []

            async def one(
                item: dict[str, Any], url: str = url, refused: list[dict[str, Any]] = refused
            ) -> None:
                async with gate:
                    status, body = await _send(session, url, item)
                if status >= 300:
                    try:
                        parsed = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        parsed = {"error": {"message": body[:500].decode(errors="replace"), "code": None}}
                    refused.append({"line": item["line"], "status_code": status, "body": parsed})

            await asyncio.gather(*(one(item) for item in items))
            if refused:
                status, raw, _ = await _request(session, "POST", f"{routes}/refusals", {"data": refused})
                if status != 200:
                    raise RuntimeError(f"{status}: {raw[:500]!r}")
            sent += len(items)
            left = max(int(answer["pending"]) - len(items), 0)
            print(f"已发送 {sent} 行，余 {left} 行 / {sent} lines sent, {left} left", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dizuo.batches.worker")
    parser.add_argument("--job", required=True, help="The compute job's id.")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args(argv)
    try:
        sent = asyncio.run(
            run(os.environ["DIZUO_BASE_URL"], os.environ["DIZUO_API_KEY"], args.job, args.concurrency)
        )
    except (Away, RuntimeError, KeyError) as exc:
        print(f"批处理中断 / the batch stopped: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"批处理发送完毕（{sent} 行）/ the batch's lines are sent ({sent})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
