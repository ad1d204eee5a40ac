"""Batches: a batch's throughput against the same requests sent straight to the gateway, the server's
memory while it runs, and the time from creating a batch to its first line answered.

    .venv/bin/python bench/batch.py [--lines 10000] [--concurrency 16]

One `dizuo serve` (SQLite, an embedded Ray pool it starts itself) in front of nginx answering a fixed
completion at once. In the same run:

1. **Direct**: the *lines* requests sent to `/v1/chat/completions` by an asyncio client at
   *concurrency*, each checked to be a 200 completion (run before and after the batch; the better
   of the two is the baseline).
2. **Batch**: the same requests as a JSONL file, `files.create` and `batches.create` with the `openai`
   SDK, polled every 0.05 s until its first line is answered, then every 0.25 s until `completed`;
   its worker sends *concurrency* lines at a time. Every line must be in the output file with
   status 200, none in an error file, else the run stops.
   Throughput is counted from the first line answered to the last (the pool's start apart); the time
   to the first line answered from the moment `batches.create` was called; the server's resident
   memory when 1,000 lines were answered and when all were.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import openai
import orjson

from gateway import BODY, Stack, cpu_seconds, rss_mb

CONFIG = """
local: false
pools:
  - {{name: local, ray: embedded}}
deployments:
  - {{name: bench-json, model: bench-json, provider: openai-compatible,
      base_url: "http://127.0.0.1:{upstream}/json/v1", price: {{input: 2, output: 8}}}}
"""


async def direct(url: str, key: str, lines: int, concurrency: int) -> float:
    """Requests a second, sending *lines* calls *concurrency* at a time; stops on any non-200."""
    gate = asyncio.Semaphore(concurrency)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            async with gate, session.post(f"{url}/v1/chat/completions", data=BODY.encode()) as answer:
                body = await answer.read()
                if answer.status != 200 or b'"choices"' not in body:
                    sys.exit(f"direct call answered {answer.status}: {body[:300]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(lines)))
        return lines / (time.perf_counter() - started)


def batch(url: str, key: str, pid: int, lines: int) -> dict[str, float]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
    body = orjson.loads(BODY)
    data = b"".join(
        orjson.dumps({"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions", "body": body})
        + b"\n"
        for n in range(lines)
    )
    source = client.files.create(file=("bench.jsonl", data), purpose="batch")
    created_at = time.perf_counter()
    made = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    created_in = time.perf_counter() - created_at
    if made.status != "in_progress":
        sys.exit(f"the batch did not start: {made}")
    first = at_1000 = at_all = None
    rss_1000 = float("nan")
    while True:
        found = client.batches.retrieve(made.id)
        done = found.request_counts.completed + found.request_counts.failed
        now = time.perf_counter()
        if first is None and done:
            first = now
        if at_1000 is None and done >= min(1000, lines):
            at_1000, rss_1000 = now, rss_mb(pid)
        if at_all is None and done >= lines:
            at_all = now
        if found.status in ("completed", "failed", "cancelled", "expired"):
            break
        time.sleep(0.25 if first is not None else 0.05)  # finely until the first line: its time is a figure
    ended = found.completed_at
    rss_end = rss_mb(pid)
    if found.status != "completed" or found.request_counts.completed != lines or found.error_file_id:
        sys.exit(f"the batch ended {found.status} with {found.request_counts}: {found.errors}")
    output = client.files.content(found.output_file_id).text.splitlines()
    statuses = {orjson.loads(row)["response"]["status_code"] for row in output}
    if len(output) != lines or statuses != {200}:
        sys.exit(f"the output file has {len(output)} lines, statuses {statuses}")
    assert first is not None and ended is not None and at_all is not None
    last = at_all  # when a poll first saw every line answered
    return {
        "throughput": lines / max(last - first, 1e-9),
        "first_line_s": first - created_at,
        "create_s": created_in,
        "rss_1000_mb": rss_1000,
        "rss_end_mb": rss_end,
        "total_s": last - created_at,
        "jobs": float((found.model_extra or {}).get("dizuo", {}).get("jobs", 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dizuo-bench-batch-") as home:
        stack = Stack(Path(home))
        try:
            upstream = stack.nginx()
            port, pid, key = stack.dizuo(
                upstream, config_text=CONFIG.format(upstream=upstream), production=True
            )
            url = f"http://127.0.0.1:{port}"
            cpu = cpu_seconds(pid)
            before = asyncio.run(direct(url, key, args.lines, args.concurrency))
            cpu_direct, cpu = cpu_seconds(pid) - cpu, cpu_seconds(pid)
            measured = batch(url, key, pid, args.lines)
            cpu_batch = cpu_seconds(pid) - cpu
            after = asyncio.run(direct(url, key, args.lines, args.concurrency))
        finally:
            stack.stop()
    baseline = max(before, after)
    growth = measured["rss_end_mb"] / measured["rss_1000_mb"]
    print(
        f"lines {args.lines}, concurrency {args.concurrency}, compute jobs the batch took: {measured['jobs']:g}"
    )
    print(f"direct to the gateway: {before:,.0f} and {after:,.0f} req/s (baseline {baseline:,.0f})")
    print(
        f"batch: {measured['throughput']:,.0f} lines/s = {measured['throughput'] / baseline:.2f}× the direct client (goal ≥ 0.80)"
    )
    print(
        f"first line answered {measured['first_line_s']:.2f} s after batches.create (goal ≤ 2 s; "
        f"batches.create itself answered in {measured['create_s']:.2f} s); all in {measured['total_s']:.1f} s"
    )
    print(
        f"server CPU: {cpu_direct / args.lines * 1000:.2f} ms a direct call, "
        f"{cpu_batch / args.lines * 1000:.2f} ms a batch line (its polls included)"
    )
    print(
        f"server memory: {measured['rss_1000_mb']:.0f} MB at line 1,000, {measured['rss_end_mb']:.0f} MB at the end = {growth:.2f}× (goal ≤ 1.10)"
    )


if __name__ == "__main__":
    main()
