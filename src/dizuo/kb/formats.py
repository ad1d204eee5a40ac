"""Files into blocks: Markdown, plain text, HTML, DOCX, XLSX, CSV and text PDF.

Every parser yields the same :class:`~dizuo.kb.parsing.Block` list, so chunking and indexing never
see a file format. What cannot be read is refused with a :class:`DocumentError` that says why and
what to do (encrypted, empty, too large, not a format we read); nothing is half-parsed.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from dizuo.errors import InvalidRequest
from dizuo.kb.chunking import clause_of
from dizuo.kb.parsing import Block, BlockWriter, parse_markdown

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "MAX_CELLS",
    "MAX_PDF_PAGES",
    "MAX_SPAN",
    "DocumentError",
    "DocumentTooLarge",
    "decode_text",
    "parse_document",
    "sniff",
]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# Table cells read from one document (XLSX sheets and DOCX tables together). A sheet's work is set by
# the cells it declares, not by the zip's size: a 1.5 KB XLSX whose rows end at column XFD declares
# 65 million; 2 million cells is about 40 MB of text, more than any report or standard holds.
MAX_CELLS = 2_000_000
# Columns one DOCX cell may span (gridSpan) or skip (gridBefore/gridAfter): 63 is Word's own maximum
# table width; a span of 1,000,000 in a 36 KB file took 31 s to read cell by cell.
MAX_SPAN = 63
MAX_PDF_PAGES = 5_000
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML, or legacy .doc/.xls
_CJK_GAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef]) (?=[\u3000-\u9fff\uff00-\uffef])")
_DECIMALS = re.compile(r"0\.(0+)")


class DocumentError(InvalidRequest):
    """A document that cannot be added; the knowledge base is left as it was."""

    default_code = "document_unreadable"

    def __init__(self, code: str, name: str, **params: Any) -> None:
        super().__init__(code, name=name, **params)


class DocumentTooLarge(DocumentError):
    """A document over one of the limits on what reading it may cost (413, naming the limit)."""

    status = 413
    default_code = "document_too_large"

    @classmethod
    def _over(cls, name: str, zh: str, en: str) -> DocumentTooLarge:
        return cls("document_too_large", name, limit_zh=zh, limit_en=en)

    @classmethod
    def size(cls, name: str, size: int, limit: int, what_zh: str = "", what_en: str = "") -> DocumentTooLarge:
        size_mb, limit_mb = -(-size // 2**20), limit // 2**20
        return cls._over(
            name,
            f"{what_zh}{size_mb} MB，单个文件上限 {limit_mb} MB",
            f"{what_en}{size_mb} MB, over the limit of {limit_mb} MB per file",
        )

    @classmethod
    def cells(cls, name: str) -> DocumentTooLarge:
        return cls._over(
            name, f"表格单元格超过 {MAX_CELLS:,} 个", f"its tables have more than {MAX_CELLS:,} cells"
        )

    @classmethod
    def pages(cls, name: str) -> DocumentTooLarge:
        return cls._over(name, f"超过 {MAX_PDF_PAGES:,} 页", f"it has more than {MAX_PDF_PAGES:,} pages")

    @classmethod
    def parse_time(cls, name: str, seconds: int) -> DocumentTooLarge:
        return cls._over(
            name,
            f"解析用时超过 {seconds} 秒 CPU 时间上限（kb_parse_cpu_seconds）",
            f"reading it took more than the limit of {seconds} s of CPU time (kb_parse_cpu_seconds)",
        )

    @classmethod
    def parse_memory(cls, name: str, megabytes: int) -> DocumentTooLarge:
        return cls._over(
            name,
            f"解析所需内存超过 {megabytes} MB 上限（kb_parse_memory_mb）",
            f"reading it needs more than the limit of {megabytes} MB of memory (kb_parse_memory_mb)",
        )


class _CellBudget:
    """Counts the table cells a document makes us read; refuses it past :data:`MAX_CELLS`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.left = MAX_CELLS

    def spend(self, cells: int) -> None:
        self.left -= max(cells, 1)  # an empty row costs a step too
        if self.left < 0:
            raise DocumentTooLarge.cells(self.name)


