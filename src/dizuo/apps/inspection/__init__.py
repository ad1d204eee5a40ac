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
from dizuo.errors import catalogue

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

# The messages of the auditor's errors: a standard or a report it cannot read.
MESSAGES = catalogue(
    {
        "standard_unrecognized": (
            "无法从标准文件 {name} 中读出审核规则：缺少{missing}。请提供含技术要求、抽样方案和判定规则的检验标准全文。",
            "No audit rules could be read from the standard {name}: it lacks {missing_en}. Give the full "
            "inspection standard with its requirements, sampling plan and acceptance rules.",
        ),
        "report_layout_unknown": (
            "无法识别检验报告 {name} 的版式：找不到逐件检验记录表（需有“序号”或“件号”列及各检验项目列，"
            "如“柱塞直径/mm”）。支持的版式见 docs/inspection.md。",
            "The layout of the inspection report {name} is not one we read: there is no per-piece record "
            "(a table with a piece-number column and one column per inspected item, such as the plunger "
            "diameter in mm). "
            "See docs/inspection.md for the layouts read.",
        ),
        "report_unit_mismatch": (
            "报告列“{column}”的单位 {unit} 无法与标准第 {clause} 条的单位 {expected} 换算。请在表头注明可换算的单位（如 /mm、/μm）。",
            "The unit {unit} of the report's column '{column}' cannot be converted to {expected}, the unit "
            "of clause {clause}. Name a convertible unit in the header (such as /mm or /μm).",
        ),
    }
)
