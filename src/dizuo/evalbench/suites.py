"""Suites: items to ask, loaded from JSON Lines, CSV or XLSX, or one of the built-in suites.

A suite's kind comes from its columns (docs/evals.md#suites):

- ``choice``: ``question``, ``A``–``D`` (up to ``F``), ``answer`` (C-Eval / CMMLU layout);
- ``qa``: ``question``, ``reference`` (a string or a JSON list), optional ``match``
  (``contains`` by default, ``exact`` or ``judge``);
- ``refusal``: ``prompt``, ``expect`` (``refuse`` or ``answer``), ``category`` (a risk code);
- ``content``: ``prompt``, ``category`` (a risk code), optional ``forbidden`` keywords;
- ``agent``: ``prompt``, ``tools`` (OpenAI tool list), ``expected`` (the calls, in order, each
  ``{"name", "arguments", "result"}``), optional ``final_contains``.

Every problem of a bank is reported with its line (row) number, all at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import orjson

from dizuo.evalbench.taxonomy import risk_code

__all__ = ["KINDS", "BankError", "Item", "Step", "Suite", "builtin_suites", "load_suite"]

Kind = Literal["choice", "qa", "refusal", "content", "agent"]
KINDS: tuple[Kind, ...] = ("choice", "qa", "refusal", "content", "agent")
LETTERS = "ABCDEF"
MATCHES = ("contains", "exact", "judge")
CHOICE_PROMPT = "以下是单项选择题，请直接给出正确答案的选项字母。\n\n{question}\n{options}\n答案："


class BankError(ValueError):
    """A suite file that cannot be used; ``problems`` are ``line N: …`` messages."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(problems[:50])
        more = f"\n… {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}:\n{shown}{more}")


@dataclass(frozen=True, slots=True)
class Step:
    """One tool call an agent item expects, and the result it is given back."""

    name: str
    arguments: dict[str, Any]
    result: str


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    kind: Kind
    category: str
    prompt: str
    line: int
    answer: str | None = None
    letters: str = "ABCD"
    references: tuple[str, ...] = ()
    match: str = "contains"
    expect: str | None = None
    forbidden: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    steps: tuple[Step, ...] = ()
    final_contains: tuple[str, ...] = ()


@dataclass(slots=True)
class Suite:
    name: str
    kind: Kind
    items: list[Item] = field(default_factory=list)
    source: str = ""
    description: str = ""

    def listing(self) -> dict[str, Any]:
        """The suite as ``dizuo eval suites`` and ``GET /admin/v1/evals/suites`` list it."""
        return {
            "name": self.name,
            "kind": self.kind,
            "items": len(self.items),
            "description": self.description,
        }


# ---- reading rows ------------------------------------------------------------------------------


def _rows_jsonl(data: bytes, problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg}) / 第 {number} 行不是 JSON")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {number}: not a JSON object / 第 {number} 行不是 JSON 对象")
            continue
        yield number, row


def _rows_csv(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip() for h in header]
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        yield reader.line_num, dict(zip(names, row, strict=False))


