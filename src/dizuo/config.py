"""The YAML configuration contract: deployments, compute pools, the embedded local models, server
settings.

Errors name the file, the entry and the field, e.g.::

    dizuo.yaml: deployments[1] (deepseek-cq): price.input: Input should be greater than or equal to 0
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import re2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dizuo.errors import ConfigError

# Rate limits and concurrency are stored in 32-bit integer columns: 10^20 gave a 500 (OverflowError).
MAX_LIMIT = 2_000_000_000

__all__ = [
    "DATA_CLASSES",
    "DeploymentConfig",
    "Limits",
    "PlatformConfig",
    "PoolConfig",
    "PoolPrice",
    "Price",
    "Timeouts",
    "load_config",
    "resolve_secret",
]

DataClass = Literal["general", "important", "core"]
# 一般 / 重要 / 核心 under the Data Security Law, in increasing order of protection.
DATA_CLASSES: tuple[str, ...] = ("general", "important", "core")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """CNY per million tokens. Decimal, never float: money is exact."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)


class Limits(_Strict):
    rpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    tpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    concurrency: int | None = Field(None, gt=0, le=MAX_LIMIT)


class Timeouts(_Strict):
    connect: float | None = Field(None, gt=0)
    read: float | None = Field(None, gt=0)


class Filing(_Strict):
    """A generative AI service's filing (生成式人工智能服务备案) with the authority that holds it."""

    number: str = Field(
        min_length=1, max_length=64, description="The filing number, as the authority wrote it."
    )
    body: str = Field(
        min_length=1,
        max_length=128,
        description="Who holds the filing, e.g. 国家互联网信息办公室 or a province's.",
    )


class DeploymentConfig(_Strict):
    """One place a model runs (DESIGN §5): provider + endpoint + region + price + clearance."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$", max_length=128)
    model: str = Field(min_length=1, max_length=256, description="The alias clients send.")
    provider: str = Field(min_length=1)
    mode: Literal["chat", "embedding"] = "chat"
    base_url: str | None = None
    api_key: str | None = Field(None, description="A literal key, or env:VARIABLE to read it at start.")
    upstream_model: str | None = None
    region: str = Field("default", min_length=1, max_length=64)
    cloud: Literal["public", "private", "local"] = "public"
    accelerator: str | None = None
    data_class_max: DataClass = "general"
    core_cross_region: bool = Field(False, description="Allow core data from organizations in other regions.")
    price: Price | None = None
    batch_price: Price | None = Field(
        None,
        description="Its price for the lines of a batch (CNY per million tokens); default half of price.",
    )
    filing: Filing | None = Field(
        None,
        description="The model's service filing; organizations serving the public use filed deployments only.",
    )
    limits: Limits = Limits()
    weight: int = Field(1, ge=0)
    priority: int = Field(0, ge=0, description="0 is tried first; higher numbers are fallbacks.")
    languages: list[Literal["zh", "en"]] | None = Field(
        None,
        description=(
            "Languages the chat model writes well; unset: any. A knowledge base asked in another "
            "language answers with the passages themselves instead of the model's text."
        ),
    )
    timeout: Timeouts = Timeouts()
    probe_seconds: float | None = Field(
        None, gt=0, description="Actively probe the deployment this often (GET …/models); off by default."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class PoolPrice(_Strict):
    """CNY per hour of each resource a compute job holds. Decimal, never float: money is exact."""

    accelerator_hour: Decimal = Field(Decimal(0), ge=0, le=100_000)
    cpu_hour: Decimal = Field(Decimal(0), ge=0, le=100_000)
    memory_gb_hour: Decimal = Field(Decimal(0), ge=0, le=100_000)


class PoolResources(_Strict):
    accelerator_resource: str = Field(
        "GPU",
        min_length=1,
        max_length=64,
        description="The Ray resource that counts the pool's accelerators.",
    )


class PoolConfig(_Strict):
    """A pool of compute (DESIGN §5): a Ray cluster in a region, its accelerators, prices and clearance."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", max_length=64)
    region: str = Field("default", min_length=1, max_length=64)
    ray: str = Field(
        "embedded", description="embedded, or the Ray Jobs API of a cluster: http(s)://head:8265"
    )
    accelerator: str | None = Field(
        None, min_length=1, max_length=64, description="The accelerators' type name (ascend-910b, a100 …)."
    )
    resources: PoolResources = PoolResources()
    price: PoolPrice = PoolPrice()
    data_class_max: DataClass = "general"
    max_job_hours: float = Field(24, gt=0, le=24 * 31)
    start_timeout_seconds: float = Field(
        600, gt=0, le=86_400, description="A job not started by then is placed again on another pool."
    )
    python: str = Field(
        "python",
        min_length=1,
        max_length=256,
        description=(
            "The Python on the cluster's nodes that has dizuo installed: evaluation jobs run the bench "
            "with it (the embedded pool uses the server's own)."
        ),
    )
    token: str | None = Field(
        None,
        description=(
            "The cluster's Ray authentication token (RAY_AUTH_MODE=token), literal or env:VARIABLE; "
            "sent as Authorization: Bearer. The embedded head makes its own."
        ),
    )

    @field_validator("ray")
    @classmethod
    def _ray(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("http://", "https://")):
            raise ValueError("must be embedded or an http(s):// address of a Ray Jobs API")
        return value.rstrip("/")


