"""Jobs on a real Ray cluster through its Jobs API: a job's output and Ray's own start and end times
come back; a job holds the pool's accelerators until it is stopped (another waits meanwhile); a
submission id is never run twice; a cluster that does not answer is a clear 503."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from dizuo.compute.placement import JobRequest
from dizuo.compute.ray_jobs import RayJob, RayJobs, RayState
from dizuo.errors import ComputeUnavailable
from tests.support.ray import RayHead
from tests.support.servers import free_port

# One Ray head per test worker: the tests that use it run on one worker (pytest --dist loadgroup).
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture
async def jobs(ray_head: RayHead) -> AsyncIterator[RayJobs]:
    async with aiohttp.ClientSession() as session:
        yield RayJobs(session, "cq-npu", ray_head.dashboard, token=ray_head.token)


async def until(jobs: RayJobs, job_id: str, *states: RayState, seconds: float = 60) -> RayJob:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        job = await jobs.get(job_id)
        assert job is not None
        if job.state in states:
            return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.2)


def job_id() -> str:
    return f"dz-{uuid.uuid4().hex[:12]}"


async def test_a_job_runs_and_its_output_and_ray_s_times_come_back(jobs: RayJobs) -> None:
    script = "print('你好，算力')"
    submitted = await jobs.submit(job_id(), f'{sys.executable} -c "{script}"', JobRequest(cpus=0.5), "NPU")
    done = await until(jobs, submitted, RayState.SUCCEEDED, RayState.FAILED)
    logs = await jobs.logs(submitted)
    assert done.state is RayState.SUCCEEDED, logs
    assert "你好，算力" in logs  # Chinese intact
    assert done.start_ms is not None and done.end_ms is not None and done.end_ms >= done.start_ms
    assert done.seconds is not None and 0 <= done.seconds < 60


async def test_a_job_holds_its_accelerators_until_it_is_stopped(jobs: RayJobs) -> None:
    sleep = f'{sys.executable} -c "import time; time.sleep(600)"'
    holder = await jobs.submit(job_id(), sleep, JobRequest(accelerators=2, cpus=0.5), "NPU")
    await until(jobs, holder, RayState.RUNNING)
    # The head has two NPUs, both held: a job asking for one waits.
    second = await jobs.submit(job_id(), "echo 轮到我了", JobRequest(accelerators=1, cpus=0.5), "NPU")
    await asyncio.sleep(2)
    waiting = await jobs.get(second)
    assert waiting is not None and waiting.state is RayState.PENDING

    assert await jobs.stop(holder) is True
    stopped = await until(jobs, holder, RayState.STOPPED)
    assert stopped.seconds is not None and stopped.seconds < 60
    assert (await until(jobs, second, RayState.SUCCEEDED, RayState.FAILED)).state is RayState.SUCCEEDED

    with pytest.raises(ComputeUnavailable):  # the same id again: Ray refuses, nothing runs twice
        await jobs.submit(holder, "echo twice", JobRequest(cpus=0.5), "NPU")
    assert await jobs.get("dz-no-such-job") is None


async def test_a_cluster_that_does_not_answer_is_a_clear_503() -> None:
    async with aiohttp.ClientSession() as session:
        gone = RayJobs(session, "xj-npu", f"http://127.0.0.1:{free_port()}", timeout=2)
        with pytest.raises(ComputeUnavailable) as caught:
            await gone.submit(job_id(), "echo hi", JobRequest(), "NPU")
    assert caught.value.status == 503
    assert "xj-npu" in caught.value.message("zh") and "Ray" in caught.value.message("en")


async def test_a_cluster_with_token_authentication_refuses_clients_without_its_token(
    ray_head: RayHead,
) -> None:
    async with aiohttp.ClientSession() as session:
        for token, status in ((None, "401"), ("not-the-token", "403")):
            with pytest.raises(ComputeUnavailable) as refused:
                await RayJobs(session, "cq-npu", ray_head.dashboard, token=token).get(job_id())
            assert f"HTTP {status}" in refused.value.params["detail"]
        assert (
            await RayJobs(session, "cq-npu", ray_head.dashboard, token=ray_head.token).get(job_id()) is None
        )
