"""The tools an agent's model may call, as functions it is offered and as what the platform runs.

- ``kb_search``: the owner's knowledge bases, searched with the caller's key (the query's embedding
  is a metered call); the passages come back with their citations.
- ``http``: one endpoint of a host a platform admin allowed, checked again at each call; no
  redirects, a timeout, at most :data:`MAX_BYTES` of the answer read.

A tool's failure (bad arguments, a timeout, the host refused, an error status) is the tool's
result, written for the model to read: it never fails the call of the agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from jsonschema import Draft202012Validator

from dizuo.agents.spec import AgentSpec, HttpTool, KbSearchTool, Tool
from dizuo.errors import DizuoError
from dizuo.kb.models import GatewayModels, GatewayRefused
from dizuo.kb.service import KnowledgeBases

__all__ = ["MAX_BYTES", "Outcome", "Toolbox", "functions"]

MAX_BYTES = 64 * 1024  # of an http tool's answer, what the model is given at most


def functions(spec: AgentSpec) -> list[dict[str, Any]]:
    """The tools of *spec* as OpenAI function tools."""
    offered = []
    for tool in spec.tools:
        if isinstance(tool, KbSearchTool):
            bases = "、".join(tool.knowledge_bases)
            description = (
                tool.description
                or f"在知识库（{bases}）中检索与问题最相关的段落，带出处 / search the knowledge bases {bases}"
            )
            parameters: dict[str, Any] = {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "检索的问题 / what to look for"}},
                "required": ["query"],
            }
        else:
            description = tool.description or f"{tool.method} {tool.url}"
            parameters = tool.schema_
        offered.append(
            {
                "type": "function",
                "function": {"name": tool.name, "description": description, "parameters": parameters},
            }
        )
    return offered


@dataclass
class Outcome:
    """A tool's result for the model, whether it worked, and any citations it found."""

    content: str
    ok: bool
    citations: list[dict[str, Any]] = field(default_factory=list)


class Toolbox:
    """Runs one call's tools: the owner's knowledge bases, the caller's key for their embeddings."""

    def __init__(
        self,
        kbs: KnowledgeBases | None,
        owner: str,
        models: GatewayModels,
        session: aiohttp.ClientSession,
        allowed: Callable[[str], bool],
    ) -> None:
        self.kbs = kbs
        self.owner = owner
        self.models = models
        self.session = session
        self.allowed = allowed

    async def run(self, tool: Tool, arguments: str) -> Outcome:
        try:
            args = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return _failed("参数不是有效的 JSON / the arguments are not valid JSON")
        if not isinstance(args, dict):
            return _failed("参数须是对象 / the arguments must be an object")
        if isinstance(tool, KbSearchTool):
            return await self._search(tool, args)
        return await self._http(tool, args)

    async def _search(self, tool: KbSearchTool, args: dict[str, Any]) -> Outcome:
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            return _failed("须给出 query（检索的问题）/ query is required")
        if self.kbs is None:
            return _failed("本平台未启用知识库 / this platform has no knowledge bases")
        found = []
        for name in tool.knowledge_bases:
            try:
                passages = await self.kbs.query(self.owner, name, query, self.models, k=tool.k)
            except GatewayRefused:
                raise  # the caller's own call was refused (402, 429, a guard block): the agent's call is
            except DizuoError as exc:
                return _failed(exc.message("zh") + " / " + exc.message("en"))
            found += [(passage, name) for passage in passages]
        found.sort(key=lambda item: -float(item[0].score or 0))
        cited = []
        for passage, name in found[: tool.k]:
            cited.append({**passage.public(), "knowledge_base": name})
        return Outcome(orjson.dumps({"passages": cited}).decode(), True, cited)

    async def _http(self, tool: HttpTool, args: dict[str, Any]) -> Outcome:
        errors = sorted(Draft202012Validator(tool.schema_).iter_errors(args), key=lambda e: list(e.path))
        if errors:
            return _failed(
                f"参数不符合工具的 schema / the arguments do not match the tool's schema: {errors[0].message}"
            )
        if not self.allowed(tool.host):
            return _failed(
                f"平台已不允许访问主机 {tool.host} / the platform no longer allows the host {tool.host}"
            )
        query = (
            {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in args.items()}
            if tool.method == "GET"
            else None
        )
        try:
            async with self.session.request(
                tool.method,
                tool.url,
                params=query,
                json=args if tool.method == "POST" else None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=tool.timeout_seconds),
            ) as response:
                data = await response.content.read(MAX_BYTES + 1)
                status = response.status
        except TimeoutError:
            return _failed(
                f"{tool.timeout_seconds:g} 秒内没有应答 / no answer within {tool.timeout_seconds:g} s"
            )
        except aiohttp.ClientError as exc:
            return _failed(f"无法连接 / could not connect: {exc}")
        text = data[:MAX_BYTES].decode(errors="replace") + ("…" if len(data) > MAX_BYTES else "")
        if 300 <= status < 400:
            return _failed(f"HTTP {status}：不跟随重定向 / redirects are not followed")
        if status >= 400:
            return Outcome(orjson.dumps({"error": f"HTTP {status}", "body": text}).decode(), False)
        return Outcome(text, True)


def _failed(message: str) -> Outcome:
    return Outcome(orjson.dumps({"error": message}).decode(), False)
