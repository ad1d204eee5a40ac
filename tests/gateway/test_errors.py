"""Every failure path a client can hit, and the one envelope each answers with (STYLE habit 5).

Each test builds the platform it describes (``gateway_app``: its deployments on the session's fake
upstream, an organization with money and a key) and reaches it in process. One keeps the session's
server, where the behaviour is the wire's: a body streamed without a length.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from dizuo.accounts import create_key, revoke_key
from tests.support.platform import (
    GatewayApp,
    PlatformUnderTest,
    RunningGateway,
    Serve,
    Tenant,
    upstream_deployment,
)

CHAT = "/chat/completions"
ECHO = upstream_deployment("echo-model")


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A server whose bodies stop at 64 KiB, for a body sent in chunks over a real socket."""
    with serve([], server={"max_body_bytes": 64 * 1024}) as running:
        yield running


async def post(
    platform: PlatformUnderTest,
    key: str | None,
    body: Any = None,
    raw: bytes | None = None,
    path: str = CHAT,
    lang: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if lang:
        headers["Accept-Language"] = lang
    client = platform.http(key)
    return await client.post(f"/v1{path}", headers=headers, json=body if raw is None else None, content=raw)


async def funded(
    gateway_app: GatewayApp, *deployments: dict[str, object], **settings: Any
) -> tuple[PlatformUnderTest, Tenant]:
    """A platform of *deployments*, and an organization with ¥1 and one key."""
    platform = await gateway_app(list(deployments), **settings)
    return platform, platform.org(balance="1")


def assert_envelope(
    response: httpx.Response, status: int, code: str, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["param"] == param
    assert error["message"]
    return error


def chat(model: str = "echo-model", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "x"}], **extra}


async def test_no_key(gateway_app: GatewayApp) -> None:
    platform, _ = await funded(gateway_app, ECHO)
    assert_envelope(await post(platform, None, chat()), 401, "missing_api_key")


async def test_unknown_key(gateway_app: GatewayApp) -> None:
    platform, _ = await funded(gateway_app, ECHO)
    error = assert_envelope(await post(platform, "dz-not-a-real-key", chat()), 401, "invalid_api_key")
    assert "dizuo admin create-key" in error["message"]


async def test_revoked_key_stops_working_within_a_second(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, ECHO)  # keys are read again every 0.2 s
    created = create_key(platform.db, org.name, name="to revoke")
    assert (await post(platform, created.key, chat())).status_code == 200
    revoke_key(platform.db, created.record.prefix)
    deadline = time.monotonic() + 1.5
    while (await post(platform, created.key, chat())).status_code == 200:
        assert time.monotonic() < deadline, "revocation did not take effect within the refresh period"
        await asyncio.sleep(0.05)
    assert_envelope(await post(platform, created.key, chat()), 401, "invalid_api_key")


async def test_expired_key_is_refused(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, ECHO)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    created = create_key(platform.db, org.name, expires_at=expires)
    await asyncio.sleep(0.3)  # the key cache has read it
    assert (await post(platform, created.key, chat())).status_code == 200
    await asyncio.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    assert_envelope(await post(platform, created.key, chat()), 401, "invalid_api_key")


async def test_unknown_model_lists_the_models_this_key_may_use(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, ECHO)
    error = assert_envelope(await post(platform, org.key, chat("gpt-17")), 404, "model_not_found", "model")
    assert "echo-model" in error["message"] and "gpt-17" in error["message"]


async def test_model_outside_the_keys_allowlist_is_not_found(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [ECHO, upstream_deployment("tools-model", "tools"), upstream_deployment("fail-model", "fail500")]
    )
    org = platform.org(balance="1", models=["echo-model"])
    error = assert_envelope(
        await post(platform, org.key, chat("tools-model")), 404, "model_not_found", "model"
    )
    assert "echo-model" in error["message"] and "fail-model" not in error["message"]
    assert (await post(platform, org.key, chat("echo-model"))).status_code == 200


async def test_malformed_json(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, ECHO)
    assert_envelope(await post(platform, org.key, raw=b'{"model": "echo-model", '), 400, "invalid_json")
    assert_envelope(await post(platform, org.key, raw=b""), 400, "invalid_json")
    assert_envelope(await post(platform, org.key, raw=b"[1, 2]"), 400, "invalid_body")


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "missing_param", "model"),
        ({"model": "echo-model"}, "missing_param", "messages"),
        ({"model": 7, "messages": []}, "invalid_param", "model"),
        (chat(messages=[]), "invalid_param", "messages"),
        (chat(messages=["hi"]), "invalid_param", "messages[0]"),
        (chat(messages=[{"role": "robot", "content": "x"}]), "invalid_param", "messages[0].role"),
        (chat(temperature=3), "invalid_param", "temperature"),
        (chat(temperature="hot"), "invalid_param", "temperature"),
        (chat(top_p=-0.1), "invalid_param", "top_p"),
        (chat(n=0), "invalid_param", "n"),
        (chat(max_tokens=True), "invalid_param", "max_tokens"),
        (chat(stream="yes"), "invalid_param", "stream"),
        (chat(stop=[1, 2]), "invalid_param", "stop"),
        (chat(tools={"a": 1}), "invalid_param", "tools"),
        (chat(response_format="json"), "invalid_param", "response_format"),
        (chat(seed=1.5), "invalid_param", "seed"),
    ],
)
async def test_bad_bodies_name_the_param(
    gateway_app: GatewayApp, body: dict[str, Any], code: str, param: str
) -> None:
    platform, org = await funded(gateway_app, ECHO)
    assert_envelope(await post(platform, org.key, body), 400, code, param)


