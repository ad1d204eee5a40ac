"""Chat completions through the gateway with the real openai SDK against a real upstream server.

Each test describes its platform and reaches it in process, streams too (the SDK parses their SSE
framing as it does off a socket).
"""

from __future__ import annotations

import openai
import pytest

from tests.support.platform import UPSTREAM_KEY, GatewayApp, upstream_deployment
from tests.support.upstream import FakeUpstream

TOOL = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


async def test_plain_completion_is_passed_through(gateway_app: GatewayApp, upstream: FakeUpstream) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", "echo")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        answer = await client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": "重庆的天气"}]
        )
    assert answer.choices[0].message.content == "echo: 重庆的天气"
    assert answer.usage is not None and answer.usage.total_tokens == 10
    seen = upstream.last("echo")
    # The alias was rewritten to the deployment's upstream model; the upstream's own key was sent.
    assert seen.body["model"] == "echo"
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert answer.model == "echo-model"  # the answer names the alias the client sent, as OpenAI's do


async def test_every_answer_names_the_alias_sent_not_the_upstream_s_model(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [
            upstream_deployment("echo-model", "echo"),  # the upstream answers as "echo"
            upstream_deployment("remote-embed", "embed", mode="embedding"),
        ]
    )
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": "流式"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
        assert chunks and {chunk.model for chunk in chunks} == {"echo-model"}
        vectors = await client.embeddings.create(model="remote-embed", input="底座")
    assert vectors.model == "remote-embed"


async def test_openai_parameters_and_vendor_fields_reach_the_upstream(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", "echo")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        await client.chat.completions.create(
            model="echo-model",
            messages=[{"role": "system", "content": "简短回答"}, {"role": "user", "content": "hi"}],
            tools=TOOL,  # type: ignore[arg-type]
            tool_choice="auto",
            response_format={"type": "json_object"},
            stop=["\n\n"],
            n=2,
            temperature=0.3,
            top_p=0.9,
            seed=42,
            user="user-17",
            extra_body={"enable_search": True, "thinking": {"type": "disabled"}},
        )
    body = upstream.last("echo").body
    assert body["tools"] == TOOL
    assert body["tool_choice"] == "auto"
    assert body["response_format"] == {"type": "json_object"}
    assert body["stop"] == ["\n\n"]
    assert (body["n"], body["temperature"], body["top_p"], body["seed"], body["user"]) == (
        2,
        0.3,
        0.9,
        42,
        "user-17",
    )
    assert body["enable_search"] is True and body["thinking"] == {"type": "disabled"}


async def test_tool_calls_come_back(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("tools-model", "tools")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        answer = await client.chat.completions.create(
            model="tools-model",
            messages=[{"role": "user", "content": "天气"}],
            tools=TOOL,  # type: ignore[arg-type]
        )
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather"  # type: ignore[union-attr]
    assert call.function.arguments == '{"city": "重庆"}'  # type: ignore[union-attr]
    assert answer.choices[0].finish_reason == "tool_calls"


async def test_stream_arrives_chunk_by_chunk_without_usage_unless_asked(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", "echo")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": "x"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "你好，世界"
    # Role, two content deltas, finish: one event per upstream event; then the AIGC label's own.
    assert len(chunks) == 5
    assert chunks[-1].choices == [] and chunks[-1].model_extra["aigc"]["Label"] == "1"
    assert all(c.usage is None for c in chunks)
    # The gateway still asked the upstream for usage, to meter the call.
    assert upstream.last("echo").body["stream_options"] == {"include_usage": True}


async def test_stream_usage_chunk_when_the_client_asks(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", "echo")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(
            model="echo-model",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].model_extra["aigc"]["Label"] == "1"  # the label rides on the usage chunk
    assert sum(c.usage is not None for c in chunks) == 1


async def test_deepseek_reasoning_content_is_passed_through(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("deepseek-reasoner", "reasoner", provider="deepseek")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(
            model="deepseek-reasoner", messages=[{"role": "user", "content": "1+1"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert reasoning == "先想一想。好了。"


async def test_moonshot_usage_inside_the_choice_is_metered(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [upstream_deployment("kimi", "moonshot", name="kimi-1", provider="moonshot")]
    )
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(
            model="kimi", messages=[{"role": "user", "content": "x"}], stream=True
        )
        [chunk async for chunk in stream]
    tokens = platform.platform.gateway.metrics.tokens.labels("kimi", "kimi-1", "completion")
    assert tokens._value.get() == 3
    assert platform.records(org)[0].completion_tokens == 3


async def test_async_client_streams(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", "echo")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": "x"}], stream=True
        )
        parts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert parts == ["你好", "，世界"]


async def test_response_says_which_deployment_and_region_served(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", name="echo-1", region="cq")])
    org = platform.org(balance="1")
    response = await platform.http(org.key).post(
        "/v1/chat/completions", json={"model": "echo-model", "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 200
    assert response.headers["x-dizuo-deployment"] == "echo-1"
    assert response.headers["x-dizuo-region"] == "cq"
    assert response.headers["x-request-id"].startswith("req_")


async def test_failover_before_the_first_byte(gateway_app: GatewayApp, upstream: FakeUpstream) -> None:
    platform = await gateway_app(
        [
            upstream_deployment("failover-model", "fail500", name="fo-primary", priority=0),
            upstream_deployment("failover-model", "echo", name="fo-backup", priority=1, region="xj"),
        ]
    )
    org = platform.org(balance="1")
    response = await platform.http(org.key).post(
        "/v1/chat/completions",
        json={"model": "failover-model", "messages": [{"role": "user", "content": "接着来"}]},
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: 接着来"
    assert response.headers["x-dizuo-deployment"] == "fo-backup"
    assert upstream.last("fail500").body["messages"][0]["content"] == "接着来"


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_connection_refused_fails_over_nowhere_and_says_so(
    gateway_app: GatewayApp, stream: bool
) -> None:
    platform = await gateway_app([upstream_deployment("down-model", base_url="http://127.0.0.1:9/v1")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            result = await client.chat.completions.create(
                model="down-model", messages=[{"role": "user", "content": "x"}], stream=stream
            )
            if stream:
                [chunk async for chunk in result]  # type: ignore[union-attr]
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_unreachable"  # type: ignore[index]
