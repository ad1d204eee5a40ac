"""A real HTTP server that plays an OpenAI-compatible upstream with known behaviour.

The body's ``model`` (the deployment's ``upstream_model``) picks the behaviour (``agentic``: calls
each tool it is offered in turn, then answers with their results), so one server
serves every deployment of a test session. Every request is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.personas import Personas

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
# The label a vendor puts on its own answers ("labeled" upstream model).
UPSTREAM_LABEL = {
    "Label": "1",
    "ContentProducer": "示例云",
    "ProduceID": "up-7f3a",
    "ReservedCode1": "vendor-seal",
    "ContentPropagator": "",
    "PropagateID": "",
    "ReservedCode2": "",
}


def _vector(text: str, width: int) -> list[float]:
    """*width* numbers that depend on *text* alone (its SHA-256, repeated)."""
    digest = hashlib.sha256(str(text).encode()).digest()
    return [(digest[j % len(digest)] - 127.5) / 127.5 for j in range(width)]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    host: str = "127.0.0.1"
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    hang_started: threading.Event = field(default_factory=threading.Event)
    # Behaviour of the upstream models named ctl-…, set by tests: "ok", "fail500", "ratelimit".
    modes: dict[str, str] = field(default_factory=dict)
    # The usage object the upstream models named ctl-… report, when a test sets one (any JSON value).
    usages: dict[str, Any] = field(default_factory=dict)
    # JSON documents POSTed to /hooks/guard (the guard's alert webhook).
    hooks: list[dict[str, Any]] = field(default_factory=list)
    # Models named persona-… answer as tests/support/personas.py says (the evaluation bench's tests).
    personas: Personas = field(default_factory=Personas)
    # The agentic model's streamed answer to a question holding one of these words stops after its
    # first piece until the test sets the event (a model still writing).
    holds: dict[str, threading.Event] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @contextmanager
    def scripted(
        self, modes: dict[str, str] | None = None, usages: dict[str, Any] | None = None
    ) -> Iterator[None]:
        """Within the block the models named in *modes* answer as it says and those in *usages* report
        that usage; after it, however it ends, they behave as by default again (a mode the block set
        anew for one of them goes too)."""
        modes, usages = modes or {}, usages or {}
        self.modes.update(modes)
        self.usages.update(usages)
        try:
            yield
        finally:
            for model in modes:
                self.modes.pop(model, None)
            for model in usages:
                self.usages.pop(model, None)

    def last(self, model: str) -> Seen:
        """Return the newest request for the upstream model *model*."""
        for seen in reversed(self.seen):
            if seen.body.get("model") == model:
                return seen
        raise AssertionError(f"the upstream saw no request for {model!r}")

    # ---- behaviours ----------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(Seen(request.path, dict(request.headers), body))
        model = body.get("model")
        usage = self.usages.get(model, USAGE) if isinstance(model, str) else USAGE
        if isinstance(model, str) and model.startswith("persona-"):
            return await self.personas.reply(body)
        if isinstance(model, str) and model.startswith("ctl-"):
            model = self.modes.get(model, "ok")
            if model.startswith("slow:"):
                await asyncio.sleep(float(model[5:]))
                model = "ok"
        if model == "error200":  # an error with HTTP 200, as some vendors' gateways send
            return web.json_response({"error": {"message": "上游账户余额不足", "type": "insufficient_quota"}})
        if model == "html200":  # a proxy's page in front of the model server
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        if model == "fail500":
            return web.json_response(
                {"error": {"message": "upstream exploded", "type": "server_error"}}, status=500
            )
        if model == "ratelimit":
            return web.json_response(
                {"error": {"message": "slow down please", "type": "rate_limit"}}, status=429
            )
        if model == "reject":
            return web.json_response({"error": {"message": "Invalid tool schema at tools[0]"}}, status=400)
        if model == "slow":
            await asyncio.sleep(3)
        if model == "hang":
            self.hang_started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if model == "drop" and not body.get("stream"):
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(1)
        if body.get("stream"):
            return await self._stream(request, body, model, usage)
        last = str((body.get("messages") or [{}])[-1].get("content"))
        if last.startswith("UPSTREAM-REJECT"):  # a request this upstream refuses, whatever its model
            return web.json_response(
                {"error": {"message": "content not accepted", "code": "rejected"}}, status=400
            )
        return web.json_response(self._completion(body, usage))

    def _text(self, body: dict[str, Any]) -> str:
        last = body["messages"][-1].get("content")
        return f"echo: {last}"

    def _arguments(self, body: dict[str, Any]) -> str:
        """A tool call's arguments: fixed, or the prompt's text after "ARGS:" (guard tests)."""
        last = str(body["messages"][-1].get("content"))
        if last.startswith("ARGS:"):
            return orjson.dumps({"note": last[5:]}).decode()
        return '{"city": "重庆"}'

    def _agentic(self, body: dict[str, Any]) -> dict[str, Any]:
        """A model that calls each tool it is offered once, in the order offered, then answers with what
        the tools returned. Arguments come from the user's question: ``query`` is the whole question,
        ``sql`` what follows "SQL:" in it, ``report`` what follows "REPORT:", a property with an ``enum`` its first value, every other
        property the question's last word ("……零件 A-1" → ``{"part": "A-1"}``)."""
        messages = body["messages"]
        results = [str(m.get("content")) for m in messages if m.get("role") == "tool"]
        tools = body.get("tools") or []
        if len(results) < len(tools):
            function = tools[len(results)]["function"]
            question = next(str(m["content"]) for m in reversed(messages) if m.get("role") == "user")
            properties = (function.get("parameters") or {}).get("properties") or {}
            word = question.split()[-1] if question.split() else ""
            arguments = {
                name: question
                if name == "query"
                else question.partition("SQL:")[2].strip()
                if name == "sql"
                else question.partition("REPORT:")[2].strip()
                if name == "report"
                else spec["enum"][0]
                if "enum" in spec
                else word
                for name, spec in properties.items()
            }
            call = {"id": f"call_{len(results)}", "type": "function", "function": {"name": function["name"], "arguments": orjson.dumps(arguments).decode()}}  # fmt: skip
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"role": "assistant", "content": "根据工具结果：" + " | ".join(r[:300] for r in results)}

    def _completion(self, body: dict[str, Any], usage: Any = USAGE) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self._text(body)}
        finish = "stop"
        if body.get("model") == "agentic":
            message = self._agentic(body)
            finish = "tool_calls" if message.get("tool_calls") else "stop"
        elif body.get("model") == "tools" and body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": name, "arguments": self._arguments(body)},
                    }
                ],
            }
            finish = "tool_calls"
        choices = [
            {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
            for i in range(body.get("n") or 1)
        ]
        completion = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": usage,
        }
        if body.get("model") == "labeled":  # a vendor that labels its own answers (GB 45438-2025)
            completion["aigc"] = UPSTREAM_LABEL
        return completion

    async def _stream(
        self, request: web.Request, body: dict[str, Any], model: str, usage: Any = USAGE
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}

        async def event(data: dict[str, Any]) -> None:
            await response.write(b"data: " + orjson.dumps(data) + b"\n\n")

        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if model == "reasoner":
            last = str(body["messages"][-1].get("content"))
            if last.startswith("REASON:"):  # the reasoning repeats the prompt in 5-character pieces
                deltas += [{"reasoning_content": last[i : i + 5]} for i in range(7, len(last), 5)]
            else:
                deltas += [{"reasoning_content": "先想一想。"}, {"reasoning_content": "好了。"}]
        finish = "stop"
        if model == "chunked":  # the echo, cut into pieces of 5 characters: values split across chunks
            text = self._text(body)
            deltas += [{"content": text[i : i + 5]} for i in range(0, len(text), 5)]
        elif model == "agentic":  # its tool calls cut as OpenAI streams them, or its answer in pieces
            message = self._agentic(body)
            for n, call in enumerate(message.get("tool_calls") or []):
                function = call["function"]
                deltas.append({"tool_calls": [{"index": n, "id": call["id"], "type": "function", "function": {"name": function["name"], "arguments": ""}}]})  # fmt: skip
                arguments = function["arguments"]
                deltas += [{"tool_calls": [{"index": n, "function": {"arguments": arguments[i : i + 8]}}]} for i in range(0, len(arguments), 8)]  # fmt: skip
                finish = "tool_calls"
            text = str(message.get("content") or "")
            deltas += [{"content": text[i : i + 5]} for i in range(0, len(text), 5)]
        else:
            deltas += [{"content": "你好"}, {"content": "，世界"}]
        question = next(
            (str(m.get("content")) for m in reversed(body["messages"]) if m.get("role") == "user"), ""
        )
        hold = next((gate for word, gate in self.holds.items() if word in question), None)
        for index, delta in enumerate(deltas):
            await event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            if hold is not None and model == "agentic" and index == 1 and "content" in delta:
                await asyncio.to_thread(hold.wait, 20)
            if model == "drop" and index == 1:
                assert request.transport is not None
                request.transport.abort()
                return response
            await asyncio.sleep(0.01)
        if model == "moonshot":  # Kimi's quirk: usage inside the last choice, sent unasked
            await event(
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": usage}]}
            )
        elif model == "labeled":  # its label rides on its last chunk
            last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await event({**last, "aigc": UPSTREAM_LABEL})
        else:
            await event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                await event({**base, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        return response

    async def hook(self, request: web.Request) -> web.Response:
        self.hooks.append(await request.json())
        return web.Response(status=204)

    async def erp(self, request: web.Request) -> web.Response:
        """An ERP's parts lookup: ``?part=`` → its stock; part ``owner`` answers with a person's ID
        number (personal data in a tool's result); ``moved`` redirects elsewhere; ``slow`` waits 5 s."""
        self.seen.append(Seen(request.path_qs, dict(request.headers), dict(request.query)))
        part = request.query.get("part", "")
        if part == "moved":
            raise web.HTTPFound("http://example.invalid/parts")
        if part == "slow":
            await asyncio.sleep(5)
        found = {"part": part, "stock": 12, "warehouse": "重庆二号库"}
        if part == "owner":
            found = {"part": part, "owner": "张三 身份证 11010519491231002X"}
        return web.Response(body=orjson.dumps(found), content_type="application/json")

    async def models(self, request: web.Request) -> web.Response:
        """GET /v1/models, used by active probes: fails while modes["probe"] == "fail"."""
        if self.modes.get("probe") == "fail":
            return web.json_response({"error": {"message": "probe target down"}}, status=503)
        return web.json_response({"object": "list", "data": [{"id": "echo", "object": "model"}]})

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(Seen(request.path, dict(request.headers), body))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        model = str(body["model"])
        if model.startswith("dims-"):  # "dims-N": N numbers drawn from the text, the same for the same text
            width = int(model.removeprefix("dims-"))
            data = [
                {"object": "embedding", "index": i, "embedding": _vector(text, width)}
                for i, text in enumerate(inputs)
            ]
        else:
            data = [
                {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]}
                for i in range(len(inputs))
            ]
        usage = {"prompt_tokens": 4 * len(inputs), "total_tokens": 4 * len(inputs)}
        return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})

    # ---- running -------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        """Serve on a free loopback port in a background thread."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self.chat)
            app.router.add_post("/v1/embeddings", self.embeddings)
            app.router.add_get("/v1/models", self.models)
            app.router.add_post("/hooks/guard", self.hook)
            app.router.add_get(
                "/erp/parts", self.erp
            )  # an enterprise's own API, as agents' http tools call it
            self._runner = web.AppRunner(
                app, handle_signals=False, handler_cancellation=True, shutdown_timeout=1
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-upstream")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Shut the server down."""
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
