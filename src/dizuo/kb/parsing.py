"""Documents into blocks: headings, paragraphs and tables, with their page where the format has one.

Only Markdown and plain text so far; DOCX, XLSX/CSV, HTML and PDF parsers will produce the same
blocks, so chunking and indexing never see a file format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Block", "parse_markdown"]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


@dataclass(frozen=True, slots=True)
class Block:
    kind: Literal["heading", "paragraph", "table"]
    text: str = ""
    level: int = 0  # headings: 1 for '#'
    header: tuple[str, ...] = ()  # tables
    rows: tuple[tuple[str, ...], ...] = field(default=())
    page: int | None = None


def _cells(line: str) -> tuple[str, ...]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return tuple(cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line))


def parse_markdown(text: str) -> list[Block]:
    """Return the blocks of a Markdown (or plain-text) document, in order."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("paragraph", "\n".join(paragraph)))
            paragraph.clear()

    index = 0
    in_fence = False
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            paragraph.append(line)
            index += 1
            continue
        if in_fence:
            paragraph.append(line)
            index += 1
            continue
        heading = _HEADING.match(stripped)
        if heading:
            flush()
            blocks.append(Block("heading", heading.group(2), level=len(heading.group(1))))
            index += 1
            continue
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if stripped.startswith("|") and _TABLE_RULE.match(following):
            flush()
            header = _cells(stripped)
            rows = []
            index += 2
            while index < len(lines) and lines[index].strip().startswith("|"):
                rows.append(_cells(lines[index]))
                index += 1
            blocks.append(Block("table", header=header, rows=tuple(rows)))
            continue
        if not stripped:
            flush()
        else:
            paragraph.append(stripped)
        index += 1
    flush()
    return blocks