GuardAction = Literal["off", "log", "redact", "block"]
Direction = Literal["prompt", "answer"]
AlertAction = Literal["log", "redact", "block"]
ALERTED: tuple[AlertAction, ...] = ("block",)
DIRECTIONS: tuple[Direction, ...] = ("prompt", "answer")


class GuardPolicy(_Strict):
    """What the data-risk guard does with what it finds (docs/guard.md#policies)."""

    action: GuardAction = "log"
    types: list[str] | None = Field(None, description="Entity types acted on; all when unset.")
    redact: Literal["mask", "placeholder"] = Field(
        "mask", description="mask: [CN_MOBILE]; placeholder: <CN_MOBILE_1>, restored in the answer."
    )
    directions: list[Direction] = Field(default_factory=lambda: list(DIRECTIONS))
    raise_class: DataClass | None = Field(
        None, description="A prompt with personal information is routed as at least this data class."
    )
    keywords: list[str] = Field(default_factory=list, description="Words reported as KEYWORD.")
    patterns: list[str] = Field(default_factory=list, description="Regular expressions reported as CUSTOM.")

    @field_validator("action", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            custom_pattern(pattern)
        return value


def custom_pattern(pattern: str) -> Any:
    """Compile an organization's guard expression with RE2, which runs in time linear in the text.

    Python's backtracking engine took 7.9 s on 26 a's against ``(a+)+$``, stalling every tenant's
    calls; RE2 has no backtracking, so it refuses what needs it (backreferences, lookaround) instead.
    Raise ValueError naming the construct RE2 cannot compile.
    """
    options = re2.Options()
    options.log_errors = False  # the error is raised to the caller, not printed to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"{pattern!r} is not a regular expression RE2 accepts ({reason}); RE2 runs in linear time, "
            "so backreferences (\\1) and lookaround ((?=…), (?<=…)) are not available"
        ) from None


class GuardConfig(_Strict):
    default: GuardPolicy = Field(default_factory=GuardPolicy, description="The platform's policy.")
    classes: dict[DataClass, GuardPolicy] = Field(
        default_factory=dict, description="Policies for requests of a data class (beat the default)."
    )
    webhook: str | None = Field(None, description="POST audit events here as JSON (alerts).")
    webhook_actions: list[AlertAction] = Field(
        default_factory=lambda: list(ALERTED), description="Which events go to the webhook."
    )

    @field_validator("webhook")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class PlatformConfig(_Strict):
    local: bool = Field(True, description="Serve the embedded local/ models in-process.")
    server: dict[str, Any] = Field(default_factory=dict, description="Settings fields; DIZUO_* wins.")
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    routing: dict[
        str, Literal["priority", "weighted", "least-inflight", "latency", "cost", "local-first"]
    ] = Field(default_factory=dict, description="Strategy per model alias (default priority).")
    guard: GuardConfig = Field(default_factory=GuardConfig)
    pools: list[PoolConfig] = Field(
        default_factory=list, description="Compute pools for jobs (Ray clusters)."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> PlatformConfig:
        named: tuple[tuple[str, list[str]], ...] = (
            ("deployments", [dep.name for dep in self.deployments]),
            ("pools", [pool.name for pool in self.pools]),
        )
        for kind, names in named:
            seen: set[str] = set()
            for index, name in enumerate(names):
                if name in seen:
                    raise ValueError(f"{kind}[{index}]: the name {name!r} is used twice")
                seen.add(name)
        aliases = {dep.model for dep in self.deployments}
        for alias in self.routing:
            if alias not in aliases:
                raise ValueError(f"routing: {alias!r} is not the model of any deployment")
        return self


def _describe(errors: list[Any], raw: Any, source: str) -> str:
    lines = []
    for err in errors:
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] in ("deployments", "pools") and isinstance(loc[1], int):
            kind, index = loc[0], loc[1]
            name = None
            entries = raw.get(kind) if isinstance(raw, dict) else None
            if isinstance(entries, list) and index < len(entries):
                entry = entries[index]
                name = entry.get("name") if isinstance(entry, dict) else None
            where = f"{kind}[{index}]" + (f" ({name})" if name else "") + ": "
            loc = loc[2:]
        field = ".".join(str(part) for part in loc) or "(entry)"
        lines.append(f"{source}: {where}{field}: {err['msg']}")
    return "\n".join(lines)


def parse_config(raw: Any, source: str) -> PlatformConfig:
    """Validate an already-loaded YAML document; errors name *source*, entry and field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with keys local, server, deployments")
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors(), raw, source)) from exc


def load_config(path: Path | None) -> PlatformConfig:
    """Read and validate the YAML config file at *path* (an empty config when None)."""
    if path is None:
        return PlatformConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(raw, str(path))


def resolve_secret(value: str | None, where: str, field: str = "api_key") -> str | None:
    """Return the secret *value*, reading ``env:NAME`` from the environment; *where* names the entry
    and *field* its field."""
    if value is None or not value.startswith("env:"):
        return value
    name = value[4:]
    secret = os.environ.get(name)
    if not secret:
        raise ConfigError(f"{where}: {field}: the environment variable {name} is not set")
    return secret
