"""An inspection report, read from any format the knowledge bases read (Markdown, DOCX, XLSX, PDF …).

The layout is found, not assumed: header fields are ``名称：值`` lines or two-column tables; the
per-piece record is the table with a 序号/件号 column that is not under a sampling heading; the
sample record is the table with a 样本序号 column (or under a heading that says 抽样); the
conclusion is the text under a heading with 结论, or any line that states a 判定. Cell values stay
text here; the auditor parses numbers as :class:`~decimal.Decimal`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dizuo.apps.inspection.standard import split_unit
from dizuo.errors import InvalidRequest
from dizuo.kb.parsing import Block

__all__ = ["Record", "Report", "ReportLayoutUnknown", "parse_report"]

_FIELD = re.compile(r"^[-*•·\s]*([^：:|]{1,24}?)\s*[：:]\s*(.*?)\s*$")
_SAMPLE_SIZE = re.compile(r"样本量\s*[：:为]?\s*(\d+)")
PIECE_KEYS = ("序号", "件号", "编号")


class ReportLayoutUnknown(InvalidRequest):
    default_code = "report_layout_unknown"

    def __init__(self, name: str) -> None:
        super().__init__(param="report", name=name)


@dataclass(frozen=True, slots=True)
class Record:
    """One table of measurements: its header and rows as the report wrote them."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def column(self, *names: str) -> int | None:
        """The first column whose label (without its unit) is one of *names*."""
        for wanted in names:
            for index, label in enumerate(self.header):
                if split_unit(label)[0] == wanted:
                    return index
        return None


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    fields: dict[str, str]
    pieces: Record
    samples: Record | None
    declared_sample_size: int | None
    conclusion: str
    text: str = field(repr=False)  # all of its words, to see whether it mentions an 8D

    def field(self, wanted: str) -> str | None:
        """The value of the field *wanted* ("检验员签字" also finds "检验员"), None when absent."""
        bare = re.sub(r"(签字|签名|签章)$", "", wanted)
        for key, value in self.fields.items():
            if key in (wanted, bare) or re.sub(r"(签字|签名|签章)$", "", key) == bare:
                return value
        return None


def _labels(block: Block) -> list[str]:
    return [split_unit(h)[0] for h in block.header]


def _is_sample_table(block: Block, heading: str) -> bool:
    labels = _labels(block)
    return "样本序号" in labels or ("抽样" in heading and "件号" in labels)


def _is_piece_table(block: Block) -> bool:
    labels = _labels(block)
    return any(key in labels for key in PIECE_KEYS) and len(labels) >= 3


def parse_report(blocks: list[Block], name: str) -> Report:
    """Find the fields, the records and the conclusion of the report in *blocks*.

    Raises :class:`ReportLayoutUnknown` when no per-piece record can be found.
    """
    fields: dict[str, str] = {}
    pieces: Record | None = None
    samples: Record | None = None
    declared: int | None = None
    heading = ""
    conclusion: list[str] = []
    words: list[str] = []

    def line(text: str) -> None:
        text = text.strip()
        if not text:
            return
        words.append(text)
        found = _FIELD.match(text)
        if found and found.group(1).strip() not in fields:
            fields[found.group(1).strip()] = found.group(2)
        if "结论" in heading or "判定" in text:
            conclusion.append(text)

    for block in blocks:
        if block.kind == "heading":
            heading = block.text
            words.append(heading)
            if "抽样" in heading and (found := _SAMPLE_SIZE.search(heading)):
                declared = int(found.group(1))
            continue
        if block.kind == "paragraph":
            for text in block.text.split("\n"):
                line(text)
            continue
        width = len(block.header)
        if width == 1:  # a one-column sheet: lines of text
            for text in (block.header[0], *(row[0] for row in block.rows)):
                line(text)
        elif width == 2 and not _is_piece_table(block):  # 字段 | 值
            for key, value in (block.header, *block.rows):
                line(f"{key}：{value}")
        elif _is_sample_table(block, heading) and samples is None:
            samples = Record(heading, block.header, block.rows)
        elif _is_piece_table(block) and pieces is None:
            pieces = Record(heading, block.header, block.rows)
    if pieces is None:
        raise ReportLayoutUnknown(name)
    return Report(name, fields, pieces, samples, declared, "\n".join(conclusion), "\n".join(words))
