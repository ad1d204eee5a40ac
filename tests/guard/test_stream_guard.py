"""StreamGuard on its own: what each chunk becomes, field by field."""

from __future__ import annotations

import orjson

from dizuo.config import GuardConfig, GuardPolicy
from dizuo.gateway.guarding import StreamGuard
from dizuo.guard.policy import Guard


def chunk(**delta: str) -> bytes:
    return orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


def test_held_reasoning_goes_out_once_and_restored_when_the_answer_begins() -> None:
    guard = Guard(GuardConfig())
    policy = GuardPolicy(action="redact", redact="placeholder")
    body = {"messages": [{"role": "user", "content": "回拨13800138000"}]}
    inspection = guard.inspect_prompt(policy, "general", body)
    assert body["messages"][0]["content"] == "回拨<CN_MOBILE_1>"
    stream = StreamGuard(inspection)
    first = orjson.loads(stream.chunk(chunk(reasoning_content="用户要回拨<CN_MOBILE_1>。")))
    assert first["choices"][0]["delta"]["reasoning_content"] == ""  # held: a value may still be arriving
    second = orjson.loads(stream.chunk(chunk(content="好的")))
    # The answer begins: the reasoning goes out with it, placeholder restored (the answer's own text
    # is held in turn), and the reasoning goes out exactly once.
    assert second["choices"][0]["delta"] == {"content": "", "reasoning_content": "用户要回拨13800138000。"}
    rest = stream.rest()
    assert rest is not None and orjson.loads(rest)["choices"][0]["delta"] == {"content": "好的"}
    # The user's own value, put back, is not a finding in the answer.
    assert inspection.answer_counts == {}
