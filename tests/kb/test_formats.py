"""Every format a knowledge base reads, and every file it must refuse with a clear reason."""

from __future__ import annotations

import io
import zipfile

import pytest

from dizuo.kb.chunking import chunk_blocks
from dizuo.kb.formats import DocumentError, DocumentTooLarge, cell_text, parse_document
from tests.kb.documents import STANDARD_CLAUSES, STANDARD_PDF_PAGES, docx_bytes, pdf_bytes, xlsx_bytes


def by_clause(name: str, data: bytes) -> dict[str | None, list[str]]:
    found: dict[str | None, list[str]] = {}
    for chunk in chunk_blocks(parse_document(name, data)):
        found.setdefault(chunk.clause, []).append(chunk.text)
    return found


def test_docx_keeps_headings_clauses_and_table_rows_with_their_header() -> None:
    chunks = chunk_blocks(parse_document("规范.docx", docx_bytes()))
    texts = {c.clause: c for c in chunks if c.kind == "text"}
    for clause, name, text in STANDARD_CLAUSES:
        assert texts[clause].text == text
        assert texts[clause].heading_path[-1] == f"{clause} {name}"
    (table,) = [c for c in chunks if c.kind == "table"]
    assert "型号: HJ-P14；公称直径/mm: 14.000；下偏差/mm: -0.004" in table.text


def test_xlsx_sheets_become_tables_with_the_numbers_as_shown() -> None:
    chunks = chunk_blocks(parse_document("公差.xlsx", xlsx_bytes()))
    text = "\n".join(c.text for c in chunks)
    # Stored as the number 12 with format 0.000: read as the sheet shows it, not "12" or "12.0".
    assert "型号: HJ-P12；公称直径/mm: 12.000；上偏差/mm: 0；下偏差/mm: -0.004" in text
    assert "批量下限: 151；批量上限: 280；样本量: 32；Ac: 0；Re: 1" in text
    assert "0.30000000000000004" not in text and "批量下限: 0.3" in text
    assert {c.heading_path for c in chunks} == {("直径公差",), ("抽样",)}


def test_cell_text_is_exact() -> None:
    assert cell_text(0.0015) == "0.0015"
    assert cell_text(0.0015, "0.0000") == "0.0015"
    assert cell_text(12, "0.000") == "12.000"
    assert cell_text(2.0) == "2"
    assert cell_text(None) == ""


def test_pdf_pages_headings_and_wrapped_lines() -> None:
    chunks = chunk_blocks(parse_document("规范.pdf", pdf_bytes(STANDARD_PDF_PAGES)))
    texts = {c.clause: c for c in chunks}
    # A sentence wrapped across two lines by the layout is joined again.
    assert texts["4.3"].text == "偶件配合间隙应在 0.0015 mm ～ 0.0030 mm范围内（含端值）。"
    assert texts["4.3"].page == 1 and texts["4.3"].heading_path[-1] == "4.3 配合间隙"
    assert texts["4.6"].page == 2 and "10 s ～ 30 s" in texts["4.6"].text


def test_html_reading_order_tables_and_no_script() -> None:
    page = """<html><head><title>t</title><script>var secret = 1;</script></head><body>
      <nav>首页 | 关于</nav>
      <h1>算力券使用指南</h1>
      <p>算力券按发放顺序
         使用，先到期的先用。</p>
      <h2>第三条 适用范围</h2><div>只能用于<b>本地</b>算力。<ul><li>GPU 集群</li></ul></div>
      <table><tr><th>项目</th><th>比例</th></tr><tr><td>推理</td><td>30%</td></tr></table>
    </body></html>"""
    chunks = chunk_blocks(parse_document("guide.html", page.encode()))
    texts = [c.text for c in chunks]
    assert "算力券按发放顺序使用，先到期的先用。" in texts  # the source's line break is not a space
    assert "只能用于本地算力。" in texts and "GPU 集群" in texts
    assert any("项目: 推理；比例: 30%" in t for t in texts)
    assert not any("secret" in t or "首页" in t for t in texts)
    assert next(c for c in chunks if c.text == "GPU 集群").clause == "第三条"


def test_csv_with_bom_and_gb18030_text() -> None:
    csv_text = "型号,公称直径/mm\nHJ-P12,12.000\n"
    for data in (("\ufeff" + csv_text).encode("utf-8"), csv_text.encode("gb18030")):
        (chunk,) = chunk_blocks(parse_document("d.csv", data))
        assert chunk.text == "型号 | 公称直径/mm\n型号: HJ-P12；公称直径/mm: 12.000"


def test_plain_text_in_gb18030() -> None:
    blocks = parse_document("说明.txt", "第一条 本办法自发布之日起施行。".encode("gb18030"))
    assert blocks[0].text == "第一条 本办法自发布之日起施行。"


def refused(name: str, data: bytes, **kwargs: int) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        parse_document(name, data, **kwargs)
    return caught.value


def test_empty_files_are_refused() -> None:
    assert refused("空.md", b"").code == "document_empty"
    assert refused("空.txt", b" \n\n ").code == "document_empty"
    assert refused("scan.pdf", pdf_bytes([[]])).code == "document_empty"  # a page without text
    assert "OCR" in refused("scan.pdf", pdf_bytes([[]])).message("en")


def test_encrypted_files_are_refused() -> None:
    error = refused("机密.pdf", pdf_bytes(STANDARD_PDF_PAGES, password="s3cret"))
    assert error.code == "document_encrypted" and error.status == 400
    # Office encrypts .docx/.xlsx into a compound (OLE) file: what arrives is no zip at all.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    assert refused("机密.docx", ole).code == "document_encrypted"
    assert refused("旧版.xls", ole).code == "document_encrypted"


def test_broken_and_unknown_files_are_refused() -> None:
    assert refused("坏.docx", b"PK\x03\x04 not really a zip").code == "document_unreadable"
    assert refused("坏.pdf", b"%PDF-1.7\n garbage").code == "document_unreadable"
    assert (
        refused("image.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).code == "document_type_unsupported"
    )
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    assert refused("假.docx", zipped.getvalue()).code == "document_unreadable"


def test_too_large_files_and_zip_bombs_are_refused() -> None:
    error = refused("大.txt", "字".encode() * 400, max_bytes=1000)
    assert isinstance(error, DocumentTooLarge) and error.status == 413
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\x00" * 5_000_000)
    assert len(bomb.getvalue()) < 100_000
    assert refused("bomb.docx", bomb.getvalue(), max_bytes=1_000_000).code == "document_too_large"
