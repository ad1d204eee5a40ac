"""``dizuo admin`` commands that give and take back members' credentials: admin tokens (with an
optional expiry), disabling and enabling members, passwords, signing out everywhere, and the
account events that record each change. The shell acts as the operator (``cli`` in the events)."""

from __future__ import annotations

import datetime as dt
import re

import click
import orjson

from dizuo.cli.common import database, fail, parse_date, reported

__all__ = ["register"]

_LIFETIME = re.compile(r"(\d+(?:\.\d+)?)\s*([dh])")


def _expiry(value: str | None) -> dt.datetime | None:
    """``30d``, ``12h``, or a date (valid through that whole day in the platform's time zone)."""
    if value is None:
        return None
    found = _LIFETIME.fullmatch(value.strip())
    if found:
        from dizuo.accounts.lifecycle import expiry  # the API's bound on a lifetime too (0-3650 days)

        amount, unit = float(found.group(1)), found.group(2)
        with reported():
            return expiry(amount if unit == "d" else amount / 24)
    moment = parse_date(value, "--expires", end_of_day=True)
    assert moment is not None
    if moment <= dt.datetime.now(dt.UTC):
        fail(f"--expires {value!r} 已经过去 / is in the past")
    return moment


@click.command("create-token")
@click.option("--username", required=True)
@click.option(
    "--expires", default=None, help="Lifetime (30d, 12h) or last valid day (2027-03-31); default: none."
)
def create_token_command(username: str, expires: str | None) -> None:
    """Create an admin API token acting as a member; prints only the token."""
    from dizuo.accounts.members import create_token

    expires_at = _expiry(expires)
    with reported(), database() as db:
        click.echo(create_token(db, username, expires_at))


@click.command("tokens")
@click.option("--username", required=True)
def tokens_command(username: str) -> None:
    """List a member's admin tokens (id, prefix, created, expires, revoked) as JSON."""
    from dizuo.accounts.lifecycle import list_tokens

    with reported(), database() as db:
        click.echo(orjson.dumps(list_tokens(db, username), option=orjson.OPT_INDENT_2).decode())


@click.command("revoke-token")
@click.argument("token")
def revoke_token_command(token: str) -> None:
    """Revoke an admin token by its id or prefix (dzt-xxxxxx); refused at once everywhere."""
    from dizuo.accounts.lifecycle import revoke_token

    with reported(), database() as db:
        click.echo(orjson.dumps(revoke_token(db, token)).decode())


@click.command("disable-user")
@click.option("--username", required=True)
def disable_user_command(username: str) -> None:
    """Disable a member: its tokens and console sessions are refused at once, the sessions end."""
    from dizuo.accounts.lifecycle import set_disabled

    with reported(), database() as db:
        click.echo(orjson.dumps(set_disabled(db, username, True)).decode())


@click.command("enable-user")
@click.option("--username", required=True)
def enable_user_command(username: str) -> None:
    """Enable a disabled member again (its tokens that were not revoked work again)."""
    from dizuo.accounts.lifecycle import set_disabled

    with reported(), database() as db:
        click.echo(orjson.dumps(set_disabled(db, username, False)).decode())


@click.command("set-password")
@click.option("--username", required=True)
@click.option("--password", default=None, help="Asked for (hidden) when left out.")
def set_password_command(username: str, password: str | None) -> None:
    """Set a member's password; every console session of that member ends."""
    from dizuo.accounts.lifecycle import set_password

    if password is None:
        password = click.prompt("新密码 / new password", hide_input=True, confirmation_prompt=True)
    with reported(), database() as db:
        click.echo(orjson.dumps(set_password(db, username, password)).decode())


@click.command("sign-out-everywhere")
@click.option("--username", required=True)
def sign_out_everywhere_command(username: str) -> None:
    """End every console session of a member and revoke all its admin tokens."""
    from dizuo.accounts.lifecycle import sign_out_everywhere

    with reported(), database() as db:
        click.echo(orjson.dumps(sign_out_everywhere(db, username)).decode())


@click.command("account-events")
@click.option("--org", default=None, help="Only the members of this organization.")
@click.option("--username", default=None, help="Only this member.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
def account_events_command(org: str | None, username: str | None, limit: int) -> None:
    """Who changed which member's credentials or access, newest first, as JSON."""
    from dizuo.accounts import get_org
    from dizuo.accounts.events import account_events

    with reported(), database() as db:
        org_id = get_org(db, org).id if org else None
        events = account_events(db, org_id=org_id, member=username, limit=limit)
        click.echo(orjson.dumps(events, option=orjson.OPT_INDENT_2).decode())


@click.command("sign-in-locks")
def sign_in_locks_command() -> None:
    """Usernames and client addresses locked after failed sign-ins, as JSON."""
    from dizuo.accounts.throttle import locked

    with reported(), database() as db:
        click.echo(orjson.dumps(locked(db), option=orjson.OPT_INDENT_2).decode())


def register(group: click.Group) -> None:
    """Add the credential commands to *group* (``dizuo admin``)."""
    for command in (
        create_token_command,
        tokens_command,
        revoke_token_command,
        disable_user_command,
        enable_user_command,
        set_password_command,
        sign_out_everywhere_command,
        account_events_command,
        sign_in_locks_command,
    ):
        group.add_command(command)
