"""Runs left behind by a process that died are marked interrupted when the platform starts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from dizuo.evalbench.service import EvalService
from dizuo.evalbench.tables import EvalRun
from dizuo.store import Database


def test_runs_of_a_dead_process_are_marked_interrupted_but_not_other_replicas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    this, other = EvalService(db, tmp_path / "this"), EvalService(db, tmp_path / "other")
    rows = [
        ("a", "running", this.owner),
        ("b", "queued", this.owner),
        ("c", "done", this.owner),
        ("d", "running", other.owner),
    ]
    with db.session() as session:
        for run_id, status, owner in rows:
            run = EvalRun(
                id=run_id, created_by="x", model="m", suite="s", kind="qa", base_url="u", owner=owner
            )
            run.status = status
            session.add(run)
    this.recover()
    with db.session() as session:
        statuses = {run.id: run.status for run in session.scalars(select(EvalRun))}
    db.dispose()
    assert statuses == {"a": "interrupted", "b": "interrupted", "c": "done", "d": "running"}
