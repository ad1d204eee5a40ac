"""The guard in the gateway: each policy, both directions, values split across stream chunks, and
the audit trail. The upstream echoes the prompt back (``echo: …``), so the answer carries it too."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.accounts.service import set_guard_policy
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.guard.events import list_events
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.support.upstream import FakeUpstream

MOBILE = "13800138000"
ID = "11010519491231002X"
PROMPT = f"客户王芳，手机{MOBILE}，身份证{ID}，请整理成表格"


@pytest.fixture
def db(gateway: RunningGateway) -> Iterator[Database]:
    database = Database(gateway.settings.resolved_database_url)
    yield database
    database.dispose()


class Org:
    def __init__(self, gateway: RunningGateway, db: Database, policy: dict[str, Any] | None) -> None:
        self.name = f"guard-{uuid.uuid4().hex[:8]}"
        self.id = create_org(db, self.name).id
        topup(db, self.name, parse_cny("10"))
        set_guard_policy(db, self.name, policy)
        self.key = create_key(db, self.name).key
        self.gateway = gateway
        self.db = db

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.v1, api_key=self.key, max_retries=0, timeout=20)

    def events(self, count: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 3
        while True:  # events are written in the background within a fraction of a second
            found = list_events(self.db, org_id=self.id)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def chat(org: Org, model: str = "echo-model", content: str = PROMPT) -> str:
    with org.sdk() as client:
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    return answer.choices[0].message.content or ""


def stream(org: Org, content: str = PROMPT) -> tuple[str, list[bytes]]:
    """The streamed text, and the raw events (to see an error event)."""
    body = {"model": "chunked-model", "messages": [{"role": "user", "content": content}], "stream": True}
    headers = {"Authorization": f"Bearer {org.key}"}
    with httpx.stream(
        "POST", f"{org.gateway.v1}/chat/completions", json=body, headers=headers, timeout=20
    ) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    text = ""
    for line in events:
        if line == "data: [DONE]" or '"error"' in line:
            continue
        import json

        for choice in json.loads(line[6:])["choices"]:
            text += choice["delta"].get("content") or ""
    return text, [line.encode() for line in events]


def test_log_leaves_text_alone_and_records_counts_never_values(gateway: RunningGateway, db: Database) -> None:
    org = Org(gateway, db, {"action": "log"})
    assert chat(org) == f"echo: {PROMPT}"
    events = org.events(2)
    assert {(e["direction"], e["action"]) for e in events} == {("prompt", "log"), ("answer", "log")}
    for event in events:
        assert event["counts"] == {"CN_MOBILE": 1, "CN_RESIDENT_ID": 1}
        assert MOBILE not in str(event) and ID not in str(event)


def test_block_refuses_with_400_naming_the_types(gateway: RunningGateway, db: Database) -> None:
    org = Org(gateway, db, {"action": "block", "types": ["CN_RESIDENT_ID"]})
    with org.sdk() as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": PROMPT}])
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "data_risk_blocked"
    assert "CN_RESIDENT_ID" in error["message"] and ID not in error["message"]
    # Only the listed types count: a mobile number alone passes.
    assert chat(org, content=f"手机{MOBILE}") == f"echo: 手机{MOBILE}"
    (event,) = org.events()
    assert (event["direction"], event["action"], event["counts"]) == (
        "prompt",
        "block",
        {"CN_RESIDENT_ID": 1},
    )


def test_blocks_are_sent_to_the_webhook_without_values(
    gateway: RunningGateway, db: Database, upstream: FakeUpstream
) -> None:
    org = Org(gateway, db, {"action": "block"})
    with org.sdk() as client, pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": PROMPT}])
    logged = Org(gateway, db, {"action": "log"})
    chat(logged)  # logged, not alerted: the default alerts blocks only
    deadline = time.monotonic() + 3
    while not any(h["org_id"] == org.id for h in upstream.hooks) and time.monotonic() < deadline:
        time.sleep(0.05)
    (hook,) = [h for h in upstream.hooks if h["org_id"] == org.id]
    assert hook["org_name"] == org.name and hook["action"] == "block"
    assert hook["counts"] == {"CN_MOBILE": 1, "CN_RESIDENT_ID": 1}
    assert MOBILE not in str(hook) and ID not in str(hook)
    assert not [h for h in upstream.hooks if h["org_id"] == logged.id]


def test_mask_replaces_values_before_they_leave(gateway: RunningGateway, db: Database) -> None:
    org = Org(gateway, db, {"action": "redact", "redact": "mask"})
    assert chat(org) == "echo: 客户王芳，手机[CN_MOBILE]，身份证[CN_RESIDENT_ID]，请整理成表格"


def test_placeholders_leave_as_tokens_and_come_back_as_values(gateway: RunningGateway, db: Database) -> None:
    org = Org(gateway, db, {"action": "redact", "redact": "placeholder", "directions": ["prompt"]})
    # The upstream saw <CN_MOBILE_1> and <CN_RESIDENT_ID_1> (it echoes them); the client gets its own values.
    assert chat(org) == f"echo: {PROMPT}"


def test_placeholders_are_restored_across_stream_chunks(gateway: RunningGateway, db: Database) -> None:
    org = Org(gateway, db, {"action": "redact", "redact": "placeholder", "directions": ["prompt"]})
    text, _ = stream(org)
    assert text == f"echo: {PROMPT}"


def test_mask_in_a_stream_catches_values_split_across_chunks(gateway: RunningGateway, db: Database) -> None:
    # Only the answer is scanned: the prompt leaves as is, and the echo is cut in 5-character chunks.
    org = Org(gateway, db, {"action": "redact", "directions": ["answer"]})
    text, _ = stream(org)
    assert text == "echo: 客户王芳，手机[CN_MOBILE]，身份证[CN_RESIDENT_ID]，请整理成表格"


def test_block_mid_stream_ends_with_an_error_event(gateway: RunningGateway, db: Database) -> None:
    org = Org(gateway, db, {"action": "block", "directions": ["answer"]})
    text, events = stream(org)
    assert MOBILE not in text
    assert b"data_risk_blocked" in events[-1] and events[-1] != b"data: [DONE]"
    assert [(e["direction"], e["action"]) for e in org.events()] == [("answer", "block")]


def test_personal_information_raises_the_data_class(gateway: RunningGateway, db: Database) -> None:
    # chunked-model's only deployment is cleared for general data; PII makes the request important.
    org = Org(gateway, db, {"action": "log", "raise_class": "important"})
    assert chat(org, model="chunked-model", content="没有个人信息") != ""
    with org.sdk() as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="chunked-model", messages=[{"role": "user", "content": PROMPT}])
    assert caught.value.status_code == 503


def test_a_keys_policy_beats_its_organizations(gateway: RunningGateway, db: Database) -> None:
    org = Org(gateway, db, {"action": "block"})
    created = create_key(db, org.name)
    relaxed = created.key
    set_guard_policy(db, org.name, {"action": "off"}, key=created.record.id)
    time.sleep(0.5)  # the key cache refreshes every 0.2 s in tests
    with openai.OpenAI(base_url=gateway.v1, api_key=relaxed, max_retries=0, timeout=20) as client:
        answer = client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": PROMPT}]
        )
    assert answer.choices[0].message.content == f"echo: {PROMPT}"


def test_tool_call_arguments_are_scanned(gateway: RunningGateway, db: Database) -> None:
    # The upstream puts the prompt after "ARGS:" into its tool call's arguments.
    org = Org(gateway, db, {"action": "block", "directions": ["answer"]})
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    with org.sdk() as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="tools-model", messages=[{"role": "user", "content": f"ARGS:手机{MOBILE}"}], tools=tools
        )
    assert caught.value.body["code"] == "data_risk_blocked"  # type: ignore[index]


def test_streamed_reasoning_is_masked_across_chunks(gateway: RunningGateway, db: Database) -> None:
    # The upstream's reasoning repeats the prompt after "REASON:" in 5-character pieces.
    org = Org(gateway, db, {"action": "redact", "directions": ["answer"]})
    with org.sdk() as client:
        stream = client.chat.completions.create(
            model="deepseek-reasoner",
            messages=[{"role": "user", "content": f"REASON:请回拨{MOBILE}确认"}],
            stream=True,
        )
        reasoning = "".join(
            getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in stream if c.choices
        )
    assert reasoning == "请回拨[CN_MOBILE]确认"


# Every place a prompt carries text the upstream reads, besides a user message's content.
HIDDEN = [
    pytest.param(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": f'{{"id": "{ID}"}}'},
                }
            ],
        },
        id="tool-call-arguments",
    ),
    pytest.param({"role": "user", "name": f"客户{ID}", "content": "你好"}, id="message-name"),
    pytest.param({"role": "assistant", "content": "好的", "reasoning_content": f"查询{ID}"}, id="reasoning"),
    pytest.param({"role": "tool", "tool_call_id": "c1", "content": f"结果：{ID}"}, id="tool-result"),
    pytest.param(
        {
            "role": "user",
            "content": [{"type": "text", "text": "看看"}, {"type": "text", "text": f"号码{ID}"}],
        },
        id="content-part",
    ),
]


@pytest.mark.parametrize("message", HIDDEN)
def test_every_string_the_upstream_receives_is_scanned(
    gateway: RunningGateway, upstream: FakeUpstream, db: Database, message: dict[str, Any]
) -> None:
    messages = [message, {"role": "user", "content": "继续"}]
    blocking = Org(gateway, db, {"action": "block", "raise_class": "important"})
    with blocking.sdk() as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo-model", messages=messages)  # type: ignore[arg-type]
    assert caught.value.body["code"] == "data_risk_blocked"  # type: ignore[index]
    masking = Org(gateway, db, {"action": "redact"})
    with masking.sdk() as client:
        client.chat.completions.create(model="echo-model", messages=messages)  # type: ignore[arg-type]
    sent = upstream.last("echo").body
    assert ID not in str(sent) and "[CN_RESIDENT_ID]" in str(sent)
    assert sent["messages"][0]["role"] == message["role"]  # structure kept, only the value masked
