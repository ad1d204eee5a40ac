"""Files in, an audit out: what the CLI and the HTTP endpoint both call.

Every file is read by the knowledge bases' parser (:func:`dizuo.kb.formats.parse_document`), so a
report, a standard or a defect history may be Markdown, plain text, HTML, DOCX, XLSX, CSV or a
text PDF, with the same refusals (empty, encrypted, too large, unknown format). The server reads
them in a child process under CPU and memory limits (:mod:`dizuo.kb.isolation`); the CLI reads its
own files in process.
"""

from __future__ import annotations

from collections.abc import Sequence

from dizuo.apps.inspection.audit import Audit, audit
from dizuo.apps.inspection.history import History, parse_history
from dizuo.apps.inspection.report import parse_report
from dizuo.apps.inspection.standard import Standard, parse_standard
from dizuo.errors import Lang
from dizuo.kb.isolation import DocumentReader, in_process
from dizuo.kb.parsing import Block

__all__ = ["File", "audit_files", "load_history", "load_standard"]

File = tuple[str, bytes]  # (file name, contents)


_READ = in_process()


def load_standard(files: Sequence[File], read: DocumentReader = _READ) -> Standard:
    """Read one standard from *files*; several files are read as one text, in order (a standard
    and, say, a separate sampling annex)."""
    blocks: list[Block] = []
    for name, data in files:
        blocks += read(name, data)
    return parse_standard(blocks, files[0][0] if len(files) == 1 else "、".join(name for name, _ in files))


def load_history(files: Sequence[File], read: DocumentReader = _READ) -> History:
    """The past cases of every defect-history file."""
    cases = []
    for name, data in files:
        cases += parse_history(read(name, data), name)
    return History(cases)


def audit_files(
    report: File,
    standards: Sequence[File],
    defects: Sequence[File] = (),
    lang: Lang = "zh",
    read: DocumentReader = _READ,
) -> Audit:
    """Audit the report file against the standard files, linking findings to the defect files."""
    standard = load_standard(standards, read)
    history = load_history(defects, read) if defects else None
    name, data = report
    return audit(parse_report(read(name, data), name), standard, history, lang)
