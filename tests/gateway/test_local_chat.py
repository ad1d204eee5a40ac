"""The embedded SmolLM2 chat model, in-process, no network."""

from __future__ import annotations

import os
from collections.abc import Iterator

import openai
import pytest

from dizuo.routing import LOCAL_CHAT
from tests.support.platform import RunningGateway, Serve

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The embedded local models, loaded once for this module."""
    with serve([], local=True) as running:
        yield running


@pytest.fixture(autouse=True)
def _needs_local_model(gateway: RunningGateway) -> None:
    dep = next(d for d in gateway.app.router.deployments if d.name == "local-chat")
    if dep.unavailable:
        # In CI the model must be there: the README's first command promises an offline chat.
        if os.environ.get("CI"):
            pytest.fail(f"the embedded chat model is unavailable in CI: {dep.unavailable}")
        pytest.skip(f"local chat model not installed: {dep.unavailable}")


def test_local_chat_answers_offline(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=LOCAL_CHAT, messages=[{"role": "user", "content": "Say hello."}], max_tokens=12, seed=1
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 10  # the system prompt of the chat template counts
    assert 0 < answer.usage.completion_tokens <= 12


def test_local_chat_streams_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=LOCAL_CHAT,
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 10
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")


def test_local_chat_json_mode_returns_json(client: openai.OpenAI) -> None:
    import json

    answer = client.chat.completions.create(
        model=LOCAL_CHAT,
        messages=[{"role": "user", "content": "Give a JSON object with a key name."}],
        response_format={"type": "json_object"},
        max_tokens=40,
        seed=3,
    )
    content = answer.choices[0].message.content or ""
    if answer.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict | list | str | int | float | bool | None)
    else:  # cut at max_tokens: still JSON-shaped from the first character
        assert content.lstrip()[:1] in "{["


def test_local_chat_refuses_tools_clearly(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=LOCAL_CHAT,
            messages=[{"role": "user", "content": "x"}],
            tools=tools,  # type: ignore[arg-type]
        )
    assert caught.value.body["code"] == "unsupported_feature"  # type: ignore[index]
