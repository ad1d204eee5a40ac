"""An agent's definition: what an organization writes (YAML or JSON) and the platform checks.

```yaml
name: 质检助手
model: deepseek-chat            # any model the organization's keys may use
instructions: 你是……             # the system prompt
tools:
  - kb_search: {knowledge_bases: [质检规范], k: 5}
  - http: {name: erp_lookup, url: https://erp.internal/api/parts, method: GET, schema: {...}}
  - mcp: {server: parts-db}     # an MCP server a platform admin registered and the organization enabled
  - sandbox_query: {datasets: [居民]}  # aggregate questions of the data sandbox, under the caller's grant
max_steps: 8                    # model calls in one call of the agent
max_cost: 0.50                  # CNY one call of the agent may cost at most
data_class: important
visibility: org                 # org | platform
```

:func:`parse` checks the shape alone (every mistake names its field, ``tools[1].http.url``); what
depends on the platform (the model exists, the knowledge bases are the organization's, the host is
allowed, the MCP server is registered and enabled) is checked by :class:`dizuo.agents.service.Agents` before anything is stored.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dizuo.errors import InvalidRequest

__all__ = [
    "AgentSpec",
    "HttpTool",
    "InspectionAuditTool",
    "KbSearchTool",
    "McpTool",
    "SandboxQueryTool",
    "Tool",
    "bad",
    "names_standard",
    "parse",
]

NAME = re.compile(r"^[^\s/@][^/@]{0,63}$")  # an agent's name: no "/" or "@" (its alias is agent/NAME@V)
TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # a function name as models accept it
KINDS = ("kb_search", "http", "inspection_audit", "mcp", "sandbox_query")
SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # an MCP server's registered name


def bad(field: str, zh: str, en: str) -> InvalidRequest:
    """400 naming *field* of the definition and what is wrong with it."""
    return InvalidRequest("invalid_param", param=field, reason_zh=zh, reason_en=en)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KbSearchTool(_Strict):
    """Search the owner's knowledge bases; the passages come back with their citations."""

    name: str = Field("kb_search", pattern=TOOL_NAME.pattern)
    knowledge_bases: list[str] = Field(min_length=1, max_length=8)
    k: int = Field(5, ge=1, le=20)
    description: str = Field("", max_length=1000)


class HttpTool(_Strict):
    """Call one HTTP endpoint of a host a platform admin allowed."""

    name: str = Field(pattern=TOOL_NAME.pattern)
    url: str = Field(max_length=2000)
    method: Literal["GET", "POST"] = "GET"
    description: str = Field("", max_length=1000)
    # The arguments' JSON Schema (an object): GET sends them as the query, POST as a JSON body.
    schema_: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}, alias="schema"
    )
    timeout_seconds: float = Field(10.0, gt=0, le=30)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials")
        return value

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


class McpTool(_Strict):
    """The tools of one MCP server (all, or those named in *tools*), offered to the model as
    ``SERVER__TOOL``."""

    server: str = Field(pattern=SERVER_NAME.pattern)
    tools: list[str] | None = Field(None, min_length=1, max_length=64)
    timeout_seconds: float = Field(30.0, gt=0, le=300)

    @property
    def name(self) -> str:
        return self.server


class SandboxQueryTool(_Strict):
    """SQL on datasets of the data sandbox, run under the *caller's* organization's grant and its
    disclosure control: what the model reads is what a person of that organization could read."""

    name: str = Field("sandbox_query", pattern=TOOL_NAME.pattern)
    datasets: list[str] = Field(min_length=1, max_length=8)
    description: str = Field("", max_length=1000)


class InspectionAuditTool(_Strict):
    """The inspection-report auditor (:mod:`dizuo.apps.inspection`) on a report the model passes:
    checked against the standard *standard* (a document of the owner's knowledge bases whose file
    name carries it, e.g. ``Q-HJ-017``), its findings linked to the past cases of the knowledge base
    *defects*."""

    name: str = Field("inspection_audit", pattern=TOOL_NAME.pattern)
    standard: str = Field(min_length=1, max_length=128)
    defects: str | None = Field(None, min_length=1, max_length=128)
    description: str = Field("", max_length=1000)


def names_standard(source: str, standard: str) -> bool:
    """Whether the file name *source* carries the standard *standard* (``Q-HJ-017`` in
    ``Q-HJ-017-柱塞偶件检验规范.md``; letters and digits compared, case and separators aside)."""

    def bare(text: str) -> str:
        return "".join(ch for ch in text.casefold() if ch.isalnum())

    return bool(bare(standard)) and bare(standard) in bare(source)


