"""Every failure path a client can hit, and the one envelope each answers with (STYLE habit 5)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from dizuo.accounts import create_key, revoke_key
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.support.upstream import FakeUpstream

CHAT = "/chat/completions"


def post(
    gateway: RunningGateway,
    key: str | None,
    body: Any = None,
    raw: bytes | None = None,
    path: str = CHAT,
    lang: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if lang:
        headers["Accept-Language"] = lang
    content = raw if raw is not None else None
    return httpx.post(
        f"{gateway.v1}{path}",
        headers=headers,
        json=body if raw is None else None,
        content=content,
        timeout=20,
    )


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


def test_no_key(gateway: RunningGateway) -> None:
    assert_envelope(post(gateway, None, chat()), 401, "missing_api_key")


def test_unknown_key(gateway: RunningGateway) -> None:
    error = assert_envelope(post(gateway, "dz-not-a-real-key", chat()), 401, "invalid_api_key")
    assert "dizuo admin create-key" in error["message"]


def test_revoked_key_stops_working_within_a_second(gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    created = create_key(db, "default", name="to revoke")
    assert post(gateway, created.key, chat()).status_code == 200
    revoke_key(db, created.record.prefix)
    deadline = time.monotonic() + 1.5
    while post(gateway, created.key, chat()).status_code == 200:
        assert time.monotonic() < deadline, "revocation did not take effect within the refresh period"
        time.sleep(0.05)
    assert_envelope(post(gateway, created.key, chat()), 401, "invalid_api_key")
    db.dispose()


def test_expired_key_is_refused(gateway: RunningGateway) -> None:
    import datetime as dt

    db = Database(gateway.settings.resolved_database_url)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    created = create_key(db, "default", expires_at=expires)
    db.dispose()
    assert post(gateway, created.key, chat()).status_code == 200
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    assert_envelope(post(gateway, created.key, chat()), 401, "invalid_api_key")


def test_unknown_model_lists_the_models_this_key_may_use(gateway: RunningGateway, api_key: str) -> None:
    error = assert_envelope(post(gateway, api_key, chat("gpt-17")), 404, "model_not_found", "model")
    assert "echo-model" in error["message"] and "gpt-17" in error["message"]


def test_model_outside_the_keys_allowlist_is_not_found(gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    key = create_key(db, "default", models=["echo-model"]).key
    db.dispose()
    error = assert_envelope(post(gateway, key, chat("tools-model")), 404, "model_not_found", "model")
    assert "echo-model" in error["message"] and "fail-model" not in error["message"]
    assert post(gateway, key, chat("echo-model")).status_code == 200


def test_malformed_json(gateway: RunningGateway, api_key: str) -> None:
    assert_envelope(post(gateway, api_key, raw=b'{"model": "echo-model", '), 400, "invalid_json")
    assert_envelope(post(gateway, api_key, raw=b""), 400, "invalid_json")
    assert_envelope(post(gateway, api_key, raw=b"[1, 2]"), 400, "invalid_body")


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
def test_bad_bodies_name_the_param(
    gateway: RunningGateway, api_key: str, body: dict[str, Any], code: str, param: str
) -> None:
    assert_envelope(post(gateway, api_key, body), 400, code, param)


def test_embedding_model_on_the_chat_endpoint(gateway: RunningGateway, api_key: str) -> None:
    assert_envelope(post(gateway, api_key, chat("remote-embed")), 400, "wrong_model_mode", "model")


def test_body_over_the_limit(gateway: RunningGateway, api_key: str) -> None:
    big = chat(messages=[{"role": "user", "content": "长" * 40_000}])  # ~120 KB of UTF-8 > 64 KiB
    error = assert_envelope(post(gateway, api_key, big), 413, "request_too_large")
    assert "65536" in error["message"]


def test_body_over_the_limit_without_content_length(gateway: RunningGateway, api_key: str) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    response = httpx.post(
        f"{gateway.v1}{CHAT}", headers={"Authorization": f"Bearer {api_key}"}, content=chunks(), timeout=20
    )
    assert_envelope(response, 413, "request_too_large")


def test_unknown_route_and_wrong_method(gateway: RunningGateway, api_key: str) -> None:
    assert_envelope(post(gateway, api_key, {}, path="/completions-typo"), 404, "not_found")
    response = httpx.get(f"{gateway.v1}{CHAT}", headers={"Authorization": f"Bearer {api_key}"})
    assert_envelope(response, 405, "method_not_allowed")


def test_upstream_500_is_a_502_whose_words_stay_in_the_log(
    gateway: RunningGateway, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An upstream's own error text may carry its masked key or internal host names: logged, not relayed.
    with caplog.at_level("WARNING", logger="dizuo.upstream"):
        error = assert_envelope(post(gateway, api_key, chat("fail-model")), 502, "upstream_error")
    assert "upstream exploded" not in error["message"] and "fail-1" in error["message"]
    assert "平台日志" in error["message"]
    assert any("upstream exploded" in record.getMessage() for record in caplog.records)


def test_upstream_429_is_a_429(gateway: RunningGateway, api_key: str) -> None:
    error = assert_envelope(post(gateway, api_key, chat("limit-model")), 429, "upstream_error")
    assert "slow down please" in error["message"]


def test_upstream_400_is_the_clients_mistake(
    gateway: RunningGateway, api_key: str, upstream: FakeUpstream
) -> None:
    error = assert_envelope(post(gateway, api_key, chat("reject-model")), 400, "upstream_error")
    assert "Invalid tool schema" in error["message"]


def test_slow_upstream_is_a_504(gateway: RunningGateway, api_key: str) -> None:
    started = time.monotonic()
    error = assert_envelope(post(gateway, api_key, chat("slow-model")), 504, "upstream_timeout")
    assert "0.5" in error["message"]
    assert time.monotonic() - started < 2.5


def test_upstream_dropping_a_plain_call_is_a_502(gateway: RunningGateway, api_key: str) -> None:
    assert_envelope(post(gateway, api_key, chat("drop-model")), 502, "upstream_disconnected")


def test_upstream_dropping_mid_stream_ends_with_an_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="drop-model", messages=[{"role": "user", "content": "x"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert received, "the chunks sent before the drop reached the client"
    assert "drop-1" in caught.value.message


def test_messages_follow_accept_language(gateway: RunningGateway, api_key: str) -> None:
    zh = assert_envelope(
        post(gateway, api_key, chat("gpt-17"), lang="zh-CN,zh;q=0.9"), 404, "model_not_found", "model"
    )
    en = assert_envelope(
        post(gateway, api_key, chat("gpt-17"), lang="en-US,en;q=0.8"), 404, "model_not_found", "model"
    )
    assert "不存在" in zh["message"]
    assert "does not exist" in en["message"]


def test_sdk_sees_typed_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo-model", messages=[])
    assert caught.value.body["param"] == "messages"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        client.with_options(api_key="dz-wrong").models.list()
