"""Data classes that fail closed (DESIGN §3.4).

A request's class is the highest of its organization's, its key's and an optional
``X-Dizuo-Data-Class`` header (a header may raise the class, never lower it). Only deployments
cleared for at least that class are eligible, and ``core`` data never leaves its organization's
region unless an operator allows it per deployment (``core_cross_region: true``). An organization
without a region keeps core data on the machine (region ``local``). When nothing qualifies the call
is refused with 503 naming the class and each deployment's reason; it never falls back.
"""

from __future__ import annotations

from dizuo.config import DATA_CLASSES
from dizuo.errors import InvalidRequest, NoDeployment, NotFiled
from dizuo.routing.deployments import Deployment

__all__ = ["LOCAL_REGION", "RANK", "clear", "clearance_row", "filed", "request_class"]

RANK = {name: rank for rank, name in enumerate(DATA_CLASSES)}  # general < important < core
NAMES_ZH = {"general": "一般数据", "important": "重要数据", "core": "核心数据"}
LOCAL_REGION = "local"
MAX_REASONS = 10  # an alias may have a hundred deployments; the message names the first ten


def request_class(key_class: str, header: bytes) -> str:
    """Return the request's data class: the key's (already at least its organization's) or higher."""
    if not header:
        return key_class
    asked = header.decode("latin-1").strip().lower()
    if asked not in RANK:
        raise InvalidRequest(
            "invalid_param",
            param="x-dizuo-data-class",
            reason_zh="只能是 general、important 或 core（一般/重要/核心）",
            reason_en="must be general, important or core",
        )
    return asked if RANK[asked] > RANK[key_class] else key_class


def _reason(dep: Deployment, data_class: str, org_region: str | None) -> str | None:
    cleared = dep.config.data_class_max
    if RANK[cleared] < RANK[data_class]:
        return f"{dep.name}: cleared up to {cleared} / 仅允许{NAMES_ZH[cleared]}"
    if data_class == "core" and not dep.config.core_cross_region:
        home = org_region or LOCAL_REGION
        if dep.config.region != home:
            return f"{dep.name}: region {dep.config.region} is outside {home} / 位于区域 {dep.config.region}，不在 {home}"
    return None


def clearance_row(dep: Deployment) -> dict[str, bool | str]:
    """Return which data classes *dep* may serve: True, False, or for core data the one region whose
    organizations it serves ("*" when the operator let core data cross regions)."""
    cleared = RANK[dep.config.data_class_max]
    row: dict[str, bool | str] = {name: cleared >= rank for name, rank in RANK.items()}
    if row["core"]:
        row["core"] = "*" if dep.config.core_cross_region else dep.config.region
    return row


def clear(
    alias: str, candidates: list[Deployment], data_class: str, org_region: str | None
) -> list[Deployment]:
    """Keep the deployments cleared for *data_class*; refuse with 503 when none is."""
    if data_class == "general":
        return [dep for dep in candidates if dep.config.data_class_max in RANK]  # every deployment is
    kept = []
    reasons = []
    for dep in candidates:
        reason = _reason(dep, data_class, org_region)
        if reason is None:
            kept.append(dep)
        else:
            reasons.append(reason)
    if not kept:
        raise NoDeployment(
            "no_cleared_deployment",
            model=alias,
            data_class=data_class,
            data_class_zh=NAMES_ZH[data_class],
            detail="; ".join(reasons[:MAX_REASONS])
            + (
                f"; … {len(reasons) - MAX_REASONS} more / 另有 {len(reasons) - MAX_REASONS} 个"
                if len(reasons) > MAX_REASONS
                else ""
            ),
        )
    return kept


def filed(alias: str, candidates: list[Deployment]) -> list[Deployment]:
    """Keep the deployments with a service filing, for an organization that serves the public; refuse
    with 403 when none has one (it never falls back to an unfiled model)."""
    kept = [dep for dep in candidates if dep.config.filing is not None]
    if not kept:
        raise NotFiled(model=alias)
    return kept