def decode_text(data: bytes) -> str:
    """Decode text the way Chinese files come: UTF-8 (with or without BOM), else GB18030."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", data, 0, 1, "neither UTF-8 nor GB18030")


def _squash(text: str) -> str:
    """Collapse runs of whitespace (HTML, PDF) and drop the spaces that wrapping left between Chinese
    characters."""
    return _CJK_GAP.sub("", " ".join(text.split()))


# ---- HTML ------------------------------------------------------------------------------------

_SKIP = {"script", "style", "noscript", "template", "head", "nav", "footer", "svg", "button", "form"}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = {
    "p", "div", "section", "article", "main", "li", "ul", "ol", "pre", "blockquote", "dl", "dt", "dd",
    "table", "figure", "figcaption", "header", "aside", "address", "body", "br", "hr", *_HEADINGS,
}  # fmt: skip


def _html_table(table: Any) -> Block | None:
    rows = []
    for tr in table.iter("tr"):
        cells = tuple(_squash(cell.text_content()) for cell in tr if cell.tag in ("td", "th"))
        if any(cells):
            rows.append(cells)
    if not rows:
        return None
    return Block("table", header=rows[0], rows=tuple(rows[1:]))


def parse_html(text: str) -> list[Block]:
    """Headings, paragraphs, list items and tables of an HTML page, in reading order."""
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):  # empty or broken input
        return []
    blocks: list[Block] = []

    def emit(text: str) -> None:
        text = _squash(text)
        if text:
            blocks.append(Block("paragraph", text))

    def walk(element: Any) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in _SKIP or not tag:
            return
        if tag in _HEADINGS:
            heading = _squash(element.text_content())
            if heading:
                blocks.append(Block("heading", heading, level=_HEADINGS[tag]))
            return
        if tag == "table":
            table = _html_table(element)
            if table is not None:
                blocks.append(table)
            return
        inline = [element.text or ""]
        for child in element:
            child_tag = child.tag if isinstance(child.tag, str) else ""
            if child_tag in _BLOCKS or child_tag in _SKIP:
                emit("".join(inline))
                inline = []
                walk(child)
            elif child_tag:
                inline.append(child.text_content())
            inline.append(child.tail or "")
        emit("".join(inline))

    body = root.find("body")
    walk(body if body is not None else root)
    return blocks


# ---- DOCX and XLSX ---------------------------------------------------------------------------


def _check_zip(name: str, data: bytes, max_bytes: int) -> None:
    if data.startswith(_OLE_MAGIC):
        raise DocumentError("document_encrypted", name)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise DocumentError(
            "document_unreadable", name, reason="不是有效的 Office 文件 / not a valid Office file"
        ) from None
    if unpacked > 4 * max_bytes:
        raise DocumentTooLarge.size(name, unpacked, 4 * max_bytes, "解压后 ", "unpacked, ")


def _docx_heading_level(style_name: str) -> int | None:
    lowered = style_name.lower()
    if lowered == "title":
        return 1
    found = re.match(r"(?:heading|标题)\s*(\d)", lowered)
    return int(found.group(1)) if found else None


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _grid(properties: Any, tag: str, default: int = 0) -> int:
    """A gridSpan/gridBefore/gridAfter count from a cell's or row's properties, capped at MAX_SPAN."""
    found = properties.find(f"{_W}{tag}") if properties is not None else None
    value = found.get(f"{_W}val") if found is not None else None
    return min(int(value), MAX_SPAN) if value is not None and value.isdigit() else default


def _docx_rows(table: Any, budget: _CellBudget) -> list[tuple[str, ...]]:
    """A table's rows as the grid shows them: a merged cell repeats its text in every column it spans
    and every row it continues down (vMerge), spans capped at MAX_SPAN, cells counted on *budget*."""
    from docx.table import _Cell

    rows: list[tuple[str, ...]] = []
    above: dict[int, str] = {}  # grid column -> text of the cell a vMerge continues
    for tr in table.iterchildren(f"{_W}tr"):
        row_properties = tr.find(f"{_W}trPr")
        cells = [""] * _grid(row_properties, "gridBefore")
        for tc in tr.iterchildren(f"{_W}tc"):
            properties = tc.find(f"{_W}tcPr")
            span = _grid(properties, "gridSpan", default=1)
            merge = properties.find(f"{_W}vMerge") if properties is not None else None
            column = len(cells)
            if merge is not None and merge.get(f"{_W}val", "continue") == "continue":
                text = above.get(column, "")
            else:
                text = _Cell(tc, None).text.strip()  # type: ignore[arg-type]
            above[column] = text
            budget.spend(span)
            cells.extend([text] * span)
        cells.extend([""] * _grid(row_properties, "gridAfter"))
        rows.append(tuple(cells))
    return rows


def parse_docx(data: bytes, name: str = "") -> list[Block]:
    """Paragraphs (headings by their style) and tables of a Word document, in order."""
    import docx
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    out = BlockWriter()
    budget = _CellBudget(name)

    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = Paragraph(element, document)
            text = para.text.strip()
            level = _docx_heading_level(para.style.name if para.style is not None else "")
            if level is not None and text:
                out.add(Block("heading", text, level=level))
            elif text:
                out.line(text)
            else:
                out.end_paragraph()
        elif tag == "tbl":
            out.end_paragraph()
            rows = [row for row in _docx_rows(element, budget) if any(row)]
            if rows:
                out.add(Block("table", header=rows[0], rows=tuple(rows[1:])))
    return out.done()


def cell_text(value: Any, number_format: str = "General") -> str:
    """A spreadsheet cell as the sheet shows it: ``0.0015`` stays ``0.0015``, ``12`` formatted
    ``0.000`` reads ``12.000``; never a binary-float tail (15 significant digits, as Excel shows)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float | int):
        number = Decimal(format(value, ".15g")) if isinstance(value, float) else Decimal(value)
        decimals = _DECIMALS.search(number_format or "")
        if decimals and "%" not in number_format:
            return str(number.quantize(Decimal(1).scaleb(-len(decimals.group(1)))))
        if number == number.to_integral_value() and isinstance(value, float):
            return str(int(number))
        return str(number)
    if hasattr(value, "isoformat"):
        text: str = value.isoformat()
        return text.removesuffix("T00:00:00")
    return str(value).strip()


