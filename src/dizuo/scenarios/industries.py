"""GB/T 4754-2017 (国民经济行业分类): its 20 sections (门类, by letter) and 97 divisions (大类, by two
digits, shipped as ``gbt4754-2017-divisions.csv`` beside this module). A scenario's industry is a
section, and may name a division of it; a supplier serves sections."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources
from typing import NamedTuple

__all__ = ["SECTIONS", "Division", "classify", "divisions", "section"]

SECTIONS: dict[str, str] = {
    "A": "农、林、牧、渔业",
    "B": "采矿业",
    "C": "制造业",
    "D": "电力、热力、燃气及水生产和供应业",
    "E": "建筑业",
    "F": "批发和零售业",
    "G": "交通运输、仓储和邮政业",
    "H": "住宿和餐饮业",
    "I": "信息传输、软件和信息技术服务业",
    "J": "金融业",
    "K": "房地产业",
    "L": "租赁和商务服务业",
    "M": "科学研究和技术服务业",
    "N": "水利、环境和公共设施管理业",
    "O": "居民服务、修理和其他服务业",
    "P": "教育",
    "Q": "卫生和社会工作",
    "R": "文化、体育和娱乐业",
    "S": "公共管理、社会保障和社会组织",
    "T": "国际组织",
}
_BY_NAME = {name: code for code, name in SECTIONS.items()}


class Division(NamedTuple):
    """A division: its code (``37``), its section's letter (``C``) and its name."""

    code: str
    section: str
    name: str


@cache
def divisions() -> dict[str, Division]:
    """The 97 divisions by code, from the data file shipped with the package."""
    text = resources.files(__package__).joinpath("gbt4754-2017-divisions.csv").read_text(encoding="utf-8")
    return {row["division"]: Division(row["division"], row["section"], row["name"]) for row in csv.DictReader(text.splitlines())}  # fmt: skip


@cache
def _division_names() -> dict[str, str]:
    return {d.name: code for code, d in divisions().items()}


def classify(value: str) -> tuple[str, str | None] | None:
    """The section's letter and the division's code (None: the section as a whole) that *value*
    names: a letter (``C``), a section's name (``制造业``), a division's code (``37``, ``C37``) or
    name (``铁路、船舶、航空航天和其他运输设备制造业``); None when it names none."""
    text = value.strip()
    if text.upper() in SECTIONS:
        return text.upper(), None
    if text in _BY_NAME:
        return _BY_NAME[text], None
    code = text[1:] if len(text) == 3 and text[0].upper() in SECTIONS else text
    found = divisions().get(code) or divisions().get(_division_names().get(text, ""))
    if found is None or (len(text) == 3 and text[0].upper() != found.section):
        return None
    return found.section, found.code


def section(value: str) -> str | None:
    """The section's letter for *value*: a section or one of its divisions, as :func:`classify`."""
    found = classify(value)
    return found[0] if found else None