Tool = KbSearchTool | HttpTool | McpTool | SandboxQueryTool | InspectionAuditTool
KIND_OF: dict[type[Any], str] = {
    KbSearchTool: "kb_search",
    HttpTool: "http",
    McpTool: "mcp",
    SandboxQueryTool: "sandbox_query",
    InspectionAuditTool: "inspection_audit",
}


class AgentSpec(_Strict):
    name: str = Field(pattern=NAME.pattern)
    description: str = Field("", max_length=2000)
    model: str = Field(min_length=1, max_length=256)
    instructions: str = Field("", max_length=20000)
    tools: list[Tool] = Field(default_factory=list, max_length=16)
    max_steps: int = Field(8, ge=1, le=32)
    max_cost: Decimal = Field(Decimal("1"), gt=0, le=1000)
    data_class: Literal["general", "important", "core"] = "general"
    visibility: Literal["org", "platform"] = "org"
    # The owner's own evaluation suites (their names as `dizuo eval run` records them: a suite file's
    # name without its extension) that must have run against a version before it is listed for
    # every organization, beside the bench's tool-calling and refusal suites.
    suites: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=8
    )

    def public(self) -> dict[str, Any]:
        """The definition as stored and shown: one-key tool entries, as it was written."""
        tools = [
            {KIND_OF[type(tool)]: tool.model_dump(by_alias=True, exclude_none=True)} for tool in self.tools
        ]
        return {
            **self.model_dump(exclude={"tools", "max_cost"}),
            "tools": tools,
            "max_cost": str(self.max_cost),
        }


def parse(source: str | bytes | dict[str, Any]) -> AgentSpec:
    """The definition in *source* (YAML, JSON, or already a mapping), its shape checked; 400 naming
    the first field that is wrong."""
    if isinstance(source, dict):
        raw: Any = source
    else:
        try:
            raw = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise bad("definition", f"不是有效的 YAML：{exc}", f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise bad(
            "definition", "须是一个映射（name、model、tools …）", "must be a mapping (name, model, tools …)"
        )
    document = dict(raw)
    if isinstance(document.get("max_cost"), float):  # YAML reads 0.50 as a float: keep its digits
        document["max_cost"] = str(document["max_cost"])
    tools = document.get("tools") or []
    if not isinstance(tools, list):
        raise bad("tools", "须是列表", "must be a list")
    document["tools"] = [_tool(n, entry) for n, entry in enumerate(tools)]
    try:
        spec = AgentSpec.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "definition"
        raise bad(where, first["msg"], first["msg"]) from exc
    names = [tool.name for tool in spec.tools]
    for n, name in enumerate(names):
        if name in names[:n]:
            raise bad(f"tools[{n}].name", f"工具名 {name} 重复", f"the tool name {name} is used twice")
    return spec


def _tool(n: int, entry: Any) -> Tool:
    where = f"tools[{n}]"
    if not isinstance(entry, dict) or len(entry) != 1:
        raise bad(
            where, f"每个工具写成一个键：{', '.join(KINDS)}", f"each tool is one key: {', '.join(KINDS)}"
        )
    ((kind, options),) = entry.items()
    if kind not in KINDS:
        raise bad(where, f"未知的工具类型 {kind}（可用：{', '.join(KINDS)}）", f"unknown tool kind {kind} (one of {', '.join(KINDS)})")  # fmt: skip
    options = options or {}
    if not isinstance(options, dict):
        raise bad(f"{where}.{kind}", "须是映射", "must be a mapping")
    model: type[Tool] = {
        "kb_search": KbSearchTool,
        "http": HttpTool,
        "mcp": McpTool,
        "sandbox_query": SandboxQueryTool,
        "inspection_audit": InspectionAuditTool,
    }[kind]  # type: ignore[assignment]
    try:
        tool = model.model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise bad(f"{where}.{kind}.{field}".rstrip("."), first["msg"], first["msg"]) from exc
    if isinstance(tool, HttpTool):
        from jsonschema import Draft202012Validator  # 10 MB, loaded by the first agent with an HTTP tool
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(tool.schema_)
        except SchemaError as exc:
            raise bad(f"{where}.http.schema", f"不是有效的 JSON Schema：{exc.message}", f"not a valid JSON Schema: {exc.message}") from exc  # fmt: skip
        if tool.schema_.get("type", "object") != "object":
            raise bad(f"{where}.http.schema", "参数须是对象（type: object）", "the arguments must be an object (type: object)")  # fmt: skip
    return tool
