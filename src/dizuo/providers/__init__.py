"""Provider adapters, one per upstream protocol, all registered through :mod:`registry`."""

from dizuo.providers import registry
from dizuo.providers.base import Endpoint, Provider, ProviderSpec, Reply, Transport, Usage
from dizuo.providers.local_chat import LocalChat, gguf_path
from dizuo.providers.local_embed import LocalEmbedding
from dizuo.providers.presets import PRESETS

__all__ = [
    "PRESETS",
    "Endpoint",
    "LocalChat",
    "LocalEmbedding",
    "Provider",
    "ProviderSpec",
    "Reply",
    "Transport",
    "Usage",
    "gguf_path",
    "registry",
]

registry.register(
    ProviderSpec(
        name="local",
        adapter=LocalChat,
        embedding_adapter=LocalEmbedding,
        title="Embedded in-process models (SmolLM2-135M chat, multilingual USE v3 embeddings)",
        auth="none",
        cloud="local",
        notes="No network, no keys. The chat model answers in English only.",
    )
)
