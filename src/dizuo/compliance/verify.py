"""Checking an AIGC label: did this platform produce the content, when, for whom, and is it unchanged?

What is checked may be a chat completion's JSON (the ``aigc`` field, or a label and the content side
by side), a stream as the client read it (its ``data:`` lines), a file the platform exported (the
label in its metadata, the text read back from the file) or a bare content id. The seal is checked
with the platform's key; the content id is then looked up in the usage records, which are kept for
ever, for the organization, the model and the time of the call. Each check is counted for the
regulator's monthly pack (``label_checks``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import select

from dizuo.accounts.tables import Organization
from dizuo.billing.tables import UsageRecord
from dizuo.compliance.labels import Labeler, answer_text, digest, read_label, texts_of
from dizuo.compliance.tables import LabelCheck
from dizuo.store import Database, iso, ordered_id, utc

__all__ = ["Found", "Result", "Verdict", "check", "found_in", "read_found", "record_check"]

CONTENT_ID = re.compile(r"req_[0-9a-f]{32}")


class Result(StrEnum):
    GENUINE = "genuine"  # the platform's seal holds and the content is as it was labeled
    CHANGED = "changed"  # the platform's seal holds; the content differs from what was labeled
    SEALED = "sealed"  # the platform's seal holds; no content was given to compare
    FORGED = "forged"  # a label in the platform's name (or its scheme) whose seal does not hold
    FOREIGN = "foreign"  # another provider's label, with no seal of this platform to check
    RECORDED = "recorded"  # a bare content id this platform produced (no label to check)
    UNKNOWN = "unknown"  # a bare content id this platform has no record of
    UNLABELED = "unlabeled"  # nothing that carries a label


MESSAGES: dict[Result, tuple[str, str]] = {
    Result.GENUINE: (
        "标识真实，内容由本平台生成且未被修改。",
        "Genuine: generated on this platform, unchanged.",
    ),
    Result.CHANGED: (
        "标识真实，但内容在生成后被修改过。",
        "The label is genuine, but the content was changed after it was generated.",
    ),
    Result.SEALED: (
        "标识真实（未提供内容，无法判断是否被修改）。",
        "The label is genuine (no content was given to tell whether it changed).",
    ),
    Result.FORGED: (
        "标识不是本平台签发的，或标识字段被篡改过。",
        "The label was not issued by this platform, or its fields were altered.",
    ),
    Result.FOREIGN: (
        "这是其他服务提供者的标识，本平台无法核验。",
        "This is another provider's label; this platform cannot check it.",
    ),
    Result.RECORDED: ("本平台生成过该编号的内容。", "This platform generated content with this id."),
    Result.UNKNOWN: ("本平台没有该内容编号的记录。", "This platform has no record of this content id."),
    Result.UNLABELED: ("没有找到 AIGC 标识。", "No AIGC label was found."),
}


@dataclass(slots=True)
class Found:
    """What was read from the input: a label, the content it should cover, a bare content id."""

    source: str  # body | stream | id | docx | xlsx | pdf | html | text
    label: dict[str, str] | None = None
    text: str | None = None  # None: no content to compare
    content_id: str | None = None


@dataclass(slots=True)
class Verdict:
    """What a check found, and where the call's record says the content came from."""

    result: Result
    source: str
    label: dict[str, str] | None = None
    content_id: str | None = None
    labeled_at: dt.datetime | None = None
    role: str | None = None  # producer | propagator: the platform's part in the label
    record: dict[str, Any] = field(default_factory=dict)  # org, model, time of the call; may be empty

    @property
    def produced_here(self) -> bool:
        return self.result in (Result.GENUINE, Result.CHANGED, Result.SEALED, Result.RECORDED)

    def public(self, *, show_org: bool) -> dict[str, Any]:
        """The verdict as the API and the CLI give it; the organization only to those allowed."""
        zh, en = MESSAGES[self.result]
        record = dict(self.record)
        if not show_org:
            record.pop("organization", None)
        return {
            "object": "aigc.verification",
            "result": str(self.result),
            "produced_by_platform": self.produced_here,
            "unchanged": {Result.GENUINE: True, Result.CHANGED: False}.get(self.result),
            "source": self.source,
            "content_id": self.content_id,
            "labeled_at": iso(self.labeled_at) if self.labeled_at else None,
            "role": self.role,
            **record,
            "label": self.label,
            "message": {"zh": zh, "en": en},
        }


