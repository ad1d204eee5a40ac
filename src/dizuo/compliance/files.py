"""Generated answers as files (DOCX, XLSX, PDF, HTML) that carry their AIGC labels, and the labels
read back from such files.

Each file shows the explicit notice (GB 45438-2025 §4.1: text, at the start or the end) and holds
the implicit label in its metadata, as TC260's practice guide places it: a custom document property
``AIGC`` (Office), an ``/AIGC`` entry of the document information (PDF), ``<meta name="AIGC">``
(HTML); its value the label's JSON. The label's seal covers the file's text as the knowledge-base
reader reads it back, whitespace removed (a PDF's line breaks and spacing are the viewer's): a file
whose text was edited fails the check, one whose metadata alone was rewritten by a viewer passes.
"""

from __future__ import annotations

import html
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dizuo.compliance.labels import Labeler, Notice, Position, read_label
from dizuo.compliance.verify import Found
from dizuo.kb.formats import DocumentError, parse_document, parse_html, sniff
from dizuo.kb.parsing import Block

__all__ = ["TITLE", "Answer", "Kind", "export", "label_html", "read_file", "text_of"]

TITLE = "AI 生成内容 / AI-generated content"
Reader = Callable[[str, bytes], list[Block]]
CUSTOM_PART = "docProps/custom.xml"
MAX_CUSTOM_BYTES = 1 << 20  # a custom-properties part larger than this is no label of ours
_CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
_VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
_CUSTOM_TYPE = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
_CUSTOM_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)
_META = re.compile(rb"""<meta\s+name=["']AIGC["']\s+content=["']([^"']*)["']""", re.IGNORECASE)
MEDIA_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "html": "text/html; charset=utf-8",
}


class Kind(StrEnum):
    DOCX = "docx"
    XLSX = "xlsx"
    PDF = "pdf"
    HTML = "html"


@dataclass(frozen=True, slots=True)
class Answer:
    """A generated answer to write out, and the label it carried (checked by the caller)."""

    text: str
    label: Mapping[str, str]
    title: str = TITLE
    question: str | None = None
    model: str | None = None


def text_of(blocks: list[Block]) -> str:
    """A file's text as a label's seal covers it: every block's text and cells, whitespace removed."""
    parts: list[str] = []
    for block in blocks:
        if block.kind == "table":
            parts.extend(block.header)
            parts.extend(cell for row in block.rows for cell in row)
        else:
            parts.append(block.text)
    return re.sub(r"\s+", "", "".join(parts))


def _lines(answer: Answer, notice: Notice) -> list[tuple[str, str]]:
    """What a file says, in order, as (role, text): the notice, title, question, answer."""
    lines = [("title", answer.title)]
    if answer.question:
        lines.append(("label", f"问题 / Question：{answer.question}"))
    if answer.model:
        lines.append(("label", f"模型 / Model：{answer.model}"))
    body = [("text", part) for part in answer.text.split("\n")]
    shown = notice.text not in answer.text
    if shown and notice.position is Position.START:
        lines.insert(1, ("notice", notice.text))
    lines.extend(body)
    if shown and notice.position is Position.END:
        lines.append(("notice", notice.text))
    return lines


