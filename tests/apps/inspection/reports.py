"""Inspection reports written for tests: Markdown, DOCX and XLSX, clean or with chosen faults.

A :class:`Spec` holds the values a report records; :func:`clean` fills one whose every value is
within Q/HJ 017—2024 and whose conclusion is the right one, and a test then changes what it
asserts on. Numbers are kept as the strings a person would type (or, in XLSX, as the floats Excel
stores), so the auditor's exact parsing is what is tested.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "inspection"
STANDARD = EXAMPLES / "standards" / "Q-HJ-017-柱塞偶件检验规范.md"
DEFECTS = EXAMPLES / "defects" / "历史质量问题案例库.md"

PIECE_HEADER = ("序号", "柱塞直径/mm", "配合间隙/mm", "密封时间/s", "外观", "磁粉检测", "单件结论")
SAMPLE_HEADER = (
    "样本序号", "件号", "圆度/μm", "柱塞圆柱度/μm", "套孔圆柱度/μm",
    "柱塞Ra/μm", "套孔Ra/μm", "柱塞硬度/HRC", "柱塞套硬度/HRC",
)  # fmt: skip
NOMINAL = {"HJ-P12": "11.9960", "HJ-P14": "13.9955", "HJ-P16": "15.9945"}  # mid-tolerance
SAMPLE_SIZE = [(91, 150, 20), (151, 280, 32), (281, 500, 50)]


@dataclass
class Spec:
    model: str = "HJ-P12"
    lot: int = 120
    fields: dict[str, str] = field(default_factory=dict)
    pieces: list[list[str]] = field(default_factory=list)  # rows under PIECE_HEADER
    samples: list[list[str]] = field(default_factory=list)  # rows under SAMPLE_HEADER
    conclusion: list[str] = field(default_factory=list)

    def piece(self, number: int) -> list[str]:
        return self.pieces[number - 1]

    def set_piece(self, number: int, column: str, value: str) -> None:
        self.pieces[number - 1][PIECE_HEADER.index(column)] = value

    def set_sample(self, number: int, column: str, value: str) -> None:
        self.samples[number - 1][SAMPLE_HEADER.index(column)] = value


def clean(model: str = "HJ-P12", lot: int = 120, report_id: str = "JY-T-0001") -> Spec:
    """A report with every value inside its limit, every element present and the right conclusion."""
    nominal = Decimal(NOMINAL[model])
    pieces = []
    for n in range(1, lot + 1):
        diameter = nominal + Decimal(n % 7 - 3) / 10000  # ± 0.0003 around mid-tolerance
        clearance = Decimal("0.0018") + Decimal(n % 9) / 10000  # 0.0018 … 0.0026
        sealing = Decimal("12.0") + Decimal(n % 15)  # 12 … 26 s
        pieces.append(
            [str(n), f"{diameter:.4f}", f"{clearance:.4f}", f"{sealing:.1f}", "合格", "无线性显示", "合格"]
        )
    size = next(n for low, high, n in SAMPLE_SIZE if low <= lot <= high)
    step = lot // size
    samples = [
        [str(i), str(1 + (i - 1) * step), "0.45", "0.70", "0.80", "0.06", "0.10", f"{61 + i % 3}.2", "61.5"]
        for i in range(1, size + 1)
    ]
    spec = Spec(
        model,
        lot,
        {
            "报告编号": report_id,
            "产品型号": model,
            "批号": "2025-0901",
            "批量": str(lot),
            "检验依据": "Q/HJ 017—2024",
            "检验日期": "2025-09-03",
            "材料质量证明书编号": "CL-25-0901",
            "检验员": "张明",
            "审核人": "李华",
        },
        pieces,
        samples,
    )
    conclude(spec)
    return spec


def conclude(spec: Spec, decision: str | None = None, failed_samples: int = 0) -> None:
    """Write the conclusion from the pieces' own verdicts (what a careful inspector writes)."""
    failed = [row[0] for row in spec.pieces if row[-1] == "不合格"]
    listed = f"（件号 {'、'.join(failed)}）" if failed else ""
    spec.conclusion = [
        f"逐件检验：合格 {len(spec.pieces) - len(failed)} 件，不合格 {len(failed)} 件{listed}。",
        f"抽样检验：样本 {len(spec.samples)} 件，不合格 {failed_samples} 件，批判定：{decision or '接收'}。",
        "结论：本批产品合格，准予入库。",
    ]


