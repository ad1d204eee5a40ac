"""AIGC labels on the wire and in files: every chat answer, whole or streamed, carries a signed label
the SDK ignores and ``dizuo aigc verify`` / ``POST /v1/aigc/verify`` accept; a changed answer or a
forged label fails; exported files carry the notice and the label in their metadata."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import docx
import httpx
import openpyxl
import pypdf
import pytest
from lxml import html as lxml_html

from dizuo.accounts import create_key
from dizuo.accounts.service import change_org
from dizuo.compliance.labels import FIELDS
from dizuo.errors import InvalidRequest
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest, Tenant, upstream_deployment
from tests.support.upstream import UPSTREAM_LABEL

HELLO = [{"role": "user", "content": "活塞环的硬度要求是多少？"}]
SIGNING_KEY = "签名密钥-for-tests-0123456789abcdef"
NOTICE = "本内容由人工智能生成"


async def _platform(gateway_app: GatewayApp, **settings: Any) -> PlatformUnderTest:
    return await gateway_app(
        deployments=[
            upstream_deployment("own-model", name="own-1", cloud="private"),  # run by the platform
            upstream_deployment("cloud-model", name="cloud-1"),  # a public cloud's answers, passed on
            upstream_deployment("labeled-model", "labeled", name="labeled-1"),  # labels its own
            upstream_deployment("chunked-model", "chunked", name="chunked-1", cloud="private"),
        ],
        signing_key=SIGNING_KEY,
        aigc_provider="重庆市算力底座",
        **settings,
    )


async def _chat(platform: PlatformUnderTest, org: Tenant, model: str = "own-model") -> httpx.Response:
    answer = await platform.http(org.key).post(
        "/v1/chat/completions", json={"model": model, "messages": HELLO}
    )
    assert answer.status_code == 200, answer.text
    return answer


async def _verify(platform: PlatformUnderTest, key: str, content: bytes | dict[str, Any]) -> dict[str, Any]:
    client = platform.http(key)
    sent = await (
        client.post("/v1/aigc/verify", json=content)
        if isinstance(content, dict)
        else client.post("/v1/aigc/verify", content=content)
    )
    assert sent.status_code == 200, sent.text
    return dict(sent.json())


def _env(platform: PlatformUnderTest) -> dict[str, str]:
    """The settings of the ``dizuo`` command beside the platform: its database, its key."""
    url = platform.db.engine.url.render_as_string(hide_password=False)
    return {
        "DIZUO_DATABASE_URL": url,
        "DIZUO_SIGNING_KEY": SIGNING_KEY,
        "DIZUO_AIGC_PROVIDER": "重庆市算力底座",
    }


def _cli_verify(platform: PlatformUnderTest, data: bytes, tmp_path: Path) -> tuple[int, str]:
    target = tmp_path / "answer.bin"
    target.write_bytes(data)
    result = dizuo("aigc", "verify", str(target), env=_env(platform))
    return result.returncode, result.stdout + result.stderr


async def test_a_whole_answer_carries_a_label_the_sdk_ignores_and_verify_accepts(
    gateway_app: GatewayApp, tmp_path: Path
) -> None:
    platform = await _platform(gateway_app)
    org, other = platform.org(balance="1"), platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        parsed = await client.chat.completions.create(model="own-model", messages=HELLO)  # type: ignore[arg-type]
    assert parsed.choices[0].message.content == f"echo: {HELLO[0]['content']}"
    label = parsed.model_extra["aigc"]  # type: ignore[index]
    assert list(label) == list(FIELDS) and label["Label"] == "1"
    assert label["ContentProducer"] == "重庆市算力底座"  # the platform ran the model
    (record,) = platform.records(org)
    assert label["ProduceID"] == record.request_id  # the content id is the call's

    raw = await _chat(platform, org)
    assert json.loads(raw.headers["aigc"]) == {"AIGC": raw.json()["aigc"]}  # ASCII-escaped header
    verdict = await _verify(platform, org.key, raw.content)
    assert verdict["result"] == "genuine" and verdict["unchanged"] is True
    assert verdict["content_id"] == raw.headers["x-request-id"]
    assert verdict["organization"] == {"id": org.id, "name": org.name} and verdict["model"] == "own-model"
    # Another organization learns that the platform made it, and when, never for whom.
    seen_by_other = await _verify(platform, other.key, raw.content)
    assert seen_by_other["result"] == "genuine" and "organization" not in seen_by_other

    changed = raw.json()
    changed["choices"][0]["message"]["content"] += "（已改）"
    assert (await _verify(platform, org.key, changed))["result"] == "changed"
    forged = raw.json()
    forged["aigc"]["ProduceID"] = "req_" + "f" * 32  # claims another call
    assert (await _verify(platform, org.key, forged))["result"] == "forged"
    bare = raw.headers["x-request-id"].encode()
    assert (await _verify(platform, org.key, bare))["result"] == "recorded"
    assert (await _verify(platform, org.key, b"req_" + b"0" * 32))["result"] == "unknown"
    assert (await _verify(platform, org.key, {"model": "x"}))["result"] == "unlabeled"

    status, said = _cli_verify(platform, raw.content, tmp_path)
    assert status == 0 and "标识真实" in said and org.name in said, said
    status, said = _cli_verify(platform, json.dumps(changed).encode(), tmp_path)
    assert status == 1 and "changed" in said, said

    empty = await platform.http(org.key).post("/v1/aigc/verify", content=b"")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "missing_param"
    anonymous = await platform.http().post("/v1/aigc/verify", content=raw.content)
    assert anonymous.status_code == 401


async def test_a_stream_ends_with_its_label_and_the_transcript_verifies(gateway_app: GatewayApp) -> None:
    platform = await _platform(gateway_app)
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(model="chunked-model", messages=HELLO, stream=True)  # type: ignore[arg-type]
        chunks = [chunk async for chunk in stream]
        with_usage = await client.chat.completions.create(
            model="chunked-model",
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        usage_chunks = [chunk async for chunk in with_usage]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"echo: {HELLO[0]['content']}"
    assert chunks[-1].choices == [] and chunks[-1].model_extra["aigc"]["Label"] == "1"  # type: ignore[index]
    assert all("aigc" not in (c.model_extra or {}) for c in chunks[:-1])
    # Asked for usage: the label rides on the usage chunk, still the last, still the only one with usage.
    assert usage_chunks[-1].usage is not None and usage_chunks[-1].model_extra["aigc"]  # type: ignore[index]
    assert [c.usage is not None for c in usage_chunks].count(True) == 1

    raw = await platform.http(org.key).post(
        "/v1/chat/completions", json={"model": "chunked-model", "messages": HELLO, "stream": True}
    )
    header = json.loads(raw.headers["aigc"])["AIGC"]
    assert header["ProduceID"] == raw.headers["x-request-id"] and header["ReservedCode1"] == ""
    verdict = await _verify(platform, org.key, raw.content)
    assert (verdict["result"], verdict["source"]) == ("genuine", "stream")
    tampered = raw.content.replace("活塞".encode(), "连杆".encode(), 1)
    assert (await _verify(platform, org.key, tampered))["result"] == "changed"


async def test_a_public_clouds_answer_keeps_its_producer_and_the_platform_is_the_propagator(
    gateway_app: GatewayApp,
) -> None:
    platform = await _platform(gateway_app)
    org = platform.org(balance="1")
    cloud = (await _chat(platform, org, "cloud-model")).json()["aigc"]
    assert (cloud["ContentProducer"], cloud["ProduceID"]) == ("openai-compatible", "chatcmpl-fake")
    assert cloud["ContentPropagator"] == "重庆市算力底座" and cloud["ReservedCode2"].startswith("dz1.")

    whole = await _chat(platform, org, "labeled-model")
    kept = whole.json()["aigc"]
    assert {k: kept[k] for k in ("ContentProducer", "ProduceID", "ReservedCode1")} == {
        k: UPSTREAM_LABEL[k] for k in ("ContentProducer", "ProduceID", "ReservedCode1")
    }
    assert kept["PropagateID"] == whole.headers["x-request-id"]
    verdict = await _verify(platform, org.key, whole.content)
    assert (verdict["result"], verdict["role"]) == ("genuine", "propagator")

    streamed = await platform.http(org.key).post(
        "/v1/chat/completions", json={"model": "labeled-model", "messages": HELLO, "stream": True}
    )
    last = json.loads(streamed.text.split("data: ")[-2])
    assert last["aigc"]["ContentProducer"] == "示例云" and last["aigc"]["ProduceID"] == "up-7f3a"
    assert (await _verify(platform, org.key, streamed.content))["result"] == "genuine"


async def test_organizations_and_keys_that_publish_answers_get_the_explicit_notice(
    gateway_app: GatewayApp,
) -> None:
    platform = await _platform(gateway_app)
    org = platform.org(balance="1")
    said = dizuo("admin", "set-org", org.name, "--label", "explicit", env=_env(platform))
    assert said.returncode == 0 and "label=explicit" in said.stdout, said.stderr
    platform.platform.gateway.keys.reload()  # workers pick the change up within a refresh period
    quiet = create_key(platform.db, org.name, label="implicit").key

    whole = await _chat(platform, org)
    assert whole.json()["choices"][0]["message"]["content"].endswith(f"\n\n{NOTICE}")
    assert (await _verify(platform, org.key, whole.content))["result"] == "genuine"
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(model="chunked-model", messages=HELLO, stream=True)  # type: ignore[arg-type]
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == f"echo: {HELLO[0]['content']}\n\n{NOTICE}"

    plain = (await _chat(platform, Tenant(org.id, org.name, quiet))).json()
    assert NOTICE not in plain["choices"][0]["message"]["content"]  # the key's own choice wins

    with pytest.raises(InvalidRequest):
        change_org(platform.db, org.name, label="loud")
    change_org(platform.db, org.name, label="default")  # back to the platform's way: implicit
    platform.platform.gateway.keys.reload()
    assert NOTICE not in (await _chat(platform, org)).json()["choices"][0]["message"]["content"]


async def test_the_notice_goes_first_where_the_platform_says_so(gateway_app: GatewayApp) -> None:
    platform = await _platform(gateway_app, aigc_label="explicit", aigc_notice_position="start")
    org = platform.org(balance="1")
    answer = (await _chat(platform, org)).json()["choices"][0]["message"]["content"]
    assert answer.startswith(f"{NOTICE}\n\n")
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(model="chunked-model", messages=HELLO, stream=True)  # type: ignore[arg-type]
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith(f"{NOTICE}\n\necho:")


async def test_labels_off_leaves_answers_as_the_upstream_sent_them(gateway_app: GatewayApp) -> None:
    platform = await _platform(gateway_app, aigc_label="off")
    org = platform.org(balance="1")
    answer = await _chat(platform, org)
    assert "aigc" not in answer.json() and "aigc" not in answer.headers


def _docx_label(data: bytes) -> dict[str, str]:
    document = docx.Document(io.BytesIO(data))
    (part,) = [p for p in document.part.package.iter_parts() if str(p.partname) == "/docProps/custom.xml"]
    value = lxml_html.fromstring(part.blob).xpath("//property[@name='AIGC']")[0].text_content()
    return dict(json.loads(value)["AIGC"])


@pytest.mark.parametrize("kind", ["docx", "xlsx", "pdf", "html"])
async def test_an_exported_answer_shows_the_notice_and_carries_the_label_in_its_metadata(
    gateway_app: GatewayApp, kind: str
) -> None:
    platform = await _platform(gateway_app)
    org, other = platform.org(balance="1"), platform.org(balance="1")
    answer = (await _chat(platform, org)).json()
    client = platform.http(org.key)
    body = {**answer, "title": "硬度问答", "question": HELLO[0]["content"]}
    exported = await client.post("/v1/aigc/export", params={"format": kind}, json=body)
    assert exported.status_code == 200, exported.text
    data = exported.content

    if kind == "docx":
        label = _docx_label(data)
        texts = [p.text for p in docx.Document(io.BytesIO(data)).paragraphs]
    elif kind == "xlsx":
        book = openpyxl.load_workbook(io.BytesIO(data))
        (prop,) = [p for p in book.custom_doc_props.props if p.name == "AIGC"]
        label = json.loads(prop.value)["AIGC"]
        texts = [str(row[0]) for row in book.active.iter_rows(values_only=True)]  # type: ignore[union-attr]
    elif kind == "pdf":
        reader = pypdf.PdfReader(io.BytesIO(data))
        label = json.loads(str(reader.metadata["/AIGC"]))["AIGC"]  # type: ignore[index]
        texts = [reader.pages[0].extract_text()]
    else:
        page = lxml_html.fromstring(data)
        label = json.loads(page.xpath("//meta[@name='AIGC']/@content")[0])["AIGC"]
        texts = [page.text_content()]
    shown = "\n".join(texts)
    assert NOTICE in shown and "echo" in shown
    assert label["ProduceID"] == answer["aigc"]["ProduceID"] and label["ReservedCode1"].startswith("dz1.")
    verdict = await _verify(platform, org.key, data)
    assert (verdict["result"], verdict["source"]) == ("genuine", kind)

    if kind == "docx":  # the file's text edited afterwards: it no longer matches its label
        edited = docx.Document(io.BytesIO(data))
        edited.paragraphs[-2].text = "硬度不限。"
        out = io.BytesIO()
        edited.save(out)
        assert (await _verify(platform, org.key, out.getvalue()))["result"] == "changed"

    changed = {**answer, "choices": [{**answer["choices"][0], "message": {"content": "别的"}}]}
    refused = await client.post("/v1/aigc/export", params={"format": kind}, json=changed)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "aigc_not_exportable"
    foreign = await platform.http(other.key).post("/v1/aigc/export", params={"format": kind}, json=answer)
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "aigc_not_exportable"


def test_an_office_files_label_sits_in_its_custom_properties(tmp_path: Path) -> None:
    from dizuo.compliance.files import Answer, Kind, export
    from dizuo.compliance.labels import Labeler, Notice

    labeler = Labeler(b"k" * 32, "dizuo")
    label = labeler.label("req_" + "0" * 32, "答", at=1)
    data = export(Answer("答", label), Kind.DOCX, labeler, Notice(NOTICE))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert "docProps/custom.xml" in archive.namelist()
        assert b"custom-properties" in archive.read("[Content_Types].xml")
        assert b"docProps/custom.xml" in archive.read("_rels/.rels")


def test_a_streams_text_is_read_right_whatever_its_chunks_hold() -> None:
    from dizuo.compliance.labels import Labeler, digest
    from dizuo.config import DeploymentConfig
    from dizuo.gateway.labeling import StreamLabel

    class Spec:
        name = "openai-compatible"

    class Provider:
        spec = Spec()

    class Deployment:
        config = DeploymentConfig(name="d", model="m", provider="openai-compatible", cloud="private")
        provider = Provider()

    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def event(*choices: dict[str, Any], spaced: bool = False) -> bytes:
        body = {**base, "choices": list(choices)}
        if spaced:  # Python's json, as some servers write it: not the compact shape
            return json.dumps(body, ensure_ascii=True).encode()
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def delta(content: Any, index: int = 0, **more: Any) -> dict[str, Any]:
        return {"index": index, "delta": {"content": content, **more}, "finish_reason": None}

    labeler = Labeler(b"k" * 32, "dizuo")
    stream = StreamLabel(labeler, "req_" + "0" * 32, Deployment(), None)  # type: ignore[arg-type]
    events = [
        event(delta("", role="assistant")),
        event(delta('他说："\\"引号\\"" 和 \\\\ 反斜杠')),
        event(delta("第二个选项", index=1)),
        event(delta("中文与\u2028换行\n")),
        event(delta("空格写法"), spaced=True),
        event(delta(None, tool_calls=[{"index": 0, "function": {"arguments": '{"content":"x"}'}}])),
        event({"index": 0, "delta": {}, "finish_reason": "stop"}),
    ]
    for data in events:
        assert stream.chunk(data) == data  # passed on untouched
    label = json.loads(stream.final(None))["aigc"]
    seal = labeler.open(label)
    expected = '他说："\\"引号\\"" 和 \\\\ 反斜杠中文与\u2028换行\n空格写法' + "\x1e" + "第二个选项"
    assert seal is not None and seal.digest == digest(expected)
