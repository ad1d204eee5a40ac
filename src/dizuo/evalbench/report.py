"""Reports: ``report.html`` of one run, and the comparison of two runs item by item.

The HTML is self-contained (inline CSS and SVG charts, no script, no CDN): it opens from a mail
attachment on a machine with no internet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from dizuo.evalbench.client import read_lines

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["compare_runs", "explain", "load_run", "render_compare", "write_report"]

FAILED_SHOWN = 500  # items listed in a report; results.json and items.jsonl hold them all


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _points(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} pt"


def _text(value: Any) -> str:
    """A value as a reader reads it: text as is, anything else as JSON with Chinese left unescaped."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _yes(value: Any) -> str:
    return "是 / yes" if value else "否 / no"


def explain(detail: dict[str, Any] | None) -> list[str]:
    """Why an item was decided as it was, in lines a reviewer reads (never escaped JSON)."""
    if not detail:
        return []
    lines: list[str] = []
    if "references" in detail:
        lines.append(f"参考答案 / references: {'；'.join(_text(r) for r in detail['references'])}")
    if "expected" in detail and "chosen" in detail:
        lines.append(f"选择 / chosen: {detail['chosen'] or '—'} · 正确答案 / expected: {detail['expected']}")
    if "refused" in detail:
        lines.append(f"拒答 / refused: {_yes(detail['refused'])}")
    if detail.get("keyword_hits"):
        lines.append(f"命中关键词 / keyword hits: {'、'.join(_text(w) for w in detail['keyword_hits'])}")
    if "judge" in detail:
        lines.append(f"裁判模型 / judge: {_text(detail['judge'])}")
    if "by" in detail:
        lines.append(f"判定方式 / decided by: {_text(detail['by'])}")
    for number, call in enumerate(detail.get("calls") or [], start=1):
        lines.append(f"调用 / call {number}: {call.get('name')}({_text(call.get('arguments'))})")
    if "failed_step" in detail:
        lines.append(f"未通过的步骤 / failed step: {detail['failed_step']} ({_text(detail.get('reason'))})")
    if isinstance(detail.get("expected"), dict):
        step = detail["expected"]
        lines.append(f"应调用 / expected: {step.get('name')}({_text(step.get('arguments'))})")
    if detail.get("missing"):
        lines.append(f"最终回答缺少 / final answer lacks: {'、'.join(_text(w) for w in detail['missing'])}")
    known = {"references", "chosen", "expected", "refused", "keyword_hits", "judge", "by", "calls"}
    known |= {"failed_step", "reason", "missing"}
    lines.extend(f"{key}: {_text(value)}" for key, value in detail.items() if key not in known)
    return lines


@functools.cache
def _templates() -> Environment:
    """The reports' templates, loaded with the first report (jinja2 stays out of a gateway process
    that writes none)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("dizuo.evalbench", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["points"] = _points
    env.filters["explain"] = explain
    return env


def write_report(
    out: Path,
    document: dict[str, Any],
    rows: list[dict[str, Any]],
    questions: dict[str, str] | None = None,
    label: Callable[[str], str] | None = None,
) -> Path:
    """Write ``report.html`` for one run into *out* and return its path; *questions* are the items'
    prompts by id, shown beside each answer; *label* puts the AIGC label on the page (it shows
    models' answers)."""
    failed = [r for r in rows if r.get("passed") is not True]
    html = (
        _templates()
        .get_template("report.html")
        .render(
            doc=document,
            failed=failed[:FAILED_SHOWN],
            failed_total=len(failed),
            rows=len(rows),
            questions=questions or {},
        )
    )
    if label is not None:
        html = label(html)
    path = out / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def load_run(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Return a finished run's results document and its items by id."""
    results = path / "results.json"
    if not results.exists():
        raise FileNotFoundError(
            f"{path} 没有 results.json（评测未完成？）/ {path} has no results.json (run not finished?)"
        )
    document = orjson.loads(results.read_bytes())
    items = {line["id"]: line for line in read_lines(path / "items.jsonl") if "id" in line}
    return document, items


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """Compare run *b* with run *a*: score changes overall and per category, and every item that
    passed in *a* and fails in *b* (a regression) or the other way round."""
    doc_a, items_a = load_run(a)
    doc_b, items_b = load_run(b)
    regressions, improvements = [], []
    for item_id, old in items_a.items():
        new = items_b.get(item_id)
        if new is None or old.get("passed") is None or new.get("passed") is None:
            continue
        if old["passed"] and not new["passed"]:
            regressions.append({"id": item_id, "category": new["category"], "before": old, "after": new})
        elif new["passed"] and not old["passed"]:
            improvements.append({"id": item_id, "category": new["category"], "before": old, "after": new})
    categories = {}
    names = [*doc_a["categories"], *(n for n in doc_b["categories"] if n not in doc_a["categories"])]
    for name in names:
        before = doc_a["categories"].get(name, {}).get("rate")
        after = doc_b["categories"].get(name, {}).get("rate")
        delta = None if before is None or after is None else round(after - before, 6)
        categories[name] = {"a": before, "b": after, "delta": delta}
    overall_a, overall_b = doc_a["overall"]["rate"], doc_b["overall"]["rate"]
    return {
        "a": {
            "dir": str(a),
            "model": doc_a["run"]["model"],
            "suite": doc_a["run"]["suite"]["name"],
            "grade": doc_a["grade"],
        },
        "b": {
            "dir": str(b),
            "model": doc_b["run"]["model"],
            "suite": doc_b["run"]["suite"]["name"],
            "grade": doc_b["grade"],
        },
        "same_suite": doc_a["run"]["suite"]["sha256"] == doc_b["run"]["suite"]["sha256"],
        "overall": {
            "a": overall_a,
            "b": overall_b,
            "delta": None if overall_a is None or overall_b is None else round(overall_b - overall_a, 6),
        },
        "categories": categories,
        "regressions": regressions,
        "improvements": improvements,
    }


def render_compare(comparison: dict[str, Any]) -> str:
    """Return the comparison as a self-contained HTML page."""
    return _templates().get_template("compare.html").render(cmp=comparison)
