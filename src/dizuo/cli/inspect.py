"""``dizuo inspect``: audit an inspection report against its standard, on this machine.

No server and no model are needed: every judgement is made in code. Options take several files
each (``--standard 规范.md 附录.docx``), as the documented command line writes them, so the arguments are
read with argparse (click options take one value per flag).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click
import orjson

from dizuo.cli.common import fail, reported

__all__ = ["inspect"]

_USAGE = """dizuo inspect REPORT --standard FILE [FILE …] [--defects FILE …] [--json] [--html OUT] [--lang zh|en]

Audit an inspection report (Markdown, DOCX, XLSX, CSV or HTML) against the inspection standard
(any of those, or a text PDF): completeness, every measured value against its clause, per-piece verdicts, the sample
size and the lot decision (Ac/Re), escalations (8D), and similar past defects from the history.

Exit status: 0 when the report is valid, 1 when it is not, 2 when a file cannot be read.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dizuo inspect", usage=_USAGE, add_help=True)
    parser.add_argument("report", type=Path)
    parser.add_argument("--standard", type=Path, nargs="+", required=True, help="the inspection standard")
    parser.add_argument("--defects", type=Path, nargs="+", default=[], help="defect history (8D summaries)")
    parser.add_argument("--json", action="store_true", help="print the audit as JSON")
    parser.add_argument("--html", type=Path, help="also write the audit as an HTML page to this file")
    parser.add_argument("--lang", choices=("zh", "en"), default="zh", help="language of the messages")
    return parser


def _read(path: Path) -> tuple[str, bytes]:
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        fail(f"无法读取 {path}：{exc.strerror} / cannot read {path}: {exc.strerror}")


@click.command(
    "inspect",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def inspect(args: tuple[str, ...]) -> None:
    """Audit an inspection report against its standard (质检报告校核); -h for the options."""
    from dizuo.apps.inspection import audit_files, render_html, render_text

    try:
        options = _parser().parse_args(list(args))
    except SystemExit as exc:  # argparse printed the usage or the error
        sys.exit(0 if exc.code == 0 else 2)
    with reported():
        result = audit_files(
            _read(options.report),
            [_read(p) for p in options.standard],
            [_read(p) for p in options.defects],
            lang=options.lang,
        )
    doc = result.public()
    if options.html is not None:
        options.html.write_text(render_html(doc, options.lang), encoding="utf-8")
    if options.json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_text(doc, options.lang))
    sys.exit(0 if result.valid else 1)
