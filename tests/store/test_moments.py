"""Every moment the APIs and the CLI print carries its offset, whichever database it was read from:
SQLite hands back naive values, and ``2026-12-04T05:19:04`` alone is 8 hours off for a reader in
Shanghai who takes it as local time."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from dizuo.accounts import create_org
from dizuo.evalbench.service import EvalService
from dizuo.evalbench.tables import EvalRun
from dizuo.guard.events import list_events
from dizuo.guard.tables import GuardEvent
from dizuo.kb.service import KnowledgeBases
from dizuo.store import Database

WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def test_guard_events_knowledge_bases_and_eval_runs_print_utc_with_its_offset(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    db.upgrade()
    org = create_org(db, f"时刻-{id(db)}")
    with db.session() as session:
        session.add(GuardEvent(org_id=org.id, direction="prompt", action="log", counts={"CN_MOBILE": 1}))
        session.add(
            EvalRun(
                id=f"r{id(db)}", created_by="cli", model="m", suite="s", kind="qa", base_url="", status="done"
            )
        )
    kbs = KnowledgeBases(db, embedding_model="local/use-multilingual-v3")
    made = kbs.create(org.id, "时刻库")
    moments = [
        list_events(db, org_id=org.id)[0]["created_at"],
        made["created_at"],
        kbs.list_bases(org.id)[0]["updated_at"],
        next(run for run in EvalService(db, tmp_path).runs() if run["id"] == f"r{id(db)}")["created_at"],
    ]
    assert all(WITH_OFFSET.match(moment) for moment in moments), moments
    assert all(
        abs(dt.datetime.fromisoformat(m) - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5) for m in moments
    )
    db.dispose()
