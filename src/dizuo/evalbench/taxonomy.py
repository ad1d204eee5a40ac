"""The safety risks of GB/T 45654-2025 (formerly TC260-003, Appendix A): 5 categories, 31 risks.

Items of refusal banks and generated-content suites carry one risk code (``A.1.a`` …). A bank may
also name the risk by its Chinese title; :func:`risk_code` accepts either.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATEGORIES", "RISKS", "Risk", "risk_code"]


@dataclass(frozen=True, slots=True)
class Risk:
    code: str
    title_zh: str
    title_en: str

    @property
    def category(self) -> str:
        return self.code[:3]


CATEGORIES: dict[str, tuple[str, str]] = {
    "A.1": ("违反社会主义核心价值观", "Violates core socialist values"),
    "A.2": ("歧视性内容", "Discrimination"),
    "A.3": ("商业违法违规", "Commercial violations"),
    "A.4": ("侵犯他人合法权益", "Infringes others' lawful rights"),
    "A.5": ("无法满足特定服务类型的安全需求", "Fails the safety needs of specific services"),
}

_RISKS = [
    ("A.1.a", "煽动颠覆国家政权、推翻社会主义制度", "Incitement to subvert state power"),
    ("A.1.b", "危害国家安全和利益、损害国家形象", "Endangering national security and interests"),
    ("A.1.c", "煽动分裂国家、破坏国家统一和社会稳定", "Incitement to separatism"),
    ("A.1.d", "宣扬恐怖主义、极端主义", "Promoting terrorism or extremism"),
    ("A.1.e", "宣扬民族仇恨", "Promoting ethnic hatred"),
    ("A.1.f", "宣扬暴力、淫秽色情", "Promoting violence or pornography"),
    ("A.1.g", "传播虚假有害信息", "Spreading false and harmful information"),
    ("A.1.h", "其他法律、行政法规禁止的内容", "Other content prohibited by law"),
    ("A.2.a", "民族歧视", "Ethnic discrimination"),
    ("A.2.b", "信仰歧视", "Religious discrimination"),
    ("A.2.c", "国别歧视", "Discrimination by nationality"),
    ("A.2.d", "地域歧视", "Regional discrimination"),
    ("A.2.e", "性别歧视", "Gender discrimination"),
    ("A.2.f", "年龄歧视", "Age discrimination"),
    ("A.2.g", "职业歧视", "Occupational discrimination"),
    ("A.2.h", "健康歧视", "Health discrimination"),
    ("A.2.i", "其他方面歧视", "Other discrimination"),
    ("A.3.a", "侵犯他人知识产权", "Infringing intellectual property"),
    ("A.3.b", "违反商业道德", "Violating business ethics"),
    ("A.3.c", "泄露他人商业秘密", "Disclosing trade secrets"),
    ("A.3.d", "利用算法、数据、平台等优势实施垄断和不正当竞争", "Monopoly and unfair competition"),
    ("A.3.e", "其他商业违法违规行为", "Other commercial violations"),
    ("A.4.a", "危害他人身心健康", "Endangering physical or mental health"),
    ("A.4.b", "侵害他人肖像权", "Infringing portrait rights"),
    ("A.4.c", "侵害他人名誉权", "Infringing reputation rights"),
    ("A.4.d", "侵害他人荣誉权", "Infringing honour rights"),
    ("A.4.e", "侵害他人隐私权", "Infringing privacy"),
    ("A.4.f", "侵害他人个人信息权益", "Infringing personal information rights"),
    ("A.4.g", "侵犯他人其他合法权益", "Infringing other lawful rights"),
    ("A.5.a", "内容不准确，严重不符合科学常识或主流认知", "Inaccurate content against scientific fact"),
    ("A.5.b", "内容不可靠，无法对使用者形成帮助", "Unreliable content of no help to the user"),
]

RISKS: dict[str, Risk] = {code: Risk(code, zh, en) for code, zh, en in _RISKS}
_BY_TITLE = {risk.title_zh: code for code, risk in RISKS.items()}


def risk_code(text: str) -> str | None:
    """Return the risk code for a code (``A.1.a``, ``a1a`` …) or a Chinese title, else None."""
    cleaned = text.strip()
    if cleaned in _BY_TITLE:
        return _BY_TITLE[cleaned]
    compact = cleaned.replace(".", "").replace("-", "").upper()
    if len(compact) == 3 and compact[0] == "A":
        code = f"A.{compact[1]}.{compact[2].lower()}"
        return code if code in RISKS else None
    return None
