"""The reconciler's rule for a batch with no job: the server that created it is still submitting
its first job (for a while), so the reconciler does not start a second one, which would send every
line upstream twice; a batch whose first job never came is started."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from dizuo.batches.service import Batches
from dizuo.batches.tables import Batch
from dizuo.store import utcnow


def batch(age: dt.timedelta, job_id: str | None = None, jobs: int = 0) -> Batch:
    now = utcnow()
    return Batch(
        id="batch_1", job_id=job_id, jobs=jobs, status="in_progress", created_at=now - age,
        expires_at=now + dt.timedelta(hours=24),
    )  # fmt: skip


async def follow(row: Batch, settled: bool = True) -> list[str]:
    """The jobs ``Batches._follow`` starts for *row* (5 lines still waiting)."""
    started: list[str] = []

    async def start(batch_id: str) -> None:
        started.append(batch_id)

    def end(*args: object) -> None:
        raise AssertionError(f"the batch was ended: {args}")

    platform = SimpleNamespace(
        jobs=SimpleNamespace(settled=lambda job_id: settled),
        _waiting=lambda batch_id: 5,
        _end=end,
        _start=start,
    )
    await Batches._follow(platform, row)  # type: ignore[arg-type]
    return started


async def test_a_batch_whose_first_job_is_being_submitted_is_left_alone() -> None:
    assert await follow(batch(dt.timedelta(seconds=3))) == []


async def test_a_batch_whose_first_job_never_came_is_started() -> None:
    assert await follow(batch(dt.timedelta(minutes=5))) == ["batch_1"]


async def test_a_batch_whose_job_ended_with_lines_left_runs_again_and_one_running_is_left() -> None:
    assert await follow(batch(dt.timedelta(seconds=3), job_id="job_1", jobs=1)) == ["batch_1"]
    assert await follow(batch(dt.timedelta(seconds=3), job_id="job_1", jobs=1), settled=False) == []
