"""Reading console forms: the values people typed, and errors shown beside the field they belong to.

Validation itself stays in the services (``create_org``, ``issue_voucher`` …); this module only turns
form text into their arguments and their errors into inline messages in the page's language.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from dizuo.days import day_moment
from dizuo.errors import DizuoError, InvalidRequest, Lang

__all__ = [
    "FormError",
    "KeyForm",
    "OrgForm",
    "PasswordForm",
    "TokenForm",
    "TopupForm",
    "VoucherForm",
    "field_errors",
    "listed",
    "optional_int",
    "optional_list",
    "parse_date",
]


class _Form(BaseModel):
    """Form fields as typed: strings, kept as they were for the page that shows an error."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class OrgForm(_Form):
    name: str = ""
    uscc: str = ""
    industry: str = ""
    district: str = ""
    region: str = ""
    size: str = ""
    data_class: str = "general"


class KeyForm(_Form):
    name: str = ""
    models: str = ""
    data_class: str = ""
    expires: str = ""
    rpm: str = ""
    tpm: str = ""
    concurrency: str = ""


class PasswordForm(_Form):
    current: str = ""
    new: str = ""


class TokenForm(_Form):
    expires_days: str = ""


class TopupForm(_Form):
    topup_amount: str = ""
    topup_note: str = ""


class VoucherForm(_Form):
    org: str = ""
    issuer: str = ""
    program: str = ""
    amount: str = ""
    copay: str = ""
    providers: str = ""
    regions: str = ""
    models: str = ""
    valid_from: str = ""
    valid_to: str = ""
    back: str = "issuer"


class FormError(InvalidRequest):
    """A form value the services never see because it cannot even be read (a date, a number)."""

    def __init__(self, param: str, zh: str, en: str) -> None:
        super().__init__("invalid_param", param=param, reason_zh=zh, reason_en=en)


def field_errors(error: DizuoError, lang: Lang) -> dict[str, str]:
    """Return ``{field: message}`` for *error*; an error without a field goes under ``form``."""
    if error.code == "invalid_param" and error.param:
        reason = error.params.get("reason_zh" if lang == "zh" else "reason_en")
        return {error.param: str(reason)}
    return {error.param or "form": error.message(lang)}


SEPARATORS = re.compile(r"[,，、;；\n]+")


def listed(text: str) -> list[str]:
    """Names typed as a list: ``江津区、两江新区``, ``a, b；c`` or one a line (spaces stay inside a
    name: ``ISO 9001``)."""
    return [part.strip() for part in SEPARATORS.split(text) if part.strip()]


def optional_list(text: str) -> list[str] | None:
    """``"a, b，c"`` → ``["a", "b", "c"]`` (Chinese commas too); empty → None (no restriction)."""
    items = [item.strip() for item in text.replace("，", ",").split(",")]
    kept = [item for item in items if item]
    return kept or None


def optional_int(text: str, param: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise FormError(param, f"{text!r} 不是整数", f"{text!r} is not a whole number") from None


def parse_date(text: str, param: str, zone: ZoneInfo, *, end_of_day: bool = False) -> dt.datetime | None:
    """A ``YYYY-MM-DD`` date as the start (or with *end_of_day*, the end) of that day in *zone*, in UTC
    (:func:`dizuo.days.day_moment`, as the CLI and the admin API read dates)."""
    if not text.strip():
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise FormError(
            param, f"{text!r} 不是 YYYY-MM-DD 日期", f"{text!r} is not a YYYY-MM-DD date"
        ) from None
    return day_moment(day, zone, end_of_day=end_of_day)
