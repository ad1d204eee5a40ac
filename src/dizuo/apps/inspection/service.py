"""Files in, an audit out: what the CLI and the HTTP endpoint both call.

Every file is read by the knowledge bases' parser (:func:`dizuo.kb.formats.parse_document`), so a
report, a standard or a defect history may be Markdown, plain text, HTML, DOCX, XLSX, CSV or a
text PDF, with the same refusals (empty, encrypted, too large, unknown format).
"""

from __future__ import annotations

from collections.abc import Sequence

from dizuo.apps.inspection.audit import Audit, audit
from dizuo.apps.inspection.history import History, parse_history
from dizuo.apps.inspection.report import parse_report
from dizuo.apps.inspection.standard import Standard, parse_standard
from dizuo.kb.formats import DEFAULT_MAX_BYTES, parse_document
from dizuo.kb.parsing import Block

__all__ = ["File", "audit_files", "load_history", "load_standard"]

File = tuple[str, bytes]  # (file name, contents)


def load_standard(files: Sequence[File], max_bytes: int = DEFAULT_MAX_BYTES) -> Standard:
    """Read one standard from *files*; several files are read as one text, in order (a standard
    and, say, a separate sampling annex)."""
    blocks: list[Block] = []
    for name, data in files:
        blocks += parse_document(name, data, max_bytes)
    return parse_standard(blocks, files[0][0] if len(files) == 1 else "、".join(name for name, _ in files))


def load_history(files: Sequence[File], max_bytes: int = DEFAULT_MAX_BYTES) -> History:
    """The past cases of every defect-history file."""
    cases = []
    for name, data in files:
        cases += parse_history(parse_document(name, data, max_bytes), name)
    return History(cases)


def audit_files(
    report: File,
    standards: Sequence[File],
    defects: Sequence[File] = (),
    lang: str = "zh",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Audit:
    """Audit the report file against the standard files, linking findings to the defect files."""
    standard = load_standard(standards, max_bytes)
    history = load_history(defects, max_bytes) if defects else None
    name, data = report
    return audit(parse_report(parse_document(name, data, max_bytes), name), standard, history, lang)