def _table_blocks(title: str | None, rows: list[tuple[str, ...]]) -> list[Block]:
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    width = max(len(row) for row in rows)
    while width and not any(len(row) >= width and row[width - 1] for row in rows):
        width -= 1
    rows = [tuple(row[:width]) + ("",) * (width - len(row)) for row in rows]
    blocks = [Block("heading", title, level=1)] if title else []
    blocks.append(Block("table", header=rows[0], rows=tuple(rows[1:])))
    return blocks


def parse_xlsx(data: bytes, name: str = "") -> list[Block]:
    """Each sheet as a heading (its name) and one table, the first non-empty row its header."""
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    budget = _CellBudget(name)
    try:
        blocks: list[Block] = []
        for sheet in workbook.worksheets:
            # The sheet's stated dimension (<dimension ref="A1:XFD4000"/>) is the author's claim, not
            # its cells: forget it, so rows are read as the cells they hold.
            sheet.reset_dimensions()
            rows = []
            for row in sheet.iter_rows():
                budget.spend(len(row))
                rows.append(
                    tuple(cell_text(cell.value, getattr(cell, "number_format", "General")) for cell in row)
                )
            blocks.extend(_table_blocks(sheet.title if len(workbook.worksheets) > 1 else None, rows))
        return blocks
    finally:
        workbook.close()


def parse_csv(text: str) -> list[Block]:
    """A CSV file as one table (comma, semicolon or tab separated; the first row is the header)."""
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [tuple(cell.strip() for cell in row) for row in csv.reader(io.StringIO(text), dialect)]
    return _table_blocks(None, rows)


# ---- PDF ---------------------------------------------------------------------------------------

_ENDS = tuple("。！？；!?;：:")


def _pdf_heading(line: str) -> int | None:
    """A short line opening with a clause number and ending without punctuation reads as a heading
    (standards print "4.3 配合间隙" on a line of its own); return its level."""
    if len(line) > 30 or line.endswith(_ENDS) or line[-1:].isdigit():
        return None
    clause = clause_of(line, heading=True)
    if clause is None or clause.startswith("第") or line == clause:
        return None
    return clause.count(".") + 1


