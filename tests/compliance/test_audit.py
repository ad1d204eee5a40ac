"""The audit trail: every administrative act is recorded with who took it, whichever way it came in
(the shell, the admin API, the console), and a record changed, removed or put out of order in the
database is found and named by ``dizuo audit verify``."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import openpyxl
import pytest
from sqlalchemy import func, select, text

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.accounts.service import ensure_default_org
from dizuo.billing.service import topup
from dizuo.compliance.audit import checkpoint, records, verify
from dizuo.compliance.retention import kept, run
from dizuo.settings import Settings
from dizuo.store import Database, utcnow
from dizuo.store.audit import GENESIS, AuditRecord, digest
from tests.console.test_forms import csrf_of
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest

KEY = "an operator's signing key, kept outside the database"
PASSWORD = "correct horse battery"


def _last_seq(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.coalesce(func.max(AuditRecord.seq), 0))) or 0)


async def test_every_act_is_recorded_with_who_took_it(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    db = platform.db
    start = _last_seq(db)
    operator = f"ops-{start}"
    create_member(db, operator, PASSWORD, "platform-admin")  # from the shell: "cli"
    token = create_token(db, operator)
    admin = platform.http()
    admin.headers["Authorization"] = f"Bearer {token}"
    org = f"审计-{start}"
    now = dt.datetime.now(dt.UTC)

    assert (await admin.post("/admin/v1/orgs", json={"name": org})).status_code == 201
    key = (await admin.post(f"/admin/v1/orgs/{org}/keys", json={"name": "ci"})).json()
    assert (await admin.post(f"/admin/v1/keys/{key['id']}/revoke")).status_code == 200
    assert (await admin.post(f"/admin/v1/orgs/{org}/topups", json={"amount": "12.50"})).status_code == 201
    voucher = await admin.post(
        f"/admin/v1/orgs/{org}/vouchers",
        json={
            "issuer": "市大数据局",
            "program": "2026 算力券",
            "amount": "100.00",
            "voucher_share": "0.3",
            "valid_from": now.isoformat(),
            "valid_to": (now + dt.timedelta(days=30)).isoformat(),
        },
    )
    voucher_id = voucher.json()["id"]
    assert (await admin.post(f"/admin/v1/vouchers/{voucher_id}/revoke")).status_code == 200
    policy = {"action": "redact", "types": ["CN_MOBILE"]}
    assert (await admin.put(f"/admin/v1/orgs/{org}/guard-policy", json=policy)).status_code == 200
    deployment = {
        "name": f"qwen-{start}",
        "model": "qwen-plus",
        "provider": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-upstream-never-in-the-trail",
        "price": {"input": "0.8", "output": "2"},
    }
    assert (await admin.post("/admin/v1/deployments", json=deployment)).status_code == 201
    assert (await admin.delete(f"/admin/v1/deployments/{deployment['name']}")).status_code == 204
    assert (await admin.get(f"/admin/v1/orgs/{org}/usage", params={"format": "csv"})).status_code == 200
    month = now.strftime("%Y-%m")
    assert (await admin.get(f"/admin/v1/orgs/{org}/statement", params={"month": month})).status_code == 200
    console = platform.http()
    for password in ("a wrong guess", PASSWORD):
        form = {
            "username": operator,
            "password": password,
            "csrf": csrf_of((await console.get("/console/login")).text),
        }
        await console.post("/console/login", data=form)

    trail = [row for row in records(db) if row["seq"] > start]
    assert [(row["actor"], row["action"], row["target"]) for row in trail] == [
        ("cli", "member.create", operator),
        ("cli", "member.create-token", operator),
        (operator, "org.create", org),
        (operator, "key.create", key["prefix"]),
        (operator, "key.revoke", key["prefix"]),
        (operator, "wallet.topup", org),
        (operator, "voucher.issue", voucher_id),
        (operator, "voucher.revoke", voucher_id),
        (operator, "guard.policy.set", org),
        (operator, "deployment.add", deployment["name"]),
        (operator, "deployment.remove", deployment["name"]),
        (operator, "export.usage", org),
        (operator, "export.statement", org),
        ("anonymous", "sign-in.failed", operator),
        (operator, "sign-in", operator),
    ]
    assert trail[5]["detail"]["amount"] == "12.500000"
    assert "sk-upstream" not in json.dumps(trail, ensure_ascii=False)  # an upstream's key is no record
    assert {row["org_id"] for row in trail[2:9] + trail[11:13]} == {key["org_id"]}
    assert trail[11]["detail"] == {"format": "csv"} and trail[12]["detail"] == {
        "month": month,
        "format": "json",
    }
    assert verify(db, KEY.encode()) == (trail[-1]["seq"], None)


def _acts(url: str, count: int) -> Database:
    """A database of its own with *count* recorded acts: the ``default`` organization every command
    makes at its first run, another organization and top-ups."""
    db = Database(url)
    db.upgrade()
    ensure_default_org(db, with_key=False)
    create_org(db, "船配")
    for _ in range(count - 2):
        topup(db, "船配", 1_000_000)
    return db


def _audit(url: str, *args: str) -> tuple[int, str]:
    result = dizuo("audit", *args, env={"DIZUO_DATABASE_URL": url, "DIZUO_SIGNING_KEY": KEY})
    return result.returncode, result.stdout + result.stderr


def _rewrite_from(db: Database, seq: int, target: str) -> None:
    """What someone with the database but not the key would do: change a record and recompute every
    hash after it, and the head, so that the chain holds together again."""
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_trail SET target = :t WHERE seq = :s"), {"t": target, "s": seq})
        rows = connection.execute(
            text("SELECT seq, at, actor, action, target, org_id, detail FROM audit_trail ORDER BY seq")
        ).all()
        prev = GENESIS
        for number, at, actor, action, what, org_id, detail in rows:
            moment = at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(at)
            detail = json.loads(detail) if isinstance(detail, str) else detail
            digested = digest(prev, number, moment, actor, action, what, org_id, detail)
            connection.execute(
                text("UPDATE audit_trail SET prev = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": digested, "s": number},
            )
            prev = digested
        connection.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})


def _swap(db: Database, first: int, second: int) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_trail SET seq = -1 WHERE seq = :a"), {"a": first})
        connection.execute(text("UPDATE audit_trail SET seq = :a WHERE seq = :b"), {"a": first, "b": second})
        connection.execute(text("UPDATE audit_trail SET seq = :b WHERE seq = -1"), {"b": second})


def _sql(statement: str) -> Callable[[Database], None]:
    def tamper(db: Database) -> None:
        with db.engine.begin() as connection:
            connection.execute(text(statement))

    return tamper


TAMPERING: dict[str, tuple[Callable[[Database], None], str]] = {
    "a record changed": (
        _sql("UPDATE audit_trail SET actor = 'someone else' WHERE seq = 4"),
        "record 4 was changed",
    ),
    "a record removed": (_sql("DELETE FROM audit_trail WHERE seq = 5"), "records 5 to 5 are missing"),
    "two records swapped": (lambda db: _swap(db, 3, 4), "record 3 does not follow"),
    "the last records removed": (
        _sql("DELETE FROM audit_trail WHERE seq >= 11"),
        "records after 10 were removed",
    ),
    "a record rewritten and the chain recomputed": (
        lambda db: _rewrite_from(db, 2, "另一家企业"),
        "the chain at record 6 differs from the checkpoint",
    ),
    "a checkpoint forged": (
        _sql("UPDATE audit_checkpoints SET signature = '" + "f" * 64 + "'"),
        "the checkpoint at record 6 has a bad signature",
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_verify_names_the_first_record_that_was_tampered_with(
    empty_database_url: str, tampering: str
) -> None:
    db = _acts(empty_database_url, 6)
    assert _audit(empty_database_url, "checkpoint")[0] == 0  # signs record 6; the signing is record 7
    for _ in range(5):
        topup(db, "船配", 1_000_000)  # records 8 to 12
    status, said = _audit(empty_database_url, "verify")
    assert status == 0 and "12 records" in said, said

    tamper, named = TAMPERING[tampering]
    tamper(db)
    status, said = _audit(empty_database_url, "verify")
    assert status == 1 and named in said, said
    db.dispose()


def test_retention_removes_old_records_up_to_a_checkpoint_and_the_rest_still_verifies(
    empty_database_url: str,
) -> None:
    db = _acts(empty_database_url, 6)
    key = KEY.encode()
    checkpoint(db, key)  # signs record 6; the signing is record 7
    for _ in range(3):
        topup(db, "船配", 1_000_000)  # records 8 to 10
    audit_only = [rule for rule in kept(Settings(retain_audit_days=180)) if rule.table == "audit_trail"]
    later = utcnow() + dt.timedelta(days=181)  # every record is past 180 days then

    (dry,) = run(db, audit_only, later, dry_run=True).pruned
    assert dry[1].rows == 6  # up to the checkpoint only: records 7 to 10 have none after them yet
    assert [row["seq"] for row in records(db)] == list(range(1, 11))
    run(db, audit_only, later, actor="cli")  # the removal is itself record 11
    assert [row["seq"] for row in records(db)] == list(range(7, 12))
    assert verify(db, key) == (5, None)  # the chain starts from the signed hash at record 6
    status, said = _audit(empty_database_url, "verify")
    assert status == 0 and "5 records" in said, said

    with db.engine.begin() as connection:  # the first kept record changed: named
        connection.execute(text("UPDATE audit_trail SET actor = 'someone else' WHERE seq = 7"))
    assert "record 7 was changed" in str(verify(db, key)[1])
    with db.engine.begin() as connection:  # and removed: nothing signed to start from
        connection.execute(text("DELETE FROM audit_trail WHERE seq = 7"))
    problem = verify(db, key)[1]
    assert problem is not None and "records 1 to 7 are missing with no valid signed checkpoint" in str(
        problem
    )
    db.dispose()


def test_appends_from_many_threads_make_one_unbroken_chain(empty_database_url: str) -> None:
    db = _acts(empty_database_url, 2)
    errors: list[BaseException] = []

    def top_up() -> None:
        try:
            for _ in range(5):
                topup(db, "船配", 1_000)
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=top_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [row["seq"] for row in records(db)] == list(range(1, 43))
    assert verify(db, KEY.encode()) == (42, None)
    db.dispose()


def test_an_auditor_exports_a_period_and_the_export_is_recorded(
    empty_database_url: str, tmp_path: Path
) -> None:
    db = _acts(empty_database_url, 4)
    status, said = _audit(empty_database_url, "export", "--format", "jsonl")
    assert status == 0
    lines = [json.loads(line) for line in said.splitlines() if line.startswith("{")]
    assert [(line["seq"], line["action"], line["target"]) for line in lines] == [
        (1, "org.create", "default"),
        (2, "org.create", "船配"),
        (3, "wallet.topup", "船配"),
        (4, "wallet.topup", "船配"),
    ]
    assert lines[0]["prev"] == GENESIS and lines[1]["prev"] == lines[0]["hash"]
    out = f"{tmp_path}/audit.xlsx"
    assert _audit(empty_database_url, "export", "--format", "xlsx", "--out", out, "--lang", "en")[0] == 0
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("No.", "Time (Asia/Shanghai)", "Actor", "Action", "Target")
    assert [row[3] for row in rows[1:]] == [
        "org.create",
        "org.create",
        "wallet.topup",
        "wallet.topup",
        "audit.export",
    ]
    # Each export is an act of its own, in the chain like any other.
    assert [row["action"] for row in records(db)][-2:] == ["audit.export", "audit.export"]
    empty = _audit(empty_database_url, "export", "--since", "2001-01-01", "--until", "2001-01-02")
    assert empty == (0, "") or empty[1].strip() == ""
    assert verify(db, KEY.encode())[1] is None
    db.dispose()


async def _signed_in(platform: PlatformUnderTest, username: str) -> httpx.AsyncClient:
    console = platform.http()
    token = csrf_of((await console.get("/console/login")).text)
    form = {"username": username, "password": PASSWORD, "csrf": token}
    assert (await console.post("/console/login", data=form)).status_code == 303
    return console


async def test_an_auditor_reads_and_filters_the_trail_in_the_console(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    db = platform.db
    start = _last_seq(db)
    org = create_org(db, f"船配-{start}")
    create_key(db, org.name, name="ci")
    topup(db, org.name, 5_000_000)
    auditor, admin = f"auditor-{start}", f"admin-{start}"
    create_member(db, auditor, PASSWORD, "auditor")
    create_member(db, admin, PASSWORD, "org-admin", org=org.name)

    console = await _signed_in(platform, auditor)
    page = await console.get("/console/audit", params={"org": org.name})
    assert page.status_code == 200
    shown = re.findall(r'<td class="mono small">([a-z.-]+)</td>', page.text)
    # Newest first, the organization's: its admin made a member of it last.
    assert shown == ["member.create", "wallet.topup", "key.create", "org.create"]
    keys = await console.get("/console/audit", params={"org": org.name, "action": "key"})
    assert re.findall(r'<td class="mono small">([a-z.-]+)</td>', keys.text) == ["key.create"]
    by_actor = await console.get("/console/audit", params={"actor": auditor})
    assert re.findall(r'<td class="mono small">([a-z.-]+)</td>', by_actor.text) == ["sign-in"]
    exports = await console.get("/console/audit", params={"action": "export"})
    assert 'value="export" selected' in exports.text  # the family is offered, and kept when chosen
    bad = await console.get("/console/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text

    sheet = await console.get("/console/audit.xlsx")
    assert sheet.status_code == 200
    rows = list(openpyxl.load_workbook(io.BytesIO(sheet.content)).active.iter_rows(values_only=True))  # type: ignore[union-attr]
    # The whole trail in order, ending with this export: recorded before its first row is written.
    assert [row[3] for row in rows[1:]][-4:] == ["member.create", "member.create", "sign-in", "audit.export"]
    assert [row[0] for row in rows[1:]] == list(range(1, len(rows)))
    last = [row for row in records(db) if row["seq"] > start][-1]
    assert (last["actor"], last["action"]) == (auditor, "audit.export")

    other = await _signed_in(platform, admin)
    assert (await other.get("/console/audit")).status_code == 403
