"""An organization's own guard expressions run in linear time: none can stall the platform."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from dizuo.guard import Scanner
from tests.security.conftest import Platform, bearer
from tests.support.platform import RunningGateway


def test_a_backtracking_pattern_scans_in_linear_time() -> None:
    scanner = Scanner(patterns=["(a+)+$"])
    started = time.monotonic()
    found = scanner.scan("a" * 30 + "!")  # Python's re: 2^30 steps
    assert time.monotonic() - started < 0.5 and found == []
    assert [(e.start, e.end) for e in scanner.scan("件号 aaaa")] == [(3, 7)]  # offsets in characters


def test_patterns_re2_cannot_run_are_refused_naming_the_construct(
    admin_api: httpx.Client, platform: Platform
) -> None:
    for pattern, construct in [(r"(\w)\1", "\\1"), (r"(?<=编号)\d+", "(?<=")]:
        answer = admin_api.put(
            f"/orgs/{platform.a.org}/guard-policy",
            json={"action": "block", "patterns": [pattern]},
            headers=bearer(platform.a.admin),
        )
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "policy"
        assert construct in answer.json()["error"]["message"]


def test_one_org_s_pattern_does_not_stall_another_org(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    set_policy = admin_api.put(
        f"/orgs/{platform.a.org}/guard-policy",
        json={"action": "block", "patterns": ["(a+)+$"]},
        headers=bearer(platform.a.admin),
    )
    assert set_policy.status_code == 200
    time.sleep(3 * gateway.settings.key_refresh_seconds)
    slowest: list[float] = []
    watching = threading.Event()

    def watch(stop: threading.Event) -> None:
        with httpx.Client(base_url=gateway.v1, headers=bearer(platform.b.key)) as http:
            while True:  # at least one call, and calls the whole time the other org's requests run
                started = time.monotonic()
                assert http.get("/models").status_code == 200
                slowest.append(time.monotonic() - started)
                watching.set()
                if stop.is_set():
                    return

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,))
    watcher.start()
    try:
        assert watching.wait(10)
        with openai.OpenAI(base_url=gateway.v1, api_key=platform.a.key, max_retries=0, timeout=30) as sdk:
            started = time.monotonic()
            with pytest.raises(openai.BadRequestError) as blocked:  # "aaaa" at the end matches: blocked
                sdk.chat.completions.create(
                    model="echo-model", messages=[{"role": "user", "content": "a" * 26}]
                )
            assert blocked.value.code == "data_risk_blocked"
            answered = sdk.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": "a" * 26 + "!"}]
            )
            assert answered.choices[0].message.content and time.monotonic() - started < 1.0
    finally:
        stop.set()
        watcher.join()
        admin_api.put(f"/orgs/{platform.a.org}/guard-policy", json=None, headers=bearer(platform.a.admin))
    assert slowest and max(slowest) < 1.0
