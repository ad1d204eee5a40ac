"""The CSV and XLSX files people open in Excel: usage exports, statements, voucher reports.

Rows arrive as the JSON exports have them (amounts as exact CNY strings, times in ISO 8601 UTC); the
files are written for accountants: headers in the reader's language, times in the platform's time
zone, and in XLSX amounts as numbers with a CNY format to two decimals (the cell keeps the exact
value, so ``SUM`` adds what was charged), columns sized to their contents and the header row frozen.
CSV is UTF-8 with a byte-order mark, so that Excel opens Chinese text correctly.

Nothing a tenant names becomes a live formula: text that a spreadsheet would run is made inert with
a leading ``'`` (OWASP's advice on CSV injection), and XLSX text is stored as text.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

from dizuo.errors import Lang

__all__ = [
    "COLUMNS",
    "Column",
    "Lang",
    "add_sheet",
    "iter_csv",
    "neutralise",
    "to_csv",
    "to_xlsx",
    "write_xlsx",
]

Kind = Literal["text", "int", "money", "time"]
CNY_FORMAT = '"¥"#,##0.00'
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
MAX_WIDTH = 60


@dataclass(frozen=True)
class Column:
    """A column of an export: its header in each language, and what its values are."""

    zh: str
    en: str
    kind: Kind = "text"

    def label(self, lang: Lang, zone: ZoneInfo) -> str:
        text = self.zh if lang == "zh" else self.en
        if self.kind == "time":  # the zone is named where the times are
            text += f"（{zone.key}）" if lang == "zh" else f" ({zone.key})"
        return text


COLUMNS: dict[str, Column] = {
    # usage records
    "request_id": Column("请求 ID", "Request ID"),
    "created_at": Column("时间", "Time", "time"),
    "model": Column("模型", "Model"),
    "deployment": Column("部署", "Deployment"),
    "provider": Column("服务商", "Provider"),
    "region": Column("区域", "Region"),
    "endpoint": Column("接口", "Endpoint"),
    "prompt_tokens": Column("输入 Token", "Prompt tokens", "int"),
    "completion_tokens": Column("输出 Token", "Completion tokens", "int"),
    "cost": Column("费用（元）", "Cost (CNY)", "money"),
    "voucher_part": Column("算力券支付（元）", "Paid by vouchers (CNY)", "money"),
    "own_part": Column("企业自付（元）", "Paid by the organization (CNY)", "money"),
    "uncollected": Column("未收回（元）", "Uncollected (CNY)", "money"),
    "latency_ms": Column("延迟（毫秒）", "Latency (ms)", "int"),
    "data_class": Column("数据分级", "Data class"),
    "stream": Column("流式", "Streamed"),
    "status": Column("状态", "Status"),
    "key_id": Column("API 密钥 ID", "API key ID"),
    "attempts": Column("尝试的部署", "Deployments tried"),
    # statements and voucher reports
    "date": Column("日期", "Date"),
    "calls": Column("调用次数", "Calls", "int"),
    "organization": Column("组织", "Organization"),
    "uscc": Column("统一社会信用代码", "Unified social credit code"),
    "month": Column("月份", "Month"),
    "opening_balance": Column("期初余额（元）", "Opening balance (CNY)", "money"),
    "topups": Column("充值（元）", "Top-ups (CNY)", "money"),
    "own_charges": Column("企业自付费用（元）", "Charges paid by the organization (CNY)", "money"),
    "closing_balance": Column("期末余额（元）", "Closing balance (CNY)", "money"),
    "voucher_paid": Column("算力券支付（元）", "Paid by vouchers (CNY)", "money"),
    "issuer": Column("发放方", "Issuer"),
    "program": Column("算力券项目", "Voucher program"),
    "kind": Column("类别", "Kind"),  # model (calls) | compute (jobs)
    "pool": Column("资源池", "Pool"),
    "accelerator": Column("加速卡型号", "Accelerator"),
    "accelerator_hours": Column("卡时", "Accelerator-hours"),
    # the audit trail
    "seq": Column("序号", "No.", "int"),
    "at": Column("时间", "Time", "time"),
    "actor": Column("操作人", "Actor"),
    "action": Column("操作", "Action"),
    "target": Column("对象", "Target"),
    "org_id": Column("组织 ID", "Organization ID"),
    "detail": Column("详情", "Detail"),
    "prev": Column("前一条哈希", "Previous hash"),
    "hash": Column("哈希", "Hash"),
}

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def neutralise(value: Any) -> Any:
    """*value*, with text that a spreadsheet would run as a formula made inert by a leading ``'``;
    numbers and other values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _column(key: str) -> Column:
    return COLUMNS.get(key) or Column(key, key)


