"""Expert review of submitted scenarios (专家评审): the program office's rubric, each reviewer's
scores, and the spread the chair sees before selecting.

The rubric is a list of criteria with integer weights summing to 100; a shipped default holds until
the office sets its own. A reviewer scores a scenario that is ``under_review`` on every criterion
(0 to 10), with a comment; the weighted total is out of 100. Each reviewer scores alone: a reviewer
reads only their own review, never another's, and may change it while the review lasts. The office
(and auditors) read every review and the spread of each criterion and of the total (count, mean,
lowest, highest, standard deviation), so that a split committee shows before anyone decides. A
review keeps the rubric it was scored against: a later change of the rubric does not rewrite it.
Every review is in the audit trail; the selection or rejection that follows records who decided and
why, with the reviews' count and mean (:func:`dizuo.scenarios.service.review_summary`).
"""

from __future__ import annotations

import re
import secrets
import statistics
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select

from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import allowed, authorize
from dizuo.errors import DizuoError, invalid_param
from dizuo.scenarios.service import ScenarioNotFound
from dizuo.scenarios.tables import Scenario, ScenarioReview, ScenarioRubric
from dizuo.store import Database, iso, utcnow
from dizuo.store.audit import append
from dizuo.validate import validated

__all__ = ["DEFAULT_RUBRIC", "NotInReview", "ReviewIn", "Reviews", "RubricIn", "reading"]

# The rubric until the office sets its own: (key, 中文, English, weight).
DEFAULT_RUBRIC: tuple[tuple[str, str, str, int], ...] = (
    ("need", "需求清晰度", "clarity of the need", 20),
    ("data", "数据与系统基础", "data and systems in place", 20),
    ("value", "示范与推广价值", "value as an example to others", 30),
    ("feasibility", "技术可行性", "technical feasibility", 20),
    ("budget", "投入合理性", "budget fit", 10),
)
MAX_SCORE = 10
KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class NotInReview(DizuoError):
    """A review of a scenario that is not under review (409)."""

    status = 409
    type = "invalid_request_error"
    default_code = "scenario_not_in_review"


class CriterionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=32, description="Lowercase letters, digits and _.")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    weight: int = Field(ge=1, le=100, description="Out of 100; the rubric's weights sum to 100.")


class RubricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criteria: list[CriterionIn] = Field(min_length=1, max_length=12)


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scores: dict[str, float] = Field(description="Each criterion's key and its score, 0 to 10.")
    comment: str = Field("", max_length=5000)


def reading(actor: Actor) -> str | None:
    """Whose reviews *actor* reads: every one (None) for the office and auditors, their own (their
    username) for a reviewer; 403 for anyone else."""
    if allowed(actor, "read scenario reviews"):
        return None
    authorize(actor, "review scenarios")
    return actor.username


def _spread(values: list[float]) -> dict[str, float | int]:
    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 2),
        "min": min(values),
        "max": max(values),
        "stdev": round(statistics.pstdev(values), 2),
    }


