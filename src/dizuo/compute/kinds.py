"""The built-in kinds of compute job: the platform's own work, run on a pool by a worker module of
dizuo that calls this platform's ``/v1`` with a key made for the job alone.

- ``eval``: an evaluation run of a built-in suite against a model (:mod:`dizuo.compute.evaljob`); its
  files come back in the job's output and are recorded among the platform's evaluations.
- ``kb-index``: re-embedding a knowledge base's chunks with its embedding model or another one
  (:mod:`dizuo.compute.kbjob`); the vectors go back through the job's own routes and the knowledge
  base moves to them in one transaction (:mod:`dizuo.kb.reindex`).

A ``script`` job is the organization's own code and has no kind here; features above compute add
theirs (a batch: :mod:`dizuo.batches.kind`). Each kind checks a submission
(:meth:`Kind.check`: what the record shows as the entrypoint, and what the job's spec keeps), names
the command its worker runs and the one model its key may call, says whether its logs are its
submitter's to read, and finishes the job when it ends (the message the record keeps).
"""

from __future__ import annotations

import asyncio
import shlex
from typing import TYPE_CHECKING, Any, Protocol

from dizuo.accounts.keys import KeyInfo
from dizuo.compute.evaljob import unpack
from dizuo.compute.ray_jobs import RayJobs
from dizuo.compute.tables import ComputeJob
from dizuo.errors import InvalidRequest, invalid_param
from dizuo.evalbench import builtin_suites

if TYPE_CHECKING:
    from dizuo.compute.jobs import JobBody
    from dizuo.evalbench.service import EvalService
    from dizuo.kb.reindex import Reindex
    from dizuo.kb.service import KnowledgeBases

__all__ = ["EvalKind", "KbIndexKind", "Kind"]


def _none_of(body: JobBody, names: tuple[str, ...], zh: str, en: str) -> None:
    for name in names:
        if getattr(body, name) is not None:
            raise invalid_param(name, f"{zh}，不接受此参数", f"{en}; it takes no {name}")


def _may_use(key: KeyInfo, model: str) -> None:
    if not key.may_use(model):
        raise invalid_param("model", f"此密钥不能使用模型 {model}", f"this key may not use the model {model}")


class Kind(Protocol):
    name: str
    charges_time: bool  # its pool time is charged (False: its work is charged as it goes)
    logs_private: bool  # what it prints is not shown to the organization that submitted it

    def check(self, key: KeyInfo, body: JobBody) -> tuple[str, dict[str, Any]]:
        """Refuse what this kind does not take; the entrypoint to show and what the spec keeps (a
        ``data_class`` there raises the job's data class to it)."""

    def command(self, job: ComputeJob, python: str) -> str:
        """The shell command the pool runs."""

    def model(self, job: ComputeJob) -> str | None:
        """The one model the job's key may call (None: none)."""

    async def ending(self, client: RayJobs, job: ComputeJob, state: str) -> str | None:
        """What the record's message says of a job that ran and ends in *state* (None: Ray's own)."""

    def ended(self, job_id: str) -> None:
        """Clean up after a job of this kind, however it ended."""


class EvalKind:
    """``{"kind": "eval", "suite", "model"}``: the bench runs a built-in suite on the pool."""

    name = "eval"
    charges_time = True
    logs_private = False

    def __init__(self, evals: EvalService | None) -> None:
        self.evals = evals  # records the runs; None: nothing is recorded

    def check(self, key: KeyInfo, body: JobBody) -> tuple[str, dict[str, Any]]:
        _none_of(
            body,
            ("entrypoint", "working_dir", "kb", "dataset"),
            "评测作业运行测试验证平台",
            "an eval job runs the bench",
        )
        if not body.suite:
            raise InvalidRequest("missing_param", param="suite")
        if not body.model:
            raise InvalidRequest("missing_param", param="model")
        suites = {suite.name for suite in builtin_suites()}
        if body.suite not in suites:
            raise invalid_param(
                "suite",
                f"没有内置题库 {body.suite}（有：{', '.join(sorted(suites))}）",
                f"no built-in suite {body.suite} (there are: {', '.join(sorted(suites))})",
            )
        _may_use(key, body.model)
        shown = f"dizuo eval run --suite {body.suite} --model {body.model}"
        return shown, {"eval": {"suite": body.suite, "model": body.model}}

    def command(self, job: ComputeJob, python: str) -> str:
        spec = job.spec["eval"]
        return shlex.join(
            [python, "-m", "dizuo.compute.evaljob", "--suite", spec["suite"], "--model", spec["model"]]
        )

    def model(self, job: ComputeJob) -> str:
        return str(job.spec["eval"]["model"])

    async def ending(self, client: RayJobs, job: ComputeJob, state: str) -> str | None:
        if self.evals is None or state != "succeeded":
            return None
        files = unpack(await client.logs(job.id))
        if files is None:
            return "评测结果未能取回 / the evaluation's results did not come back"
        run_id = await asyncio.to_thread(self.evals.record_files, files, f"job:{job.id}")
        return f"评测记录 / evaluation run {run_id}"

    def ended(self, job_id: str) -> None:
        return None


class KbIndexKind:
    """``{"kind": "kb-index", "kb", "model"?}``: re-embed a knowledge base of the key's organization
    with *model* (default: the one it has). Needs the ``kb:write`` scope."""

    name = "kb-index"
    charges_time = True
    logs_private = False

    def __init__(self, kbs: KnowledgeBases | None, reindex: Reindex | None) -> None:
        self.kbs = kbs
        self.reindex = reindex

    def check(self, key: KeyInfo, body: JobBody) -> tuple[str, dict[str, Any]]:
        _none_of(
            body,
            ("entrypoint", "working_dir", "suite", "dataset"),
            "知识库索引作业重新嵌入知识库",
            "a kb-index job re-embeds a knowledge base",
        )
        if not body.kb:
            raise InvalidRequest("missing_param", param="kb")
        if self.kbs is None:
            raise invalid_param("kind", "本平台未启用知识库", "this platform has no knowledge bases")
        key.require("kb:write")
        kb = self.kbs.describe(key.org_id, body.kb)  # 404 kb_not_found: none of that name here
        model = body.model or str(kb["embedding_model"])
        _may_use(key, model)
        shown = shlex.join(
            ["dizuo", "compute", "submit", "--kind", "kb-index", "--kb", kb["name"], "--model", model]
        )
        return shown, {"kb": {"id": kb["id"], "name": kb["name"], "model": model}}

    def command(self, job: ComputeJob, python: str) -> str:
        spec = job.spec["kb"]
        return shlex.join([python, "-m", "dizuo.compute.kbjob", "--job", job.id, "--model", spec["model"]])

    def model(self, job: ComputeJob) -> str:
        return str(job.spec["kb"]["model"])

    async def ending(self, client: RayJobs, job: ComputeJob, state: str) -> str | None:
        if state != "succeeded":
            return None
        done = job.spec["kb"].get("committed")
        if not done:
            return "知识库未切换到新向量 / the knowledge base was not moved to new vectors"
        return (
            f"知识库 {done['knowledge_base']} 已用 {done['model']} 重新嵌入 {done['chunks']} 段 / "
            f"{done['chunks']} chunks of {done['knowledge_base']} re-embedded with {done['model']}"
        )

    def ended(self, job_id: str) -> None:
        if self.reindex is not None:
            self.reindex.discard(job_id)
