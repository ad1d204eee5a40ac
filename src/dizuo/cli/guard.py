"""``dizuo guard``: scan text for personal information and secrets from the command line."""

from __future__ import annotations

import sys
from typing import IO

import click
import orjson

from dizuo.cli.common import fail

__all__ = ["guard"]


@click.group()
def guard() -> None:
    """Data-risk guard: find personal information and secrets (数据风险监测)."""


@guard.command()
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--json", "as_json", is_flag=True, help="Write one JSON document per input line.")
@click.option(
    "--keyword", "keywords", multiple=True, help="Also report this word (type KEYWORD); repeatable."
)
@click.option(
    "--pattern", "patterns", multiple=True, help="Also report this regular expression (type CUSTOM)."
)
def scan(source: IO[bytes], as_json: bool, keywords: tuple[str, ...], patterns: tuple[str, ...]) -> None:
    """Scan JSON Lines with a ``text`` field (FILE, or standard input with - or nothing).

    With --json each line gets ``{"entities": [{"type", "start", "end", "value"}]}``, offsets in
    characters; otherwise one readable line per entity. A line that is not JSON with a string
    ``text`` stops the scan with its line number (exit 2).
    """
    from dizuo.guard import Scanner

    try:
        scanner = Scanner(keywords=keywords, patterns=patterns)
    except ValueError as exc:
        fail(f"--pattern 不是有效的正则表达式 / --pattern is not a valid regular expression: {exc}")
    out = sys.stdout.buffer
    for number, raw in enumerate(source, start=1):
        if not raw.strip():
            continue
        try:
            text = orjson.loads(raw)["text"]
            if not isinstance(text, str):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            fail(
                f"第 {number} 行不是含字符串 text 字段的 JSON / line {number} is not JSON with a string "
                f"'text' field"
            )
        entities = scanner.scan(text)
        if as_json:
            out.write(orjson.dumps({"entities": [e.as_dict() for e in entities]}) + b"\n")
        else:
            for e in entities:
                out.write(f"{number}\t{e.type}\t{e.start}-{e.end}\t{e.value}\n".encode())
    out.flush()


def add_admin_commands(admin: click.Group) -> None:
    """``dizuo admin guard-policy`` and ``dizuo admin guard-events``."""

    @admin.command("guard-policy")
    @click.option("--org", required=True, help="Organization name.")
    @click.option("--key", default=None, help="A key's id or visible prefix: set that key's policy instead.")
    @click.option("--action", type=click.Choice(["off", "log", "redact", "block"]), default=None)
    @click.option("--types", default=None, help="Comma-separated entity types acted on (default: all).")
    @click.option("--redact", type=click.Choice(["mask", "placeholder"]), default=None)
    @click.option("--direction", "directions", multiple=True, type=click.Choice(["prompt", "answer"]))
    @click.option("--raise-class", type=click.Choice(["general", "important", "core"]), default=None)
    @click.option("--keyword", "keywords", multiple=True, help="Report this word as KEYWORD; repeatable.")
    @click.option(
        "--pattern", "patterns", multiple=True, help="Report this expression as CUSTOM; repeatable."
    )
    @click.option("--clear", is_flag=True, help="Remove the policy (fall back to the next one).")
    def guard_policy_command(
        org: str,
        key: str | None,
        action: str | None,
        types: str | None,
        redact: str | None,
        directions: tuple[str, ...],
        raise_class: str | None,
        keywords: tuple[str, ...],
        patterns: tuple[str, ...],
        clear: bool,
    ) -> None:
        """Set an organization's (or one key's) data-risk guard policy; prints it as JSON.
        Workers apply it within a second."""
        from dizuo.accounts.service import set_guard_policy
        from dizuo.cli.common import database, reported, split

        policy: dict[str, object] | None = None
        if not clear:
            if action is None:
                fail("需要 --action 或 --clear / give --action or --clear")
            policy = {"action": action, "keywords": list(keywords), "patterns": list(patterns)}
            if types:
                policy["types"] = split(types)
            if redact:
                policy["redact"] = redact
            if directions:
                policy["directions"] = list(directions)
            if raise_class:
                policy["raise_class"] = raise_class
        with reported(), database() as db:
            stored = set_guard_policy(db, org, policy, key=key)
        click.echo(orjson.dumps(stored, option=orjson.OPT_INDENT_2).decode())

    @admin.command("guard-events")
    @click.option("--org", default=None, help="Organization name (default: all).")
    @click.option("--since", default=None, help="YYYY-MM-DD or ISO 8601.")
    @click.option("--until", default=None, help="YYYY-MM-DD (through that day) or ISO 8601, exclusive.")
    @click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="One JSON document (a list, newest first).")
    def guard_events_command(
        org: str | None, since: str | None, until: str | None, limit: int, as_json: bool
    ) -> None:
        """The guard's audit events, newest first (counts per type; never the values)."""
        from dizuo.accounts import get_org
        from dizuo.cli.common import database, parse_period, reported
        from dizuo.guard.events import list_events

        start, end = parse_period(since, until)
        with reported(), database() as db:
            org_id = get_org(db, org).id if org else None
            events = list_events(db, org_id=org_id, since=start, until=end, limit=limit)
        if as_json:
            click.echo(orjson.dumps(events, option=orjson.OPT_INDENT_2).decode())
            return
        for event in events:
            counts = ", ".join(f"{kind}×{n}" for kind, n in sorted(event["counts"].items()))
            click.echo(
                f"{event['created_at']}\t{event['org_id']}\t{event['direction']}\t{event['action']}\t"
                f"{counts}\t{event['request_id'] or '-'}"
            )
