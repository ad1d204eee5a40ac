"""Building the platform: settings → database → keys → deployments → the ASGI app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dizuo.accounts import KeyCache, ensure_default_org
from dizuo.billing import Meter
from dizuo.config import load_config
from dizuo.errors import ConfigError
from dizuo.gateway import Gateway
from dizuo.providers import Transport
from dizuo.routing import Router, build_deployments
from dizuo.settings import Settings
from dizuo.store import Database

__all__ = ["app_from_environment", "create_app", "load_settings", "prepare"]


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the config file's ``server:`` section, then ``DIZUO_*`` variables."""
    values: dict[str, Any] = {}
    if config is not None:
        values.update(load_config(config).server)
    values.update({name: value for name, value in overrides.items() if value is not None})
    if config is not None:
        values["config"] = config
    try:
        return Settings(**values)
    except ValidationError as exc:
        source = f"{config}: server" if config is not None else "settings"
        problems = "\n".join(f"{source}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(problems) from exc


def prepare(settings: Settings) -> str | None:
    """Migrate the database and create the ``default`` organization on first start.

    Return the first API key when one was just created (to be shown once), else None.
    """
    db = Database(settings.resolved_database_url)
    try:
        db.upgrade()
        _, key = ensure_default_org(db)
    finally:
        db.dispose()
    return key


def create_app(settings: Settings) -> Gateway:
    """Return the platform's ASGI app for *settings* (the database must be prepared)."""
    config = load_config(settings.config)
    db = Database(settings.resolved_database_url)
    transport = Transport()
    deployments = build_deployments(config, settings, transport, source=str(settings.config or "config"))
    return Gateway(settings, KeyCache(db), Router(deployments), transport, Meter(db))


def app_from_environment() -> Gateway:
    """Build the app from ``DIZUO_*`` variables: the factory each ``dizuo serve`` worker runs."""
    return create_app(load_settings(Settings().config))
