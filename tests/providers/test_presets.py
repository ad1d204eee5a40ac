"""Each vendor named in DESIGN §4 is a registered preset with its URL, auth and dated CNY prices."""

from __future__ import annotations

import pytest

from dizuo.providers import registry

PUBLIC = ["deepseek", "qwen", "zhipu", "moonshot", "qianfan", "ark", "hunyuan", "siliconflow", "openai"]
PRIVATE = ["vllm", "sglang", "ollama", "llamacpp"]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_presets_carry_prices_with_a_date(name: str) -> None:
    spec = registry.get(name)
    assert spec.default_base_url and spec.default_base_url.startswith("https://")
    assert spec.auth == "bearer"
    assert spec.prices, f"{name} has no price table"
    assert spec.prices_as_of and spec.pricing_url
    assert all(i >= 0 and o >= 0 for i, o in spec.prices.values())


@pytest.mark.parametrize("name", PRIVATE)
def test_private_presets(name: str) -> None:
    spec = registry.get(name)
    assert spec.cloud == "private"
    assert spec.default_base_url and spec.default_base_url.startswith("http://127.0.0.1")


def test_local_is_registered_like_any_other() -> None:
    assert "local" in registry.names()
    assert registry.get("local").cloud == "local"
