"""Finding personal information and secrets in text, each candidate checked by its real rules.

One compiled regular expression finds candidates in a single pass (Python's engine skips quickly
over text that cannot start one); each candidate is then validated: check digits (GB 11643 resident
IDs, GB 32100 credit codes, Luhn for bank cards), birth dates, area and card-issuer prefixes, current
mobile number ranges (Google's libphonenumber metadata). Candidates glued to longer runs of letters
or digits are not reported, nor are numbers whose check digit is wrong.

Offsets are character offsets into the Python string (code points), as the CLI contract requires.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import phonenumbers
import re2
from stdnum import luhn
from stdnum.cn import ric, uscc

from dizuo.config import custom_pattern

__all__ = ["ENTITY_TYPES", "Entity", "Scanner", "scan"]

# The types the CLI contract names, then the ones added here.
ENTITY_TYPES = (
    "CN_RESIDENT_ID",
    "CN_MOBILE",
    "BANK_CARD",
    "CN_USCC",
    "EMAIL",
    "CN_PASSPORT",
    "CN_LICENSE_PLATE",
    "API_KEY",
    "CN_HK_MACAO_PERMIT",
    "IP_ADDRESS",
    "PRIVATE_KEY",
    "BEARER_TOKEN",
    "KEYWORD",
    "CUSTOM",
)


@dataclass(frozen=True, slots=True)
class Entity:
    type: str
    start: int
    end: int
    value: str

    def as_dict(self) -> dict[str, str | int]:
        return {"type": self.type, "start": self.start, "end": self.end, "value": self.value}


# ---- candidates -----------------------------------------------------------------------------
#
# RE2 (linear time, one DFA pass for every alternative: about 200 MB/s here, against 3.5 MB/s for the
# same alternation in Python's backtracking engine) runs over the UTF-8 bytes. RE2 has no
# lookaround, so each alternative consumes the character before it (or the start) and the one after
# it (or the end), and the entity is the named group between them.

_LEAD = "(?:^|[^0-9A-Za-z])"
_TRAIL = "(?:[^0-9A-Za-z]|$)"
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_LETTER = "A-HJ-NP-Z"  # no I or O on plates
_USCC_CHAR = "0-9A-HJ-NPQRTUWXY"  # GB 32100 leaves out I, O, S, V and Z

_ALTERNATIVES = [
    (
        "PRIVATE_KEY",
        "",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]{16,}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
        "",
    ),
    ("BEARER_TOKEN", "(?:^|[^A-Za-z])", r"[Bb]earer[ \t]+[A-Za-z0-9._~+/-]{16,}=*", _TRAIL),
    ("JWT", _LEAD, r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "(?:[^A-Za-z0-9_-]|$)"),
    (
        "API_KEY",
        _LEAD,
        r"(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"  # OpenAI, DeepSeek, Moonshot, Anthropic …
        r"|AKIA[0-9A-Z]{16}"  # AWS access key id
        r"|LTAI[0-9A-Za-z]{12,30}"  # Alibaba Cloud AccessKey ID
        r"|AKID[0-9A-Za-z]{32}"  # Tencent Cloud SecretId
        r"|gh[pousr]_[A-Za-z0-9]{36,}"  # GitHub tokens
        r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
        r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
        r"|dzk-[A-Za-z0-9_-]{20,})",  # dizuo's own keys
        "(?:[^A-Za-z0-9_-]|$)",
    ),
    (
        "EMAIL",
        "(?:^|[^A-Za-z0-9._%+-])",
        r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}",
        "(?:[^A-Za-z0-9-]|$)",
    ),
    # 18 characters that may be a resident ID, a credit code (letters allowed) or a bank card.
    ("ID18", _LEAD, rf"[{_USCC_CHAR}]{{17}}[0-9A-Za-z]", _TRAIL),
    ("CARD", _LEAD, r"\d{16,19}|\d{4}(?:[ -]\d{4}){3}(?:[ -]?\d{1,3})?", _TRAIL),
    ("CN_MOBILE", "(?:^|[^0-9A-Za-z+])", r"(?:\+?86[ -]?)?1[3-9]\d(?:\d{8}|[ -]\d{4}[ -]\d{4})", _TRAIL),
    ("CN_PASSPORT", _LEAD, r"E[0-9A-HJ-NP-Z]\d{7}|[GDSP]\d{8}|[DSP]E\d{7}", _TRAIL),
    ("CN_HK_MACAO_PERMIT", _LEAD, r"[HM]\d{8}(?:\d{2})?|C[0-9A-HJ-NP-Z]\d{7}", _TRAIL),
    (
        "CN_LICENSE_PLATE",
        "",
        rf"[{_PROVINCES}][{_PLATE_LETTER}](?:[·•] ?| )?"
        rf"(?:[DF][{_PLATE_LETTER}0-9]\d{{4}}|\d{{5}}[DF]|[{_PLATE_LETTER}0-9]{{4}}[{_PLATE_LETTER}0-9挂学警港澳])",
        _TRAIL,
    ),
    ("IPV4", "(?:^|[^0-9A-Za-z.])", r"(?:\d{1,3}\.){3}\d{1,3}", "(?:[^0-9A-Za-z.]|$)"),
    (
        "IPV6",
        "(?:^|[^0-9A-Za-z:])",
        r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[0-9A-Za-z]+)?",
        "(?:[^0-9A-Za-z:]|$)",
    ),
]
_CANDIDATES = re2.compile(
    "|".join(f"{lead}(?P<{name}>{body}){trail}" for name, lead, body, trail in _ALTERNATIVES)
)
# The only capturing groups are the named ones, so the one group with a span names the alternative.
_NAME_OF = {index: name for name, index in _CANDIDATES.groupindex.items()}
_GROUP_NUMBERS = tuple(sorted(_NAME_OF))
# The binding's RE2 object, called directly: it returns the groups' byte spans, without the Python
# Match object and its lastindex loop that the wrapper builds on every call (a 4 KB prompt with
# four entities: 44 -> 30 µs, docs/benchmarks.md). Matching is the same RE2 call either way.
_MATCH = _CANDIDATES._regexp.Match
_UNANCHORED = re2._Anchor.UNANCHORED
_TYPE_OF = {"JWT": "BEARER_TOKEN", "IPV4": "IP_ADDRESS", "IPV6": "IP_ADDRESS"}
# Every built-in type has an ASCII letter or digit, or (an IPv6 address such as "::") a colon: a text
# with none of them holds none, and is not handed to RE2. Its binding releases the interpreter's
# lock for every match, and in a server whose writer threads are waiting for that lock each release
# wakes one of them: a 14-character prompt cost 12 us there, 1 us alone (docs/benchmarks.md).
_ANY_CANDIDATE = re.compile(r"[0-9A-Za-z:]")

# Issuer prefixes of cards used in China. UnionPay (62) is reported by itself; Visa 4, Mastercard
# 51–55 and 2221–2720, JCB 35 and the 60 / 9 prefixes of older domestic debit cards (e.g. ICBC 9558)
# share their shape with long order numbers, so they are reported only after a word about money.
_UNIONPAY = "62"
_CARD_PREFIX = re.compile(r"62|4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|35|60|9\d")
_CARD_CONTEXT: re.Pattern[str] = re.compile(
    r"卡|账号|账户|帐号|帐户|户名|转入|转账|汇款|收款|付款|开户|银行|card|Card|CARD|account|IBAN"
)

# Passports and travel permits have no check digit: a bare letter and eight digits is also an order
# number. They are reported only after a word that names them.
_CONTEXT = {
    "CN_PASSPORT": re.compile(r"护照|passport|Passport|PASSPORT|证件号|旅行证"),
    "CN_HK_MACAO_PERMIT": re.compile(r"通行证|港澳|回乡证|permit|Permit"),
    "BANK_CARD": _CARD_CONTEXT,
}
CONTEXT_WINDOW = 24  # characters before a candidate where a word naming it must appear

# GB/T 2260 province-level codes: the first two digits of a resident ID (83: Taiwan residents).
_PROVINCE_CODES = frozenset(
    [
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
        "83",
    ]
)

# ---- validators -------------------------------------------------------------------------------


def valid_resident_id(value: str) -> bool:
    """GB 11643: 17 digits and a check character (mod 11-2), a real birth date, a province prefix."""
    value = value.upper()
    if len(value) != 18 or not value[:17].isdigit() or value[:2] not in _PROVINCE_CODES:
        return False
    if ric.calc_check_digit(value) != value[17]:
        return False
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return dt.date(1900, 1, 1) <= born <= dt.date.today()


def valid_uscc(value: str) -> bool:
    """GB 32100: the check character (mod 31), and an administrative division code whose first two
    digits name a province (characters 3–8)."""
    return value[2:4] in _PROVINCE_CODES and uscc.is_valid(value)


def valid_card(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    return 16 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn.is_valid(digits)


@functools.lru_cache(maxsize=4096)
def valid_mobile(value: str) -> bool:
    """A mainland mobile number in a range that is allocated today (libphonenumber's metadata)."""
    digits = re.sub(r"[ -]", "", value)
    if digits.startswith("+"):
        digits = digits[1:]
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) != 11:
        return False
    number = phonenumbers.parse("+86" + digits)
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def valid_ip(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value.split("%")[0])
    except ValueError:
        return False
    if address.version == 4:  # 1.2.3.4 is a version number at least as often as an address
        return not value.startswith("0") and value.count(".") == 3
    return True


