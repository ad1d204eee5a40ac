"""Deployments at run time: the validated config joined with its provider adapter and price."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from dizuo.config import DeploymentConfig, PlatformConfig, resolve_secret
from dizuo.errors import ConfigError
from dizuo.providers import Endpoint, Provider, Transport, registry
from dizuo.settings import Settings

__all__ = [
    "LOCAL_CHAT",
    "LOCAL_EMBEDDING",
    "Deployment",
    "batch_priced",
    "build_deployments",
    "free",
    "local_deployments",
    "served",
]

LOCAL_CHAT = "local/smollm2-135m-instruct"
LOCAL_EMBEDDING = "local/use-multilingual-v3"


@dataclass(slots=True)
class Deployment:
    config: DeploymentConfig
    provider: Provider
    price_in: Decimal | None  # CNY per million tokens; None: no price known
    price_out: Decimal | None
    price_source: str  # "config", "preset <date>", or "none"
    unavailable: str | None = None  # why it cannot take calls (e.g. the local model is not installed)
    # Its twin at batch prices, made at the first batch line (batch_priced): a line prices it twice.
    batch_twin: Deployment | None = field(default=None, init=False, repr=False, compare=False)
    # The headers that name it on every answer (x-dizuo-deployment, x-dizuo-region), made once.
    headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.headers = (
            (b"x-dizuo-deployment", self.config.name.encode()),
            (b"x-dizuo-region", self.config.region.encode()),
        )

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def alias(self) -> str:
        return self.config.model

    @property
    def mode(self) -> str:
        return self.config.mode


def local_deployments() -> list[DeploymentConfig]:
    """Return the embedded models' deployments (chat and embeddings, in-process)."""
    common = {"provider": "local", "region": "local", "cloud": "local", "data_class_max": "core"}
    return [
        # SmolLM2-135M's Chinese is unusable (DESIGN §6): it loops and invents clauses.
        DeploymentConfig(
            name="local-chat", model=LOCAL_CHAT, mode="chat", accelerator="cpu", languages=["en"], **common
        ),
        DeploymentConfig(
            name="local-embedding", model=LOCAL_EMBEDDING, mode="embedding", accelerator="cpu", **common
        ),
    ]


def _build(
    dep: DeploymentConfig, index: int, settings: Settings, transport: Transport, source: str
) -> Deployment:
    where = f"{source}: deployments[{index}] ({dep.name}): "
    spec = registry.get(dep.provider, where)
    base_url = dep.base_url or spec.default_base_url
    if base_url is None and spec.name != "local":
        raise ConfigError(f"{where}base_url: the provider {spec.name!r} has no default base_url; set one")
    upstream_model = dep.upstream_model or dep.model
    endpoint = Endpoint(
        deployment=dep.name,
        base_url=base_url,
        api_key=resolve_secret(dep.api_key, where.rstrip(": ")),
        upstream_model=upstream_model,
        connect_timeout=dep.timeout.connect or settings.upstream_connect_timeout,
        read_timeout=dep.timeout.read or settings.upstream_read_timeout,
        options={"threads": settings.local_threads},
    )
    provider = spec.adapter_for(dep.mode)(endpoint, spec, transport)
    if dep.price is not None:
        return Deployment(dep, provider, dep.price.input, dep.price.output, "config")
    preset = spec.prices.get(upstream_model)
    if preset is not None:
        return Deployment(dep, provider, preset[0], preset[1], f"preset {spec.prices_as_of}")
    if spec.name == "local":
        return Deployment(dep, provider, Decimal(0), Decimal(0), "local")
    return Deployment(dep, provider, None, None, "none")


def build_deployments(
    config: PlatformConfig, settings: Settings, transport: Transport, source: str = "config"
) -> list[Deployment]:
    """Join each configured deployment (and the embedded ones, unless ``local: false``) with its adapter."""
    return [_build(dep, index, settings, transport, source) for index, dep in enumerate(served(config))]


def served(config: PlatformConfig) -> list[DeploymentConfig]:
    """The deployments *config* serves: its own, then the embedded ones unless ``local: false``."""
    entries: Iterable[DeploymentConfig] = list(config.deployments)
    if config.local:
        taken = {dep.name for dep in config.deployments}
        entries = [*entries, *(dep for dep in local_deployments() if dep.name not in taken)]
    return list(entries)


BATCH_SHARE = Decimal("0.5")  # a batch line's price, of the interactive one, where none is configured


def free(dep: Deployment) -> Deployment:
    """*dep* at no cost: a batch line's call whose answer another call stored first."""
    return dataclasses.replace(dep, price_in=Decimal(0), price_out=Decimal(0), price_source="repeated")


def batch_priced(dep: Deployment) -> Deployment:
    """*dep* as the meter prices a batch's line: its ``batch_price``, else half its price."""
    if dep.batch_twin is None:
        dep.batch_twin = _batch_priced(dep)
    return dep.batch_twin


def _batch_priced(dep: Deployment) -> Deployment:
    price = dep.config.batch_price
    if price is not None:
        return dataclasses.replace(dep, price_in=price.input, price_out=price.output, price_source="batch")
    if dep.price_in is None or dep.price_out is None:
        return dep
    return dataclasses.replace(
        dep, price_in=dep.price_in * BATCH_SHARE, price_out=dep.price_out * BATCH_SHARE
    )
