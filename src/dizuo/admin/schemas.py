"""Request bodies of the admin API. Amounts are decimal strings in CNY, as in the CLI."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["KeyIn", "OrgIn", "TopupIn", "VoucherIn"]

DataClass = Literal["general", "important", "core"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrgIn(_In):
    name: str = Field(min_length=1, max_length=128)
    uscc: str | None = None
    industry: str | None = None
    district: str | None = None
    region: str | None = Field(None, max_length=64)
    size: Literal["small", "medium", "large"] | None = None
    data_class: DataClass = "general"
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    concurrency: int | None = Field(None, gt=0)


class KeyIn(_In):
    name: str | None = None
    models: list[str] | None = None
    data_class: DataClass | None = None
    expires_at: dt.datetime | None = None
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    concurrency: int | None = Field(None, gt=0)


class TopupIn(_In):
    amount: str = Field(examples=["100.00"])
    note: str | None = Field(None, max_length=500)


class VoucherIn(_In):
    issuer: str = Field(min_length=1, max_length=128)
    program: str = Field(min_length=1, max_length=256)
    amount: str = Field(examples=["500.00"])
    copay: str = Field(examples=["0.3"])
    providers: list[str] | None = None
    regions: list[str] | None = None
    models: list[str] | None = None
    valid_from: dt.datetime
    valid_to: dt.datetime
