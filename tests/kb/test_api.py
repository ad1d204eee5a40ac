"""``/v1/knowledge-bases`` on the running platform: real HTTP, the embedded encoder through the
gateway, a chat model served by the fake upstream, keys of two organizations."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from dizuo.accounts import create_key, create_org
from dizuo.billing.tables import UsageRecord
from dizuo.store import Database
from tests.kb.documents import docx_bytes
from tests.support.platform import RunningGateway, Serve, upstream_deployment
from tests.support.shared import DATA, needs_shared
from tests.support.uploads import assert_too_large_refused
from tests.support.upstream import FakeUpstream

STANDARD = DATA / "inspection" / "standards" / "Q-HJ-017-柱塞偶件检验规范.md"
EMBED = "local/use-multilingual-v3"


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The knowledge bases' platform: the embedded local models (the encoder, and the English-only chat
    model); ``kb-librarian`` answers from the passages it is given, citing them (and one made-up [99]);
    ``eval-refuser`` refuses."""
    with serve(
        [
            upstream_deployment("kb-librarian", "persona-librarian"),
            upstream_deployment("eval-refuser", "persona-refuser"),
        ],
        local=True,
    ) as running:
        yield running


@pytest.fixture
def http(gateway: RunningGateway, api_key: str) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=f"{gateway.v1}/knowledge-bases", headers=headers, timeout=60) as client:
        yield client


@pytest.fixture
def kb(http: httpx.Client) -> Iterator[str]:
    name = f"质检-{uuid.uuid4().hex[:6]}"
    assert http.post("", json={"name": name, "description": "柱塞偶件"}).status_code == 201
    yield name
    http.delete(f"/{quote(name)}")


def upload(http: httpx.Client, kb: str, filename: str, data: bytes, **headers: str) -> httpx.Response:
    return http.post(f"/{quote(kb)}/documents", params={"filename": filename}, content=data, headers=headers)


def usage_count(gateway: RunningGateway, model: str) -> int:
    db = Database(gateway.settings.resolved_database_url)
    try:
        with db.session() as session:
            return int(session.scalar(select(func.count()).where(UsageRecord.model == model)) or 0)
    finally:
        db.dispose()


@needs_shared
def test_create_add_query_and_ask_with_citations(
    http: httpx.Client, kb: str, gateway: RunningGateway
) -> None:
    calls_before = usage_count(gateway, EMBED)
    added = upload(http, kb, STANDARD.name, STANDARD.read_bytes())
    assert added.status_code == 201, added.text
    assert added.json()["status"] == "added" and added.json()["chunks"] > 10
    assert upload(http, kb, "规范.docx", docx_bytes()).json()["status"] == "added"
    # Embeddings went through the gateway and were metered like any call (journal: group commit).
    deadline = time.monotonic() + 5
    while usage_count(gateway, EMBED) == calls_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert usage_count(gateway, EMBED) > calls_before

    listed = {row["name"]: row for row in http.get("").json()["data"]}
    assert listed[kb]["documents"] == 2

    rows = http.post(f"/{quote(kb)}/query", json={"question": "柱塞表面硬度的要求是多少", "k": 3}).json()[
        "data"
    ]
    assert rows[0]["locator"] == "第 4.5 条" and "HRC 60" in rows[0]["text"]
    assert [set(row) >= {"text", "source", "locator", "score"} for row in rows] == [True] * len(rows)
    assert rows == sorted(rows, key=lambda r: -r["score"])

    only_docx = http.post(
        f"/{quote(kb)}/query", json={"question": "硬度", "k": 5, "filters": {"sources": ["规范.docx"]}}
    ).json()["data"]
    assert only_docx and {row["source"] for row in only_docx} == {"规范.docx"}

    answer = http.post(
        f"/{quote(kb)}/ask", json={"question": "柱塞表面硬度的要求是多少", "model": "kb-librarian"}
    ).json()
    assert answer["found"] is True
    (citation,) = answer["citations"]
    assert citation["locator"] == "第 4.5 条" and "HRC 60" in citation["text"]
    # The model cited [n] and a made-up [99]: the answer keeps one marker, renumbered, and no other.
    assert answer["answer"].endswith("[1]") and "[99]" not in answer["answer"]
    # The cited answer is labeled as generated (its own text sealed): the label checks out as it came.
    checked = httpx.post(f"{gateway.v1}/aigc/verify", json=answer, headers=http.headers).json()
    assert checked["result"] == "genuine" and checked["model"] == "kb-librarian"

    missing = http.post(
        f"/{quote(kb)}/ask", json={"question": "火星探测器的发射窗口在哪一年", "model": "kb-librarian"}
    )
    assert missing.json()["found"] is False and missing.json()["citations"] == []
    assert "没有找到" in missing.json()["answer"]
    assert "aigc" not in missing.json()  # no model wrote it: nothing to label