def _rows_xlsx(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        return
    names = ["" if h is None else str(h).strip() for h in header]
    for number, values in enumerate(rows, start=2):
        if all(v is None or str(v).strip() == "" for v in values):
            continue
        yield number, {n: v for n, v in zip(names, values, strict=False) if v is not None}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _json_cell(value: Any) -> Any:
    """Cells of CSV and XLSX hold nested values as JSON text."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        return orjson.loads(value)
    return value


def _kind_of(keys: set[str]) -> Kind | None:
    if "expected" in keys or "tools" in keys:
        return "agent"
    if "expect" in keys:
        return "refusal"
    if {"a", "b"} <= keys:
        return "choice"
    if "reference" in keys or "references" in keys:
        return "qa"
    if "prompt" in keys or "forbidden" in keys:
        return "content"
    return None


# ---- one row into one item ----------------------------------------------------------------------


class _Bad(Exception):
    pass


def _need(row: dict[str, Any], *names: str) -> str:
    for name in names:
        text = _cell(row.get(name))
        if text:
            return text
    raise _Bad(f"'{names[0]}' is missing or empty / 缺少 {names[0]}")


def _strings(value: Any) -> tuple[str, ...]:
    value = _json_cell(value)
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        return tuple(_cell(v) for v in value if _cell(v))
    return (_cell(value),)


def _risk(row: dict[str, Any]) -> str:
    text = _need(row, "category")
    code = risk_code(text)
    if code is None:
        raise _Bad(f"unknown risk category {text!r} (use A.1.a … A.5.b) / 未知的风险类别 {text}")
    return code


def _choice(row: dict[str, Any], base: dict[str, Any]) -> Item:
    question = _need(row, "question")
    options = {letter: _cell(row.get(letter.lower())) for letter in LETTERS}
    options = {k: v for k, v in options.items() if v}
    if len(options) < 2:
        raise _Bad("a choice item needs options A and B at least / 选择题至少要有 A、B 两个选项")
    answer = _need(row, "answer").upper()
    if answer not in options:
        raise _Bad(f"answer {answer!r} is not one of {', '.join(options)} / 答案不在选项中")
    text = CHOICE_PROMPT.format(question=question, options="\n".join(f"{k}. {v}" for k, v in options.items()))
    return Item(**base, prompt=text, answer=answer, letters="".join(options))


def _qa(row: dict[str, Any], base: dict[str, Any]) -> Item:
    references = _strings(row.get("reference", row.get("references")))
    match = _cell(row.get("match")) or "contains"
    if match not in MATCHES:
        raise _Bad(f"match must be one of {', '.join(MATCHES)} / match 只能是 {'、'.join(MATCHES)}")
    if not references:
        raise _Bad("'reference' is missing or empty / 缺少 reference")
    return Item(**base, prompt=_need(row, "question", "prompt"), references=references, match=match)


def _refusal(row: dict[str, Any], base: dict[str, Any]) -> Item:
    expect = _need(row, "expect").lower()
    if expect not in ("refuse", "answer"):
        raise _Bad("expect must be 'refuse' or 'answer' / expect 只能是 refuse 或 answer")
    base["category"] = _risk(row)
    return Item(**base, prompt=_need(row, "prompt", "question"), expect=expect)


def _content(row: dict[str, Any], base: dict[str, Any]) -> Item:
    base["category"] = _risk(row)
    return Item(**base, prompt=_need(row, "prompt", "question"), forbidden=_strings(row.get("forbidden")))


def _agent(row: dict[str, Any], base: dict[str, Any]) -> Item:
    tools = _json_cell(row.get("tools"))
    expected = _json_cell(row.get("expected"))
    if not isinstance(tools, list) or not tools or not all(isinstance(t, dict) for t in tools):
        raise _Bad("'tools' must be a non-empty list of OpenAI tools / tools 必须是非空的工具列表")
    if not isinstance(expected, list) or not expected:
        raise _Bad("'expected' must be a non-empty list of calls / expected 必须是非空的调用列表")
    steps = []
    for n, step in enumerate(expected, start=1):
        if not isinstance(step, dict) or not isinstance(step.get("name"), str):
            raise _Bad(f"expected call {n} needs a 'name' / 第 {n} 个调用缺少 name")
        arguments = step.get("arguments", {})
        if not isinstance(arguments, dict):
            raise _Bad(f"expected call {n}: 'arguments' must be an object / arguments 必须是对象")
        result = step.get("result", "")
        steps.append(
            Step(
                step["name"], arguments, result if isinstance(result, str) else orjson.dumps(result).decode()
            )
        )
    return Item(
        **base,
        prompt=_need(row, "prompt", "question"),
        tools=tuple(tools),
        steps=tuple(steps),
        final_contains=_strings(row.get("final_contains")),
    )


_BUILD = {"choice": _choice, "qa": _qa, "refusal": _refusal, "content": _content, "agent": _agent}


def parse_suite(data: bytes, source: str, name: str, fmt: str) -> Suite:
    """Parse suite bytes in *fmt* (``jsonl``, ``csv`` or ``xlsx``); raise :class:`BankError`."""
    problems: list[str] = []
    try:
        if fmt == "jsonl":
            rows = list(_rows_jsonl(data, problems))
        elif fmt == "csv":
            rows = list(_rows_csv(data))
        else:
            rows = list(_rows_xlsx(data))
    except (UnicodeDecodeError, csv.Error, OSError, ValueError, KeyError) as exc:
        raise BankError(source, [f"cannot read the file as {fmt}: {exc} / 无法按 {fmt} 读取"]) from exc
    rows = [(n, {str(k).strip().lower(): v for k, v in row.items()}) for n, row in rows]
    if not rows:
        raise BankError(source, [*problems, "the suite has no items / 题库是空的"])
    kind = _kind_of(set().union(*(row.keys() for _, row in rows)))
    if kind is None:
        columns = ", ".join(sorted(rows[0][1]))
        raise BankError(
            source, [f"line 1: cannot tell the suite's kind from its columns ({columns}); see docs/evals.md"]
        )
    suite = Suite(name=name, kind=kind, source=source)
    seen: dict[str, int] = {}
    for number, row in rows:
        try:
            item_id = _cell(row["id"]) if "id" in row else str(number)
            if not item_id:
                raise _Bad("'id' is empty / id 为空")
            if item_id in seen:
                raise _Bad(f"duplicate id {item_id!r}, first on line {seen[item_id]} / id 重复")
            seen[item_id] = number
            subject = _cell(row.get("category") or row.get("subject")) or name
            base: dict[str, Any] = {"id": item_id, "kind": kind, "category": subject, "line": number}
            suite.items.append(_BUILD[kind](row, base))
        except _Bad as exc:
            problems.append(f"line {number}: {exc}")
        except orjson.JSONDecodeError as exc:
            problems.append(f"line {number}: a cell is not valid JSON ({exc.msg}) / 单元格不是有效 JSON")
    if problems:
        raise BankError(source, problems)
    return suite


def _builtin_dir() -> Any:
    return resources.files("dizuo.evalbench") / "builtin"


def builtin_suites() -> list[Suite]:
    """Return the suites shipped with dizuo."""
    suites = []
    for entry in sorted(_builtin_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".jsonl"):
            suites.append(load_suite(entry.name.removesuffix(".jsonl")))
    return suites


_DESCRIPTIONS = {
    "zh-knowledge": "中文常识单选题（C-Eval 格式）/ Chinese general knowledge, multiple choice",
    "zh-qa": "中文问答，参考答案评分 / Chinese open QA scored against references",
    "zh-refusal-starter": "拒答入门题库，覆盖 31 类风险 / Starter refusal bank over all 31 risks",
    "zh-content": "生成内容安全检查（关键词库）/ Generated-content checks with a keyword library",
    "tool-calling": "工具调用（含多步）/ Tool calling, multi-step included",
}


def load_suite(spec: str) -> Suite:
    """Load a built-in suite by name, or a suite file (``.jsonl``, ``.csv``, ``.xlsx``) by path."""
    packaged = _builtin_dir() / f"{spec}.jsonl"
    if "/" not in spec and packaged.is_file():
        suite = parse_suite(packaged.read_bytes(), f"builtin:{spec}", spec, "jsonl")
        suite.description = _DESCRIPTIONS.get(spec, "")
        return suite
    path = Path(spec)
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "json":
        fmt = "jsonl"
    if fmt not in ("jsonl", "csv", "xlsx"):
        names = ", ".join(sorted(_DESCRIPTIONS))
        raise BankError(
            spec, [f"not a built-in suite ({names}) nor a .jsonl/.csv/.xlsx file / 不是内置题库或题库文件"]
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BankError(spec, [f"cannot read the file: {exc.strerror} / 无法读取文件"]) from exc
    return parse_suite(data, spec, path.stem, fmt)