async def test_embedding_model_on_the_chat_endpoint(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, upstream_deployment("remote-embed", "embed", mode="embedding"))
    assert_envelope(await post(platform, org.key, chat("remote-embed")), 400, "wrong_model_mode", "model")


async def test_body_over_the_limit(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, ECHO, max_body_bytes=64 * 1024)
    big = chat(messages=[{"role": "user", "content": "长" * 40_000}])  # ~120 KB of UTF-8 > 64 KiB
    error = assert_envelope(await post(platform, org.key, big), 413, "request_too_large")
    assert "65536" in error["message"]
    assert platform.records(org) == []  # refused before anything was charged


def test_body_over_the_limit_without_content_length(gateway: RunningGateway, api_key: str) -> None:
    """Over a real socket: a body sent in chunks, with no length to refuse it by (this module's
    server takes 64 KiB)."""

    def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    response = httpx.post(
        f"{gateway.v1}{CHAT}", headers={"Authorization": f"Bearer {api_key}"}, content=chunks(), timeout=20
    )
    assert_envelope(response, 413, "request_too_large")


async def test_unknown_route_and_wrong_method(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, ECHO)
    assert_envelope(await post(platform, org.key, {}, path="/completions-typo"), 404, "not_found")
    response = await platform.http(org.key).get(f"/v1{CHAT}")
    assert_envelope(response, 405, "method_not_allowed")


async def test_upstream_500_is_a_502_whose_words_stay_in_the_log(
    gateway_app: GatewayApp, caplog: pytest.LogCaptureFixture
) -> None:
    platform, org = await funded(gateway_app, upstream_deployment("fail-model", "fail500", name="fail-1"))
    # An upstream's own error text may carry its masked key or internal host names: logged, not relayed.
    with caplog.at_level("WARNING", logger="dizuo.upstream"):
        error = assert_envelope(await post(platform, org.key, chat("fail-model")), 502, "upstream_error")
    assert "upstream exploded" not in error["message"] and "fail-1" in error["message"]
    assert "平台日志" in error["message"]
    assert any("upstream exploded" in record.getMessage() for record in caplog.records)


async def test_upstream_429_is_a_429(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, upstream_deployment("limit-model", "ratelimit"))
    error = assert_envelope(await post(platform, org.key, chat("limit-model")), 429, "upstream_error")
    assert "slow down please" in error["message"]


async def test_upstream_400_is_the_clients_mistake(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, upstream_deployment("reject-model", "reject"))
    error = assert_envelope(await post(platform, org.key, chat("reject-model")), 400, "upstream_error")
    assert "Invalid tool schema" in error["message"]


async def test_slow_upstream_is_a_504(gateway_app: GatewayApp) -> None:
    platform, org = await funded(
        gateway_app, upstream_deployment("slow-model", "slow", timeout={"read": 0.5})
    )
    started = time.monotonic()
    error = assert_envelope(await post(platform, org.key, chat("slow-model")), 504, "upstream_timeout")
    assert "0.5" in error["message"]
    assert time.monotonic() - started < 2.5


async def test_upstream_dropping_a_plain_call_is_a_502(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, upstream_deployment("drop-model", "drop"))
    assert_envelope(await post(platform, org.key, chat("drop-model")), 502, "upstream_disconnected")


async def test_upstream_dropping_mid_stream_ends_with_an_error_event(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, upstream_deployment("drop-model", "drop", name="drop-1"))
    async with platform.sdk(org.key) as client:
        stream = await client.chat.completions.create(
            model="drop-model", messages=[{"role": "user", "content": "x"}], stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received.append(chunk)
    assert received, "the chunks sent before the drop reached the client"
    assert "drop-1" in caught.value.message


async def test_messages_follow_accept_language(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, ECHO)
    zh = assert_envelope(
        await post(platform, org.key, chat("gpt-17"), lang="zh-CN,zh;q=0.9"), 404, "model_not_found", "model"
    )
    en = assert_envelope(
        await post(platform, org.key, chat("gpt-17"), lang="en-US,en;q=0.8"), 404, "model_not_found", "model"
    )
    assert "不存在" in zh["message"]
    assert "does not exist" in en["message"]


async def test_sdk_sees_typed_errors(gateway_app: GatewayApp) -> None:
    platform, org = await funded(gateway_app, ECHO)
    async with platform.sdk(org.key) as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="echo-model", messages=[])
        assert caught.value.body["param"] == "messages"  # type: ignore[index]
        with pytest.raises(openai.AuthenticationError):
            await client.with_options(api_key="dz-wrong").models.list()
