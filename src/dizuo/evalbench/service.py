"""Evaluation runs started through the admin API: recorded in the database, run in the background.

Each run gets a thread with its own event loop (the bench's client is async), so that the admin
API answers at once and the gateway's loop never waits for a run. The API key a run uses is kept in
memory only, never stored. Files go to ``DIZUO_DATA_DIR/evals/ID``; with several replicas, the runs
are listed by every replica but their files live where they ran.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select, update

from dizuo.evalbench.grades import catalog_grade
from dizuo.evalbench.runner import RunConfig, RunConflict, RunFailed, run_suite
from dizuo.evalbench.suites import Suite
from dizuo.evalbench.tables import EvalRun
from dizuo.store import Database, iso, utcnow

__all__ = ["PLATFORM_RUN", "EvalService"]

# The files of a run the platform keeps (the answer cache stays with whoever ran it).
RUN_FILES = ("run.json", "items.jsonl", "results.json", "report.html")
# In a run's folder: the id the platform recorded it under.
PLATFORM_RUN = "platform-run-id"


def _view(run: EvalRun) -> dict[str, Any]:
    summary = run.summary or {}
    return {
        "id": run.id,
        "model": run.model,
        "suite": run.suite,
        "kind": run.kind,
        "base_url": run.base_url,
        "status": run.status,
        "error": run.error,
        "created_by": run.created_by,
        "created_at": iso(run.created_at),
        "finished_at": iso(run.finished_at) if run.finished_at else None,
        "overall": summary.get("overall"),
        "grade": summary.get("grade"),
        "requirements": summary.get("requirements", []),
    }


class EvalService:
    """Start, list and read evaluation runs."""

    def __init__(self, db: Database, data_dir: Path, label: Callable[[str, str], str] | None = None) -> None:
        self.db = db
        self.label = label  # (page, run id) -> the report labeled as AI-generated content
        self.root = data_dir / "evals"
        self.owner = f"{socket.gethostname()}:{data_dir.resolve()}"

    def recover(self) -> None:
        """Mark this replica's runs left queued or running by a process that died as interrupted
        (other replicas' runs sharing the database go on)."""
        with self.db.session() as session:
            session.execute(
                update(EvalRun)
                .where(EvalRun.status.in_(("queued", "running")), EvalRun.owner == self.owner)
                .values(status="interrupted", error="the server stopped during the run / 评测期间服务停止")
            )

    def folder(self, run_id: str) -> Path:
        return self.root / run_id

    def start(self, suite: Suite, config: RunConfig, created_by: str) -> dict[str, Any]:
        """Record a run and start it in the background; return its view."""
        run = EvalRun(
            id=uuid.uuid4().hex,
            created_by=created_by,
            model=config.model,
            suite=suite.name,
            kind=suite.kind,
            base_url=config.base_url,
            owner=self.owner,
            status="queued",
        )
        with self.db.session() as session:
            session.add(run)
        thread = threading.Thread(
            target=self._run, args=(run.id, suite, config), name=f"eval-{run.id[:8]}", daemon=True
        )
        thread.start()
        return _view(run)

    def record(self, out: Path, document: dict[str, Any], created_by: str) -> str:
        """Record a finished run made elsewhere (``dizuo eval run``) as the platform's own: its files
        copied under this platform's data directory, listed and graded like runs started here.
        A run resumed into the same folder updates its record. Return the run's id."""
        marker = out / PLATFORM_RUN
        run_id = marker.read_text(encoding="utf-8").strip() if marker.exists() else ""
        summary = {k: document[k] for k in ("overall", "grade", "grade_reason", "requirements", "counts")}
        with self.db.session() as session:
            run = session.get(EvalRun, run_id) if run_id else None
            if run is None:
                run_id = uuid.uuid4().hex
                run = EvalRun(
                    id=run_id,
                    created_by=created_by,
                    model=document["run"]["model"],
                    suite=document["run"]["suite"]["name"],
                    kind=document["run"]["suite"]["kind"],
                    base_url=document["run"]["base_url"],
                    owner=f"cli:{out.resolve()}",
                    status="done",
                )
                session.add(run)
            run.summary, run.finished_at = summary, utcnow()
            folder = self.folder(run_id)
            folder.mkdir(parents=True, exist_ok=True)
            for name in RUN_FILES:
                if (out / name).exists():
                    shutil.copyfile(out / name, folder / name)
        marker.write_text(run_id + "\n", encoding="utf-8")  # once the record and its files are in place
        return run_id

    def record_files(self, files: dict[str, str], created_by: str) -> str:
        """Record a finished run made on a compute pool from its files' text (``results.json`` and
        the others of :data:`RUN_FILES` that came back), its report labeled here as runs started
        here are. Return the run's id."""
        document = orjson.loads(files["results.json"])
        with tempfile.TemporaryDirectory(prefix="dizuo-eval-") as folder:
            out = Path(folder)
            for name, text in files.items():
                if name in RUN_FILES:
                    (out / name).write_text(text, encoding="utf-8")
            run_id = self.record(out, document, created_by)
        report = self.folder(run_id) / "report.html"
        if self.label is not None and report.exists():
            report.write_text(self.label(report.read_text(encoding="utf-8"), run_id), encoding="utf-8")
        return run_id

    def _set(self, run_id: str, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(update(EvalRun).where(EvalRun.id == run_id).values(**values))

    def _run(self, run_id: str, suite: Suite, config: RunConfig) -> None:
        self._set(run_id, status="running")
        try:
            label = self.label
            labeled = (lambda page: label(page, run_id)) if label is not None else None
            document = asyncio.run(run_suite(suite, config, self.folder(run_id), label=labeled))
        except (RunFailed, RunConflict, OSError) as exc:
            self._set(run_id, status="failed", error=str(exc), finished_at=utcnow())
            return
        except Exception as exc:  # a background runner: record every failure rather than lose it
            self._set(run_id, status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=utcnow())
            raise
        summary = {k: document[k] for k in ("overall", "grade", "grade_reason", "requirements", "counts")}
        self._set(run_id, status="done", summary=summary, finished_at=utcnow())

    def runs(self, model: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Runs, newest first."""
        query = select(EvalRun).order_by(EvalRun.created_at.desc()).limit(limit)
        if model is not None:
            query = query.where(EvalRun.model == model)
        with self.db.session() as session:
            return [_view(run) for run in session.scalars(query)]

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self.db.session() as session:
            run = session.get(EvalRun, run_id)
            return _view(run) if run is not None else None

    def catalog(self) -> list[dict[str, Any]]:
        """Each model's grade from its latest finished run of each suite (rules in grades.py)."""
        latest: dict[tuple[str, str], EvalRun] = {}
        with self.db.session() as session:
            done = session.scalars(
                select(EvalRun).where(EvalRun.status == "done").order_by(EvalRun.created_at)
            )
            for run in done:
                latest[(run.model, run.suite)] = run
        models: dict[str, list[EvalRun]] = {}
        for (model, _), run in sorted(latest.items()):
            models.setdefault(model, []).append(run)
        rows = []
        for model, runs in models.items():
            documents = [{"suite": {"kind": r.kind}, **(r.summary or {})} for r in runs]
            grade, reason = catalog_grade(documents)
            rows.append(
                {
                    "model": model,
                    "grade": grade,
                    "reason": reason,
                    "runs": [
                        {
                            "id": r.id,
                            "suite": r.suite,
                            "kind": r.kind,
                            "grade": (r.summary or {}).get("grade"),
                            "score": ((r.summary or {}).get("overall") or {}).get("rate"),
                            "finished_at": iso(r.finished_at) if r.finished_at else None,
                        }
                        for r in runs
                    ],
                }
            )
        return rows
