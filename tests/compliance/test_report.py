"""The regulator's monthly pack: the models in use with their filings, calls and organizations; the
guard's events and blocked calls; the audit trail's checkpoints and whether it holds; the checks of
AIGC labels."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
from sqlalchemy import insert, text

from dizuo.accounts import create_org
from dizuo.accounts.service import change_org
from dizuo.billing.tables import FailedCall
from dizuo.compliance.audit import checkpoint
from dizuo.compliance.report import monthly, to_xlsx
from dizuo.compliance.tables import LabelCheck
from dizuo.compliance.verify import Result, Verdict, record_check
from dizuo.guard.tables import GuardEvent
from dizuo.store import Database, utcnow
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, upstream_deployment

FILING = {"number": "Chongqing-Qwen-202501010001", "body": "重庆市互联网信息办公室"}
HELLO = [{"role": "user", "content": "你好"}]
ZONE = ZoneInfo("Asia/Shanghai")
KEY = "the operator's signing key"


async def test_the_pack_names_each_model_its_filings_calls_and_organizations(
    gateway_app: GatewayApp, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    filed, unfiled = f"filed-{tag}", f"unfiled-{tag}"
    platform = await gateway_app(
        deployments=[
            upstream_deployment(filed, name=f"{filed}-1", filing=FILING),
            upstream_deployment(unfiled, name=f"{unfiled}-1"),
        ]
    )
    first, second = platform.org(balance="1"), platform.org(balance="1")
    for org, model, times in ((first, filed, 3), (second, filed, 1), (second, unfiled, 2)):
        async with platform.sdk(org.key) as client:
            for _ in range(times):
                await client.chat.completions.create(model=model, messages=HELLO)
    month = dt.datetime.now(ZONE).strftime("%Y-%m")
    env = {
        "DIZUO_DATABASE_URL": platform.db.url,
        "DIZUO_CONFIG": str(platform.platform.gateway.settings.config),
        "DIZUO_SIGNING_KEY": KEY,
    }
    result = dizuo("compliance", "report", "--month", month, "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    pack = json.loads(result.stdout)
    rows = {row["model"]: row for row in pack["models"]}
    assert {k: rows[filed][k] for k in ("calls", "organizations", "filed", "filings")} == {
        "calls": 4,
        "organizations": 2,
        "filed": True,
        "filings": [FILING],
    }
    assert rows[filed]["deployments"] == [{"deployment": f"{filed}-1", "calls": 4, "filing": FILING}]
    assert (rows[unfiled]["calls"], rows[unfiled]["filed"], rows[unfiled]["filings"]) == (2, False, [])
    assert unfiled in pack["summary"]["unfiled_models"] and filed not in pack["summary"]["unfiled_models"]

    path = str(tmp_path / "pack.xlsx")
    made = dizuo("compliance", "report", "--month", month, "--out", path, "--lang", "zh", env=env)
    assert made.returncode == 0, made.stderr
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == [
        "概况",
        "模型与备案",
        "数据风险",
        "测评等级",
        "审计日志检查点",
        "AIGC 标识核验",
    ]
    lines = {row[0]: row for row in book["模型与备案"].iter_rows(values_only=True)}
    assert lines[filed][1:5] == (4, 2, "是", f"{FILING['number']}（{FILING['body']}）")
    assert lines[unfiled][3] == "否"


def test_the_pack_counts_the_guard_s_month_and_checks_the_trail(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    org = create_org(db, "船配")
    now = utcnow()
    last_month = now - dt.timedelta(days=40)
    with db.engine.begin() as connection:
        for moment, action, counts in (
            (now, "block", {"CN_MOBILE": 2, "EMAIL": 1}),
            (now, "redact", {"CN_MOBILE": 1}),
            (now, "log", {"CN_RESIDENT_ID": 1}),
            (last_month, "block", {"CN_MOBILE": 9}),  # another month: not in this pack
        ):
            event = {"created_at": moment, "org_id": org.id, "direction": "prompt", "action": action}
            connection.execute(insert(GuardEvent).values(event | {"counts": counts}))
        for moment, code in (
            (now, "data_risk_blocked"),
            (now, "rate_limited"),
            (last_month, "data_risk_blocked"),
        ):
            failed = {"request_id": uuid.uuid4().hex, "org_id": org.id, "key_id": "k", "endpoint": "chat"}
            connection.execute(
                insert(FailedCall).values(
                    failed | {"status": 400, "code": code, "latency_ms": 1, "created_at": moment}
                )
            )
    signed = checkpoint(db, KEY.encode())
    assert signed is not None
    month = now.astimezone(ZONE).strftime("%Y-%m")
    pack = monthly(db, month, ZONE, deployments=[], grades=[], key=KEY.encode())
    assert pack["guard"] == {
        "events": 3,
        "by_action": {"block": 1, "log": 1, "redact": 1},
        "by_type": {"CN_MOBILE": 3, "CN_RESIDENT_ID": 1, "EMAIL": 1},
        "blocked_calls": 1,
    }
    audit = pack["audit"]
    assert (audit["records"], audit["chain_holds"], audit["records_checked"]) == (2, True, 2)
    assert [(c["seq"], c["hash"]) for c in audit["checkpoints"]] == [(signed.seq, signed.hash)]

    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_trail SET actor = 'someone' WHERE seq = 1"))
    tampered = monthly(db, month, ZONE, deployments=[], grades=[], key=KEY.encode())["audit"]
    assert tampered["chain_holds"] is False and tampered["problem"]["seq"] == 1
    db.dispose()


def test_the_pack_counts_the_month_s_label_checks(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    org = create_org(db, "船配")
    change_org(db, org.name, label="explicit")
    for result, source in (
        (Result.GENUINE, "body"),
        (Result.GENUINE, "docx"),
        (Result.CHANGED, "body"),
        (Result.FORGED, "stream"),
    ):
        record_check(db, Verdict(result, source), "cli")
    with db.session() as session:  # last month's check: not in this pack
        at = utcnow() - dt.timedelta(days=40)
        session.add(LabelCheck(id=uuid.uuid4().hex, at=at, source="body", result="genuine", checked_by="cli"))
    month = utcnow().astimezone(ZONE).strftime("%Y-%m")
    pack = monthly(db, month, ZONE, deployments=[], grades=[], key=KEY.encode())
    assert pack["labels"] == {
        "checks": 4,
        "by_result": {"changed": 1, "forged": 1, "genuine": 2},
        "by_source": {"body": 2, "docx": 1, "stream": 1},
        "organizations_with_explicit_labels": 1,
    }
    rows = list(openpyxl.load_workbook(io.BytesIO(to_xlsx(pack, "en")))["AIGC label checks"].values)
    assert ("result", "genuine", 2) in rows and ("source", "docx", 1) in rows
    db.dispose()
