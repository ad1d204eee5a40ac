"""The guard in the gateway: each policy, both directions, values split across stream chunks, and
the audit trail. The upstream echoes the prompt back (``echo: …``), so the answer carries it too.
Each test builds its platform (``gateway_app``) and an organization with the policy it tries."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import openai
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.accounts.service import set_guard_policy
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.guard.events import list_events
from tests.support.platform import GatewayApp, PlatformUnderTest, upstream_deployment
from tests.support.upstream import FakeUpstream

MOBILE = "13800138000"
ID = "11010519491231002X"
PROMPT = f"客户王芳，手机{MOBILE}，身份证{ID}，请整理成表格"
ECHO = upstream_deployment("echo-model", "echo")
# Echoes the prompt back, streamed in 5-character pieces: values split across chunks.
CHUNKED = upstream_deployment("chunked-model", "chunked")


class Org:
    """An organization of *platform* with ¥10 and the guard *policy*, and one key."""

    def __init__(self, platform: PlatformUnderTest, policy: dict[str, Any] | None) -> None:
        self.platform = platform
        self.db = platform.db
        self.name = f"guard-{uuid.uuid4().hex[:8]}"
        self.id = create_org(self.db, self.name).id
        topup(self.db, self.name, parse_cny("10"))
        set_guard_policy(self.db, self.name, policy)
        self.key = create_key(self.db, self.name).key

    def sdk(self) -> openai.AsyncOpenAI:
        return self.platform.sdk(self.key)

    async def events(self, count: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 3
        while True:  # events are written in the background within a fraction of a second
            found = list_events(self.db, org_id=self.id)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)


async def chat(org: Org, model: str = "echo-model", content: str = PROMPT) -> str:
    async with org.sdk() as client:
        answer = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}]
        )
    return answer.choices[0].message.content or ""


async def stream(org: Org, content: str = PROMPT) -> tuple[str, list[bytes]]:
    """The streamed text, and the raw events (to see an error event)."""
    body = {"model": "chunked-model", "messages": [{"role": "user", "content": content}], "stream": True}
    async with org.platform.http(org.key).stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    text = ""
    for line in events:
        if line == "data: [DONE]" or '"error"' in line:
            continue
        for choice in json.loads(line[6:])["choices"]:
            text += choice["delta"].get("content") or ""
    return text, [line.encode() for line in events]


async def test_log_leaves_text_alone_and_records_counts_never_values(gateway_app: GatewayApp) -> None:
    org = Org(await gateway_app([ECHO]), {"action": "log"})
    assert await chat(org) == f"echo: {PROMPT}"
    events = await org.events(2)
    assert {(e["direction"], e["action"]) for e in events} == {("prompt", "log"), ("answer", "log")}
    for event in events:
        assert event["counts"] == {"CN_MOBILE": 1, "CN_RESIDENT_ID": 1}
        assert MOBILE not in str(event) and ID not in str(event)


async def test_block_refuses_with_400_naming_the_types(gateway_app: GatewayApp) -> None:
    org = Org(await gateway_app([ECHO]), {"action": "block", "types": ["CN_RESIDENT_ID"]})
    async with org.sdk() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": PROMPT}]
            )
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "data_risk_blocked"
    assert "CN_RESIDENT_ID" in error["message"] and ID not in error["message"]
    # Only the listed types count: a mobile number alone passes.
    assert await chat(org, content=f"手机{MOBILE}") == f"echo: 手机{MOBILE}"
    (event,) = await org.events()
    assert (event["direction"], event["action"], event["counts"]) == (
        "prompt",
        "block",
        {"CN_RESIDENT_ID": 1},
    )


async def test_blocks_are_sent_to_the_webhook_without_values(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    platform = await gateway_app(
        [ECHO], guard={"webhook": f"http://{upstream.host}:{upstream.port}/hooks/guard"}
    )
    org = Org(platform, {"action": "block"})
    async with org.sdk() as client:
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": PROMPT}]
            )
    logged = Org(platform, {"action": "log"})
    await chat(logged)  # logged, not alerted: the default alerts blocks only
    deadline = time.monotonic() + 3
    while not any(h["org_id"] == org.id for h in upstream.hooks) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (hook,) = [h for h in upstream.hooks if h["org_id"] == org.id]
    assert hook["org_name"] == org.name and hook["action"] == "block"
    assert hook["counts"] == {"CN_MOBILE": 1, "CN_RESIDENT_ID": 1}
    assert MOBILE not in str(hook) and ID not in str(hook)
    assert not [h for h in upstream.hooks if h["org_id"] == logged.id]


async def test_mask_replaces_values_before_they_leave(gateway_app: GatewayApp) -> None:
    org = Org(await gateway_app([ECHO]), {"action": "redact", "redact": "mask"})
    assert await chat(org) == "echo: 客户王芳，手机[CN_MOBILE]，身份证[CN_RESIDENT_ID]，请整理成表格"


async def test_placeholders_leave_as_tokens_and_come_back_as_values(gateway_app: GatewayApp) -> None:
    policy = {"action": "redact", "redact": "placeholder", "directions": ["prompt"]}
    org = Org(await gateway_app([ECHO]), policy)
    # The upstream saw <CN_MOBILE_1> and <CN_RESIDENT_ID_1> (it echoes them); the client gets its own values.
    assert await chat(org) == f"echo: {PROMPT}"


async def test_placeholders_are_restored_across_stream_chunks(gateway_app: GatewayApp) -> None:
    policy = {"action": "redact", "redact": "placeholder", "directions": ["prompt"]}
    org = Org(await gateway_app([CHUNKED]), policy)
    text, _ = await stream(org)
    assert text == f"echo: {PROMPT}"


async def test_mask_in_a_stream_catches_values_split_across_chunks(gateway_app: GatewayApp) -> None:
    # Only the answer is scanned: the prompt leaves as is, and the echo is cut in 5-character chunks.
    org = Org(await gateway_app([CHUNKED]), {"action": "redact", "directions": ["answer"]})
    text, _ = await stream(org)
    assert text == "echo: 客户王芳，手机[CN_MOBILE]，身份证[CN_RESIDENT_ID]，请整理成表格"


async def test_block_mid_stream_ends_with_an_error_event(gateway_app: GatewayApp) -> None:
    org = Org(await gateway_app([CHUNKED]), {"action": "block", "directions": ["answer"]})
    text, events = await stream(org)
    assert MOBILE not in text
    assert b"data_risk_blocked" in events[-1] and events[-1] != b"data: [DONE]"
    assert [(e["direction"], e["action"]) for e in await org.events()] == [("answer", "block")]


async def test_personal_information_raises_the_data_class(gateway_app: GatewayApp) -> None:
    # chunked-model's only deployment is cleared for general data; PII makes the request important.
    org = Org(await gateway_app([CHUNKED]), {"action": "log", "raise_class": "important"})
    assert await chat(org, model="chunked-model", content="没有个人信息") != ""
    async with org.sdk() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="chunked-model", messages=[{"role": "user", "content": PROMPT}]
            )
    assert caught.value.status_code == 503


async def test_a_keys_policy_beats_its_organizations(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([ECHO])
    org = Org(platform, {"action": "block"})
    created = create_key(org.db, org.name)
    set_guard_policy(org.db, org.name, {"action": "off"}, key=created.record.id)
    await asyncio.sleep(0.5)  # the key cache refreshes every 0.2 s in tests
    async with platform.sdk(created.key) as client:
        answer = await client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": PROMPT}]
        )
    assert answer.choices[0].message.content == f"echo: {PROMPT}"


async def test_tool_call_arguments_are_scanned(gateway_app: GatewayApp) -> None:
    # The upstream puts the prompt after "ARGS:" into its tool call's arguments.
    org = Org(
        await gateway_app([upstream_deployment("tools-model", "tools")]),
        {"action": "block", "directions": ["answer"]},
    )
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    async with org.sdk() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="tools-model",
                messages=[{"role": "user", "content": f"ARGS:手机{MOBILE}"}],
                tools=tools,  # type: ignore[list-item]
            )
    assert caught.value.body["code"] == "data_risk_blocked"  # type: ignore[index]


async def test_streamed_reasoning_is_masked_across_chunks(gateway_app: GatewayApp) -> None:
    # The upstream's reasoning repeats the prompt after "REASON:" in 5-character pieces.
    reasoner = upstream_deployment("deepseek-reasoner", "reasoner", provider="deepseek")
    org = Org(await gateway_app([reasoner]), {"action": "redact", "directions": ["answer"]})
    async with org.sdk() as client:
        stream = await client.chat.completions.create(
            model="deepseek-reasoner",
            messages=[{"role": "user", "content": f"REASON:请回拨{MOBILE}确认"}],
            stream=True,
        )
        reasoning = "".join(
            [getattr(c.choices[0].delta, "reasoning_content", None) or "" async for c in stream if c.choices]
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
async def test_every_string_the_upstream_receives_is_scanned(
    gateway_app: GatewayApp, upstream: FakeUpstream, message: dict[str, Any]
) -> None:
    messages = [message, {"role": "user", "content": "继续"}]
    platform = await gateway_app([ECHO])
    blocking = Org(platform, {"action": "block", "raise_class": "important"})
    async with blocking.sdk() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="echo-model", messages=messages)  # type: ignore[arg-type]
    assert caught.value.body["code"] == "data_risk_blocked"  # type: ignore[index]
    masking = Org(platform, {"action": "redact"})
    async with masking.sdk() as client:
        await client.chat.completions.create(model="echo-model", messages=messages)  # type: ignore[arg-type]
    sent = upstream.last("echo").body
    assert ID not in str(sent) and "[CN_RESIDENT_ID]" in str(sent)
    assert sent["messages"][0]["role"] == message["role"]  # structure kept, only the value masked
