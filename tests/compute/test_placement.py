"""Placement: a job goes to the cheapest pool that can run it, then the one with room soonest; every
pool considered keeps its reason or its estimate; a job no pool can run is told why, pool by pool."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from dizuo.compute.placement import Inventory, JobRequest, Node, estimate, place
from dizuo.config import PoolConfig


def pool(name: str, **fields: object) -> PoolConfig:
    return PoolConfig.model_validate({"name": name, **fields})


ASCEND = {"accelerator": "ascend-910b", "resources": {"accelerator_resource": "NPU"}}
EIGHT_CARDS = Inventory(total=(Node(64, 512, 8),), free=(Node(64, 512, 8),))
BUSY = Inventory(total=(Node(64, 512, 8),), free=(Node(2, 16, 0),), queued=3)


def test_the_cheapest_pool_that_can_run_the_job_wins_and_the_estimate_is_exact() -> None:
    pools = [
        pool("cq-ascend", region="cq", price={"accelerator_hour": "9.80", "cpu_hour": "0.12"}, **ASCEND),
        pool("xj-ascend", region="xj", price={"accelerator_hour": "6.50", "cpu_hour": "0.10"}, **ASCEND),
    ]
    job = JobRequest(accelerators=2, cpus=8, memory_gb=32, max_hours=10, expected_hours=3)
    placed = place(job, pools, {"cq-ascend": EIGHT_CARDS, "xj-ascend": EIGHT_CARDS})
    assert placed.chosen == "xj-ascend"
    # (2 cards × ¥6.50 + 8 CPUs × ¥0.10) × 3 h = ¥41.40; Chongqing: (2 × 9.80 + 8 × 0.12) × 3 = ¥61.68
    assert [(c.pool, c.estimate) for c in placed.considered] == [
        ("xj-ascend", 41_400_000),
        ("cq-ascend", 61_680_000),
    ]
    assert placed.considered[0].public()["estimate"] == "41.4"
    # The worst case the job would hold: its maximum duration.
    assert estimate(pools[1], job, job.max_hours) == 138_000_000


def test_at_the_same_price_the_pool_with_room_now_wins() -> None:
    pools = [pool("a-busy", price={"cpu_hour": "1"}), pool("b-free", price={"cpu_hour": "1"})]
    job = JobRequest(cpus=4, memory_gb=8)
    placed = place(job, pools, {"a-busy": BUSY, "b-free": EIGHT_CARDS})
    assert placed.chosen == "b-free"
    assert {c.pool: c.wait for c in placed.considered} == {"b-free": 0, "a-busy": 4}  # 3 queued + full


def test_every_pool_that_cannot_run_the_job_says_why() -> None:
    pools = [
        pool("general-only", region="cq", **ASCEND),
        pool("other-region", region="xj", data_class_max="core", **ASCEND),
        pool("gpus", region="cq", data_class_max="important", accelerator="a100"),
        pool("cpus-only", region="cq", data_class_max="important"),
        pool("short-jobs", region="cq", data_class_max="important", max_job_hours=2, **ASCEND),
        pool("down", region="cq", data_class_max="important", **ASCEND),
        pool("small-nodes", region="cq", data_class_max="important", **ASCEND),
        pool("named-out", region="cq", data_class_max="important", **ASCEND),
    ]
    inventories = {name.name: EIGHT_CARDS for name in pools}
    inventories["down"] = Inventory(total=(Node(64, 512, 8),), up=False)
    inventories["small-nodes"] = Inventory(total=(Node(8, 64, 1), Node(8, 64, 1)))
    job = JobRequest(
        accelerators=2,
        accelerator_type="ascend-910b",
        max_hours=8,
        data_class="important",
        pools=tuple(p.name for p in pools if p.name != "named-out"),
    )
    placed = place(job, pools, inventories, regions=["cq"])
    assert placed.chosen is None
    reasons = {c.pool: c.reason_en for c in placed.considered}
    assert reasons == {
        "general-only": "cleared for general data at most; the job's is important",
        "other-region": "the organization may not use region xj",
        "gpus": "the pool's accelerators are a100; the job asks for ascend-910b",
        "cpus-only": "the pool has no accelerators",
        "short-jobs": "the pool runs jobs up to 2 h; the job asks for 8 h",
        "down": "the pool's cluster does not answer",
        "small-nodes": "no node can hold the job (the largest: 1 accelerators, 8 CPUs, 64 GB)",
        "named-out": "not among the pools the job names",
    }
    assert all(c.reason_zh for c in placed.considered)
    assert "small-nodes: 没有一个节点容得下该作业" in placed.reasons()


def test_core_data_stays_in_its_organizations_region() -> None:
    pools = [
        pool("xj", region="xj", data_class_max="core", price={"cpu_hour": "0.5"}),  # cheaper, far away
        pool("cq", region="cq", data_class_max="core", price={"cpu_hour": "1"}),
    ]
    inventories = {"xj": EIGHT_CARDS, "cq": EIGHT_CARDS}
    placed = place(JobRequest(data_class="core"), pools, inventories, org_region="cq")
    assert placed.chosen == "cq"
    assert (
        placed.considered[-1].reason_en
        == "core data stays in the organization's region cq (the pool is in xj)"
    )
    # Important data goes to the cheaper region.
    assert place(JobRequest(data_class="important"), pools, inventories, org_region="cq").chosen == "xj"
    # An organization without a region keeps core data on local compute, as its model calls.
    homeless = place(JobRequest(data_class="core"), pools, inventories, org_region=None)
    assert homeless.chosen is None
    assert {c.reason_en for c in homeless.considered} == {
        "core data stays in the organization's region local (the pool is in xj)",
        "core data stays in the organization's region local (the pool is in cq)",
    }
    local = pool("here", region="local", data_class_max="core")
    assert (
        place(JobRequest(data_class="core"), [*pools, local], {**inventories, "here": EIGHT_CARDS}).chosen
        == "here"
    )


def test_a_pool_the_job_failed_to_start_on_is_passed_over() -> None:
    pools = [pool("first", price={"cpu_hour": "1"}), pool("second", price={"cpu_hour": "2"})]
    inventories = {"first": EIGHT_CARDS, "second": EIGHT_CARDS}
    assert place(JobRequest(), pools, inventories).chosen == "first"
    again = place(JobRequest(), pools, inventories, blocked=["first"])
    assert again.chosen == "second"
    assert again.considered[-1].reason_en == "the job failed to start on this pool before"


@pytest.mark.parametrize(
    "bad",
    [
        {"accelerators": -1},
        {"cpus": 0},
        {"memory_gb": -4},
        {"max_hours": 10_000},
        {"max_hours": 2, "expected_hours": 3},
        {"gpus": 1},  # not a field: a typo is an error, not a silent default
        {"data_class": "secret"},
    ],
)
def test_absurd_requests_are_refused_before_any_pool_is_looked_at(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        JobRequest.model_validate(bad)


def test_prices_are_exact_decimals() -> None:
    priced = pool("p", price={"accelerator_hour": "0.1", "memory_gb_hour": "0.02"}, accelerator="x")
    assert priced.price.accelerator_hour == Decimal("0.1")
    # 3 cards × ¥0.1 + 4 GB × ¥0.02 = ¥0.38 an hour, over 1.5 h = ¥0.57, exactly.
    assert estimate(priced, JobRequest(accelerators=3, cpus=1, memory_gb=4, max_hours=1.5)) == 570_000