def _docx(lines: list[tuple[str, str]]) -> bytes:
    import docx

    document = docx.Document()
    for role, text in lines:
        if role == "title":
            document.add_heading(text, level=1)
            document.core_properties.title = text
        else:
            paragraph = document.add_paragraph()
            run = paragraph.add_run(text)
            run.bold = role == "notice"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _xlsx(lines: list[tuple[str, str]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "回答"
    sheet.column_dimensions["A"].width = 100
    for role, text in lines:
        sheet.append([text])
        cell = sheet.cell(row=sheet.max_row, column=1)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        if role in ("title", "notice"):
            cell.font = Font(bold=True)
    book.properties.title = lines[0][1]
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _pdf(lines: list[tuple[str, str]]) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    # A built-in CID font: Chinese without a font file (every PDF viewer in China has it).
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    styles = {
        "title": ParagraphStyle("title", fontName="STSong-Light", fontSize=16, leading=22, wordWrap="CJK"),
        "notice": ParagraphStyle("notice", fontName="STSong-Light", fontSize=11, leading=16, wordWrap="CJK"),
        "label": ParagraphStyle("label", fontName="STSong-Light", fontSize=10, leading=15, wordWrap="CJK"),
        "text": ParagraphStyle("text", fontName="STSong-Light", fontSize=11, leading=17, wordWrap="CJK"),
    }
    out = io.BytesIO()
    story: list[Any] = []
    for role, text in lines:
        story.append(Paragraph(html.escape(text) or "&nbsp;", styles[role]))
        if role == "title":
            story.append(Spacer(1, 8))
    SimpleDocTemplate(out, pagesize=A4, title=lines[0][1]).build(story)
    return out.getvalue()


def _html(lines: list[tuple[str, str]], meta: str = "") -> str:
    parts = []
    for role, text in lines:
        escaped = html.escape(text)
        if role == "title":
            parts.append(f"<h1>{escaped}</h1>")
        elif role == "notice":
            parts.append(f'<p class="aigc-notice"><strong>{escaped}</strong></p>')
        else:
            parts.append(f"<p>{escaped}</p>")
    return (
        '<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"{meta}<title>{html.escape(lines[0][1])}</title>"
        "<style>body{font:15px/1.7 system-ui,sans-serif;max-width:48em;margin:2em auto;padding:0 1em}"
        ".aigc-notice{color:#555;border-left:3px solid #c60;padding-left:.6em}</style>"
        f"</head><body>{''.join(parts)}</body></html>\n"
    )


def _label_json(label: Mapping[str, str]) -> str:
    return json.dumps({"AIGC": dict(label)}, ensure_ascii=False, separators=(",", ":"))


def _meta(label: Mapping[str, str]) -> str:
    return f'<meta name="AIGC" content="{html.escape(_label_json(label), quote=True)}">'


def _with_custom_property(data: bytes, name: str, value: str) -> bytes:
    """An Office file with the custom document property *name* = *value* (docProps/custom.xml)."""
    from lxml import etree

    source = zipfile.ZipFile(io.BytesIO(data))
    names = source.namelist()
    if CUSTOM_PART in names:
        root = etree.fromstring(source.read(CUSTOM_PART))
    else:
        root = etree.Element(f"{{{_CUSTOM_NS}}}Properties", nsmap={None: _CUSTOM_NS, "vt": _VT_NS})
    pids = [int(p.get("pid", "1")) for p in root]
    prop = etree.SubElement(root, f"{{{_CUSTOM_NS}}}property")
    prop.set("fmtid", "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}")
    prop.set("pid", str(max(pids, default=1) + 1))
    prop.set("name", name)
    etree.SubElement(prop, f"{{{_VT_NS}}}lpwstr").text = value
    custom = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == CUSTOM_PART:
                continue
            if item.filename == "[Content_Types].xml" and CUSTOM_PART not in names:
                override = f'<Override PartName="/{CUSTOM_PART}" ContentType="{_CUSTOM_TYPE}"/>'
                content = content.replace(b"</Types>", override.encode() + b"</Types>")
            if item.filename == "_rels/.rels" and CUSTOM_PART not in names:
                relation = f'<Relationship Id="rIdAIGC" Type="{_CUSTOM_REL}" Target="{CUSTOM_PART}"/>'
                content = content.replace(b"</Relationships>", relation.encode() + b"</Relationships>")
            target.writestr(item, content)
        target.writestr(CUSTOM_PART, custom)
    return out.getvalue()


def _custom_property(data: bytes, name: str) -> str | None:
    from lxml import etree

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo(CUSTOM_PART)
            if info.file_size > MAX_CUSTOM_BYTES:
                return None
            root = etree.fromstring(archive.read(info))
    except (KeyError, zipfile.BadZipFile, etree.XMLSyntaxError):
        return None
    for prop in root:
        if prop.get("name") == name and len(prop):
            return str(prop[0].text or "")
    return None


def export(answer: Answer, kind: Kind, labeler: Labeler, notice: Notice) -> bytes:
    """*answer* as a *kind* file with the explicit notice and the implicit label in its metadata."""
    lines = _lines(answer, notice)
    if kind is Kind.HTML:
        page = _html(lines)
        label = labeler.reseal(answer.label, text_of(parse_html(page)))
        return _html(lines, _meta(label)).encode()
    if kind is Kind.PDF:
        import pypdf

        built = _pdf(lines)
        label = labeler.reseal(answer.label, text_of(parse_document("answer.pdf", built)))
        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(built)))
        writer.add_metadata({"/AIGC": _label_json(label)})
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()
    built = _docx(lines) if kind is Kind.DOCX else _xlsx(lines)
    label = labeler.reseal(answer.label, text_of(parse_document(f"answer.{kind}", built)))
    return _with_custom_property(built, "AIGC", _label_json(label))


def label_html(page: str, labeler: Labeler, content_id: str, notice: Notice | None = None) -> str:
    """An HTML page the platform wrote with generated text in it (an evaluation report), labeled:
    the notice first in its body, and its ``<meta name="AIGC">`` sealing the page's text, the
    platform as producer, *content_id* naming the page (a run's id)."""
    if notice is not None:
        shown = f'<p class="aigc-notice"><strong>{html.escape(notice.text)}</strong></p>'
        page = _BODY.sub(lambda opened: opened.group(0) + shown, page, count=1)
    label = labeler.label(content_id, text_of(parse_html(page)), at=int(time.time()))
    return page.replace("<head>", "<head>" + _meta(label), 1)


def _parsed(value: str | bytes | None) -> dict[str, str] | None:
    if not value:
        return None
    try:
        return read_label(json.loads(value))
    except ValueError:
        return None


def read_file(data: bytes, read: Reader = parse_document) -> Found | None:
    """The label and text of a file the platform exported; None when *data* is no such file type.
    *read* reads the file's text (a reader in a child process with limits, for a file sent in)."""
    kind = sniff(data)
    if kind == "pdf":
        import pypdf
        from pypdf.errors import PdfReadError

        try:
            info = pypdf.PdfReader(io.BytesIO(data)).metadata
            label = _parsed(str(info.get("/AIGC") or "")) if info is not None else None
        except (PdfReadError, ValueError, KeyError, TypeError):
            label = None
        return Found("pdf", label, _text_or_none(read, "answer.pdf", data) if label else None)
    if kind in ("docx", "xlsx"):
        label = _parsed(_custom_property(data, "AIGC"))
        return Found(kind, label, _text_or_none(read, f"answer.{kind}", data) if label else None)
    head = data[:2048].lower()
    if b"<html" in head or b"<!doctype html" in head:
        match = _META.search(data[:65536])
        label = _parsed(html.unescape(match.group(1).decode("utf-8", "replace"))) if match else None
        return Found("html", label, text_of(parse_html(data.decode("utf-8", "replace"))) if label else None)
    return None


def _text_or_none(read: Reader, name: str, data: bytes) -> str | None:
    try:
        return text_of(read(name, data))
    except DocumentError:
        return None
