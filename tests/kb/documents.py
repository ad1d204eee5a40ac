"""Documents of every format the knowledge bases read, written by the libraries users' tools use."""

from __future__ import annotations

import io

STANDARD_CLAUSES = [
    ("4.3", "配合间隙", "偶件配合间隙应在 0.0015 mm ～ 0.0030 mm 范围内（含端值）。"),
    ("4.5", "硬度", "柱塞与柱塞套经热处理后表面硬度均应为 HRC 60 ～ 64（含端值）。"),
    ("4.6", "密封性", "在 20 MPa 试验压力下，密封时间应在 10 s ～ 30 s 之间。"),
]


def docx_bytes(title: str = "柱塞偶件检验规范") -> bytes:
    """A Word document: a title, clause headings, paragraphs and a table."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    document.add_heading("4 技术要求", level=2)
    for clause, name, text in STANDARD_CLAUSES:
        document.add_heading(f"{clause} {name}", level=3)
        document.add_paragraph(text)
    table = document.add_table(rows=3, cols=3)
    for row, cells in zip(
        table.rows,
        [
            ("型号", "公称直径/mm", "下偏差/mm"),
            ("HJ-P12", "12.000", "-0.004"),
            ("HJ-P14", "14.000", "-0.004"),
        ],
        strict=True,
    ):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx_bytes() -> bytes:
    """A workbook of two sheets; diameters stored as numbers shown with three decimals."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "直径公差"
    sheet.append(["型号", "公称直径/mm", "上偏差/mm", "下偏差/mm"])
    for model, diameter in (("HJ-P12", 12), ("HJ-P14", 14), ("HJ-P16", 16)):
        sheet.append([model, diameter, 0, -0.004])
        sheet.cell(sheet.max_row, 2).number_format = "0.000"
        sheet.cell(sheet.max_row, 4).number_format = "0.000"
    other = workbook.create_sheet("抽样")
    other.append(["批量下限", "批量上限", "样本量", "Ac", "Re"])
    other.append([91, 150, 20, 0, 1])
    other.append([151, 280, 32, 0, 1])
    other.append([0.1 + 0.2, None, None, None, None])  # a float with a binary tail
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def pdf_bytes(pages: list[list[str]], password: str | None = None) -> bytes:
    """A text PDF, one list of lines per page, in a CJK font every PDF reader has (no font file)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    out = io.BytesIO()
    pdf = canvas.Canvas(out, encrypt=password)
    for lines in pages:
        pdf.setFont("STSong-Light", 11)
        y = 800
        for line in lines:
            pdf.drawString(60, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return out.getvalue()


STANDARD_PDF_PAGES = [
    [
        "Q/HJ 017 柱塞偶件检验规范",
        "4 技术要求",
        "4.3 配合间隙",
        "偶件配合间隙应在 0.0015 mm ～ 0.0030 mm",
        "范围内（含端值）。",
    ],
    [
        "4.5 硬度",
        "柱塞与柱塞套经热处理后表面硬度均应为 HRC 60 ～ 64（含端值）。",
        "4.6 密封性",
        "在 20 MPa 试验压力下，密封时间应在 10 s ～ 30 s 之间。",
    ],
]
