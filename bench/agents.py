"""Agents: what the platform's loop adds per step, over the same tool-calling conversation driven by
a bare client loop, in the same run.

    .venv/bin/python bench/agents.py [--calls 200] [--tools 3]

One `dizuo serve` (SQLite, a funded organization, the guard's `log` policy) in front of a small
upstream (a child process of this script) whose model calls each tool it is offered once, in order,
then answers; the tools are `http` tools on the same upstream's parts API (`/erp/parts`). Alternately:

1. **Agent**: `agent/bench` through `/v1/chat/completions`: the platform runs the loop (model call →
   tool → … → answer, *tools* + 1 model calls and *tools* tool calls, each model call metered).
2. **Bare loop**: the client does the same: the same model calls through the same gateway with the
   same key, and the same GETs of the parts API, itself.

Both include the same model and tool time; the difference per step (a model call or a tool call) is
the loop's own overhead: resolving the agent, the tool runs' checks, the steps recorded. Each answer
is checked (200, the final text with every tool's result) and the run stops otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from gateway import PYTHON, Stack, free_port, wait_port

USAGE = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}


def upstream_app() -> Any:
    from aiohttp import web

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        tools = body.get("tools") or []
        results = [m["content"] for m in body["messages"] if m.get("role") == "tool"]
        if len(results) < len(tools):
            name = tools[len(results)]["function"]["name"]
            call = {"id": f"call_{len(results)}", "type": "function", "function": {"name": name, "arguments": '{"part": "A-1"}'}}  # fmt: skip
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        else:
            message = {"role": "assistant", "content": "库存：" + " | ".join(results)}
        answer = {"id": "c", "object": "chat.completion", "created": 1, "model": "agentic",
                  "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": USAGE}  # fmt: skip
        return web.json_response(answer)

    async def parts(request: web.Request) -> web.Response:
        return web.json_response({"part": request.query.get("part"), "stock": 12})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/erp/parts", parts)
    return app


def definition(tools: int, port: int) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"part": {"type": "string"}}, "required": ["part"]}
    return {
        "name": "bench",
        "model": "bench-agentic",
        "instructions": "查库存",
        "tools": [
            {"http": {"name": f"erp_{n}", "url": f"http://127.0.0.1:{port}/erp/parts", "schema": schema}}
            for n in range(tools)
        ],
        "max_steps": tools + 1,
        "max_cost": "10",
    }


def functions(tools: int) -> list[dict[str, Any]]:
    schema = {"type": "object", "properties": {"part": {"type": "string"}}, "required": ["part"]}
    return [
        {"type": "function", "function": {"name": f"erp_{n}", "description": "parts", "parameters": schema}}
        for n in range(tools)
    ]


def checked(status: int, body: bytes, tools: int) -> dict[str, Any]:
    if status != 200:
        sys.exit(f"answered {status}: {body[:300]!r}")
    answer = orjson.loads(body)
    message = answer["choices"][0]["message"]
    if message.get("tool_calls") is None and message["content"].count('"stock"') != tools:
        sys.exit(f"the answer lacks the tools' results: {message['content'][:300]!r}")
    return answer  # type: ignore[no-any-return]


async def agent_call(session: aiohttp.ClientSession, url: str, tools: int) -> float:
    body = {"model": "agent/bench", "messages": [{"role": "user", "content": "A-1"}]}
    started = time.perf_counter()
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        raw = await response.read()
    took = time.perf_counter() - started
    checked(response.status, raw, tools)
    return took


async def bare_loop(session: aiohttp.ClientSession, url: str, upstream: int, tools: int) -> float:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "查库存"},
        {"role": "user", "content": "A-1"},
    ]
    offered = functions(tools)
    started = time.perf_counter()
    for _ in range(tools + 1):
        body = {"model": "bench-agentic", "messages": messages, "tools": offered}
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            raw = await response.read()
        message = checked(response.status, raw, tools)["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        if not calls:
            return time.perf_counter() - started
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        for call in calls:
            arguments = orjson.loads(call["function"]["arguments"])
            async with session.get(
                f"http://127.0.0.1:{upstream}/erp/parts", params=arguments, allow_redirects=False
            ) as tool:
                result = (await tool.content.read(65537)).decode()
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    sys.exit("the bare loop did not end")


async def measure(url: str, key: str, upstream: int, calls: int, tools: int) -> dict[str, list[float]]:
    headers = {"authorization": f"Bearer {key}"}
    times: dict[str, list[float]] = {"agent": [], "bare": []}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(10):  # warm both paths
            await agent_call(session, url, tools)
            await bare_loop(session, url, upstream, tools)
        for n in range(calls):  # alternated, the order swapped every call
            pair = [
                ("agent", agent_call(session, url, tools)),
                ("bare", bare_loop(session, url, upstream, tools)),
            ]
            for name, work in pair if n % 2 == 0 else pair[::-1]:
                times[name].append(await work)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tools", type=int, default=3)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        from aiohttp import web

        web.run_app(upstream_app(), host="127.0.0.1", port=args.serve_upstream, print=None)
        return

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        stack = Stack(home)
        try:
            upstream = free_port()
            stack.spawn([PYTHON, __file__, "--serve-upstream", str(upstream)])
            wait_port(upstream)
            config = f"""
local: false
guard: {{default: {{action: log}}}}
deployments:
  - {{name: bench-agentic, model: bench-agentic, provider: openai-compatible,
      base_url: "http://127.0.0.1:{upstream}/v1", price: {{input: 2, output: 8}}}}
"""
            port, _, key = stack.dizuo(upstream, config_text=config, production=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
            env.update(DIZUO_DATA_DIR=str(home / "dizuo"), DIZUO_CONFIG=str(home / "dizuo.yaml"))
            dizuo = str(Path(PYTHON).parent / "dizuo")
            spec = home / "agent.yaml"
            spec.write_text(
                yaml.safe_dump(definition(args.tools, upstream), allow_unicode=True), encoding="utf-8"
            )
            for command in (
                ["admin", "tool-host", "add", "127.0.0.1"],
                ["agent", "create", "--org", "default", "--file", str(spec)],
                ["agent", "publish", "--org", "default", "bench"],
            ):
                done = subprocess.run([dizuo, *command], env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"dizuo {' '.join(command)}: {done.stderr}")
            url = f"http://127.0.0.1:{port}"
            times = asyncio.run(measure(url, key, upstream, args.calls, args.tools))
        finally:
            stack.stop()

    steps = 2 * args.tools + 1
    agent, bare = (statistics.median(times[n]) * 1000 for n in ("agent", "bare"))
    paired = statistics.median(a - b for a, b in zip(times["agent"], times["bare"], strict=True)) * 1000
    print(f"agent calls of {args.tools} tools ({steps} steps: {args.tools + 1} model calls, {args.tools} tools), {args.calls} each, one connection")  # fmt: skip
    print(f"  agent (the platform's loop)   p50 {agent:7.2f} ms")
    print(f"  bare client loop              p50 {bare:7.2f} ms")
    print(f"  agent ÷ bare                  {agent / bare:7.2f}×")
    print(f"  loop overhead per step, p50   {paired / steps:7.3f} ms (paired differences; goal ≤ 1 ms)")


if __name__ == "__main__":
    main()
