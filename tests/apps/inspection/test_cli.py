"""``dizuo inspect``: the JSON contract, the HTML page, exit codes and clear errors."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from dizuo.cli import main
from tests.apps.inspection.reports import DEFECTS, STANDARD, clean, docx, markdown


def inspect(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["inspect", *args])
    return result.exit_code, result.output


def test_json_contract_html_and_exit_status(tmp_path: Path) -> None:
    spec = clean(report_id="JY-T-0042")
    spec.set_piece(17, "柱塞直径/mm", "11.9935")
    report = tmp_path / "JY-T-0042.docx"
    report.write_bytes(docx(spec))
    page = tmp_path / "audit.html"
    code, out = inspect(
        str(report), "--standard", str(STANDARD), "--defects", str(DEFECTS), "--json", "--html", str(page)
    )
    assert code == 1  # the report is not valid
    doc = orjson.loads(out)
    assert {"report_id", "valid", "batch_decision", "findings"} <= doc.keys()
    assert doc["report_id"] == "JY-T-0042" and doc["valid"] is False
    assert doc["batch_decision"] == {"reported": "accept", "computed": "accept"}
    finding = next(f for f in doc["findings"] if f["kind"] == "out_of_limit")
    assert set(finding) >= {
        "kind",
        "item",
        "piece",
        "sample",
        "measured",
        "limit",
        "clause",
        "message",
        "root_cause_refs",
    }
    assert (finding["item"], finding["piece"], finding["measured"], finding["clause"]) == (
        "柱塞直径",
        17,
        "11.9935",
        "4.1",
    )
    assert finding["root_cause_refs"][0] == "QD-2024-012"
    assert doc["root_causes"][0]["id"] in finding["root_cause_refs"]
    html = page.read_text(encoding="utf-8")
    assert "报告无效" in html and "11.9935" in html and 'id="QD-2024-012"' in html


def test_a_valid_report_exits_zero_and_prints_a_summary(tmp_path: Path) -> None:
    report = tmp_path / "ok.md"
    report.write_bytes(markdown(clean()))
    code, out = inspect(str(report), "--standard", str(STANDARD), "--lang", "en")
    assert code == 0 and "Report valid" in out and "accept / recomputed accept" in out


def test_files_that_cannot_be_read_exit_two_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"")
    code, out = inspect(str(empty), "--standard", str(STANDARD))
    assert code == 2 and "empty.md" in out and "没有可读的文字" in out
    code, out = inspect(str(tmp_path / "missing.md"), "--standard", str(STANDARD))
    assert code == 2 and "missing.md" in out
    prose = tmp_path / "prose.md"
    prose.write_text("# 报告\n\n全部合格。\n", encoding="utf-8")
    code, out = inspect(str(prose), "--standard", str(STANDARD))
    assert code == 2 and "report_layout_unknown" not in out and "逐件检验记录" in out
    code, out = inspect(str(prose))
    assert code == 2 and "--standard" in out
