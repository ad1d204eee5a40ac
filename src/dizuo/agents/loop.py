"""The loop that answers a call of an agent, server-side: model call → the tools it asked for, run by
the platform → their results back to the model → … → the final answer.

Every model call goes to this platform's own ``/v1/chat/completions`` with the caller's key, so each
is held, guarded (tool results are part of its prompt: personal data in one is found there, and a
``block`` policy stops the call with ``data_risk_blocked``), routed by its data class, settled and
recorded like any call; its request id is written beside the agent's steps. A refusal of one of them
(402, 429, a guard block …) ends the agent's call with that refusal, status and body.

The loop stops with 400 ``agent_step_limit`` when the model still asks for tools after ``max_steps``
model calls, and ``agent_cost_limit`` when the calls so far cost ``max_cost`` or more before the next
one. The answer is a chat completion of ``agent/NAME@VERSION`` with the steps' tokens summed, the
knowledge bases' citations under ``citations`` and the final model call's AIGC label under ``aigc``
(the answer is that call's text); streamed, it is sent once the loop ends (steps as
they happen, with ``stream_options.include_steps``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from dizuo.accounts import KeyInfo
from dizuo.agents.mcp import McpConnections
from dizuo.agents.service import Agents, Resolved, Step
from dizuo.agents.spec import McpTool
from dizuo.agents.tools import Outcome, Toolbox, functions
from dizuo.billing.money import token_cost
from dizuo.errors import DizuoError, InvalidRequest, Lang
from dizuo.kb.models import GatewayModels, GatewayRefused
from dizuo.kb.service import KnowledgeBases
from dizuo.routing import Router
from dizuo.routing.clearance import request_class
from dizuo.sandbox.service import Grantee, Sandbox

__all__ = ["Loop", "Reply", "Runner"]

log = logging.getLogger("dizuo.agents")
MICRO = Decimal(1_000_000)
# What a client may set on an agent's call that reaches each model step.
PASSED = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop")


@dataclass
class Reply:
    """What a call of an agent answers: *status* with a JSON *body*, or a stream of SSE *events*."""

    status: int = 200
    body: bytes = b""
    events: AsyncIterator[bytes] | None = None


class Loop:
    """One call of one agent."""

    def __init__(
        self,
        resolved: Resolved,
        key: KeyInfo,
        models: GatewayModels,
        tools: Toolbox,
        cost: Callable[[str, str, dict[str, Any]], int],
        body: dict[str, Any],
    ) -> None:
        self.resolved = resolved
        self.spec = resolved.spec
        self.key = key
        self.models = models
        self.tools = tools
        self.cost = cost
        self.spent = 0  # micro-yuan, the model calls' so far
        self.body = body
        self.steps: list[Step] = []
        self.citations: list[dict[str, Any]] = []
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.aigc: dict[str, Any] | None = None  # the final model call's AIGC label
        self.stepped = asyncio.Event()  # set at each step and piece of text (a stream sends it at once)
        # A streamed call's model calls stream too: the text they write (until they call a tool) is
        # handed on as it comes, for the stream to send; the final answer's is then already out.
        self.streaming = False
        self.show_steps = False  # a stream that asked for its steps (include_steps) gets them too
        self.outbox: list[tuple[str, Any]] = []  # ("step", event) and ("text", piece), in order
        self.turn_text = 0  # characters of the current model call's text handed on

    async def run(self) -> dict[str, Any]:
        """The final message; each step (with :attr:`show_steps`) and piece of text (with
        :attr:`streaming`) put in :attr:`outbox` as it happens."""
        started = time.perf_counter()
        mcp = await self.tools.open_mcp(self.spec)
        for server in self.tools.mcp_failures:
            self._step("tool", f"{server} (MCP)", started, False)
        return await self._run(mcp)

    async def _run(self, mcp: list[dict[str, Any]]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if self.spec.instructions:
            messages.append({"role": "system", "content": self.spec.instructions})
        messages += [
            m
            for m in self.body.get("messages", [])
            if not (isinstance(m, dict) and m.get("role") == "system")
        ]
        offered = functions(self.spec) + mcp
        by_name = {tool.name: tool for tool in self.spec.tools}
        # The caller's own tools are offered too (first); a call of one ends this call of the agent with it,
        # for the caller to run (as with any model), and the caller sends its result back.
        theirs = _caller_tools(self.body)
        ours = {function["function"]["name"] for function in offered}
        for n, name in enumerate(theirs):
            if name in ours:
                raise InvalidRequest("invalid_param", param=f"tools[{n}].function.name", reason_zh=f"与智能体自己的工具 {name} 同名", reason_en=f"the agent has a tool named {name} of its own")  # fmt: skip
        offered = [tool for tool in self.body.get("tools") or [] if _function_name(tool) in theirs] + offered
        for n in range(self.spec.max_steps):
            if self.spent >= self.spec.max_cost * MICRO:
                raise InvalidRequest("agent_cost_limit", name=self.resolved.name, spent=f"{Decimal(self.spent) / MICRO:.6f}", limit=str(self.spec.max_cost))  # fmt: skip
            request: dict[str, Any] = {"model": self.spec.model, "messages": messages}
            if offered:
                request["tools"] = offered
            request.update({k: self.body[k] for k in PASSED if k in self.body})
            started = time.perf_counter()
            self.turn_text = 0
            try:
                if self.streaming:
                    answer, headers = await self.models.stream(request, self._text)
                else:
                    answer, headers = await self.models.complete(request)
            except GatewayRefused:
                self._step("model", self.spec.model, started, False)
                raise
            usage = answer.get("usage") or {}
            self.spent += self.cost(self.spec.model, headers.get("x-dizuo-deployment", ""), usage)
            self._step("model", self.spec.model, started, True, headers.get("x-request-id"))
            for name in self.usage:
                self.usage[name] += int(usage.get(name) or 0)
            message = answer["choices"][0]["message"]
            calls = message.get("tool_calls") or []
            asked = [call for call in calls if _function_name(call) in theirs]
            if not calls or asked:
                # The answer is that call's message, as it was labeled: its label is the answer's.
                # The caller's tools go back to it (with this turn's calls of the agent's own tools
                # left out: their results could not be given back).
                label = answer.get("aigc")
                self.aigc = label if isinstance(label, dict) else None
                if asked:
                    return {"role": "assistant", "content": message.get("content"), "tool_calls": asked}
                return message  # type: ignore[no-any-return]
            if n == self.spec.max_steps - 1:
                break
            messages.append({"role": "assistant", "content": message.get("content"), "tool_calls": calls})
            for call in calls:
                function = call.get("function") or {}
                name = str(function.get("name") or "")
                started = time.perf_counter()
                tool = by_name.get(name)
                arguments = str(function.get("arguments") or "{}")
                if name in self.tools.mcp_routes:
                    outcome = await self.tools.call_mcp(name, arguments)
                elif tool is not None and not isinstance(tool, McpTool):
                    outcome = await self.tools.run(tool, arguments)
                else:
                    outcome = Outcome(orjson.dumps({"error": f"没有名为 {name} 的工具 / there is no tool named {name}"}).decode(), False)  # fmt: skip
                self.citations += outcome.citations
                self._step("tool", name, started, outcome.ok, arguments=function.get("arguments"))
                messages.append({"role": "tool", "tool_call_id": call.get("id"), "content": outcome.content})
        raise InvalidRequest("agent_step_limit", name=self.resolved.name, steps=self.spec.max_steps)

    def _text(self, piece: str) -> None:
        self.outbox.append(("text", piece))
        self.turn_text += len(piece)
        self.stepped.set()

    def _step(
        self,
        kind: str,
        name: str,
        started: float,
        ok: bool,
        request_id: str | None = None,
        arguments: Any = None,
    ) -> None:
        ms = int((time.perf_counter() - started) * 1000)
        self.steps.append(Step(kind, name, ms, ok, request_id))
        self.stepped.set()
        if self.show_steps:
            event: dict[str, Any] = {"step": len(self.steps), "kind": kind, "name": name, "ms": ms, "ok": ok}
            if kind == "tool":
                event["arguments"] = arguments
            self.outbox.append(("step", event))

    def completion(self, message: dict[str, Any], request_id: str) -> dict[str, Any]:
        answer = {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.resolved.alias,
            "choices": [
                {
                    "index": 0,
                    "message": _answer_message(message),
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": self.usage,
            "citations": self.citations,
            "dizuo": {
                "agent": self.resolved.name,
                "version": self.resolved.version,
                "steps": len(self.steps),
            },
        }
        if self.aigc is not None:
            answer["aigc"] = self.aigc
        return answer


class Runner:
    """Answers calls of agents for the gateway (:class:`dizuo.gateway.agentcalls.AgentRunner`)."""

    def __init__(
        self,
        agents: Agents,
        kbs: KnowledgeBases | None,
        gateway_url: str,
        session: Callable[[], aiohttp.ClientSession],
        router: Callable[[], Router],
        sandbox: Sandbox | None = None,
        mcp_idle_seconds: float = 300.0,
    ) -> None:
        self.agents = agents
        self.sandbox = sandbox
        self.connections = McpConnections(mcp_idle_seconds)  # MCP servers kept between calls
        self.kbs = kbs
        self.gateway_url = gateway_url
        self.session = session
        self.router = router
        self._writes: set[asyncio.Future[None]] = set()  # steps being recorded

    async def names(self, key: KeyInfo) -> list[str]:
        names = await asyncio.to_thread(self.agents.callable_names, key.org_id)
        return [name for name in names if key.may_use(name)]

    async def answer(
        self,
        key: KeyInfo,
        token: str,
        alias: str,
        body: dict[str, Any],
        request_id: str,
        lang: Lang,
        data_class: str,
    ) -> Reply:
        resolved, hosts, mcp = await asyncio.to_thread(self.agents.prepare, key.org_id, alias)
        session = self.session()
        # Each model call is routed as the higher of the call's data class (the key's, its
        # organization's, the caller's header) and the agent's own.
        data_class = request_class(data_class, resolved.spec.data_class.encode())
        headers = {"accept-language": lang, "x-dizuo-data-class": data_class}
        models = GatewayModels(self.gateway_url, token, session, headers)
        caller = Grantee(key.org_id, f"agent:{resolved.spec.name}")
        toolbox = Toolbox(
            self.kbs,
            resolved.org_id,
            models,
            session,
            hosts.__contains__,
            mcp,
            self.sandbox,
            caller,
            self.connections,
        )
        loop = Loop(resolved, key, models, toolbox, self.cost, body)
        stream = bool(body.get("stream"))
        options = body.get("stream_options") or {}
        if not stream:
            try:
                message = await loop.run()
            except GatewayRefused as refused:
                return Reply(refused.status, refused.body)
            except DizuoError as exc:
                return Reply(exc.status, exc.body(lang))
            finally:
                self._record(request_id, resolved, key, loop.steps)
            return Reply(200, orjson.dumps(loop.completion(message, request_id)))
        return Reply(events=self._stream(loop, resolved, key, request_id, lang, options))

    async def _stream(
        self,
        loop: Loop,
        resolved: Resolved,
        key: KeyInfo,
        request_id: str,
        lang: Lang,
        options: dict[str, Any],
    ) -> AsyncIterator[bytes]:
        base = {"id": f"chatcmpl-{request_id}", "object": "chat.completion.chunk", "created": int(time.time()), "model": resolved.alias}  # fmt: skip
        loop.streaming, loop.show_steps = True, bool(options.get("include_steps"))
        task = asyncio.ensure_future(loop.run())
        sent = 0
        opened = False  # the first delta (the role) was sent
        opening = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}  # fmt: skip
        try:
            while True:
                done = task.done()
                for kind, item in loop.outbox[sent:]:
                    if kind == "step":
                        yield _event({**base, "choices": [], "dizuo": {"step": item}})
                        continue
                    if not opened:
                        opened = True
                        yield _event(opening)
                    yield _event({**base, "choices": [{"index": 0, "delta": {"content": item}, "finish_reason": None}]})  # fmt: skip
                sent = len(loop.outbox)
                if done:
                    break
                woken = asyncio.ensure_future(loop.stepped.wait())
                await asyncio.wait({task, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                loop.stepped.clear()
            try:
                message = task.result()
            except GatewayRefused as refused:  # the stream ends with the error, as the gateway's do
                yield b"data: " + refused.body + b"\n\n"
                return
            except DizuoError as exc:
                yield b"data: " + exc.body(lang) + b"\n\n"
                return
            if not opened:
                yield _event(opening)
            # What of the answer's text was not handed on as it came (written after a tool call began).
            content = (message.get("content") or "")[loop.turn_text :]
            for piece in _pieces(content):
                yield _event(
                    {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                )
            calls = _answer_message(message).get("tool_calls") or []
            if calls:  # the caller's tools, each whole in one delta
                deltas = [{"index": n, **call} for n, call in enumerate(calls)]
                yield _event({**base, "choices": [{"index": 0, "delta": {"tool_calls": deltas}, "finish_reason": None}]})  # fmt: skip
            finish = "tool_calls" if calls else "stop"
            last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "citations": loop.citations}  # fmt: skip
            if loop.aigc is not None:
                last["aigc"] = loop.aigc
            yield _event(last)
            if options.get("include_usage"):
                yield _event({**base, "choices": [], "usage": loop.usage})
            yield b"data: [DONE]\n\n"
        finally:
            if not task.done():
                task.cancel()
            self._record(request_id, resolved, key, loop.steps)

    def _record(self, request_id: str, resolved: Resolved, key: KeyInfo, steps: list[Step]) -> None:
        """Write the call's steps in the background: the answer does not wait for them."""
        task = asyncio.ensure_future(
            asyncio.to_thread(self.agents.record, request_id, resolved, key.org_id, key.key_id, steps)
        )
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Future[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("the steps of an agent's call were not recorded: %r", task.exception())

    def cost(self, alias: str, deployment: str, usage: dict[str, Any]) -> int:
        """Micro-yuan a model step cost: its tokens at the price of the deployment that answered."""
        for dep in self.router().candidates(alias):
            if dep.name == deployment and dep.price_in is not None and dep.price_out is not None:
                prompt, completion = (
                    int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or 0),
                )
                return token_cost(prompt, completion, dep.price_in, dep.price_out)
        return 0


def _function_name(tool: Any) -> str | None:
    """The function's name of a tool (or of a tool call), when it has one."""
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _caller_tools(body: dict[str, Any]) -> list[str]:
    """The names of the function tools the caller sent, in order."""
    tools = body.get("tools")
    names = [_function_name(tool) for tool in tools] if isinstance(tools, list) else []
    return [name for name in names if name]


def _answer_message(message: dict[str, Any]) -> dict[str, Any]:
    """The assistant message an answer carries: its text, and the caller's tool calls if any."""
    shown: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        shown["content"] = message.get("content")
        shown["tool_calls"] = [
            {"id": call.get("id"), "type": "function", "function": call.get("function")}
            for call in message["tool_calls"]
        ]
    return shown


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _pieces(text: str, size: int = 32) -> Iterable[str]:
    return (text[i : i + size] for i in range(0, len(text), size)) if text else ()
