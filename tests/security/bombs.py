"""Documents a few kilobytes long that cost a naive reader seconds and gigabytes: built here, by hand."""

from __future__ import annotations

import io
import zipfile

_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships '
    'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="{target}"/></Relationships>'
)
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _types(*parts: tuple[str, str]) -> str:
    """[Content_Types].xml naming each (part, officedocument type) of a package."""
    overrides = "".join(
        f'<Override PartName="{name}" ContentType="application/vnd.openxmlformats-officedocument.{kind}+xml"/>'
        for name, kind in parts
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Types '
        'xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Default Extension="xml" ContentType="application/xml"/>{overrides}</Types>'
    )


def _zip(files: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def xlsx(rows: int, last_column: str = "XFD", cells_at_end: bool = True) -> bytes:
    """A workbook whose one sheet declares A1:{last_column}{rows}; with *cells_at_end*, each row
    really holds one cell in that last column (so a reader pads every row to 16,384 cells)."""
    body = "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>件号{r}</t></is></c>'
        + (f'<c r="{last_column}{r}" t="inlineStr"><is><t>x</t></is></c>' if cells_at_end else "")
        + "</row>"
        for r in range(1, rows + 1)
    )
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet '
        'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="A1:{last_column}{rows}"/><sheetData>{body}</sheetData></worksheet>'
    )
    return _zip(
        {
            "[Content_Types].xml": _types(
                ("/xl/workbook.xml", "spreadsheetml.sheet.main"),
                ("/xl/worksheets/sheet1.xml", "spreadsheetml.worksheet"),
            ),
            "_rels/.rels": _RELS.format(target="xl/workbook.xml"),
            "xl/workbook.xml": (
                '<?xml version="1.0" encoding="UTF-8"?><workbook '
                'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
                '<sheets><sheet name="检验" sheetId="1" r:id="rId1"/></sheets></workbook>'
            ),
            "xl/_rels/workbook.xml.rels": (
                '<?xml version="1.0" encoding="UTF-8"?><Relationships '
                'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
            ),
            "xl/worksheets/sheet1.xml": sheet,
        }
    )


def docx(body: str) -> bytes:
    """A Word document whose body is the WordprocessingML *body*."""
    document = f'<?xml version="1.0" encoding="UTF-8"?><w:document {_W}><w:body>{body}</w:body></w:document>'
    return _zip(
        {
            "[Content_Types].xml": _types(("/word/document.xml", "wordprocessingml.document.main")),
            "_rels/.rels": _RELS.format(target="word/document.xml"),
            "word/document.xml": document,
        }
    )


def cell(text: str, span: int = 1, merge: str | None = None) -> str:
    properties = f'<w:gridSpan w:val="{span}"/>' if span != 1 else ""
    if merge is not None:
        properties += f'<w:vMerge w:val="{merge}"/>' if merge else "<w:vMerge/>"
    return f"<w:tc><w:tcPr>{properties}</w:tcPr><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:tc>"


def table(*rows: str) -> str:
    return "<w:tbl>" + "".join(f"<w:tr>{row}</w:tr>" for row in rows) + "</w:tbl>"


def docx_span_bomb(span: int = 1_000_000, rows: int = 400) -> bytes:
    """A table whose every row has one cell spanning *span* columns: 36 KB, 31 s to read naively."""
    return docx(table(*[cell(f"项目{r}") + cell("合格", span=span) for r in range(rows)]))


def docx_huge_xml(paragraphs: int = 1_500_000) -> bytes:
    """A Word document whose XML unpacks to ~100 MB of paragraphs (within the unpacked-size check for
    a 50 MB limit) that compresses to a few hundred KB."""
    return docx("<w:p><w:r><w:t>字</w:t></w:r></w:p>" * paragraphs)
