"""``dizuo guard``: scan text for personal information and secrets from the command line."""

from __future__ import annotations

import re
import sys
from typing import IO

import click
import orjson

from dizuo.cli.common import fail

__all__ = ["guard"]


@click.group()
def guard() -> None:
    """Data-risk guard: find personal information and secrets (数据风险监测)."""


@guard.command()
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--json", "as_json", is_flag=True, help="Write one JSON document per input line.")
@click.option(
    "--keyword", "keywords", multiple=True, help="Also report this word (type KEYWORD); repeatable."
)
@click.option(
    "--pattern", "patterns", multiple=True, help="Also report this regular expression (type CUSTOM)."
)
def scan(source: IO[bytes], as_json: bool, keywords: tuple[str, ...], patterns: tuple[str, ...]) -> None:
    """Scan JSON Lines with a ``text`` field (FILE, or standard input with - or nothing).

    With --json each line gets ``{"entities": [{"type", "start", "end", "value"}]}``, offsets in
    characters; otherwise one readable line per entity. A line that is not JSON with a string
    ``text`` stops the scan with its line number (exit 2).
    """
    from dizuo.guard import Scanner

    try:
        scanner = Scanner(keywords=keywords, patterns=patterns)
    except re.error as exc:
        fail(f"--pattern 不是有效的正则表达式 / --pattern is not a valid regular expression: {exc}")
    out = sys.stdout.buffer
    for number, raw in enumerate(source, start=1):
        if not raw.strip():
            continue
        try:
            text = orjson.loads(raw)["text"]
            if not isinstance(text, str):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            fail(
                f"第 {number} 行不是含字符串 text 字段的 JSON / line {number} is not JSON with a string "
                f"'text' field"
            )
        entities = scanner.scan(text)
        if as_json:
            out.write(orjson.dumps({"entities": [e.as_dict() for e in entities]}) + b"\n")
        else:
            for e in entities:
                out.write(f"{number}\t{e.type}\t{e.start}-{e.end}\t{e.value}\n".encode())
    out.flush()
