"""The one typed ``Settings`` object: ``DIZUO_*`` environment variables over the config file's
``server:`` section over defaults. Built by the CLI (or a test) and passed to ``create_app``;
never created at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dizuo.store.resp import Multiplexed

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Process-wide settings; every field is documented in docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="DIZUO_", extra="forbid", frozen=True)

    data_dir: Path = Field(Path(".dizuo"), description="Where the embedded SQLite database lives.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite under data_dir. PostgreSQL: postgresql+psycopg://…"
    )
    config: Path | None = Field(None, description="YAML file with deployments (see docs/configuration.md).")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=1)
    language: Literal["zh", "en"] = Field(
        "zh", description="Language of error messages when the client sends no Accept-Language."
    )
    timezone: str = Field(
        "Asia/Shanghai", description="Time zone of the console's dates and of its hourly and daily charts."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

    max_body_bytes: int = Field(
        8 * 1024 * 1024, gt=0, le=2**31, description="Larger request bodies to /v1 get 413."
    )
    control_max_body_bytes: int = Field(
        4 * 1024 * 1024,
        gt=0,
        le=2**31,
        description="Larger request bodies to /admin and /console get 413, before sign-in is checked.",
    )
    upstream_connect_timeout: float = Field(10.0, gt=0, description="Seconds to open an upstream connection.")
    upstream_read_timeout: float = Field(
        300.0, gt=0, description="Seconds an upstream may stay silent (before the body, or between chunks)."
    )
    max_attempts: int = Field(
        2, ge=1, description="Deployments tried per request on errors that happen before the first byte."
    )
    circuit_failure_threshold: int = Field(
        5, ge=1, description="Failures in a row before a deployment's circuit opens and it is skipped."
    )
    circuit_cooldown_seconds: float = Field(
        30.0, gt=0, description="Seconds an open circuit waits before one probe call is let through."
    )
    key_refresh_seconds: float = Field(
        1.0, gt=0, description="How often each worker reloads changed API keys (revocation delay)."
    )
    metering: bool = Field(
        True,
        description="Hold, charge and record every call. Off only for unbilled private installs and benchmarks.",
    )
    redis_url: str | None = Field(
        None,
        description=(
            "Redis URL (redis://host:6379/0; rediss://host:6380/0?ssl_ca_certs=ca.pem over TLS; "
            "unix:///path/to/redis.sock?db=0 on the same host). Set it when several replicas share one "
            "database: holds and "
            "rate limits then live in Redis, so replicas share money and limits exactly."
        ),
    )

    @field_validator("redis_url")
    @classmethod
    def _usable_redis_url(cls, value: str | None) -> str | None:
        # What the hot path's connection cannot use is refused at start, not at the first call (and
        # without a traceback): an unknown scheme or ssl_* parameter, a TLS file that cannot be read.
        if value:
            Multiplexed(value.strip())
        return value.strip() if value else None

    hold_seconds: float = Field(
        900.0,
        gt=0,
        description=(
            "With Redis: seconds after which a hold or concurrency slot of a replica that crashed lapses. "
            "Longer than your longest call."
        ),
    )
    durability: Literal["process", "disk"] = Field(
        "process",
        description=(
            "When a usage record counts as durable, so that the answer may complete. process: once the "
            "database has committed it (a killed dizuo loses nothing; a crash of the database host may "
            "lose its last fraction of a second). disk: once the commit is flushed to disk (power-loss "
            "safe; each call waits for the flush: about +2.5 ms on PostgreSQL, see docs/benchmarks.md)."
        ),
    )
    usage_staging: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "Whether a call's usage record may become durable before its database commit, which then "
            "follows in the background within milliseconds. With Redis: in Redis, in the script that "
            "charges the wallet; auto when durability is process and Redis keeps an append-only file "
            "(appendonly yes), on always (a Redis that refuses CONFIG but persists). Without Redis, on "
            "a SQLite file: appended to a spool file beside the database; auto when durability is "
            "process, on always (each append then flushed to disk). off: never, every answer waits for "
            "the database's commit. See docs/billing.md."
        ),
    )
    local_threads: int = Field(1, ge=1, description="CPU threads for the embedded chat model.")
    kb_embedding_model: str = Field(
        "local/use-multilingual-v3",
        description="Embedding model alias new knowledge bases use (each one keeps the model it was made with).",
    )
    kb_chat_model: str = Field(
        "local/smollm2-135m-instruct",
        description="Chat model alias that answers `kb ask` when the request names none. Set a Chinese-capable one.",
    )
    kb_max_document_mb: int = Field(50, gt=0, description="Largest file a knowledge base accepts, in MB.")
    kb_parse_cpu_seconds: int = Field(
        30,
        gt=0,
        le=3600,
        description="CPU seconds one uploaded document may take to read (knowledge bases, the auditor); then 413.",
    )
    kb_parse_memory_mb: int = Field(
        1024,
        ge=256,
        le=65536,
        description="Memory (address space) the process reading one uploaded document may use, in MB; then 413.",
    )
    agent_mcp_idle_seconds: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="Seconds an agent's MCP connection (a stdio server's process) is kept unused before it is closed.",
    )
    sandbox_store: Literal["auto", "duckdb", "postgres"] = Field(
        "auto",
        description="Where the data sandbox keeps datasets' rows: DuckDB files under the data directory, or a "
        "schema of the platform's PostgreSQL (auto: PostgreSQL where the database is).",
    )
    sandbox_output_mb: int = Field(
        64,
        ge=1,
        le=4096,
        description="What one data-sandbox compute job may write out for its owner's review, in MB in all.",
    )
    sandbox_query_seconds: float = Field(
        10.0, gt=0, le=3600, description="Seconds one data-sandbox query may run; then it is stopped (400)."
    )
    sandbox_memory_mb: int = Field(
        1024, ge=64, le=262144, description="Memory one data-sandbox dataset's queries may use, in MB."
    )
    sandbox_max_rows: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Rows a data-sandbox row-level result may carry out (the rest: truncated).",
    )
    kb_parse_concurrency: int = Field(
        2, ge=1, le=64, description="Uploaded documents read at once (each in its own child process)."
    )
    secure_cookies: bool | None = Field(
        None,
        description=(
            "Mark the console's session cookie Secure (sent over HTTPS only) whatever the request's "
            "scheme: set it behind a proxy that ends TLS. Unset: on unless the server listens on loopback."
        ),
    )
    signing_key: SecretStr | None = Field(
        None,
        description=(
            "The key that signs the audit trail's checkpoints. Unset: a random one kept in "
            "data_dir/signing.key. Set the same value on every replica."
        ),
    )
    retain_failed_calls_days: int = Field(
        365,
        ge=180,
        description=(
            "Days the record of each failed call is kept (at least 180: logs of a network service are "
            "kept six months). Their hourly sums are kept; usage records and the ledger always are."
        ),
    )
    retain_guard_events_days: int = Field(
        365, ge=180, description="Days the guard's detection events are kept (at least 180)."
    )
    retain_audit_days: int = Field(
        1095,
        ge=180,
        description=(
            "Days audit records are kept (at least 180); removed up to a signed checkpoint, which "
            "the rest of the chain is checked from."
        ),
    )
    aigc_label: Literal["implicit", "explicit", "off"] = Field(
        "implicit",
        description=(
            "How chat answers are labeled as AI-generated (GB 45438-2025): implicit (a signed label "
            "in the answer's metadata), explicit (a visible notice in the text too), or off (for "
            "measurement only). Organizations and keys may ask for explicit."
        ),
    )
    aigc_provider: str = Field(
        "dizuo",
        min_length=1,
        max_length=128,
        description=(
            "The service provider's name or code in labels (ContentProducer / ContentPropagator): "
            "the operator's name or unified social credit code."
        ),
    )
    aigc_notice: str = Field(
        "本内容由人工智能生成",
        min_length=1,
        max_length=200,
        description="The explicit notice put in labeled text (answers, exported files).",
    )
    aigc_notice_position: Literal["start", "end"] = Field(
        "end", description="Where the explicit notice goes in an answer: at its start or its end."
    )
    embedded_ray: str | None = Field(
        None,
        description=(
            "The Ray Jobs API address (http://127.0.0.1:PORT) of the head that pools with ray: embedded "
            "use. dizuo serve starts a head and sets it when a pool asks for one; set it to use a head "
            "started another way."
        ),
    )
    embedded_ray_token: str | None = Field(
        None,
        description=(
            "The authentication token of the embedded Ray head (Ray's RAY_AUTH_MODE=token). dizuo serve "
            "makes a fresh one for the head it starts and sets it for its workers."
        ),
    )
    public_url: str | None = Field(
        None,
        description=(
            "This platform's /v1 URL as compute pools reach it (evaluation jobs call models through "
            "it); default: the server's own address, enough for the embedded pool."
        ),
    )
    compute_max_working_dir_mb: int = Field(
        20, gt=0, le=500, description="Largest zipped working directory a script job may send, in MiB."
    )
    files_max_mb: int = Field(200, gt=0, description="Largest file the Files API accepts, in MB.")
    batch_max_line_mb: int = Field(
        100, gt=0, description="Largest request (one JSON line) a batch's input file may hold, in MB."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: an operator's DIZUO_* variable beats the config file's server: section.
        return env_settings, init_settings

    @property
    def cookies_secure(self) -> bool:
        """Whether session cookies are marked Secure: as set, else whenever the server is reachable
        from other hosts (a browser reaching it over plain http then gets no session, not a leak)."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.host not in ("127.0.0.1", "localhost", "::1")

    @property
    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'dizuo.db').resolve()}"
