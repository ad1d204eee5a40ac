"""Documents into blocks: headings, paragraphs and tables, with their page where the format has one.

Markdown and plain text are parsed here; the DOCX, XLSX/CSV, HTML and PDF parsers in
:mod:`dizuo.kb.formats` produce the same blocks, so chunking and indexing never see a file format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Block", "BlockWriter", "parse_markdown"]

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


class BlockWriter:
    """Blocks in reading order, with paragraph lines gathered until a blank line, a heading or a
    table ends the paragraph: what every line-by-line parser (Markdown, DOCX) does."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self._lines: list[str] = []

    def line(self, text: str) -> None:
        """Add a line to the paragraph being gathered."""
        self._lines.append(text)

    def end_paragraph(self) -> None:
        if self._lines:
            self.blocks.append(Block("paragraph", "\n".join(self._lines)))
            self._lines.clear()

    def add(self, block: Block) -> None:
        """End the paragraph, then add *block* (a heading or a table)."""
        self.end_paragraph()
        self.blocks.append(block)

    def done(self) -> list[Block]:
        self.end_paragraph()
        return self.blocks


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
    out = BlockWriter()
    index = 0
    in_fence = False
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            out.line(line)
            index += 1
            continue
        if in_fence:
            out.line(line)
            index += 1
            continue
        heading = _HEADING.match(stripped)
        if heading:
            out.add(Block("heading", heading.group(2), level=len(heading.group(1))))
            index += 1
            continue
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if stripped.startswith("|") and _TABLE_RULE.match(following):
            header = _cells(stripped)
            rows = []
            index += 2
            while index < len(lines) and lines[index].strip().startswith("|"):
                rows.append(_cells(lines[index]))
                index += 1
            out.add(Block("table", header=header, rows=tuple(rows)))
            continue
        if not stripped:
            out.end_paragraph()
        else:
            out.line(stripped)
        index += 1
    return out.done()
