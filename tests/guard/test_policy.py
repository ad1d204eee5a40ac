"""Which guard policy a call follows: the key's or organization's, never laxer than the platform's."""

from __future__ import annotations

from dizuo.config import GuardConfig, GuardPolicy
from dizuo.guard.policy import Guard

MOBILE = "13800138000"


def guard() -> Guard:
    return Guard(
        GuardConfig(
            default=GuardPolicy(action="log"),
            classes={"core": GuardPolicy(action="block", keywords=["绝密"])},
        )
    )


def test_an_organization_cannot_set_off_below_the_platform() -> None:
    platform = guard()
    off = GuardPolicy(action="off", keywords=["蓝鲸项目"])
    core = platform.policy(off, "core")
    assert core.action == "block" and core.keywords == ["绝密", "蓝鲸项目"]
    assert platform.policy(off, "general").action == "log"  # the default is a floor too
    blocked = platform.inspect_prompt(
        off, "core", {"messages": [{"role": "user", "content": "蓝鲸项目进度"}]}
    )
    assert blocked.blocks_prompt and dict(blocked.prompt_counts) == {"KEYWORD": 1}


def test_an_organization_may_be_stricter_than_the_platform() -> None:
    platform = guard()
    strict = GuardPolicy(action="redact", types=["CN_MOBILE"])
    assert platform.policy(strict, "general") is strict
    body = {"messages": [{"role": "user", "content": f"手机{MOBILE}"}]}
    platform.inspect_prompt(strict, "general", body)
    assert body["messages"][0]["content"] == "手机[CN_MOBILE]"
    assert platform.policy(None, "core").action == "block"
    assert platform.policy(GuardPolicy(action="block"), "core").keywords == []  # its own, as it is