def markdown(spec: Spec) -> bytes:
    lines = ["# 柱塞偶件出厂检验报告", ""]
    lines += [f"- {key}：{value}" for key, value in spec.fields.items()]
    lines += ["", "## 一、逐件检验记录", "", _row(PIECE_HEADER), _row(["---"] * len(PIECE_HEADER))]
    lines += [_row(row) for row in spec.pieces]
    lines += ["", f"## 二、抽样检验记录（样本量 {len(spec.samples)}）", ""]
    lines += [_row(SAMPLE_HEADER), _row(["---"] * len(SAMPLE_HEADER))]
    lines += [_row(row) for row in spec.samples]
    lines += ["", "## 三、检验结论", "", *[f"{line}\n" for line in spec.conclusion]]
    return "\n".join(lines).encode()


def _row(cells: list[str] | tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def docx(spec: Spec) -> bytes:
    """The report as a Word document: fields as paragraphs, the records as Word tables."""
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading("柱塞偶件出厂检验报告", level=1)
    for key, value in spec.fields.items():
        document.add_paragraph(f"{key}：{value}")
    for title, header, rows in (
        ("一、逐件检验记录", PIECE_HEADER, spec.pieces),
        (f"二、抽样检验记录（样本量 {len(spec.samples)}）", SAMPLE_HEADER, spec.samples),
    ):
        document.add_heading(title, level=2)
        table = document.add_table(rows=len(rows) + 1, cols=len(header))
        for row, cells in zip(table.rows, [header, *rows], strict=True):
            for cell, text in zip(row.cells, cells, strict=True):
                cell.text = text
    document.add_heading("三、检验结论", level=2)
    for line in spec.conclusion:
        document.add_paragraph(line)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx(spec: Spec) -> bytes:
    """The report as a workbook, numbers stored as numbers (floats), as Excel users type them."""
    import openpyxl

    def value(text: str) -> object:
        try:
            number = Decimal(text)
        except ArithmeticError:
            return text
        return int(number) if number == number.to_integral_value() and "." not in text else float(text)

    book = openpyxl.Workbook()
    info = book.active
    info.title = "报告信息"
    for key, text in spec.fields.items():
        info.append([key, text])
    for title, header, rows in (
        ("逐件检验记录", PIECE_HEADER, spec.pieces),
        (f"抽样检验记录（样本量 {len(spec.samples)}）", SAMPLE_HEADER, spec.samples),
    ):
        sheet = book.create_sheet(title)
        sheet.append(list(header))
        for row in rows:
            sheet.append([value(cell) for cell in row])
    conclusion = book.create_sheet("检验结论")
    for line in spec.conclusion:
        conclusion.append([line])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def html(spec: Spec) -> bytes:
    """The report as a web page (what an MES exports): fields as paragraphs, records as tables."""
    from html import escape

    def table(header: tuple[str, ...], rows: list[list[str]]) -> str:
        cells = "".join(f"<th>{escape(c)}</th>" for c in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"

    parts = ["<html><body><h1>柱塞偶件出厂检验报告</h1>"]
    parts += [f"<p>{escape(k)}：{escape(v)}</p>" for k, v in spec.fields.items()]
    parts += ["<h2>一、逐件检验记录</h2>", table(PIECE_HEADER, spec.pieces)]
    parts += [f"<h2>二、抽样检验记录（样本量 {len(spec.samples)}）</h2>", table(SAMPLE_HEADER, spec.samples)]
    parts += [
        "<h2>三、检验结论</h2>",
        *[f"<p>{escape(line)}</p>" for line in spec.conclusion],
        "</body></html>",
    ]
    return "".join(parts).encode()


WRITERS = {"md": markdown, "docx": docx, "xlsx": xlsx, "html": html}