def _stream(text: str) -> Found | None:
    """The label and text of a stream as its client read it (``data:`` lines), else None."""
    pieces: dict[int, list[str]] = {}
    label = None
    seen = False
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            continue
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(chunk, dict):
            continue
        seen = True
        label = read_label(chunk) or label
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str):
                index = choice.get("index", 0)
                pieces.setdefault(index if isinstance(index, int) else 0, []).append(content)
    return Found("stream", label, texts_of(pieces)) if seen else None


def found_in(value: Any) -> Found:
    """What a JSON document carries: a completion, a label beside its content, or a content id."""
    if not isinstance(value, dict):
        return Found("body")
    label = read_label(value)
    if "choices" in value:
        return Found("body", label, answer_text(value))
    content = value.get("content", value.get("answer"))  # a knowledge base's answer: "answer"
    if label is not None:
        return Found("body", label, content if isinstance(content, str) else None)
    content_id = value.get("content_id")
    if isinstance(content_id, str):
        return Found("id", content_id=content_id.strip())
    return Found("body")


def read_found(data: bytes, read_file: Callable[[bytes], Found | None] | None = None) -> Found:
    """What *data* carries: JSON, a stream, a file (through *read_file*) or a bare content id."""
    head = data.lstrip()[:16]
    if head.startswith((b"{", b"[")):
        try:
            return found_in(orjson.loads(data))
        except orjson.JSONDecodeError:
            pass
    if read_file is not None:
        found = read_file(data)
        if found is not None:
            return found
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Found("file")
    if head.startswith((b"data:", b"event:", b":")):
        streamed = _stream(text)
        if streamed is not None:
            return streamed
    match = CONTENT_ID.fullmatch(text.strip())
    if match:
        return Found("id", content_id=match.group(0))
    return Found("text")


def _record(db: Database, content_id: str | None) -> dict[str, Any]:
    """The call *content_id*: when, which organization, which model; empty when there is none."""
    if not content_id or not CONTENT_ID.fullmatch(content_id):
        return {}
    with db.session() as session:
        row = session.execute(
            select(UsageRecord.created_at, UsageRecord.model, UsageRecord.org_id, Organization.name)
            .outerjoin(Organization, Organization.id == UsageRecord.org_id)
            .where(UsageRecord.request_id == content_id)
            .limit(1)
        ).first()
    if row is None:
        return {}
    created, model, org_id, org_name = row
    return {"created_at": iso(utc(created)), "model": model, "organization": {"id": org_id, "name": org_name}}


def check(db: Database, labeler: Labeler, found: Found) -> Verdict:
    """Check what was found: the seal, the content against it, and the call's record."""
    label = found.label
    if label is None:
        if found.content_id is None:
            return Verdict(Result.UNLABELED, found.source)
        record = _record(db, found.content_id)
        result = Result.RECORDED if record else Result.UNKNOWN
        return Verdict(result, found.source, content_id=found.content_id, record=record)
    seal = labeler.open(label)
    if seal is None:
        ours = labeler.provider in (label["ContentProducer"], label["ContentPropagator"]) or any(
            label[name].startswith("dz1.") for name in ("ReservedCode1", "ReservedCode2")
        )
        return Verdict(Result.FORGED if ours else Result.FOREIGN, found.source, label=label)
    if found.text is None:
        result = Result.SEALED
    else:
        result = Result.GENUINE if digest(found.text) == seal.digest else Result.CHANGED
    return Verdict(
        result,
        found.source,
        label=label,
        content_id=seal.content_id,
        labeled_at=seal.at,
        role=seal.role,
        record=_record(db, seal.content_id),
    )


def record_check(db: Database, verdict: Verdict, checked_by: str) -> None:
    """Count a check for the regulator's pack."""
    org = verdict.record.get("organization")
    with db.session() as session:
        session.add(
            LabelCheck(
                id=ordered_id(),
                source=verdict.source,
                result=str(verdict.result),
                content_id=verdict.content_id,
                org_id=org["id"] if org else None,
                checked_by=checked_by[:128],
            )
        )
