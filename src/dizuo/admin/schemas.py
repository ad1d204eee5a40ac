"""Request bodies of the admin API. Amounts are decimal strings in CNY, as in the CLI."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dizuo.config import MAX_LIMIT

__all__ = [
    "AgentIn",
    "BankIn",
    "EvalIn",
    "KeyIn",
    "McpServerIn",
    "MilestoneDoneIn",
    "MilestoneIn",
    "MoveIn",
    "OrgIn",
    "PasswordIn",
    "ScenarioIn",
    "SnapshotIn",
    "TokenIn",
    "ToolHostIn",
    "TopupIn",
    "VoucherIn",
]

DataClass = Literal["general", "important", "core"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SnapshotIn(_In):
    """``POST /admin/v1/indicators/snapshots``: the closed month to keep."""

    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    replace: bool = False


class OrgIn(_In):
    name: str = Field(min_length=1, max_length=128)
    uscc: str | None = None
    industry: str | None = None
    district: str | None = None
    region: str | None = Field(None, max_length=64)
    size: Literal["small", "medium", "large"] | None = None
    data_class: DataClass = "general"
    rpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    tpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    concurrency: int | None = Field(None, gt=0, le=MAX_LIMIT)
    serves_public: bool = Field(
        False, description="It offers generated content to the public: filed models only."
    )


class OrgChange(_In):
    serves_public: bool | None = Field(
        None, description="It offers generated content to the public: filed models only."
    )
    label: Literal["explicit", "implicit", "default"] | None = Field(
        None,
        description=(
            "How its answers are labeled as AI-generated: explicit (a visible notice in the text too), "
            "implicit, or default (the platform's way)."
        ),
    )
    allow_scripts: bool | None = Field(
        None, description="It may run its own code on the compute pools (script jobs)."
    )


class KeyIn(_In):
    name: str | None = None
    models: list[str] | None = None
    scopes: list[str] | None = Field(None, description="models, kb:read, kb:write, apps, compute; none: all.")
    data_class: DataClass | None = None
    label: Literal["explicit", "implicit"] | None = Field(
        None, description="How its answers are labeled as AI-generated; none: its organization's way."
    )
    expires_at: dt.datetime | None = None
    rpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    tpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    concurrency: int | None = Field(None, gt=0, le=MAX_LIMIT)


class TopupIn(_In):
    amount: str = Field(examples=["100.00"])
    note: str | None = Field(None, max_length=500)


class VoucherIn(_In):
    issuer: str = Field(min_length=1, max_length=128)
    program: str = Field(min_length=1, max_length=256)
    amount: str = Field(examples=["500.00"])
    voucher_share: str | None = Field(
        None, examples=["0.3"], description="Share of each eligible charge the voucher pays (补贴比例)."
    )
    copay: str | None = Field(None, description="Deprecated: the old name of voucher_share.")

    @model_validator(mode="after")
    def _one_share(self) -> VoucherIn:
        if (self.voucher_share is None) == (self.copay is None):
            raise ValueError("give voucher_share (copay is its deprecated name), once")
        return self

    @property
    def share(self) -> tuple[str, str]:
        """The share as sent, and the field it came in."""
        if self.voucher_share is not None:
            return self.voucher_share, "voucher_share"
        assert self.copay is not None
        return self.copay, "copay"

    providers: list[str] | None = None
    regions: list[str] | None = None
    models: list[str] | None = None
    pools: list[str] | None = Field(None, description="Compute pools it pays jobs on (compute only).")
    accelerators: list[str] | None = Field(
        None, description="Accelerator types it pays jobs on (compute only)."
    )
    # A date alone is a whole day in the platform's time zone (valid_to: through that day); an ISO 8601
    # moment is taken as written (dizuo.days).
    valid_from: str = Field(examples=["2026-01-01", "2026-01-01T00:00:00+08:00"])
    valid_to: str = Field(examples=["2026-12-31"])


class BankIn(_In):
    """A suite sent inline: the text of a JSON Lines or CSV file."""

    name: str = Field(min_length=1, max_length=128)
    format: Literal["jsonl", "csv"] = "jsonl"
    content: str = Field(min_length=1, max_length=50_000_000)


class EvalIn(_In):
    model: str = Field(min_length=1, max_length=256)
    suite: str | None = Field(None, description="A built-in suite's name (GET /admin/v1/evals/suites).")
    bank: BankIn | None = Field(None, description="Or the suite itself, inline.")
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL; default: this platform's /v1."
    )
    api_key: str | None = Field(None, description="Key for base_url; used for this run only, never stored.")
    concurrency: int = Field(8, ge=1, le=256)
    judge: str | None = None
    max_tokens: int = Field(1024, ge=1)
    keywords: list[str] = Field(default_factory=list, description="Keyword library for content checks.")


class TokenIn(_In):
    expires_days: float | None = Field(
        None, gt=0, le=3650, description="Lifetime in days; none: until revoked."
    )


class PasswordIn(_In):
    password: str = Field(min_length=8, max_length=1024)


class AgentIn(_In):
    org: str = Field(min_length=1, max_length=128, description="The organization that owns the agent.")
    definition: dict[str, Any] = Field(description="The agent's definition (docs/agents.md), as JSON.")


class McpServerIn(_In):
    name: str = Field(min_length=1, max_length=64)
    command: list[str] | None = Field(None, description="argv of a server the platform starts (stdio).")
    url: str | None = Field(None, max_length=2000, description="A streamable HTTP endpoint.")
    note: str = Field("", max_length=500)


class ToolHostIn(_In):
    host: str = Field(min_length=1, max_length=253)
    note: str = Field("", max_length=500)


class ScenarioIn(_In):
    org: str = Field(min_length=1, max_length=128, description="The demand side's organization.")
    scenario: dict[str, Any] = Field(description="The scenario need (docs/scenarios.md), as JSON.")


class ApplicationIn(_In):
    org: str = Field(
        min_length=1, max_length=128, description="The organization that applies (the supplier)."
    )
    proposal: str = Field(
        min_length=1, max_length=20000, description="Its proposal: how it would build the scenario."
    )


class DecisionIn(_In):
    reason: str = Field("", max_length=5000, description="Why (recorded with the decision).")


class MilestoneIn(_In):
    title: str = Field(min_length=1, max_length=200, description="What is to be done.")
    due: dt.date = Field(description="The day it is due (YYYY-MM-DD).")


class MilestoneDoneIn(_In):
    evidence: str = Field(min_length=1, max_length=5000, description="What shows it done.")
    done_on: dt.date | None = Field(None, description="The day it was done; today by default.")


class MoveIn(_In):
    to: str = Field(min_length=1, max_length=24, description="The stage to move to.")
    reason: str = Field("", max_length=5000)
    list: str | None = Field(None, max_length=64, description="Publishing: the list, such as 2026年第一批.")
    taker: str | None = Field(None, max_length=128, description="Taking: the organization that took it.")