def _review_view(row: ScenarioReview) -> dict[str, Any]:
    return {
        "id": row.id,
        "scenario": row.scenario_id,
        "reviewer": row.reviewer,
        "scores": row.scores,
        "total": row.total,
        "comment": row.comment,
        "rubric": row.rubric,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


class Reviews:
    """The rubric and the reviews of the platform's scenarios."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- the rubric --------------------------------------------------------------------------

    def rubric(self) -> list[dict[str, Any]]:
        """The criteria reviewers score, in order: the office's, or the default."""
        with self.db.session() as session:
            rows = session.scalars(select(ScenarioRubric).order_by(ScenarioRubric.position)).all()
            if rows:
                return [
                    {"key": r.key, "name_zh": r.name_zh, "name_en": r.name_en, "weight": r.weight}
                    for r in rows
                ]
        return [{"key": k, "name_zh": zh, "name_en": en, "weight": w} for k, zh, en, w in DEFAULT_RUBRIC]  # fmt: skip

    def set_rubric(self, document: dict[str, Any], actor: str) -> list[dict[str, Any]]:
        """Replace the rubric with *document*'s ``criteria`` (keys of lowercase letters, digits and
        ``_``, each once; integer weights that sum to 100). Reviews already made keep theirs."""
        rubric = validated(RubricIn, document, "rubric")
        keys = [c.key for c in rubric.criteria]
        for index, key in enumerate(keys):
            if not KEY.match(key):
                raise invalid_param(f"criteria[{index}].key", "只能含小写字母、数字和下划线，以字母开头", "lowercase letters, digits and _ only, starting with a letter")  # fmt: skip
            if key in keys[:index]:
                raise invalid_param(f"criteria[{index}].key", f"重复的评分项 {key}", f"the criterion {key} is named twice")  # fmt: skip
        total = sum(c.weight for c in rubric.criteria)
        if total != 100:
            raise invalid_param("criteria", f"权重之和须为 100（现为 {total}）", f"the weights must sum to 100 (they sum to {total})")  # fmt: skip
        with self.db.session() as session:
            session.execute(delete(ScenarioRubric))
            for position, c in enumerate(rubric.criteria):
                session.add(ScenarioRubric(key=c.key, name_zh=c.name_zh, name_en=c.name_en, weight=c.weight, position=position))  # fmt: skip
            detail = {"criteria": {c.key: c.weight for c in rubric.criteria}}
            append(session, "scenario.rubric", "rubric", actor=actor, detail=detail)
        return self.rubric()

    # ---- reviews -----------------------------------------------------------------------------

    def score(self, scenario_id: str, reviewer: str, document: dict[str, Any]) -> dict[str, Any]:
        """*reviewer*'s review of a scenario under review: a score from 0 to 10 on every criterion of
        the rubric, and a comment; made again, it replaces the reviewer's earlier one."""
        review = validated(ReviewIn, document, "review")
        rubric = self.rubric()
        weights = {c["key"]: c["weight"] for c in rubric}
        unknown = sorted(set(review.scores) - set(weights))
        if unknown:
            raise invalid_param(f"scores.{unknown[0]}", f"评分表中没有此项（评分项：{'、'.join(weights)}）", f"no such criterion in the rubric ({', '.join(weights)})")  # fmt: skip
        missing = [key for key in weights if key not in review.scores]
        if missing:
            raise invalid_param(f"scores.{missing[0]}", "每个评分项都须打分", "every criterion needs a score")
        for key, value in review.scores.items():
            if not 0 <= value <= MAX_SCORE or round(value, 1) != value:
                raise invalid_param(f"scores.{key}", f"分数须在 0 至 {MAX_SCORE} 之间，至多一位小数", f"a score is 0 to {MAX_SCORE}, with at most one decimal")  # fmt: skip
        scores = {key: review.scores[key] for key in weights}  # in the rubric's order
        total = round(sum(scores[key] * weight for key, weight in weights.items()) / MAX_SCORE, 2)
        now = utcnow()
        with self.db.session() as session:
            scenario = session.get(Scenario, scenario_id)
            if scenario is None:
                raise ScenarioNotFound(id=scenario_id)
            if scenario.status != "under_review":
                raise NotInReview(id=scenario_id, status=scenario.status)
            row = session.scalars(
                select(ScenarioReview).where(
                    ScenarioReview.scenario_id == scenario_id, ScenarioReview.reviewer == reviewer
                )
            ).first()
            if row is None:
                row = ScenarioReview(id=f"rev_{secrets.token_hex(8)}", scenario_id=scenario_id, reviewer=reviewer, created_at=now)  # fmt: skip
                session.add(row)
            row.scores, row.total, row.comment = scores, total, review.comment.strip()
            row.rubric = [{"key": c["key"], "weight": c["weight"]} for c in rubric]
            row.updated_at = now
            session.flush()
            append(session, "scenario.review", scenario_id, actor=reviewer, org_id=scenario.org_id, detail={"total": total})  # fmt: skip
            return _review_view(row)

    def listed(self, scenario_id: str, reviewer: str | None) -> dict[str, Any]:
        """The reviews of a scenario: every one with the spread for the office (*reviewer* None), or
        only *reviewer*'s own (no spread: each scores alone)."""
        with self.db.session() as session:
            if session.get(Scenario, scenario_id) is None:
                raise ScenarioNotFound(id=scenario_id)
            query = select(ScenarioReview).where(ScenarioReview.scenario_id == scenario_id)
            if reviewer is not None:
                query = query.where(ScenarioReview.reviewer == reviewer)
            rows = session.scalars(query.order_by(ScenarioReview.created_at, ScenarioReview.id)).all()
            reviews = [_review_view(row) for row in rows]
        rubric = self.rubric()
        document: dict[str, Any] = {"scenario": scenario_id, "rubric": rubric, "reviews": reviews}
        if reviewer is None:
            document["spread"] = self._spread(rubric, reviews)
        return document

    @staticmethod
    def _spread(rubric: list[dict[str, Any]], reviews: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Each criterion's and the total's spread over the reviews (None before any)."""
        if not reviews:
            return None
        criteria = {
            c["key"]: _spread([r["scores"][c["key"]] for r in reviews if c["key"] in r["scores"]])
            for c in rubric
            if any(c["key"] in r["scores"] for r in reviews)
        }
        return {"total": _spread([r["total"] for r in reviews]), "criteria": criteria}
