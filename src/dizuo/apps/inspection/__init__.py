"""质检报告自动校核: the inspection-report auditor for plunger pairs of marine fuel pumps.

Built on the public pieces: the knowledge bases' parsers read every file, their BM25 index ranks past
cases, and every number is judged in code against clauses read from the standard's own text.
"""

from dizuo.apps.inspection.audit import Audit, Finding, audit
from dizuo.apps.inspection.history import Case, History, parse_history
from dizuo.apps.inspection.render import render_html, render_text
from dizuo.apps.inspection.report import Report, ReportLayoutUnknown, parse_report
from dizuo.apps.inspection.service import audit_files, load_history, load_standard
from dizuo.apps.inspection.standard import Standard, StandardUnrecognized, parse_standard

__all__ = [
    "Audit",
    "Case",
    "Finding",
    "History",
    "Report",
    "ReportLayoutUnknown",
    "Standard",
    "StandardUnrecognized",
    "audit",
    "audit_files",
    "load_history",
    "load_standard",
    "parse_history",
    "parse_report",
    "parse_standard",
    "render_html",
    "render_text",
]
