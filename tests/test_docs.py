"""Docs that tests keep honest (STYLE habit 13): every setting, command, preset and error code."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from dizuo.cli import main
from dizuo.providers import registry
from dizuo.settings import Settings
from tests.support.catalogue import every_message

DOCS = Path(__file__).resolve().parent.parent / "docs"


def commands(group: click.Group, prefix: str = "dizuo") -> list[str]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.extend(commands(command, f"{prefix} {name}"))
        else:
            found.append(f"{prefix} {name}")
    return found


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"`DIZUO_{field.upper()}`" in (DOCS / "configuration.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", commands(main))
def test_every_command_is_documented(command: str) -> None:
    assert f"`{command}" in (DOCS / "cli.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", registry.names())
def test_every_provider_and_its_prices_are_documented(name: str) -> None:
    text = (DOCS / "providers.md").read_text(encoding="utf-8")
    assert f"| `{name}` |" in text
    for model, (price_in, price_out) in registry.get(name).prices.items():
        assert f"| `{model}` | {price_in} | {price_out} |" in text


@pytest.mark.parametrize("code", sorted(set(every_message()) - {"internal_error"}))
def test_every_error_code_is_documented(code: str) -> None:
    assert f"`{code}`" in (DOCS / "api.md").read_text(encoding="utf-8")


def admin_routes() -> list[str]:
    from dizuo.admin import create_admin_app
    from dizuo.agents.service import Agents
    from dizuo.evalbench.service import EvalService
    from dizuo.sandbox.service import Sandbox
    from dizuo.store import Database

    db = Database("sqlite://")
    sandbox = Sandbox.at(db, Path(".dizuo"))
    app = create_admin_app(
        db, evals=EvalService(db, Path(".")), agents=Agents(db, lambda: []), sandbox=sandbox
    )
    # The OpenAPI document lists every route, those of included routers too.
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/admin/v1/")
        for method in operations
    )


@pytest.mark.parametrize("route", admin_routes())
def test_every_admin_route_is_documented(route: str) -> None:
    assert f"`{route}" in (DOCS / "api.md").read_text(encoding="utf-8")


def console_routes() -> list[str]:
    from zoneinfo import ZoneInfo

    from dizuo.agents.service import Agents
    from dizuo.console import create_console_app
    from dizuo.evalbench.service import EvalService
    from dizuo.kb.service import KnowledgeBases
    from dizuo.store import Database

    db = Database("sqlite://")
    app = create_console_app(
        db,
        zone=ZoneInfo("Asia/Shanghai"),
        evals=EvalService(db, Path(".")),
        kbs=KnowledgeBases(db, embedding_model="local/use-multilingual-v3"),
        agents=Agents(db, lambda: []),
    )
    # The OpenAPI document lists every route, those of included routers too.
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    )


@pytest.mark.parametrize("route", console_routes())
def test_every_console_page_is_documented(route: str) -> None:
    assert f"`{route}`" in (DOCS / "console.md").read_text(encoding="utf-8")
