"""A batch's worker (``dizuo.batches.worker``) against a platform that misbehaves, served over a real
socket: a busy platform is waited for, and a worker that must stop leaves no call of its own under way
(the next job of the batch would send those lines again)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from dizuo.batches import worker

JOB = "job_1"


@dataclass
class Platform:
    """The routes a worker calls, with what it saw: pages asked, calls per line, calls under way."""

    pages: list[web.Response]
    lines: dict[int, int] = field(default_factory=dict)
    under_way: int = 0
    refusals: list[dict[str, object]] = field(default_factory=list)
    url: str = ""

    async def page(self, request: web.Request) -> web.Response:
        assert request.headers["authorization"] == "Bearer sk-job"
        return self.pages.pop(0) if self.pages else web.json_response(_page([]))

    async def chat(self, request: web.Request) -> web.Response:
        n = int(request.headers["x-dizuo-batch-line"])
        self.lines[n] = self.lines.get(n, 0) + 1
        self.under_way += 1
        try:
            await asyncio.sleep(0.3)
        finally:
            self.under_way -= 1
        if n % 2:
            return web.json_response({"error": {"message": "不收", "code": "rejected"}}, status=400)
        return web.json_response({"choices": [{"message": {"content": f"答 {n}"}}]})

    async def refused(self, request: web.Request) -> web.Response:
        self.refusals.extend((await request.json())["data"])
        return web.json_response({"written": 1})


def _page(lines: list[int]) -> dict[str, object]:
    data = [{"line": n, "custom_id": f"c{n}", "body": {"model": "m"}, "fresh": True} for n in lines]
    return {"object": "list", "endpoint": "/v1/chat/completions", "data": data, "pending": len(lines)}


@pytest.fixture
async def platform(unused_tcp_port: int) -> AsyncIterator[Platform]:
    site = Platform(pages=[])
    app = web.Application()
    app.router.add_get(f"/v1/compute/jobs/{JOB}/batch/lines", site.page)
    app.router.add_post(f"/v1/compute/jobs/{JOB}/batch/refusals", site.refused)
    app.router.add_post("/v1/chat/completions", site.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    site.url = f"http://127.0.0.1:{unused_tcp_port}/v1"
    try:
        yield site
    finally:
        await runner.cleanup()


async def test_a_busy_platform_is_waited_for_and_each_line_is_sent_once(platform: Platform) -> None:
    busy = web.json_response({"error": {"message": "busy"}}, status=503, headers={"Retry-After": "0.1"})
    platform.pages = [busy, web.json_response(_page(list(range(6))))]
    sent = await worker.run(platform.url, "sk-job", JOB, concurrency=4)
    assert sent == 6 and platform.lines == dict.fromkeys(range(6), 1)
    assert sorted(item["line"] for item in platform.refusals) == [1, 3, 5]  # written back, with their status
    assert {item["status_code"] for item in platform.refusals} == {400}


async def test_a_worker_that_must_stop_sees_its_calls_under_way_to_their_end(platform: Platform) -> None:
    refused = web.json_response({"error": {"message": "not this job's"}}, status=403)
    platform.pages = [web.json_response(_page(list(range(40)))), refused]
    with pytest.raises(RuntimeError, match="403"):
        await worker.run(platform.url, "sk-job", JOB, concurrency=8)
    # Nothing left under way when it stopped; lines queued behind the failure were not sent.
    assert platform.under_way == 0 and 0 < len(platform.lines) <= 8
    assert set(platform.lines.values()) == {1}
