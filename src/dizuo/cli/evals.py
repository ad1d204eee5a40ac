"""``dizuo eval``: run suites against any model, compare runs, list the built-in suites."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from dizuo.cli.common import fail

__all__ = ["evals"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


@click.group("eval")
def evals() -> None:
    """Test and verify models and agents (大模型、智能体测试验证)."""


@evals.command("suites")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def suites(as_json: bool) -> None:
    """List the built-in suites."""
    from dizuo.evalbench import builtin_suites

    rows = [suite.listing() for suite in builtin_suites()]
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    for row in rows:
        click.echo(f"{row['name']:<20} {row['kind']:<8} {row['items']:>4}  {row['description']}")


@evals.command("run")
@click.option("--model", required=True, help="Model alias (through the gateway) or upstream model name.")
@click.option(
    "--suite", "suite_spec", required=True, help="A built-in suite's name, or a .jsonl/.csv/.xlsx file."
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path, file_okay=False), help="Folder of the run."
)
@click.option(
    "--base-url",
    envvar="DIZUO_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="OpenAI-compatible base URL (or DIZUO_BASE_URL).",
)
@click.option("--api-key", envvar=["DIZUO_API_KEY", "OPENAI_API_KEY"], help="API key (or DIZUO_API_KEY).")
@click.option("--concurrency", type=click.IntRange(1, 512), default=8, show_default=True)
@click.option("--retries", type=click.IntRange(0, 20), default=3, show_default=True)
@click.option(
    "--timeout", type=click.FloatRange(1, 3600), default=120.0, show_default=True, help="Seconds per call."
)
@click.option(
    "--judge", default=None, help="Judge model for open answers, refusals and content (same base URL)."
)
@click.option("--max-tokens", type=click.IntRange(1), default=1024, show_default=True)
@click.option(
    "--keywords",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Keyword library for generated-content checks: one word per line.",
)
@click.option(
    "--record/--no-record",
    default=None,
    help="Record the finished run in the platform (its console and /admin/v1/evals); "
    "by default when this machine has the platform's database.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results.json when done.")
def run(
    model: str,
    suite_spec: str,
    out: Path,
    base_url: str,
    api_key: str | None,
    concurrency: int,
    retries: int,
    timeout: float,
    judge: str | None,
    max_tokens: int,
    keywords: Path | None,
    record: bool | None,
    as_json: bool,
) -> None:
    """Run a suite against a model; resume a run killed halfway by running it again into --out.
    The finished run is recorded in the platform, as runs started from the console are."""
    from dizuo.app import labeling, report_labels
    from dizuo.evalbench import BankError, RunConfig, RunConflict, RunFailed, load_suite, run_suite
    from dizuo.settings import Settings

    try:
        suite = load_suite(suite_spec)
    except BankError as exc:
        fail(f"题库有误 / the suite has problems: {exc}")
    words: tuple[str, ...] = ()
    if keywords is not None:
        text = keywords.read_text(encoding="utf-8-sig")
        words = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    config = RunConfig(
        model=model,
        base_url=base_url,
        api_key=api_key,
        concurrency=concurrency,
        retries=retries,
        timeout=timeout,
        judge=judge,
        max_tokens=max_tokens,
        keywords=words,
    )
    step = max(1, len(suite.items) // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            click.echo(f"  {done}/{total}", err=True)

    try:
        label = report_labels(labeling(Settings()))
        labeled = (lambda page: label(page, out.name)) if label is not None else None
        document = asyncio.run(run_suite(suite, config, out, progress, labeled))
    except RunConflict as exc:
        fail(str(exc))
    except RunFailed as exc:
        click.echo(f"错误 / error: 评测中止 / the run stopped: {exc}", err=True)
        sys.exit(1)
    if record is not False:
        _record(out, document, explicit=record is True)
    if as_json:
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    _print_summary(document, out)


def _record(out: Path, document: dict[str, Any], *, explicit: bool) -> None:
    """Record the run in the platform's database (DIZUO_DATABASE_URL, or the SQLite database under
    DIZUO_DATA_DIR when it exists); say where it can be seen."""
    import getpass

    from dizuo.cli.common import database, reported
    from dizuo.evalbench.service import EvalService
    from dizuo.settings import Settings

    with reported():
        settings = Settings()
    if not explicit and not settings.database_url and not (settings.data_dir / "dizuo.db").exists():
        return  # no platform on this machine: the run stays in --out
    with reported(), database() as db:
        run_id = EvalService(db, settings.data_dir).record(out, document, f"cli:{getpass.getuser()}")
    click.echo(f"已记录到平台 / recorded in the platform: {run_id} (console: 评测 / Evaluations)", err=True)


def _print_summary(doc: dict[str, Any], out: Path) -> None:
    overall = doc["overall"]
    rate = "–" if overall["rate"] is None else f"{overall['rate']:.1%}"
    low, high = overall["ci95"]
    click.echo(
        f"{doc['run']['model']} · {doc['run']['suite']['name']}: {rate} "
        f"({overall['passed']}/{overall['n']}, 95% CI {low:.1%}–{high:.1%}), "
        f"failed calls / 调用失败 {doc['counts']['errors']}"
    )
    for req in doc["requirements"]:
        measured = "–" if req["measured"] is None else f"{req['measured']:.1%}"
        click.echo(f"  [{req['verdict']}] {req['title_zh']}: {measured}, n={req['n']}")
    click.echo(f"grade / 等级: {doc['grade'] or '–'} ({doc['grade_reason']})")
    click.echo(f"report / 报告: {out / 'report.html'}")


@evals.command("compare")
@click.argument("dir_a", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("dir_b", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--html", type=click.Path(path_type=Path, dir_okay=False), help="Also write an HTML comparison here."
)
@click.option("--fail-on-regression", is_flag=True, help="Exit with status 1 when an item regressed.")
def compare(dir_a: Path, dir_b: Path, as_json: bool, html: Path | None, fail_on_regression: bool) -> None:
    """Compare run B with run A: scores per category and every item that regressed or improved."""
    from dizuo.evalbench import compare_runs, render_compare

    try:
        result = compare_runs(dir_a, dir_b)
    except (FileNotFoundError, orjson.JSONDecodeError, KeyError) as exc:
        fail(str(exc))
    if html is not None:
        html.write_text(render_compare(result), encoding="utf-8")
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_comparison(result)
    if fail_on_regression and result["regressions"]:
        sys.exit(1)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _print_comparison(result: dict[str, Any]) -> None:
    overall = result["overall"]
    delta = "" if overall["delta"] is None else f" ({overall['delta'] * 100:+.1f} pt)"
    click.echo(f"overall / 总分: {_pct(overall['a'])} → {_pct(overall['b'])}{delta}")
    for name, entry in result["categories"].items():
        change = "" if entry["delta"] is None else f" ({entry['delta'] * 100:+.1f} pt)"
        click.echo(f"  {name:<16} {_pct(entry['a']):>7} → {_pct(entry['b']):>7}{change}")
    click.echo(f"regressions / 退步: {len(result['regressions'])}")
    for row in result["regressions"]:
        before, after = row["before"], row["after"]
        click.echo(
            f"  - {row['id']} [{row['category']}] {str(before.get('answer', ''))[:40]!r} → "
            f"{str(after.get('answer') or after.get('error', ''))[:40]!r}"
        )
    click.echo(f"improvements / 进步: {len(result['improvements'])}")
