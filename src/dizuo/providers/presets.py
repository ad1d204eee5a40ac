"""Built-in provider presets: the OpenAI-compatible family, one entry per vendor or server.

Each preset carries its default base URL, auth style, whether streams honour
``stream_options.include_usage``, and a CNY price table (per million input / output tokens) for its
main models with the date the prices were taken from the vendor's public price page. Prices change
often: operators override them per deployment with ``price:``; a deployment with neither is billed 0
and flagged in ``/v1/models``.
"""

from __future__ import annotations

from decimal import Decimal

from dizuo.providers import registry
from dizuo.providers.base import ProviderSpec
from dizuo.providers.openai_compat import OpenAICompatible

__all__ = ["PRESETS"]


def _prices(table: dict[str, tuple[str, str]]) -> dict[str, tuple[Decimal, Decimal]]:
    return {model: (Decimal(i), Decimal(o)) for model, (i, o) in table.items()}


PRESETS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        name="openai-compatible",
        adapter=OpenAICompatible,
        title="Any OpenAI-compatible endpoint (base_url required)",
        notes="Generic: set base_url, api_key and price yourself.",
    ),
    ProviderSpec(
        name="deepseek",
        adapter=OpenAICompatible,
        title="DeepSeek 深度求索",
        default_base_url="https://api.deepseek.com/v1",
        # V3.2 prices, cache-miss input; deepseek-reasoner streams reasoning_content, passed through.
        prices=_prices({"deepseek-chat": ("2", "3"), "deepseek-reasoner": ("2", "3")}),
        prices_as_of="2025-09-29",
        pricing_url="https://api-docs.deepseek.com/zh-cn/quick_start/pricing",
        notes="reasoning_content in messages and stream deltas is passed through untouched.",
    ),
    ProviderSpec(
        name="qwen",
        adapter=OpenAICompatible,
        title="通义千问 Qwen (DashScope compatible mode)",
        default_base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
        prices=_prices(
            {
                "qwen-max": ("2.4", "9.6"),
                "qwen-plus": ("0.8", "2"),
                "qwen-turbo": ("0.3", "0.6"),
                "qwen-long": ("0.5", "2"),
                "text-embedding-v3": ("0.5", "0"),
            }
        ),
        prices_as_of="2025-06-01",
        pricing_url="https://help.aliyun.com/zh/model-studio/models",
    ),
    ProviderSpec(
        name="zhipu",
        adapter=OpenAICompatible,
        title="智谱 GLM (BigModel)",
        default_base_url="https://open.bigmodel.cn/api/paas/v4",
        prices=_prices(
            {
                "glm-4-plus": ("5", "5"),
                "glm-4-air": ("0.5", "0.5"),
                "glm-4-flash": ("0", "0"),
                "embedding-3": ("0.5", "0"),
            }
        ),
        prices_as_of="2025-06-01",
        pricing_url="https://open.bigmodel.cn/pricing",
    ),
    ProviderSpec(
        name="moonshot",
        adapter=OpenAICompatible,
        title="月之暗面 Kimi (Moonshot)",
        default_base_url="https://api.moonshot.cn/v1",
        prices=_prices(
            {
                "moonshot-v1-8k": ("2", "10"),
                "moonshot-v1-32k": ("5", "20"),
                "moonshot-v1-128k": ("10", "30"),
                "kimi-k2-0905-preview": ("4", "16"),
            }
        ),
        prices_as_of="2025-09-05",
        pricing_url="https://platform.moonshot.cn/docs/pricing/chat",
        notes="Streams put usage inside choices[0].usage of the last chunk; dizuo reads it there.",
    ),
    ProviderSpec(
        name="qianfan",
        adapter=OpenAICompatible,
        title="百度千帆 ERNIE (Qianfan v2)",
        default_base_url="https://qianfan.baidubce.com/v2",
        prices=_prices({"ernie-4.5-turbo-128k": ("0.8", "3.2"), "ernie-speed-128k": ("0", "0")}),
        prices_as_of="2025-06-01",
        pricing_url="https://cloud.baidu.com/doc/qianfan-docs/s/Jm8r1826a",
        notes="api_key is the bce-v3/… bearer key of the v2 API.",
    ),
    ProviderSpec(
        name="ark",
        adapter=OpenAICompatible,
        title="火山方舟 Doubao (Volcengine Ark)",
        default_base_url="https://ark.cn-beijing.volces.com/api/v3",
        prices=_prices({"doubao-1.5-pro-32k": ("0.8", "2"), "doubao-1.5-lite-32k": ("0.3", "0.6")}),
        prices_as_of="2025-06-01",
        pricing_url="https://www.volcengine.com/docs/82379/1544106",
        notes="upstream_model is usually an endpoint id (ep-…) or a model id such as doubao-1-5-pro-32k-250115.",
    ),
    ProviderSpec(
        name="hunyuan",
        adapter=OpenAICompatible,
        title="腾讯混元 Hunyuan",
        default_base_url="https://api.hunyuan.cloud.tencent.com/v1",
        prices=_prices(
            {"hunyuan-turbos-latest": ("0.8", "2"), "hunyuan-large": ("4", "12"), "hunyuan-lite": ("0", "0")}
        ),
        prices_as_of="2025-06-01",
        pricing_url="https://cloud.tencent.com/document/product/1729/97731",
    ),
    ProviderSpec(
        name="siliconflow",
        adapter=OpenAICompatible,
        title="硅基流动 SiliconFlow",
        default_base_url="https://api.siliconflow.cn/v1",
        prices=_prices(
            {
                "deepseek-ai/DeepSeek-V3": ("2", "8"),
                "Qwen/Qwen2.5-7B-Instruct": ("0", "0"),
                "BAAI/bge-m3": ("0", "0"),
            }
        ),
        prices_as_of="2025-06-01",
        pricing_url="https://siliconflow.cn/pricing",
    ),
    ProviderSpec(
        name="openai",
        adapter=OpenAICompatible,
        title="OpenAI",
        default_base_url="https://api.openai.com/v1",
        # USD list prices converted at 7.2 CNY/USD.
        prices=_prices({"gpt-4o": ("18", "72"), "gpt-4o-mini": ("1.08", "4.32")}),
        prices_as_of="2025-06-01",
        pricing_url="https://openai.com/api/pricing/",
    ),
    ProviderSpec(
        name="vllm",
        adapter=OpenAICompatible,
        title="vLLM server (private)",
        default_base_url="http://127.0.0.1:8000/v1",
        auth="bearer",
        cloud="private",
    ),
    ProviderSpec(
        name="sglang",
        adapter=OpenAICompatible,
        title="SGLang server (private)",
        default_base_url="http://127.0.0.1:30000/v1",
        cloud="private",
    ),
    ProviderSpec(
        name="ollama",
        adapter=OpenAICompatible,
        title="Ollama (private)",
        default_base_url="http://127.0.0.1:11434/v1",
        auth="none",
        cloud="private",
    ),
    ProviderSpec(
        name="llamacpp",
        adapter=OpenAICompatible,
        title="llama.cpp server (private)",
        default_base_url="http://127.0.0.1:8080/v1",
        cloud="private",
    ),
)

for _spec in PRESETS:
    registry.register(_spec)