def _local(value: str, zone: ZoneInfo) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    # Whole seconds, as the console shows them (Excel would round a fraction to the next second).
    return moment.astimezone(zone).replace(tzinfo=None, microsecond=0)


def _cell(value: Any, kind: Kind, zone: ZoneInfo, *, sheet: bool, lang: Lang = "zh") -> Any:
    """A value as a spreadsheet should hold it (*sheet*) or as a CSV writes it, in *lang*."""
    if value is None or value == "":
        return ""
    if kind == "money" and isinstance(value, str) and _NUMBER.fullmatch(value):
        return Decimal(value) if sheet else value
    if kind == "time" and isinstance(value, str):
        local = _local(value, zone)
        return local if sheet else local.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):  # a streamed call: 是 / 否, as a reader says it
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    return neutralise(value)


def iter_csv(
    rows: Iterable[dict[str, Any]],
    header: dict[str, Any] | None = None,
    *,
    lang: Lang = "zh",
    zone: ZoneInfo,
) -> Iterator[bytes]:
    """Rows as CSV in UTF-8 with a BOM, *header* lines (a statement's summary) first, a piece at a
    time: however many rows there are, only a few hundred are in memory at once."""
    yield codecs.BOM_UTF8
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        for key, value in header.items():
            column = _column(key)
            writer.writerow(
                [
                    neutralise(column.label(lang, zone)),
                    _cell(value, column.kind, zone, sheet=False, lang=lang),
                ]
            )
        writer.writerow([])
    keys: list[str] | None = None
    kinds: list[Kind] = []
    for count, row in enumerate(rows, start=1):
        if keys is None:
            keys = list(row)
            kinds = [_column(key).kind for key in keys]
            writer.writerow([neutralise(_column(key).label(lang, zone)) for key in keys])
        writer.writerow(
            [
                _cell(row[key], kind, zone, sheet=False, lang=lang)
                for key, kind in zip(keys, kinds, strict=True)
            ]
        )
        if count % CSV_PIECE == 0:
            yield _take(buffer)
    yield _take(buffer)


CSV_PIECE = 500  # rows per piece of a streamed CSV


def _take(buffer: io.StringIO) -> bytes:
    """What *buffer* holds, in UTF-8; and empty it."""
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text.encode()


def to_csv(
    rows: Iterable[dict[str, Any]],
    header: dict[str, Any] | None = None,
    *,
    lang: Lang = "zh",
    zone: ZoneInfo,
) -> bytes:
    """Rows as CSV in UTF-8 with a BOM, *header* lines (a statement's summary) first."""
    return b"".join(iter_csv(rows, header, lang=lang, zone=zone))


def _width(value: Any, kind: Kind) -> int:
    """Characters a cell needs on screen: East Asian wide characters take two."""
    if kind == "money":
        return len(f"¥{Decimal(value):,.2f}") if isinstance(value, Decimal) else len(str(value))
    if kind == "time":
        return 19
    text = str(value)
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def add_sheet(
    book: Any, title: str, header: list[str], rows: Iterable[list[Any]], first: bool = False
) -> Any:
    """A sheet of a report's workbook (*book*, an openpyxl ``Workbook``): *header* in bold, frozen
    above *rows*, columns as wide as their text on screen (at most 80). *first*: the book's first,
    empty sheet, retitled. Return the sheet."""
    from openpyxl.styles import Font

    page = book.active if first else book.create_sheet()
    page.title = title
    page.append(header)
    bold = Font(bold=True)
    for cell in page[1]:
        cell.font = bold
    for row in rows:
        page.append(row)
    page.freeze_panes = "A2"
    for column in page.columns:
        width = max(_width(cell.value if cell.value is not None else "", "text") for cell in column)
        page.column_dimensions[column[0].column_letter].width = min(width * 1.1 + 2, 80)
    return page


