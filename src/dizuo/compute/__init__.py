"""Compute: pools of accelerators on Ray clusters in several regions, and the jobs that run on them.

The pools' configuration (``dizuo.config.PoolConfig``) and placement, explained
(:mod:`dizuo.compute.placement`); jobs on Ray with their holds and charges (:mod:`dizuo.compute.jobs`);
the embedded pool's head (:mod:`dizuo.compute.head`).
"""

from dizuo.errors import catalogue

# The messages of the compute jobs' errors (a pool that cannot be reached is the core's ComputeUnavailable).
MESSAGES = catalogue(
    {
        "compute_no_pool": (
            "没有资源池能运行该作业，未扣费也未保存：{reasons}。请调整资源、时长、区域或数据级别；"
            "可用 `dizuo compute pools` 查看资源池。",
            "No pool can run this job; nothing was held or saved: {reasons}. Change its resources, "
            "duration, regions or data class; see the pools with `dizuo compute pools`.",
        ),
        "compute_job_not_found": (
            "没有作业 {id!r}（或它不属于此密钥的组织）。可用 `dizuo compute jobs` 查看。",
            "There is no job {id!r} in this key's organization. See `dizuo compute jobs`.",
        ),
        "scripts_not_allowed": (
            "组织 {org} 未获准在资源池上运行自己的代码（script 作业）。请平台管理员执行 "
            "`dizuo admin allow-scripts --org {org}`。",
            "The organization {org} may not run its own code on the compute pools (script jobs). A "
            "platform admin allows it with `dizuo admin allow-scripts --org {org}`.",
        ),
    }
)
