"""The gateway benchmark times answers, never refusals: its dizuo target, set up as the benchmark
sets it up (a funded organization, a key with limits, the guard on), answers 200 with a completion,
streamed or not. The benchmark once timed 402s for a whole release."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web

from tests.support.servers import free_port

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gateway.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gateway", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gateway"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench() -> ModuleType:
    return load_bench()


@pytest.fixture
def upstream(bench: ModuleType) -> Iterator[str]:
    """What the benchmark's nginx serves: a fixed completion, and a fixed event stream."""
    import asyncio
    import threading

    sse = bench.SSE.replace("\\n", "\n")  # written for nginx's config, where \n is an escape

    async def json_answer(request: web.Request) -> web.Response:
        return web.Response(text=bench.COMPLETION, content_type="application/json")

    async def sse_answer(request: web.Request) -> web.Response:
        return web.Response(text=sse, content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/json/v1/chat/completions", json_answer)
    app.router.add_post("/sse/v1/chat/completions", sse_answer)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_the_benchmark_s_dizuo_target_answers_calls(bench: ModuleType, upstream: str, tmp_path: Path) -> None:
    stack = bench.Stack(tmp_path)
    try:
        port, _, key = stack.dizuo(upstream, production=True)
        assert key.startswith("dz-")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        target = bench.Target("dizuo", url, key=key, stream_url=url)
        bench.check(target)  # exits, naming the status, unless the answer is a 200 completion
        bench.check(target, stream=True)
        refused = bench.Target("dizuo", url, key="dz-not-a-key")
        with pytest.raises(SystemExit, match="answered 401"):
            bench.check(refused)
    finally:
        stack.stop()
