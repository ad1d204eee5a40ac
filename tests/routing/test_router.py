"""Each strategy orders an alias's deployments as documented."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from dizuo.config import ConfigError, parse_config
from dizuo.providers import Transport
from dizuo.routing import Router, build_deployments
from dizuo.settings import Settings


def router(strategy: str, *entries: dict[str, Any]) -> Router:
    deployments = [
        {"model": "m", "provider": "openai-compatible", "base_url": "http://127.0.0.1:9/v1", **entry}
        for entry in entries
    ]
    config = parse_config(
        {"local": False, "deployments": deployments, "routing": {"m": strategy}}, "test.yaml"
    )
    return Router(build_deployments(config, Settings(), Transport()), dict(config.routing))


def names(r: Router, org_region: str | None = None) -> list[str]:
    return [d.name for d in r.candidates("m", org_region)]


def test_priority_groups_come_in_order() -> None:
    r = router(
        "priority", {"name": "b", "priority": 1}, {"name": "a", "priority": 0}, {"name": "c", "priority": 2}
    )
    assert names(r) == ["a", "b", "c"]


def test_weighted_follows_the_weights() -> None:
    r = router("weighted", {"name": "heavy", "weight": 3, "priority": 5}, {"name": "light", "weight": 1})
    firsts = Counter(names(r)[0] for _ in range(4000))
    assert 0.70 < firsts["heavy"] / 4000 < 0.80  # 3 : 1, priority ignored


def test_weight_zero_is_a_last_resort() -> None:
    r = router("weighted", {"name": "spare", "weight": 0}, {"name": "main", "weight": 1})
    assert all(names(r) == ["main", "spare"] for _ in range(50))


def test_cost_puts_the_cheapest_first_and_unpriced_last() -> None:
    r = router(
        "cost",
        {"name": "dear", "price": {"input": 4, "output": 16}},
        {"name": "free", "price": {"input": 0, "output": 0}},
        {"name": "unpriced"},
        {"name": "cheap", "price": {"input": 0.8, "output": 2}},
    )
    assert names(r) == ["free", "cheap", "dear", "unpriced"]


def test_latency_prefers_the_fastest_and_samples_the_unmeasured() -> None:
    r = router("latency", {"name": "slow"}, {"name": "fast"}, {"name": "new"})
    r.health.succeeded("slow", 0.9)
    r.health.succeeded("fast", 0.1)
    assert names(r) == ["new", "fast", "slow"]


def test_least_inflight() -> None:
    r = router("least-inflight", {"name": "busy"}, {"name": "idle"})
    r.health.started("busy")
    assert names(r) == ["idle", "busy"]


def test_local_first_prefers_the_organizations_region() -> None:
    r = router(
        "local-first",
        {"name": "cq-backup", "region": "cq", "priority": 1},
        {"name": "xj-main", "region": "xj", "priority": 0},
        {"name": "cq-main", "region": "cq", "priority": 0},
    )
    assert names(r, "cq") == ["cq-main", "cq-backup", "xj-main"]
    assert names(r, "xj") == ["xj-main", "cq-main", "cq-backup"]


def test_unknown_strategy_or_alias_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"routing\.m"):
        router("fastest", {"name": "a"})
    with pytest.raises(ConfigError, match="'other' is not the model of any deployment"):
        parse_config(
            {"deployments": [{"name": "a", "model": "m", "provider": "qwen"}], "routing": {"other": "cost"}},
            "test.yaml",
        )
