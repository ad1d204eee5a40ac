"""The data sandbox's tests share one file of 100,000 synthetic residents (written once a session:
resident IDs and mobile numbers with valid check digits, Chongqing districts, incomes) and read the
truth about it with plain Python, not with the sandbox."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dizuo.sandbox.service import Sandbox
from dizuo.sandbox.synthetic import write_csv

ROWS = 100_000


@dataclass(frozen=True)
class Residents:
    path: Path
    rows: list[dict[str, str]]

    def by_district(self) -> Counter[str]:
        return Counter(row["区县"] for row in self.rows)

    def someone_in(self, district: str) -> dict[str, str]:
        """A resident of *district* who shares neither birthday nor gender-and-birthday with anyone
        else there: the person a differencing attack would single out."""
        there = [row for row in self.rows if row["区县"] == district]
        days = Counter(row["出生日期"] for row in there)
        return next(row for row in there if days[row["出生日期"]] == 1)


@pytest.fixture(scope="session")
def residents(tmp_path_factory: pytest.TempPathFactory) -> Residents:
    path = write_csv(tmp_path_factory.mktemp("sandbox") / "residents.csv", ROWS)
    with path.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return Residents(path, rows)


def register(sandbox: Sandbox, owner_id: str, path: Path, name: str, **spec: Any) -> dict[str, Any]:
    """The residents file at *path* registered as *name* by *owner_id*: important, with personal
    information, each column's sensitivity, bounds on the income (*spec* overrides)."""
    return sandbox.add_dataset(
        owner_id,
        {
            "name": name,
            "classification": "important",
            "personal": True,
            "identifiers": ["身份证号", "姓名", "手机号"],
            "quasi": ["区县", "性别", "出生日期", "年龄"],
            "sensitive": ["月收入", "参保类别"],
            "bounds": {"月收入": [0, 100000]},
            "description": "某市常住人口（合成数据）",
            **spec,
        },
        path,
        path.name,
        "数据局",
    )
