"""Synthetic residents for trying the sandbox (and for its tests and benchmark): names, resident ID
numbers with valid GB 11643 check digits, allocated mobile numbers, Chongqing districts, ages,
incomes and insurance. Seeded: the same rows on every machine. No real person's data is involved.

One district (城口县) is kept tiny on purpose: its groups are the ones disclosure control withholds.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stdnum.cn import ric

from dizuo.guard.detect import valid_mobile
from dizuo.guard.synth import GIVEN, MOBILE_PREFIXES, SURNAMES

__all__ = ["COLUMNS", "DISTRICTS", "residents", "write_csv"]

# (GB/T 2260 code, name, weight)
DISTRICTS = [
    ("500103", "渝中区", 8),
    ("500104", "大渡口区", 5),
    ("500105", "江北区", 12),
    ("500106", "沙坪坝区", 14),
    ("500107", "九龙坡区", 15),
    ("500108", "南岸区", 12),
    ("500112", "渝北区", 20),
    ("500113", "巴南区", 10),
    ("500229", "城口县", 0),  # a handful of rows, added on purpose
]
TINY = 6  # rows of 城口县 in every file
INSURANCE = ("城镇职工", "城乡居民", "未参保")
COLUMNS = ["身份证号", "姓名", "手机号", "区县", "性别", "出生日期", "年龄", "月收入", "参保类别", "家庭人数"]
AS_OF = dt.date(2026, 12, 1)


def _resident(rng: random.Random, code: str, district: str) -> dict[str, Any]:
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 30_000))
    body = code + born.strftime("%Y%m%d") + f"{rng.randint(0, 999):03d}"
    resident_id = body + ric.calc_check_digit(body + "0")
    while True:
        mobile = rng.choice(MOBILE_PREFIXES) + f"{rng.randint(0, 99_999_999):08d}"
        if valid_mobile(mobile):
            break
    age = AS_OF.year - born.year - ((AS_OF.month, AS_OF.day) < (born.month, born.day))
    working = 22 <= age < 60
    income = round(rng.lognormvariate(8.9, 0.45), 0) if working else round(rng.uniform(1500, 4000), 0)
    return {
        "身份证号": resident_id,
        "姓名": rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2))),
        "手机号": mobile,
        "区县": district,
        "性别": "男" if int(body[16]) % 2 else "女",
        "出生日期": born.isoformat(),
        "年龄": age,
        "月收入": min(income, 99_999),
        "参保类别": rng.choices(INSURANCE, weights=(55, 40, 5))[0],
        "家庭人数": rng.randint(1, 6),
    }


def residents(count: int, seed: int = 20261205) -> Iterator[dict[str, Any]]:
    """*count* synthetic residents (the last few in the tiny district)."""
    rng = random.Random(seed)
    common = [d for d in DISTRICTS if d[2] > 0]
    weights = [d[2] for d in common]
    tiny = next(d for d in DISTRICTS if d[2] == 0)
    for index in range(count):
        code, name, _ = tiny if index >= count - TINY else rng.choices(common, weights=weights)[0]
        yield _resident(rng, code, name)


def write_csv(path: Path, count: int, seed: int = 20261205) -> Path:
    """Write *count* residents to *path* as UTF-8 CSV with a header."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(residents(count, seed))
    return path
