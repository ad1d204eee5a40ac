"""Evaluation bench benchmark: overhead per item, and 1,000 items at concurrency 32.

A fast upstream (an aiohttp server in its own process, answering ``答案：A`` at once) plays the model.
Two runs are alternated round by round:

- **baseline**: a bare aiohttp client posting the same 1,000 chat requests at concurrency 32,
  reading each body and nothing else;
- **bench**: ``run_suite`` on a 1,000-item choice suite into a fresh folder: the same requests plus
  parsing, scoring, the answer cache, the item log, the summary and the HTML report.

Then **from cache**: the bench rerun into a fresh folder that holds only the answers, so no call
leaves the process; its time per item is the bench's own overhead (cache lookup, scoring, the item
log, summary, report). Targets: overhead <= 1 ms per item; 1,000 items in < 30 s at concurrency 32.

With ``--gateway``, also the bench through ``dizuo serve`` (SQLite, metering, holds and limits on) in
front of the same fast upstream: what an operator sees evaluating a model of the platform.

    .venv/bin/python bench/evals.py [--items 1000] [--concurrency 32] [--rounds 3] [--gateway]
        [--out bench/out/evals.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from dizuo.evalbench import RunConfig, load_suite, run_suite
from gateway import Stack, free_port, wait_port

BENCH = Path(__file__).resolve().parent
ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "fast",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "答案：A"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33},
}


def serve(port: int) -> None:
    import uvloop

    body = orjson.dumps(ANSWER)

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def write_suite(path: Path, items: int) -> Path:
    rows = [
        {"id": f"q{n}", "category": f"科目{n % 10}", "question": f"第 {n} 题：下列哪一项正确？",
         "A": "甲", "B": "乙", "C": "丙", "D": "丁", "answer": "ABCD"[n % 4]}
        for n in range(items)
    ]  # fmt: skip
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


async def bare(url: str, prompts: list[str], concurrency: int) -> float:
    """The baseline: the same requests, nothing done with the answers."""
    pending = iter(prompts)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            for prompt in pending:
                body = {"model": "fast", "messages": [{"role": "user", "content": prompt}], "temperature": 0.0,
                        "top_p": 1.0, "max_tokens": 1024}  # fmt: skip
                async with session.post(f"{url}/chat/completions", data=orjson.dumps(body)) as response:
                    orjson.loads(await response.read())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


STACK: list[Any] = []  # the gateway's processes, stopped at the end


def start_gateway(work: Path, upstream: int) -> RunConfig:
    """Start ``dizuo serve`` with one deployment on the fast upstream, a funded wallet and a key
    without limits; return the run settings that reach it."""
    from billing import admin

    stack = Stack(work)
    STACK.append(stack)
    config = f"""
local: false
deployments:
  - {{name: fast, model: fast, provider: openai-compatible, base_url: "http://127.0.0.1:{upstream}/v1",
      price: {{input: 2, output: 8}}}}
"""
    port, _, _ = stack.dizuo(upstream, "evals", config_text=config)
    admin(work / "evals", {}, "topup", "--org", "default", "--amount", "1000000")
    limits = ["--rpm", "100000000", "--tpm", "100000000", "--concurrency", "100000"]
    key = admin(work / "evals", {}, "create-key", "--org", "default", *limits)
    return RunConfig(model="fast", base_url=f"http://127.0.0.1:{port}/v1", api_key=key, concurrency=32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "evals.json")
    parser.add_argument("--gateway", action="store_true", help="also run through dizuo serve")
    args = parser.parse_args()

    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}/v1"
    wait_port(port, timeout=30)

    work = Path(tempfile.mkdtemp(prefix="dizuo-bench-evals-"))
    suite = load_suite(str(write_suite(work / "suite.jsonl", args.items)))
    prompts = [item.prompt for item in suite.items]
    config = RunConfig(model="fast", base_url=url, concurrency=args.concurrency)
    baseline, bench, cached, through = [], [], [], []
    gateway_config = start_gateway(work, port) if args.gateway else None
    try:
        for round_ in range(args.rounds):
            baseline.append(asyncio.run(bare(url, prompts, args.concurrency)))
            out = work / f"run{round_}"
            started = time.perf_counter()
            document = asyncio.run(run_suite(suite, config, out))
            bench.append(time.perf_counter() - started)
            assert document["counts"]["scored"] == args.items
            again = work / f"cached{round_}"
            again.mkdir()
            shutil.copy(out / "answers.jsonl", again / "answers.jsonl")
            started = time.perf_counter()
            asyncio.run(run_suite(suite, config, again))
            cached.append(time.perf_counter() - started)
            if gateway_config is not None:
                started = time.perf_counter()
                document = asyncio.run(run_suite(suite, gateway_config, work / f"gateway{round_}"))
                through.append(time.perf_counter() - started)
                assert document["counts"]["scored"] == args.items, document["counts"]
    finally:
        for process in STACK:
            process.stop()
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)

    b, r, c = statistics.median(baseline), statistics.median(bench), statistics.median(cached)
    figures = {
        "items": args.items,
        "concurrency": args.concurrency,
        "baseline_bare_client_s": round(b, 3),
        "bench_run_s": round(r, 3),
        "bench_over_baseline": round(r / b, 2),
        "from_cache_s": round(c, 3),
        "overhead_per_item_ms": round(c / args.items * 1000, 3),
        "added_wall_per_item_ms": round((r - b) / args.items * 1000, 3),
        "items_per_second": round(args.items / r, 1),
    }
    if through:
        g = statistics.median(through)
        figures.update({"through_gateway_s": round(g, 3), "gateway_over_baseline": round(g / b, 2)})
    print(f"{args.items} items at concurrency {args.concurrency}, median of {args.rounds} rounds")
    print(f"  baseline (bare aiohttp client): {b:.2f} s")
    print(f"  bench run:                      {r:.2f} s  ({r / b:.2f}x baseline; target < 30 s)")
    print(
        f"  bench from cache (no calls):    {c:.2f} s  → overhead {c / args.items * 1000:.3f} ms per item (target <= 1 ms)"
    )
    if through:
        print(f"  bench through dizuo serve:      {g:.2f} s  ({g / b:.2f}x baseline; metering on)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