def _pdf_page_blocks(text: str, page: int) -> Iterator[Block]:
    paragraph = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            if paragraph:
                yield Block("paragraph", paragraph, page=page)
            paragraph = ""
            continue
        level = _pdf_heading(line)
        if level is not None:
            if paragraph:
                yield Block("paragraph", paragraph, page=page)
            paragraph = ""
            yield Block("heading", _squash(line), level=level, page=page)
            continue
        if not paragraph:
            paragraph = line
        elif paragraph.endswith(_ENDS) or clause_of(line) is not None or line[:1] in "-•·*（(":
            paragraph += "\n" + line  # a new sentence, clause or list item keeps its line
        else:  # a line wrapped by the layout: join it back, with a space only between Latin words
            space = paragraph[-1].isascii() and line[0].isascii()
            paragraph += (" " if space else "") + line
    if paragraph:
        yield Block("paragraph", paragraph, page=page)


def parse_pdf(name: str, data: bytes) -> list[Block]:
    """The text of each page of a text PDF, with its page number; headings found by clause numbers."""
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError("document_encrypted", name)
        if len(reader.pages) > MAX_PDF_PAGES:
            raise DocumentTooLarge.pages(name)
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            blocks.extend(_pdf_page_blocks(page.extract_text() or "", number))
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        if "decrypt" in str(exc).lower() or "encrypt" in str(exc).lower():
            raise DocumentError("document_encrypted", name) from None
        raise DocumentError("document_unreadable", name, reason=f"PDF: {exc}") from None
    return blocks


# ---- dispatch ----------------------------------------------------------------------------------

Parser = Callable[[str, bytes], list[Block]]


def _text(parse: Callable[[str], list[Block]]) -> Parser:
    def parser(name: str, data: bytes) -> list[Block]:
        try:
            text = decode_text(data)
        except UnicodeDecodeError:
            raise DocumentError(
                "document_unreadable", name, reason="不是 UTF-8 或 GB18030 文本 / not UTF-8 or GB18030 text"
            ) from None
        return parse(text)

    return parser


def _zipped(parse: Callable[[bytes, str], list[Block]], max_bytes: int) -> Parser:
    def parser(name: str, data: bytes) -> list[Block]:
        _check_zip(name, data, max_bytes)
        try:
            return parse(data, name)
        except (DocumentError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a broken package raises anything; it becomes a clear 400
            raise DocumentError("document_unreadable", name, reason=f"{type(exc).__name__}: {exc}") from None

    return parser


FORMATS = {
    ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
    ".html": "html", ".htm": "html", ".docx": "docx", ".xlsx": "xlsx", ".xlsm": "xlsx",
    ".csv": "csv", ".pdf": "pdf",
}  # fmt: skip


def sniff(data: bytes) -> str | None:
    """A file's type by its first bytes: ``pdf``, ``docx``, ``xlsx``, ``ole`` (old Office); None."""
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith(_OLE_MAGIC):
        return "ole"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return None
        if any(n.startswith("word/") for n in names):
            return "docx"
        if any(n.startswith("xl/") for n in names):
            return "xlsx"
    return None


def parse_document(name: str, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Block]:
    """Return the blocks of the file *name* with contents *data*.

    Raises :class:`DocumentError` for a file that is too large, empty, encrypted, unreadable or of
    a type we do not read.
    """
    if len(data) > max_bytes:
        raise DocumentTooLarge.size(name, len(data), max_bytes)
    if not data.strip():
        raise DocumentError("document_empty", name)
    kind = FORMATS.get(PurePath(name).suffix.lower()) or sniff(data)
    if kind is None:
        try:
            decode_text(data[:65536])
            kind = "text" if b"\x00" not in data[:65536] else None
        except UnicodeDecodeError:
            kind = None
    if kind == "ole" or (kind in ("docx", "xlsx") and data.startswith(_OLE_MAGIC)):
        raise DocumentError("document_encrypted", name)
    parsers: dict[str, Parser] = {
        "markdown": _text(parse_markdown),
        "text": _text(parse_markdown),
        "html": _text(parse_html),
        "csv": _text(parse_csv),
        "docx": _zipped(parse_docx, max_bytes),
        "xlsx": _zipped(parse_xlsx, max_bytes),
        "pdf": parse_pdf,
    }
    if kind not in parsers:
        raise DocumentError("document_type_unsupported", name, formats=", ".join(sorted(FORMATS)))
    blocks = parsers[kind](name, data)
    if not any(block.text.strip() or block.rows or any(block.header) for block in blocks):
        raise DocumentError("document_empty", name)
    return blocks
