"""The pools' utilization over time: samples folded into buckets, a gap where a pool was not read or
its cluster did not answer, CPUs for a pool without accelerators; samples older than 30 days go."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select

from dizuo.compute.tables import PoolSample
from dizuo.store import utcnow
from tests.support.platform import GatewayApp


def sample(pool: str, at: dt.datetime, *, up: bool = True, accelerators: tuple[float, float] = (0, 0),
           cpus: tuple[float, float] = (8, 8)) -> PoolSample:  # fmt: skip
    return PoolSample(
        pool=pool,
        at=at,
        up=up,
        accelerators_total=accelerators[0],
        accelerators_free=accelerators[1],
        cpus_total=cpus[0],
        cpus_free=cpus[1],
        running=0,
        waiting=0,
    )


async def test_utilization_is_the_mean_of_each_bucket_with_gaps_where_nothing_was_read(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    jobs = platform.platform.knowledge.state.jobs
    npu, cpu = f"npu-{uuid.uuid4().hex[:6]}", f"cpu-{uuid.uuid4().hex[:6]}"  # the database is shared
    start = utcnow().replace(microsecond=0) - dt.timedelta(hours=1)
    minute = dt.timedelta(minutes=1)
    with platform.db.session() as session:
        session.add_all(
            [
                # Bucket 0: 8 NPUs, 2 then 6 in use → 25 % and 75 %, mean 50 %.
                sample(npu, start + minute, accelerators=(8, 6)),
                sample(npu, start + 2 * minute, accelerators=(8, 2)),
                # Bucket 1: its cluster did not answer → a gap. Bucket 2: nothing read → a gap.
                sample(npu, start + 16 * minute, up=False),
                # Bucket 3: a CPU pool, 6 of 8 CPUs in use → 75 %.
                sample(cpu, start + 46 * minute, cpus=(8, 2)),
                sample(npu, start - dt.timedelta(days=31)),  # long gone
            ]
        )
    starts, series = jobs.utilization(start, start + dt.timedelta(hours=1), dt.timedelta(minutes=15))
    assert starts == [start + i * dt.timedelta(minutes=15) for i in range(4)]
    mine = {pool: line for pool, line in series.items() if pool in (npu, cpu)}
    assert mine == {cpu: [None, None, None, 75.0], npu: [50.0, None, None, None]}

    jobs.pools = {}  # no pools here: a sample records nothing, and forgets what is over 30 days old
    assert await jobs.sample() == 0
    with platform.db.session() as session:
        oldest = session.scalar(select(func.min(PoolSample.at)))
    assert oldest is not None and oldest >= (start - dt.timedelta(days=30)).replace(tzinfo=oldest.tzinfo)
