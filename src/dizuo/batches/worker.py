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
import contextlib
import os
import random
import sys
from typing import Any

import aiohttp
import orjson

__all__ = ["main", "run"]

PAGE = 1024  # lines a page; the first is FIRST_PAGE, so that the first line goes out at once
FIRST_PAGE = 64
CONCURRENCY = 16
TRIES = 6  # sends of one line that got a refusal worth retrying
AWAY_SECONDS = 600.0  # how long the platform may be unreachable before the worker gives up
RETRY = frozenset({408, 429, 500, 502, 503, 504})


class Away(Exception):
    """The platform did not answer for too long."""


# What stops a worker: the platform away, a route's refusal, a broken answer.
FATAL = (Away, RuntimeError, aiohttp.ClientError, ValueError, KeyError)


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
            if headers is not None:  # it may have reached the gateway: look for its answer from now on
                headers.pop("x-dizuo-batch-fresh", None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _pause(headers: dict[str, str], delay: float) -> float:
    """How long to wait before trying again: the answer's ``Retry-After``, else *delay*; jittered."""
    wait = headers.get("Retry-After") or headers.get("retry-after")
    pause = float(wait) if wait and wait.replace(".", "", 1).isdigit() else delay
    return min(pause, 60.0) * (1 + random.random() / 4)


async def _route(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> bytes:
    """A call of the platform's batch routes: a refusal worth retrying (the platform busy or
    restarting) is tried again for up to :data:`AWAY_SECONDS`; any other is fatal."""
    deadline = asyncio.get_running_loop().time() + AWAY_SECONDS
    delay = 0.5
    while True:
        status, raw, headers = await _request(session, method, url, body)
        if status == 200:
            return raw
        if status not in RETRY or asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"{method} {url}: {status}: {raw[:500]!r}")
        pause = _pause(headers, delay)
        print(
            f"{method} {url}：{status}，{pause:.1f} 秒后重试 / {status}, trying again in {pause:.1f} s",
            flush=True,
        )
        await asyncio.sleep(pause)
        delay = min(delay * 2, 10.0)


async def _send(session: aiohttp.ClientSession, url: str, item: dict[str, Any]) -> tuple[int, bytes]:
    headers = {"x-dizuo-batch-line": str(item["line"])}
    if item.get("fresh"):  # never sent before: the gateway need not look for a stored answer
        headers["x-dizuo-batch-fresh"] = "1"
    delay = 1.0
    for attempt in range(TRIES):
        status, body, answer_headers = await _request(session, "POST", url, item["body"], headers)
        headers.pop("x-dizuo-batch-fresh", None)  # sent once: it may have an answer now
        if status < 300 or status not in RETRY or attempt == TRIES - 1:
            return status, body
        pause = _pause(answer_headers, delay)
        if status != 429:  # a rate limit is the expected pace of a batch; anything else is news
            print(f"第 {item['line']} 行：{status}，{pause:.1f} 秒后重试 / line {item['line']}: {status}, trying again in {pause:.1f} s", flush=True)  # fmt: skip
        await asyncio.sleep(pause)
        delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


class _Worker:
    """One worker's session with the platform: pages of lines, sending, refusals written back."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, job_id: str, concurrency: int, page: int
    ) -> None:
        self.session = session
        self.base = base
        self.routes = f"{base}/compute/jobs/{job_id}/batch"
        self.concurrency = concurrency
        self.page = page
        self.sent = 0
        self.refused: list[dict[str, Any]] = []

    async def fetch(self, after: int) -> dict[str, Any]:
        limit = FIRST_PAGE if after < 0 else self.page
        url = f"{self.routes}/lines?limit={min(limit, self.page)}&after={after}"
        return dict(orjson.loads(await _route(self.session, "GET", url)))

    async def flush(self) -> None:
        if self.refused:
            body = {"data": self.refused[:]}
            del self.refused[:]
            await _route(self.session, "POST", f"{self.routes}/refusals", body)

    async def sweep(self) -> int:
        """Send the lines left, pages fetched ahead while lines are in flight; how many were taken.

        When one part fails (the platform away too long, a refusal of its routes), no further line
        is sent, and the calls under way are seen to their end before the error is raised: a worker
        that stops leaves no call of its own under way (the next job would send those lines again).
        """
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=self.page * 2)
        taken = 0
        errors: list[BaseException] = []

        async def produce() -> None:
            nonlocal taken
            after = -1
            try:
                while not errors:
                    answer = await self.fetch(after)
                    items = answer["data"]
                    if not items:
                        return
                    url = self.base + str(answer["endpoint"]).removeprefix("/v1")
                    for item in items:
                        if errors:
                            return
                        await queue.put({**item, "url": url})
                    taken += len(items)
                    after = int(items[-1]["line"])
                    waiting = answer["pending"]
                    print(
                        f"已取 {taken} 行，待答 {waiting} 行 / {taken} lines taken, {waiting} waiting",
                        flush=True,
                    )
            except FATAL as exc:
                errors.append(exc)
            finally:
                for _ in range(self.concurrency):
                    await queue.put(None)

        async def consume() -> None:
            while (item := await queue.get()) is not None:
                if errors:
                    continue  # drained, not sent
                try:
                    await self.answer(item)
                except FATAL as exc:
                    errors.append(exc)

        await asyncio.gather(produce(), *(consume() for _ in range(self.concurrency)))
        if errors:
            with contextlib.suppress(*FATAL):
                await self.flush()  # what it has, if the platform takes it
            raise errors[0]
        await self.flush()
        return taken

    async def answer(self, item: dict[str, Any]) -> None:
        """Send one line; a refusal is kept to be written back with others."""
        status, body = await _send(self.session, item["url"], item)
        self.sent += 1
        if status >= 300:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = {"error": {"message": body[:500].decode(errors="replace"), "code": None}}
            self.refused.append({"line": item["line"], "status_code": status, "body": parsed})
            if len(self.refused) >= 64:
                await self.flush()


async def run(
    base_url: str, api_key: str, job_id: str, concurrency: int = CONCURRENCY, page: int = PAGE
) -> int:
    """Send every line left; how many were sent. A sweep that took lines is followed by another, for
    any line it could not finish."""
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=900)) as session:
        worker = _Worker(session, base_url.rstrip("/"), job_id, concurrency, page)
        while await worker.sweep():
            pass
        return worker.sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dizuo.batches.worker")
    parser.add_argument("--job", required=True, help="The compute job's id.")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args(argv)
    try:
        sent = asyncio.run(
            run(os.environ["DIZUO_BASE_URL"], os.environ["DIZUO_API_KEY"], args.job, args.concurrency)
        )
    except FATAL as exc:
        print(f"批处理中断 / the batch stopped: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"批处理发送完毕（{sent} 行）/ the batch's lines are sent ({sent})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