def test_bad_files_get_clear_errors_and_change_nothing(http: httpx.Client, kb: str) -> None:
    assert upload(http, kb, "办法.md", "# 办法\n\n第一条 算力券按年度发放。".encode()).status_code == 201
    before = http.get(f"/{quote(kb)}").json()

    empty = upload(http, kb, "办法.md", b"")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "document_empty"
    english = upload(
        http, kb, "photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), **{"accept-language": "en"}
    )
    assert english.json()["error"]["code"] == "document_type_unsupported"
    assert english.json()["error"]["message"].startswith("The format of photo.png")
    encrypted = upload(http, kb, "机密.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    assert encrypted.json()["error"]["code"] == "document_encrypted"

    assert_too_large_refused(http, f"/{quote(kb)}/documents", params={"filename": "huge.txt"})

    after = http.get(f"/{quote(kb)}").json()
    assert after["documents_list"] == before["documents_list"] and after["chunks"] == before["chunks"]


def test_keys_reach_only_their_own_organization(http: httpx.Client, kb: str, gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    other = f"他人-{uuid.uuid4().hex[:6]}"
    create_org(db, other)
    key = create_key(db, other).key
    db.dispose()
    with httpx.Client(
        base_url=f"{gateway.v1}/knowledge-bases", headers={"authorization": f"Bearer {key}"}
    ) as them:
        missing = them.get(f"/{quote(kb)}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "kb_not_found"
        assert them.post(f"/{quote(kb)}/query", json={"question": "硬度"}).status_code == 404
        assert them.delete(f"/{quote(kb)}").status_code == 404
        assert kb not in [row["name"] for row in them.get("").json()["data"]]
    assert http.get(f"/{quote(kb)}").status_code == 200

    anonymous = httpx.get(f"{gateway.v1}/knowledge-bases")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_api_key"
    wrong = httpx.get(f"{gateway.v1}/knowledge-bases", headers={"authorization": "Bearer dz-nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


def test_the_gateways_refusals_reach_the_client(http: httpx.Client, kb: str, gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    narrow = create_key(db, "default", models=["kb-librarian"]).key  # may not call the encoder
    db.dispose()
    headers = {"authorization": f"Bearer {narrow}"}
    refused = http.post(
        f"/{quote(kb)}/documents",
        params={"filename": "a.md"},
        content="第一条 内容。".encode(),
        headers=headers,
    )
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    assert http.get(f"/{quote(kb)}").json()["documents"] == 0
    unknown_model = http.post(f"/{quote(kb)}/ask", json={"question": "硬度", "model": "no-such-model"})
    assert unknown_model.status_code == 200  # an empty knowledge base: nothing to ask a model about
    assert unknown_model.json()["found"] is False
    upload(http, kb, "a.md", "第一条 柱塞硬度为 HRC 60～64。".encode())
    unknown_model = http.post(f"/{quote(kb)}/ask", json={"question": "硬度", "model": "no-such-model"})
    assert unknown_model.status_code == 404 and unknown_model.json()["error"]["code"] == "model_not_found"


def test_bad_requests(http: httpx.Client, kb: str) -> None:
    duplicate = http.post("", json={"name": kb})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "kb_exists"
    assert http.post("", json={"name": "a/b"}).json()["error"]["code"] == "invalid_param"
    assert http.post(f"/{quote(kb)}/query", json={"question": ""}).status_code == 400
    assert http.post(f"/{quote(kb)}/query", json={"question": "x", "k": 0}).status_code == 400
    assert http.post(f"/{quote(kb)}/documents", content=b"x").status_code == 400  # no filename
    assert http.delete(f"/{quote(kb)}/documents/nope.md").json()["error"]["code"] == "kb_document_not_found"


@needs_shared
def test_found_comes_from_retrieval_and_a_model_that_cannot_write_chinese_is_not_asked(
    http: httpx.Client, kb: str, upstream: FakeUpstream
) -> None:
    assert upload(http, kb, STANDARD.name, STANDARD.read_bytes()).status_code == 201

    def asked_upstream() -> int:
        return sum(1 for seen in upstream.seen if seen.path.endswith("/chat/completions"))

    before = asked_upstream()
    # Off the knowledge base's subject: not found, and no model asked to make something up.
    canteen = http.post(
        f"/{quote(kb)}/ask", json={"question": "食堂几点开饭？", "model": "kb-librarian"}
    ).json()
    assert canteen["found"] is False and canteen["citations"] == [] and "没有找到" in canteen["answer"]
    assert asked_upstream() == before
    # The embedded English-only model and a Chinese question: the passages themselves, cited.
    local = http.post(
        f"/{quote(kb)}/ask",
        json={"question": "柱塞表面硬度的要求是多少", "model": "local/smollm2-135m-instruct"},
    ).json()
    assert local["found"] is True and local["answer"].startswith("所选模型不能用中文作答")
    assert any("HRC 60" in c["text"] for c in local["citations"]) and "[1]" in local["answer"]
    # A model that answers without citing any passage (this one refuses): its text is not passed off
    # as the answer; the passages are.
    uncited = http.post(
        f"/{quote(kb)}/ask", json={"question": "柱塞表面硬度的要求是多少", "model": "eval-refuser"}
    ).json()
    assert uncited["found"] is True and uncited["answer"].startswith("模型没有给出有出处的回答")
    assert any("HRC 60" in c["text"] for c in uncited["citations"])
