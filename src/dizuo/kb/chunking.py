"""Chunking that respects Chinese: headings, clauses and sentence ends, tables row by row.

- Each chunk carries its heading path (``["4 技术要求", "4.6 密封性"]``) and the clause number it
  belongs to (``4.6``, or ``4.2.1`` when a paragraph opens with its own number), so that an answer
  can cite 「Q/HJ 017 第 4.6 条」.
- Text is split at sentence ends (。！？；!?; and line ends), never inside a sentence unless a single
  sentence is longer than a chunk; then at a comma, else at the limit.
- A chunk never spans two clauses or two headings.
- Table rows are rendered with their header (``型号: HJ-P12；公称直径/mm: 12.000 …``) and grouped, so
  that a row found alone still says what each number is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from dizuo.kb.parsing import Block

__all__ = ["Chunk", "chunk_blocks", "clause_of", "index_text"]

MAX_CHARS = 400
_SENTENCE = re.compile(r"[^。！？；!?;\n]*(?:[。！？；!?;]+[”’」』）)]*|\n|$)")
_COMMA = re.compile(r"[，,、：:]")
# "4.2.1 柱塞…", "6.3 检验报告…", "第五条 …" (or 第五條 in traditional script) at the start of a
# heading or paragraph.
_CLAUSE = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)*)(?=[\s　、．.]|[^\d.])|第([一二三四五六七八九十百零〇\d]+)([条條]))"
)


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    heading_path: tuple[str, ...]
    clause: str | None
    page: int | None
    kind: str  # "text" or "table"


def clause_of(text: str, heading: bool = False) -> str | None:
    """Return the clause number a heading or paragraph opens with (``4.6``, ``第五条``), else None.

    A bare number ("7 不合格品处置") counts only in a heading: a paragraph opening with "20 MPa" or
    "2024 年" does not start clause 20.
    """
    found = _CLAUSE.match(text)
    if not found:
        return None
    if found.group(1):
        number = found.group(1)
        return number if "." in number or (heading and len(number) <= 2) else None
    return f"第{found.group(2)}{found.group(3)}"  # as the document writes it, cited as such


def sentences(text: str) -> list[str]:
    """Split *text* after each sentence end, keeping the punctuation (and closing quotes) and the
    line breaks of lists."""
    return [s.strip() + ("\n" if s.endswith("\n") else "") for s in _SENTENCE.findall(text) if s.strip()]


def _pieces(sentence: str, limit: int) -> Iterator[str]:
    """A sentence longer than *limit*: cut at the last comma before it, else at the limit."""
    while len(sentence) > limit:
        cut = max((m.end() for m in _COMMA.finditer(sentence, 0, limit)), default=limit)
        yield sentence[:cut]
        sentence = sentence[cut:]
    if sentence:
        yield sentence


def _pack(parts: list[str], limit: int) -> Iterator[str]:
    current = ""
    for sentence in parts:
        for piece in _pieces(sentence, limit):
            if current and len(current) + len(piece) > limit:
                yield current
                current = ""
            # English sentences joined again need their space; Chinese ones need none.
            space = current and current[-1].isascii() and not current[-1].isspace() and piece[0].isascii()
            current += (" " if space else "") + piece
    if current:
        yield current


def _table_rows(block: Block) -> list[str]:
    rendered = []
    for row in block.rows:
        pairs = [f"{name}: {value}" for name, value in zip(block.header, row, strict=False) if value]
        rendered.append("；".join(pairs))
    return rendered


def chunk_blocks(blocks: list[Block], max_chars: int = MAX_CHARS) -> list[Chunk]:
    """Return the chunks of a parsed document, in order."""
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []  # (level, heading text)
    section_clause: str | None = None
    for block in blocks:
        if block.kind == "heading":
            path = [(level, text) for level, text in path if level < block.level]
            path.append((block.level, block.text))
            section_clause = clause_of(block.text, heading=True) or next(
                (c for c in (clause_of(t, heading=True) for _, t in reversed(path[:-1])) if c), None
            )
            continue
        heading_path = tuple(text for _, text in path)
        if block.kind == "table":
            rows = _table_rows(block)
            header = " | ".join(block.header)
            limit = max(max_chars - len(header) - 1, 1)
            for text in _pack([row + "\n" for row in rows], limit):
                chunks.append(
                    Chunk(f"{header}\n{text.rstrip()}", heading_path, section_clause, block.page, "table")
                )
            continue
        # Paragraphs: a line opening with its own clause number starts a new clause.
        groups: list[tuple[str | None, list[str]]] = []
        for line in block.text.split("\n"):
            own = clause_of(line)
            if own is not None or not groups:
                groups.append((own or section_clause, []))
            groups[-1][1].append(line)
        for clause, lines in groups:
            for text in _pack(sentences("\n".join(lines)), max_chars):
                chunks.append(Chunk(text.strip(), heading_path, clause, block.page, "text"))
    return chunks


def index_text(heading_path: Sequence[str], text: str) -> str:
    """What is indexed for a chunk: its text under its nearest heading, so that "4.6 密封性" helps
    find a paragraph that never repeats the word."""
    if heading_path and heading_path[-1] not in text:
        return f"{heading_path[-1]}\n{text}"
    return text
