"""Reports: ``report.html`` of one run, and the comparison of two runs item by item.

The HTML is self-contained (inline CSS and SVG charts, no script, no CDN): it opens from a mail
attachment on a machine with no internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape

from dizuo.evalbench.client import read_lines

__all__ = ["compare_runs", "load_run", "render_compare", "write_report"]

FAILED_SHOWN = 500  # items listed in a report; results.json and items.jsonl hold them all

_env = Environment(
    loader=PackageLoader("dizuo.evalbench", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _points(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} pt"


_env.filters["pct"] = _pct
_env.filters["points"] = _points


def write_report(out: Path, document: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write ``report.html`` for one run into *out* and return its path."""
    failed = [r for r in rows if r.get("passed") is not True]
    html = _env.get_template("report.html").render(
        doc=document, failed=failed[:FAILED_SHOWN], failed_total=len(failed), rows=len(rows)
    )
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
    return _env.get_template("compare.html").render(cmp=comparison)
