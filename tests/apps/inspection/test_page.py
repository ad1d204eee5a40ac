"""The audit page as a quality engineer sees it: opened in headless Chromium, no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dizuo.apps.inspection import audit_files, render_html
from dizuo.apps.inspection.audit import REPORT_ERRORS, Kind
from dizuo.apps.inspection.render import KINDS
from tests.apps.inspection.reports import DEFECTS, STANDARD, clean, docx
from tests.support.browser import screenshot


def audit_page(tmp_path: Path, lang: str) -> tuple[Path, dict[str, Any]]:
    spec = clean(report_id="JY-T-0611")
    spec.set_piece(17, "柱塞直径/mm", "11.9935")  # reported 合格
    spec.set_sample(6, "柱塞硬度/HRC", "59.5")  # the conclusion still says 接收
    doc = audit_files(
        ("JY-T-0611.docx", docx(spec)),
        [(STANDARD.name, STANDARD.read_bytes())],
        [(DEFECTS.name, DEFECTS.read_bytes())],
        lang=lang,
    ).public()
    page = tmp_path / f"audit-{lang}.html"
    page.write_text(render_html(doc, lang), encoding="utf-8")
    return page, doc


def test_the_audit_page_reads_right_in_chinese_and_english(browser: Any, tmp_path: Path) -> None:
    for lang, invalid, decision in (("zh", "报告无效", "拒收"), ("en", "Report invalid", "reject")):
        path, doc = audit_page(tmp_path, lang)
        page = browser.new_page(viewport={"width": 1280, "height": 800})  # a laptop screen
        page.goto(path.as_uri())
        assert page.locator(".verdict").inner_text() == invalid
        assert decision in page.locator("span.differs").inner_text()  # the recomputed decision stands out
        rows = page.locator("table").nth(1).locator("tr")
        assert rows.count() == len(doc["findings"]) + 1
        assert page.get_by_text("11.9935", exact=False).first.is_visible()
        # Every column header reads on one line (条款 and 件号 once wrapped a character per line).
        lines = (
            page.locator("table")
            .nth(1)
            .locator("th")
            .evaluate_all(
                """cells => cells.map(cell => {
                const range = document.createRange();
                range.selectNodeContents(cell);
                return new Set([...range.getClientRects()].map(box => Math.round(box.top))).size;
            })"""
            )
        )
        assert set(lines) == {1}, lines
        # The page fits the screen's width: nothing to scroll sideways.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # A case reference leads to the case with its root cause.
        page.locator("a[href='#QD-2022-047']").first.click()
        assert page.evaluate("location.hash") == "#QD-2022-047"
        assert page.locator("#QD-2022-047").is_visible()
        screenshot(page, f"inspection-audit-{lang}")
        page.close()


def test_every_kind_of_finding_has_a_name_in_both_languages() -> None:
    assert set(KINDS) == set(Kind)
    assert all(zh and en and group in {"error", "product", "action"} for zh, en, group in KINDS.values())
    assert {kind for kind in Kind if KINDS[kind][2] == "error"} == REPORT_ERRORS