def _in_context(kind: str, data: bytes, start: int) -> bool:
    """Whether a word naming *kind* appears in the few characters before byte *start*."""
    before = data[max(0, start - 3 * CONTEXT_WINDOW) : start].decode("utf-8", "ignore")[-CONTEXT_WINDOW:]
    return bool(_CONTEXT[kind].search(before))


# ---- the scanner ------------------------------------------------------------------------------


class Scanner:
    """Scan text for the built-in types plus an organization's own keywords and expressions."""

    def __init__(self, keywords: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        """*keywords* are matched literally (type ``KEYWORD``), *patterns* as regular expressions
        (type ``CUSTOM``)."""
        words = sorted({w for w in keywords if w}, key=len, reverse=True)
        self._keywords = re.compile("|".join(re.escape(w) for w in words)) if words else None
        self._patterns = [custom_pattern(p) for p in patterns]  # RE2: no pattern can backtrack

    def scan(self, text: str) -> list[Entity]:
        """Every entity in *text*, by start offset; overlapping finds keep the most specific one."""
        found = list(self._builtin(text))
        if self._keywords is not None:
            found += [Entity("KEYWORD", m.start(), m.end(), m.group()) for m in self._keywords.finditer(text)]
        for pattern in self._patterns:
            found += [
                Entity("CUSTOM", m.start(), m.end(), m.group())
                for m in pattern.finditer(text)
                if m.end() > m.start()
            ]
        return _without_overlaps(found)

    def _builtin(self, text: str) -> Iterator[Entity]:
        if _ANY_CANDIDATE.search(text) is None:
            return  # nothing a built-in type can be made of (the prompt or answer of most chats in Chinese)
        data = text.encode("utf-8")
        size = len(data)
        found: list[tuple[int, int, str]] = []  # byte offsets and type
        pos = 0
        while True:
            spans = _MATCH(_UNANCHORED, data, pos, size)
            if spans[0][0] < 0:
                break
            # Exactly one named group takes part: the alternative that matched.
            index = next(i for i in _GROUP_NUMBERS if spans[i][0] >= 0)
            name = _NAME_OF[index]
            start, end = spans[index]
            value = data[start:end].decode("utf-8")
            typed = _classify(name, value, data, start)
            if typed is not None:
                found.append((start, end, typed))
                pos = end  # the next entity may use the character this one's match consumed after it
            else:
                pos = start + (3 if data[start] >= 0x80 else 1)
        # Byte offsets to character offsets, in one pass over the bytes.
        chars = 0
        last = 0
        for start, end, typed in found:
            chars += len(data[last:start].decode("utf-8"))
            begin = chars
            chars += len(data[start:end].decode("utf-8"))
            last = end
            yield Entity(typed, begin, chars, text[begin:chars])


def _classify(name: str, value: str, data: bytes, start: int) -> str | None:
    if name == "ID18":
        if valid_resident_id(value):
            return "CN_RESIDENT_ID"
        if valid_uscc(value):
            return "CN_USCC"
        return "BANK_CARD" if value.isdigit() and _card(value, data, start) else None
    if name == "CARD":
        return "BANK_CARD" if _card(value, data, start) else None
    if name == "CN_MOBILE":
        return name if valid_mobile(value) else None
    if name in _CONTEXT:
        return name if _in_context(name, data, start) else None
    if name in ("IPV4", "IPV6"):
        return "IP_ADDRESS" if valid_ip(value) else None
    return _TYPE_OF.get(name, name)  # shapes specific enough by themselves: keys, tokens, e-mail, plates


def _card(value: str, data: bytes, start: int) -> bool:
    if not valid_card(value):
        return False
    return value.startswith(_UNIONPAY) or _in_context("BANK_CARD", data, start)


_PRIORITY = {name: rank for rank, name in enumerate(ENTITY_TYPES)}


def _without_overlaps(found: list[Entity]) -> list[Entity]:
    """Keep the longest of overlapping entities (the first type listed on a tie)."""
    if len(found) < 2:
        return found
    found.sort(key=lambda e: (e.start, -(e.end - e.start), _PRIORITY.get(e.type, 99)))
    kept: list[Entity] = []
    for entity in found:
        if kept and entity.start < kept[-1].end:
            continue
        kept.append(entity)
    return kept


_DEFAULT = Scanner()


def scan(text: str) -> list[Entity]:
    """Scan *text* with the built-in detectors."""
    return _DEFAULT.scan(text)
