"""``dizuo admin …``: organizations and keys (money commands live in :mod:`dizuo.cli.money`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from dizuo.accounts.members import ROLES
from dizuo.cli.common import database, fail, parse_date, reported, split
from dizuo.config import DATA_CLASSES, MAX_LIMIT

__all__ = ["admin"]

LIMITS = [
    click.option("--rpm", type=click.IntRange(1, MAX_LIMIT), default=None, help="Requests per minute."),
    click.option("--tpm", type=click.IntRange(1, MAX_LIMIT), default=None, help="Tokens per minute."),
    click.option(
        "--concurrency", type=click.IntRange(1, MAX_LIMIT), default=None, help="Calls in flight at once."
    ),
]


F = TypeVar("F", bound=Callable[..., Any])


def with_limits(command: F) -> F:
    """Add --rpm, --tpm and --concurrency to a command."""
    for option in reversed(LIMITS):
        command = option(command)
    return command


@click.group()
def admin() -> None:
    """Administer organizations, keys and money (uses DIZUO_DATA_DIR / DIZUO_DATABASE_URL)."""


@admin.command("create-org")
@click.argument("name")
@click.option("--uscc", default=None, help="统一社会信用代码 (18 characters, checked).")
@click.option("--industry", default=None)
@click.option("--district", default=None)
@click.option("--region", default=None, help="Region code its core data must stay in (as in deployments).")
@click.option("--size", type=click.Choice(["small", "medium", "large"]), default=None)
@click.option("--data-class", type=click.Choice(DATA_CLASSES), default="general", show_default=True)
@click.option(
    "--serves-public", is_flag=True, help="It offers generated content to the public: filed models only."
)
@with_limits
def create_org_command(
    name: str,
    uscc: str | None,
    industry: str | None,
    district: str | None,
    region: str | None,
    size: str | None,
    data_class: str,
    serves_public: bool,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
) -> None:
    """Create an organization; prints its id."""
    from dizuo.accounts import create_org

    with reported(), database() as db:
        org = create_org(
            db,
            name,
            data_class,
            uscc_code=uscc,
            industry=industry,
            district=district,
            size=size,
            limits=(rpm, tpm, concurrency),
            region=region,
            serves_public=serves_public,
        )
    click.echo(org.id)


@admin.command("set-org")
@click.argument("name")
@click.option(
    "--serves-public/--private-use",
    default=None,
    help="Whether it offers generated content to the public (then its calls go to filed models only).",
)
@click.option(
    "--label",
    type=click.Choice(["explicit", "implicit", "default"]),
    default=None,
    help="How its answers are labeled as AI-generated: explicit adds a visible notice to the text.",
)
def set_org_command(name: str, serves_public: bool | None, label: str | None) -> None:
    """Change an organization: whether it serves the public, how its answers are labeled. Workers
    apply it within a second."""
    from dizuo.accounts.service import change_org

    if serves_public is None and label is None:
        raise click.UsageError("nothing to change: give --serves-public/--private-use or --label")
    with reported(), database() as db:
        org = change_org(db, name, serves_public=serves_public, label=label)
    click.echo(f"{org.name}: serves_public={str(org.serves_public).lower()} label={org.label or 'default'}")


@admin.command("allow-scripts")
@click.option("--org", required=True, help="Organization name.")
@click.option("--off", is_flag=True, help="Take the permission back.")
def allow_scripts_command(org: str, off: bool) -> None:
    """Allow an organization to run its own code on the compute pools (script jobs), or (--off) stop
    allowing it. Off by default. Jobs already submitted run on."""
    from dizuo.accounts.service import change_org

    with reported(), database() as db:
        changed = change_org(db, org, allow_scripts=not off)
    click.echo(f"{changed.name}: allow_scripts={str(changed.allow_scripts).lower()}")


@admin.command("create-key")
@click.option("--org", required=True, help="Organization name.")
@click.option("--name", default=None, help="A label for the key.")
@click.option("--models", default=None, help="Comma-separated model aliases this key may use (default: all).")
@click.option(
    "--scopes",
    default=None,
    help="Comma-separated: models, kb:read, kb:write, apps, compute (default: all).",
)
@click.option("--data-class", type=click.Choice(DATA_CLASSES), default=None)
@click.option(
    "--label",
    type=click.Choice(["explicit", "implicit"]),
    default=None,
    help="How its answers are labeled as AI-generated (default: its organization's way).",
)
@click.option(
    "--expires",
    default=None,
    help="Expiry date, YYYY-MM-DD (through that day in DIZUO_TIMEZONE) or ISO 8601.",
)
@with_limits
def create_key_command(
    org: str,
    name: str | None,
    models: str | None,
    scopes: str | None,
    data_class: str | None,
    label: str | None,
    expires: str | None,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
) -> None:
    """Create an API key; prints only the key (scripts depend on it)."""
    from dizuo.accounts import create_key

    expires_at = parse_date(expires, "--expires", end_of_day=True)
    with reported(), database() as db:
        created = create_key(
            db,
            org,
            name=name,
            models=split(models),
            scopes=split(scopes),
            data_class=data_class,
            expires_at=expires_at,
            limits=(rpm, tpm, concurrency),
            label=label,
        )
    click.echo(created.key)


@admin.command("revoke-key")
@click.argument("key_id_or_prefix")
def revoke_key_command(key_id_or_prefix: str) -> None:
    """Revoke a key by id or visible prefix; every worker drops it within a second."""
    from dizuo.accounts import revoke_key

    with reported(), database() as db:
        record = revoke_key(db, key_id_or_prefix)
    click.echo(record.id)


@admin.command("create-user")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--username", required=True)
@click.option("--password", default=None, help="Asked for (hidden) when left out.")
@click.option("--org", default=None, help="The organization, for org-admin and org-developer.")
@click.option("--issuer", default=None, help="The issuer's name, for voucher-issuer.")
def create_user_command(
    role: str, username: str, password: str | None, org: str | None, issuer: str | None
) -> None:
    """Create a member (console sign-in and admin tokens); prints its id."""
    from dizuo.accounts.members import create_member

    if password is None:
        password = click.prompt("密码 / password", hide_input=True, confirmation_prompt=True)
    with reported(), database() as db:
        member = create_member(db, username, password, role, org=org, issuer=issuer)
    click.echo(member.id)


@admin.group("deployments")
def deployments_group() -> None:
    """Run-time deployments (the YAML file's stay in the file); workers pick changes up within a second."""


def _catalog(db: Any) -> Any:
    from dizuo.config import load_config
    from dizuo.routing.catalog import Catalog
    from dizuo.settings import Settings

    return Catalog(db, load_config(Settings().config))


@deployments_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def deployments_list(as_json: bool) -> None:
    """List the deployments: the config file's, the run-time ones and the embedded local models."""
    import orjson

    from dizuo.routing.deployments import served

    with reported(), database() as db:
        entries = served(_catalog(db).effective())
    rows = [dep.model_dump(mode="json", exclude={"api_key"}, exclude_none=True) for dep in entries]
    if as_json:
        click.echo(orjson.dumps(rows).decode())
        return
    for row in rows:
        click.echo(
            f"{row['name']:<24} {row['model']:<28} {row['provider']:<18} {row['region']:<10} "
            f"{row['cloud']:<8} ≤{row['data_class_max']}"
        )


@deployments_group.command("add")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="YAML: one deployment entry, or a list of them.",
)
def deployments_add(path: str) -> None:
    """Add run-time deployments from a YAML file; prints their names."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    entries = loaded if isinstance(loaded, list) else [loaded]
    with reported(), database() as db:
        catalog = _catalog(db)
        for entry in entries:
            if not isinstance(entry, dict):
                fail(f"{path}: 每个部署必须是映射 / each deployment must be a mapping")
            click.echo(catalog.add(entry).name)


@deployments_group.command("update")
@click.argument("name")
@click.option(
    "--set",
    "pairs",
    multiple=True,
    required=True,
    metavar="FIELD=YAML",
    help="e.g. --set weight=3 --set 'limits={rpm: 100}'",
)
def deployments_update(name: str, pairs: tuple[str, ...]) -> None:
    """Change fields of a run-time deployment."""
    import yaml

    patch: dict[str, Any] = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep:
            fail(f"--set {pair!r} 应为 FIELD=VALUE / must be FIELD=VALUE")
        patch[field.strip()] = yaml.safe_load(value)
    with reported(), database() as db:
        click.echo(_catalog(db).update(name, patch).name)


@deployments_group.command("remove")
@click.argument("name")
def deployments_remove(name: str) -> None:
    """Remove a run-time deployment."""
    with reported(), database() as db:
        _catalog(db).remove(name)
    click.echo(name)


from dizuo.cli import compliance, members, money  # noqa: E402  (register their commands on this group)
from dizuo.cli.agent import add_admin_commands as add_tool_host_commands  # noqa: E402
from dizuo.cli.guard import add_admin_commands  # noqa: E402

add_admin_commands(admin)
add_tool_host_commands(admin)

money.register(admin)
members.register(admin)
compliance.register(admin)
