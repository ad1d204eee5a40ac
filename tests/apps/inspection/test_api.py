"""``POST /v1/apps/inspection/audit`` on the running platform: real HTTP, multipart uploads."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.apps.inspection.reports import DEFECTS, STANDARD, clean, xlsx
from tests.support.platform import RunningGateway, Serve
from tests.support.uploads import assert_too_large_refused

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A platform served for the auditor's uploads (multipart over a real socket; no model is called)."""
    with serve([]) as running:
        yield running


@pytest.fixture
def http(gateway: RunningGateway, api_key: str) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=f"{gateway.v1}/apps/inspection", headers=headers, timeout=60) as client:
        yield client


def files(report: bytes, name: str = "JY-T-7.xlsx") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("report", (name, report, XLSX)),
        ("standard", (STANDARD.name, STANDARD.read_bytes(), "text/markdown")),
        ("defects", (DEFECTS.name, DEFECTS.read_bytes(), "text/markdown")),
    ]


def test_audit_as_json_and_as_html(http: httpx.Client) -> None:
    spec = clean(report_id="JY-T-7")
    spec.set_sample(6, "柱塞硬度/HRC", "59.5")
    answer = http.post("/audit", files=files(xlsx(spec)))
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["report_id"] == "JY-T-7" and doc["valid"] is False
    assert doc["batch_decision"] == {"reported": "accept", "computed": "reject"}
    hardness = next(f for f in doc["findings"] if f["kind"] == "out_of_limit")
    assert (hardness["sample"], hardness["clause"], hardness["root_cause_refs"]) == (
        6,
        "4.5",
        ["QD-2022-047"],
    )

    page = http.post(
        "/audit", params={"format": "html"}, files=files(xlsx(spec)), headers={"accept-language": "en"}
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Report invalid" in page.text and "QD-2022-047" in page.text


def test_bad_uploads_get_clear_errors(http: httpx.Client, gateway: RunningGateway) -> None:
    no_standard = http.post("/audit", files=[("report", ("r.xlsx", xlsx(clean()), XLSX))])
    assert no_standard.status_code == 400
    assert (
        no_standard.json()["error"]["code"] == "missing_param"
        and no_standard.json()["error"]["param"] == "standard"
    )
    not_multipart = http.post("/audit", json={"report": "JY-1"})
    assert not_multipart.status_code == 400 and not_multipart.json()["error"]["param"] == "content-type"
    empty = http.post("/audit", files=files(b"", "empty.docx"))
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "document_empty"
    encrypted = http.post(
        "/audit", files=files(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "locked.xlsx")
    )
    assert encrypted.json()["error"]["code"] == "document_encrypted"
    layout = http.post("/audit", files=files("# 报告\n\n全部合格。".encode(), "prose.md"))
    assert layout.status_code == 400 and layout.json()["error"]["code"] == "report_layout_unknown"
    unauthenticated = httpx.post(f"{gateway.v1}/apps/inspection/audit", files=files(xlsx(clean())))
    assert unauthenticated.status_code == 401

    multipart = {"content-type": "multipart/form-data; boundary=x"}
    assert_too_large_refused(http, "/audit", headers=multipart)
