"""The tools an agent's model may call, as functions it is offered and as what the platform runs.

- ``kb_search``: the owner's knowledge bases, searched with the caller's key (the query's embedding
  is a metered call); the passages come back with their citations.
- ``http``: one endpoint of a host a platform admin allowed, checked again at each call; no
  redirects, a timeout, at most :data:`MAX_BYTES` of the answer read.
- ``inspection_audit``: the inspection-report auditor on the report the model passes (Markdown),
  against the standard whose file the owner added to a knowledge base (kept whole there), its
  findings linked to the past cases of the defects knowledge base; the files are read in the
  isolated parser, as uploads are.
- ``sandbox_query``: SQL on datasets of the data sandbox, under the caller's organization's grant
  and its disclosure control (a refusal, with its reason and position, is the tool's result).
- ``mcp``: the tools of an MCP server a platform admin registered and the owner enabled, through the
  official ``mcp`` SDK: the owner's connection to the server (kept between calls,
  :mod:`dizuo.agents.mcp`; started over stdio or reached over streamable HTTP when there is none),
  its tools listed and offered as ``SERVER__TOOL``.

A tool's failure (bad arguments, a timeout, the host refused, an error status) is the tool's
result, written for the model to read: it never fails the call of the agent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from dizuo.agents.mcp import McpConnections
from dizuo.agents.service import McpEndpoint
from dizuo.agents.spec import (
    AgentSpec,
    HttpTool,
    InspectionAuditTool,
    KbSearchTool,
    McpTool,
    SandboxQueryTool,
    Tool,
    names_standard,
)
from dizuo.apps.inspection import audit_files, render_text
from dizuo.errors import DizuoError
from dizuo.kb.models import GatewayModels, GatewayRefused
from dizuo.kb.service import KnowledgeBases
from dizuo.sandbox.service import Grantee, Sandbox

__all__ = ["MAX_BYTES", "Outcome", "Toolbox", "functions"]

MAX_BYTES = 64 * 1024  # of an http or MCP tool's answer, what the model is given at most
log = logging.getLogger("dizuo.agents")


def functions(spec: AgentSpec) -> list[dict[str, Any]]:
    """The tools of *spec* as OpenAI function tools."""
    offered = []
    for tool in spec.tools:
        if isinstance(tool, McpTool):
            continue  # listed by the server when the call begins (Toolbox.open_mcp)
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
        elif isinstance(tool, InspectionAuditTool):
            description = tool.description or (
                f"按标准 {tool.standard} 校核一份柱塞偶件检验报告：逐件尺寸与间隙、抽样方案、批判定，并给出历史相似问题 / "
                f"audit an inspection report of plunger pairs against the standard {tool.standard}"
            )
            parameters = {
                "type": "object",
                "properties": {
                    "report": {
                        "type": "string",
                        "description": "检验报告全文，Markdown（表格照原样）/ the whole report, as Markdown with its tables",
                    }
                },
                "required": ["report"],
            }
        elif isinstance(tool, SandboxQueryTool):
            sets = "、".join(tool.datasets)
            description = tool.description or (
                f"对政务数据沙盒的数据集（{sets}）执行一条只读 SQL 聚合查询（以数据集名为表名；少于 k 人的分组会被隐去） / "
                f"run one read-only aggregate SQL query on the data sandbox's datasets {sets} (the dataset is the table)"
            )
            parameters = {
                "type": "object",
                "properties": {
                    "dataset": {"type": "string", "enum": list(tool.datasets)},
                    "sql": {"type": "string", "description": "SELECT … FROM 数据集名 GROUP BY …"},
                },
                "required": ["dataset", "sql"],
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
        mcp: dict[str, McpEndpoint] | None = None,
        sandbox: Sandbox | None = None,
        caller: Grantee | None = None,
        connections: McpConnections | None = None,
    ) -> None:
        self.kbs = kbs
        self.sandbox = sandbox
        self.caller = caller  # whose grant a sandbox query runs under: the calling organization's
        self.owner = owner
        self.models = models
        self.session = session
        self.allowed = allowed
        self.mcp = mcp or {}  # the MCP servers the owner has enabled, by name
        self.connections = connections or McpConnections()  # kept between calls (dizuo.agents.mcp)
        self.mcp_routes: dict[str, tuple[Any, str, McpTool]] = {}  # function → (client, tool, its entry)
        self.mcp_failures: list[str] = []  # servers that could not be reached when the call began

    async def open_mcp(self, spec: AgentSpec) -> list[dict[str, Any]]:
        """The tools of *spec*'s MCP servers, as functions, from the owner's connections to them
        (kept between calls, opened when there is none). A server that is gone or cannot be reached
        offers nothing this call (named in :attr:`mcp_failures`)."""
        offered: list[dict[str, Any]] = []
        for tool in spec.tools:
            if not isinstance(tool, McpTool):
                continue
            endpoint = self.mcp.get(tool.server)
            if endpoint is None:
                self.mcp_failures.append(tool.server)
                continue
            try:
                client, listed = await self.connections.tools(self._scope(), endpoint, tool.timeout_seconds)
            except Exception as exc:  # noqa: BLE001  (whatever stops a server, its tools are not offered)
                log.warning("MCP server %s could not be reached: %r", tool.server, exc)
                self.mcp_failures.append(tool.server)
                continue
            for item in listed:
                if tool.tools is not None and item.name not in tool.tools:
                    continue
                name = _function_name(tool.server, item.name)
                self.mcp_routes[name] = (client, item.name, tool)
                function = {"name": name, "description": item.description or item.name, "parameters": item.input_schema}  # fmt: skip
                offered.append({"type": "function", "function": function})
        return offered

    def _scope(self) -> str:
        """Whose connections this call uses: the agent's owner's for the calling organization (a
        platform agent's server keeps no state from one caller's calls for another's)."""
        caller = self.caller.org_id if self.caller is not None else self.owner
        return f"{self.owner}/{caller}"

    async def call_mcp(self, name: str, arguments: str) -> Outcome:
        """Run the MCP tool offered as *name*; its error, a timeout or a broken connection is the
        result."""
        client, remote, tool = self.mcp_routes[name]
        args = _arguments(arguments)
        if isinstance(args, Outcome):
            return args
        try:
            with self.connections.using(client):
                async with asyncio.timeout(tool.timeout_seconds):
                    result = await client.call_tool(remote, args)
        except TimeoutError:
            return _failed(
                f"{tool.timeout_seconds:g} 秒内没有应答 / no answer within {tool.timeout_seconds:g} s"
            )
        except Exception as exc:  # noqa: BLE001  (a server that broke off: the model is told, the call goes on)
            self.connections.drop(client)  # the next call connects again
            return _failed(f"MCP 服务出错 / the MCP server failed: {exc!r}"[:2000])
        texts = [str(block.text) for block in result.content if getattr(block, "type", "") == "text"]
        text = "\n".join(texts)
        if not text and result.structured_content is not None:
            text = orjson.dumps(result.structured_content).decode()
        text = text[:MAX_BYTES]
        if result.is_error:
            return Outcome(orjson.dumps({"error": text or "MCP tool error"}).decode(), False)
        return Outcome(text, True)

    async def run(self, tool: Tool, arguments: str) -> Outcome:
        args = _arguments(arguments)
        if isinstance(args, Outcome):
            return args
        if isinstance(tool, KbSearchTool):
            return await self._search(tool, args)
        if isinstance(tool, HttpTool):
            return await self._http(tool, args)
        if isinstance(tool, SandboxQueryTool):
            return await self._sandbox(tool, args)
        if isinstance(tool, InspectionAuditTool):
            return await self._inspect(tool, args)
        return _failed("MCP 工具须按名称调用 / MCP tools are called by their listed names")

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

    async def _inspect(self, tool: InspectionAuditTool, args: dict[str, Any]) -> Outcome:
        report = args.get("report")
        if not isinstance(report, str) or not report.strip():
            return _failed("须给出 report（检验报告全文）/ report (the whole report) is required")
        if self.kbs is None:
            return _failed("本平台未启用知识库 / this platform has no knowledge bases")
        kbs = self.kbs

        def wanted(kb: str, source: str) -> bool:
            return names_standard(source, tool.standard) or kb == tool.defects

        found = await asyncio.to_thread(kbs.originals_of, self.owner, [], wanted)  # only these are read
        standards = [(source, data) for _, source, data in found if names_standard(source, tool.standard)]
        defects = [(source, data) for kb, source, data in found if kb == tool.defects]
        missing = [source for source, data in standards + defects if data is None]
        if not standards or missing:
            return _failed(
                f"标准或案例库的原文件不在平台上，请重新加入知识库：{'、'.join(missing) or tool.standard} / "
                f"the files are not kept on the platform; add them to the knowledge base again: {', '.join(missing) or tool.standard}"
            )
        files = [(source, data) for source, data in standards if data is not None]
        cases = [(source, data) for source, data in defects if data is not None]

        def run() -> dict[str, Any]:
            return audit_files(("检验报告.md", report.encode()), files, cases, "zh", kbs.read).public()

        try:
            doc = await asyncio.to_thread(run)
        except DizuoError as exc:
            return _failed(exc.message("zh") + " / " + exc.message("en"))
        shown = {
            "valid": doc["valid"],
            "batch_decision": doc["batch_decision"],
            "audit": render_text(doc, "zh"),
        }
        return Outcome(orjson.dumps(shown).decode()[:MAX_BYTES], True)

    async def _sandbox(self, tool: SandboxQueryTool, args: dict[str, Any]) -> Outcome:
        dataset, sql = args.get("dataset"), args.get("sql")
        if dataset not in tool.datasets or not isinstance(sql, str) or not sql.strip():
            return _failed(f"须给出 dataset（{'、'.join(tool.datasets)} 之一）和 sql / dataset (one of {', '.join(tool.datasets)}) and sql are required")  # fmt: skip
        if self.sandbox is None or self.caller is None:
            return _failed("本平台未启用数据沙盒 / this platform has no data sandbox")
        try:
            answer = await asyncio.to_thread(self.sandbox.query, dataset, sql, self.caller)
        except DizuoError as exc:
            return _failed(exc.message("zh") + " / " + exc.message("en"))
        shown = {key: answer[key] for key in ("columns", "rows", "suppressed", "notes")}
        return Outcome(orjson.dumps(shown).decode()[:MAX_BYTES], True)

    async def _http(self, tool: HttpTool, args: dict[str, Any]) -> Outcome:
        from jsonschema import Draft202012Validator  # loaded by the first HTTP tool call (10 MB)

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


def _function_name(server: str, tool: str) -> str:
    """``SERVER__TOOL`` as models accept a function's name (letters, digits, _ and -; 64 at most)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}__{tool}")[:64]


def _arguments(arguments: str) -> dict[str, Any] | Outcome:
    """The model's arguments as an object, or the failure to tell it."""
    try:
        args = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return _failed("参数不是有效的 JSON / the arguments are not valid JSON")
    if not isinstance(args, dict):
        return _failed("参数须是对象 / the arguments must be an object")
    return args


def _failed(message: str) -> Outcome:
    return Outcome(orjson.dumps({"error": message}).decode(), False)
