"""Documents built to cost a reader far more than their size are refused, in a process of their own,
while every other tenant is served as usual."""

from __future__ import annotations

import threading
import time
import uuid
from urllib.parse import quote

import httpx
import pytest

from dizuo.kb.formats import MAX_CELLS, MAX_SPAN, DocumentTooLarge, parse_document
from dizuo.kb.isolation import IsolatedParser, Limits
from tests.kb.documents import docx_bytes
from tests.security import bombs
from tests.security.conftest import Platform
from tests.support.platform import RunningGateway
from tests.support.shared import DATA, needs_shared

STANDARD = DATA / "inspection" / "standards" / "Q-HJ-017-柱塞偶件检验规范.md"


def test_a_sheet_is_read_as_the_cells_it_holds_not_the_dimension_it_declares() -> None:
    # Declares A1:XFD4000 (65 million cells) and holds 4,000.
    blocks = parse_document("检验.xlsx", bombs.xlsx(4000, cells_at_end=False))
    (table,) = blocks
    assert table.header == ("件号1",) and len(table.rows) == 3999 and table.rows[-1] == ("件号4000",)


def test_a_sheet_with_more_cells_than_the_budget_is_refused_naming_the_limit() -> None:
    data = bombs.xlsx(400)  # 400 rows reaching column XFD: 6.5 million cells in 10 KB
    assert len(data) < 20_000
    with pytest.raises(DocumentTooLarge) as refused:
        parse_document("检验.xlsx", data)
    assert refused.value.status == 413 and refused.value.code == "document_too_large"
    assert f"{MAX_CELLS:,}" in refused.value.message("zh") and f"{MAX_CELLS:,}" in refused.value.message("en")


def test_a_docx_cell_spans_at_most_word_s_own_table_width() -> None:
    (table,) = parse_document("报告.docx", bombs.docx_span_bomb(span=1_000_000, rows=400))
    assert table.header == ("项目0",) + ("合格",) * MAX_SPAN
    assert len(table.rows) == 399 and all(len(row) == 1 + MAX_SPAN for row in table.rows)


def test_docx_merged_cells_repeat_their_text_across_and_down() -> None:
    data = bombs.docx(
        bombs.table(
            bombs.cell("项目") + bombs.cell("尺寸/mm", span=2),
            bombs.cell("外径", merge="restart") + bombs.cell("12.0") + bombs.cell("12.1"),
            bombs.cell("", merge="") + bombs.cell("12.2") + bombs.cell("12.3"),
        )
    )
    (table,) = parse_document("合并.docx", data)
    assert table.header == ("项目", "尺寸/mm", "尺寸/mm")
    assert table.rows == (("外径", "12.0", "12.1"), ("外径", "12.2", "12.3"))


def test_an_isolated_parse_past_its_cpu_time_is_refused_naming_the_limit() -> None:
    parser = IsolatedParser(Limits(cpu_seconds=1, memory_mb=4096))
    started = time.monotonic()
    with pytest.raises(DocumentTooLarge) as refused:
        parser("大.docx", bombs.docx_huge_xml())  # ~150 s to read in process
    assert time.monotonic() - started < 15
    assert "1 s" in refused.value.message("en") and "kb_parse_cpu_seconds" in refused.value.message("zh")
    # The next document is read as usual.
    assert parser("规范.docx", docx_bytes())[0].text == "柱塞偶件检验规范"


def test_an_isolated_parse_past_its_memory_is_refused_naming_the_limit() -> None:
    parser = IsolatedParser(Limits(cpu_seconds=60, memory_mb=256))
    with pytest.raises(DocumentTooLarge) as refused:
        parser("大.docx", bombs.docx_huge_xml())
    assert "256 MB" in refused.value.message("en") and "kb_parse_memory_mb" in refused.value.message("zh")
    assert parser("规范.docx", docx_bytes())[0].text == "柱塞偶件检验规范"


def test_an_isolated_parse_gives_the_parsers_own_refusals() -> None:
    parser = IsolatedParser()
    with pytest.raises(DocumentTooLarge) as refused:
        parser("检验.xlsx", bombs.xlsx(400))
    assert f"{MAX_CELLS:,}" in refused.value.message("en")
    with pytest.raises(Exception) as unreadable:
        parser("坏.docx", b"PK\x03\x04 not really a zip")
    assert getattr(unreadable.value, "code", None) == "document_unreadable"


@pytest.fixture
def bystander(platform: Platform) -> str:
    """An API key of another organization, which only lists models meanwhile."""
    return platform.b.key


def _while_serving(gateway: RunningGateway, key: str, upload: threading.Thread) -> list[float]:
    """Time GET /v1/models with *key* every 50 ms for as long as *upload* runs."""
    seconds: list[float] = []
    with httpx.Client(base_url=gateway.v1, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        upload.start()
        while upload.is_alive():
            started = time.monotonic()
            assert http.get("/models").status_code == 200
            seconds.append(time.monotonic() - started)
            time.sleep(0.05)
    upload.join()
    return seconds


def test_a_bomb_uploaded_to_a_knowledge_base_is_refused_while_other_tenants_are_served(
    gateway: RunningGateway, api_key: str, bystander: str
) -> None:
    headers = {"authorization": f"Bearer {api_key}"}
    kb = f"炸弹-{uuid.uuid4().hex[:6]}"
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=f"{gateway.v1}/knowledge-bases", headers=headers, timeout=120) as http:
        assert http.post("", json={"name": kb}).status_code == 201
        data = bombs.docx_huge_xml()

        def upload() -> None:
            answers.append(http.post(f"/{quote(kb)}/documents", params={"filename": "大.docx"}, content=data))

        try:
            seconds = _while_serving(gateway, bystander, threading.Thread(target=upload))
        finally:
            http.delete(f"/{quote(kb)}")
    (answer,) = answers
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "document_too_large"
    assert len(seconds) >= 5 and max(seconds) < 1.0


@needs_shared
def test_a_bomb_sent_to_the_inspection_auditor_is_refused_while_other_tenants_are_served(
    gateway: RunningGateway, api_key: str, bystander: str
) -> None:
    answers: list[httpx.Response] = []
    files = {
        "report": ("报告.docx", bombs.docx_huge_xml()),
        "standard": (STANDARD.name, STANDARD.read_bytes()),
    }

    def upload() -> None:
        headers = {"authorization": f"Bearer {api_key}"}
        answers.append(
            httpx.post(f"{gateway.v1}/apps/inspection/audit", files=files, headers=headers, timeout=120)
        )

    seconds = _while_serving(gateway, bystander, threading.Thread(target=upload))
    (answer,) = answers
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "document_too_large"
    assert len(seconds) >= 5 and max(seconds) < 1.0