SIZED_BY = 1000  # rows whose contents size the columns (a streamed sheet is sized before it is written)


def write_xlsx(
    out: IO[bytes],
    rows: Iterable[dict[str, Any]],
    header: dict[str, Any] | None = None,
    *,
    title: str = "dizuo",
    lang: Lang = "zh",
    zone: ZoneInfo,
) -> None:
    """Write rows to *out* as an XLSX workbook: *header* lines first, then the table under a frozen
    header row. Written as it goes (openpyxl's write-only mode): memory stays flat whatever the number
    of rows; columns are sized by the first rows."""
    from openpyxl import Workbook  # 12 MB: loaded by the first XLSX export, not by every worker
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(
        re.sub(r"[\\/?*\[\]:]", "-", title)[:31] or "dizuo"
    )  # characters Excel refuses
    bold = Font(bold=True)
    iterator = iter(rows)
    first = list(itertools.islice(iterator, SIZED_BY))
    keys = list(first[0]) if first else []
    kinds = [_column(key).kind for key in keys]
    summary = [
        [(_column(key).label(lang, zone), "text"), (value, _column(key).kind)]
        for key, value in (header or {}).items()
    ]
    heading: list[tuple[Any, Kind]] = [(_column(key).label(lang, zone), "text") for key in keys]

    def values(row: dict[str, Any]) -> list[tuple[Any, Kind]]:
        return [(row[key], kind) for key, kind in zip(keys, kinds, strict=True)]

    def cells(line: list[tuple[Any, Kind]], *, strong: bool = False) -> list[Any]:
        made = []
        for value, kind in line:
            cell = WriteOnlyCell(sheet, value=_cell(value, kind, zone, sheet=True, lang=lang))
            if isinstance(cell.value, str):
                cell.data_type = "s"  # openpyxl would store "=…" as a formula
            elif kind == "money":
                cell.number_format = CNY_FORMAT
            elif kind == "time":
                cell.number_format = TIME_FORMAT
            if strong:
                cell.font = bold
            made.append(cell)
        return made

    widths: dict[int, int] = {}
    for line in [*summary, heading, *(values(row) for row in first)]:
        for index, (value, kind) in enumerate(line, start=1):
            shown = _cell(value, kind, zone, sheet=True, lang=lang)
            if shown not in (None, ""):
                widths[index] = max(widths.get(index, 0), _width(shown, kind))
    for index, width in widths.items():
        sheet.column_dimensions[get_column_letter(index)].width = min(width + 2, MAX_WIDTH)
    if keys:
        # Under the table's header: below the summary and a blank line, if there is a summary.
        sheet.freeze_panes = f"A{len(summary) + (1 if summary else 0) + 2}"
    for line in summary:
        sheet.append(cells(line))
    if summary:
        sheet.append([])  # a blank line between the summary and the table
    if keys:
        sheet.append(cells(heading, strong=True))
        for row in itertools.chain(first, iterator):
            sheet.append(cells(values(row)))
    workbook.save(out)


def to_xlsx(
    rows: Iterable[dict[str, Any]],
    header: dict[str, Any] | None = None,
    *,
    title: str = "dizuo",
    lang: Lang = "zh",
    zone: ZoneInfo,
) -> bytes:
    """Rows as an XLSX workbook (see :func:`write_xlsx`)."""
    buffer = io.BytesIO()
    write_xlsx(buffer, rows, header, title=title, lang=lang, zone=zone)
    return buffer.getvalue()
