"""A labeled evaluation set for the guard: valid identifiers in realistic Chinese (and some English)
sentences, and hard negatives that look like them — order, batch and serial numbers, timestamps,
identifiers with a wrong check digit, valid identifiers glued into longer digit runs.

Every identifier is made by the same rules the detectors check (GB 11643, GB 32100, Luhn, allocated
mobile ranges), with a seeded random generator, so the set is the same on every machine. No real
person's data is involved: names and numbers are random.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from collections.abc import Callable, Iterator
from typing import Any

from stdnum import luhn
from stdnum.cn import ric, uscc

from dizuo.guard.detect import valid_mobile, valid_resident_id, valid_uscc

__all__ = ["labeled_lines"]

# Real county-level division codes (GB/T 2260) across the country.
AREAS = [
    "110101",
    "110105",
    "120101",
    "130102",
    "140105",
    "150102",
    "210102",
    "220102",
    "230102",
    "310104",
    "310115",
    "320102",
    "320505",
    "330106",
    "340104",
    "350203",
    "360102",
    "370202",
    "410105",
    "420106",
    "430104",
    "440106",
    "440305",
    "450103",
    "460105",
    "500103",
    "500105",
    "500108",
    "500112",
    "510104",
    "510107",
    "520102",
    "530102",
    "540102",
    "610113",
    "620102",
    "630102",
    "640104",
    "650102",
]
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强海燕晨宇欣怡子涵浩然"
MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "147",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "173",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "193",
    "195",
    "198",
    "199",
]
UNIONPAY_BINS = ["622202", "622208", "621700", "622848", "623668", "621226", "622588", "621483", "622622"]
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
DOMAINS = ["qq.com", "163.com", "126.com", "example.com", "example.org", "sina.com", "foxmail.com", "corp.cn"]


class _Make:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def name(self) -> str:
        return self.rng.choice(SURNAMES) + "".join(self.rng.choices(GIVEN, k=self.rng.randint(1, 2)))

    def digits(self, n: int) -> str:
        return "".join(self.rng.choices(string.digits, k=n))

    def resident_id(self) -> str:
        born = dt.date(1950, 1, 1) + dt.timedelta(days=self.rng.randint(0, 20_000))
        body = self.rng.choice(AREAS) + born.strftime("%Y%m%d") + self.digits(3)
        return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check digit

    def bad_resident_id(self) -> str:
        good = self.resident_id()
        wrong = self.rng.choice([c for c in "0123456789X" if c != good[-1]])
        return good[:-1] + wrong

    def mobile(self) -> str:
        while True:
            number = self.rng.choice(MOBILE_PREFIXES) + self.digits(8)
            if valid_mobile(number):
                return number

    def card(self, length: int | None = None) -> str:
        length = length or self.rng.choice([16, 19])
        body = self.rng.choice(UNIONPAY_BINS) + self.digits(length - 7)
        return body + luhn.calc_check_digit(body)

    def bad_card(self) -> str:
        good = self.card()
        return good[:-1] + str((int(good[-1]) + self.rng.randint(1, 9)) % 10)

    def uscc(self) -> str:
        body = (
            self.rng.choice("159")
            + self.rng.choice("123")
            + self.rng.choice(AREAS)
            + "".join(self.rng.choices(USCC_CHARS, k=9))
        )
        return body + uscc.calc_check_digit(body)

    def bad_uscc(self) -> str:
        good = self.uscc()
        return good[:-1] + self.rng.choice([c for c in USCC_CHARS if c != good[-1]])

    def email(self) -> str:
        local = "".join(self.rng.choices(string.ascii_lowercase + string.digits, k=self.rng.randint(4, 12)))
        return f"{local}@{self.rng.choice(DOMAINS)}"

    def passport(self) -> str:
        if self.rng.random() < 0.5:
            return "E" + self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + self.digits(7)
        return "E" + self.digits(8)

    def plate(self) -> str:
        head = self.rng.choice(PROVINCES) + self.rng.choice(PLATE_LETTERS)
        if self.rng.random() < 0.3:  # new-energy plates: D or F, then five
            return (
                head + self.rng.choice("DF") + self.rng.choice(PLATE_LETTERS + string.digits) + self.digits(4)
            )
        return head + "".join(self.rng.choices(PLATE_LETTERS.replace("I", "") + string.digits, k=5))

    def api_key(self) -> str:
        alnum = string.ascii_letters + string.digits
        kind = self.rng.random()
        if kind < 0.5:
            return "sk-" + "".join(self.rng.choices(alnum, k=self.rng.choice([32, 40, 48])))
        if kind < 0.7:
            return "AKIA" + "".join(self.rng.choices(string.ascii_uppercase + string.digits, k=16))
        if kind < 0.85:
            return "LTAI" + "".join(self.rng.choices(alnum, k=20))
        return "ghp_" + "".join(self.rng.choices(alnum, k=36))


# Sentences with one slot each: {x} is the entity. Chinese first, some English.
POSITIVE: dict[str, list[str]] = {
    "CN_RESIDENT_ID": [
        "客户{n}的身份证号是{x}，请核实。",
        "申请人：{n}，证件号{x}",
        "身份证：{x}；联系人{n}",
        "请帮我查一下{x}这个身份证的归属地",
        "Applicant ID number: {x}",
        "{n}（{x}）已完成实名认证",
    ],
    "CN_MOBILE": [
        "回拨号码{x}（{n}）",
        "联系电话：{x}",
        "请拨打 {x} 联系{n}",
        "手机 {x}，微信同号",
        "Call me at {x} tomorrow",
        "如有问题请致电{x}。",
    ],
    "BANK_CARD": [
        "请将款项转入 {x}",
        "卡号{x}已冻结",
        "收款账号：{x}，户名{n}",
        "我的银行卡是{x}，帮我看看额度",
        "Please pay to card {x}",
        "退款将原路退回至尾号所在卡 {x}",
    ],
    "CN_USCC": [
        "统一社会信用代码：{x}",
        "供应商（信用代码 {x}）资质审核通过",
        "企业代码{x}，法人{n}",
        "请核对{x}的工商登记信息",
        "USCC {x} is registered in Chongqing",
    ],
    "EMAIL": [
        "联系邮箱：{x}",
        "请抄送 {x}",
        "报告已发送到{x}，请查收",
        "Reply to {x} before Friday",
        "邮箱{x}（{n}）",
    ],
    "CN_PASSPORT": ["护照号码：{x}", "旅客{n}，护照号 {x}", "Passport No. {x}", "证件号{x}（护照）"],
    "CN_LICENSE_PLATE": ["车牌号{x}的车辆违停", "{x}已驶入厂区", "送货车辆：{x}，司机{n}", "请登记车牌 {x}"],
    "API_KEY": [
        "我的密钥是{x}，为什么调用失败？",
        "配置里写着 OPENAI_API_KEY={x} 请帮我检查",
        "access_key_id: {x}",
        "export KEY={x}",
        "调用时用的 key 是 {x}",
    ],
}
NEGATIVE: list[Callable[[_Make], str]] = [
    lambda m: f"批号{2025}{m.digits(4)}的柱塞直径为11.99{m.digits(2)} mm。",
    lambda m: f"订单号 {m.rng.choice('123')}{m.digits(17)} 已发货",
    lambda m: (
        f"订单编号：{dt.date(2025, 1, 1) + dt.timedelta(days=m.rng.randint(0, 300)):%Y%m%d}{m.digits(10)}"
    ),
    lambda m: f"时间戳 {m.rng.randint(1_600_000_000_000, 1_800_000_000_000)} 对应的记录",
    lambda m: f"日志时间 20251123{m.digits(6)}，状态正常",
    lambda m: f"设备序列号 SN{m.digits(11)} 运行正常",
    lambda m: f"身份证号格式示例：{m.bad_resident_id()}（校验位错误）",
    lambda m: f"卡号 {m.bad_card()} 校验失败",
    lambda m: f"编码{m.bad_uscc()}无效。",
    lambda m: f"流水号{m.digits(3)}{m.resident_id()}{m.digits(2)}",  # a valid ID inside a longer run
    lambda m: f"追踪码 {m.digits(2)}{m.mobile()}{m.digits(3)}",  # a mobile number inside a longer run
    lambda m: f"零件号 1{m.rng.choice('012')}{m.digits(9)} 的图纸",  # 11 digits, not an allocated range
    lambda m: (
        f"合同金额 {m.rng.randint(10_000, 9_999_999)}.{m.digits(2)} 元，付款期 {m.rng.randint(30, 90)} 天"
    ),
    lambda m: f"图号 G{m.digits(8)} 第 {m.rng.randint(1, 9)} 版",  # a passport's shape, no word naming one
    lambda m: f"工单 E{m.digits(8)} 已关闭",
    lambda m: f"型号 {m.rng.choice(PLATE_LETTERS)}{m.digits(4)}-{m.rng.choice(PLATE_LETTERS)}{m.digits(2)}",
    lambda m: f"请把 sk-{m.digits(3)} 号文件归档",  # too short to be a key
    lambda m: (
        f"船用柴油机 {m.rng.choice(['6L16/24', '8L21/31', '6N21AL'])} 的缸套检验记录第{m.rng.randint(1, 99)}页"
    ),
]


def labeled_lines(count: int = 2400, seed: int = 20261123) -> Iterator[dict[str, Any]]:
    """Yield *count* lines ``{"text", "entities": [{"type", "start", "end", "value"}]}``: about two
    thirds with one or two entities, a third hard negatives."""
    rng = random.Random(seed)
    make = _Make(rng)
    makers: dict[str, Callable[[], str]] = {
        "CN_RESIDENT_ID": make.resident_id,
        "CN_MOBILE": make.mobile,
        "BANK_CARD": make.card,
        "CN_USCC": make.uscc,
        "EMAIL": make.email,
        "CN_PASSPORT": make.passport,
        "CN_LICENSE_PLATE": make.plate,
        "API_KEY": make.api_key,
    }
    for index in range(count):
        if index % 3 == 2:
            yield {"text": rng.choice(NEGATIVE)(make), "entities": []}
            continue
        parts: list[tuple[str, str]] = []
        for _ in range(1 if rng.random() < 0.7 else 2):
            kind = rng.choice(list(POSITIVE))
            parts.append((kind, rng.choice(POSITIVE[kind])))
        text = ""
        entities = []
        for number, (kind, template) in enumerate(parts):
            if number:
                text += rng.choice(["；", "。", "，另外", " / "])
            value = makers[kind]()
            before, after = template.split("{x}")
            before = before.replace("{n}", make.name())
            after = after.replace("{n}", make.name())
            start = len(text) + len(before)
            entities.append({"type": kind, "start": start, "end": start + len(value), "value": value})
            text += before + value + after
        yield {"text": text, "entities": entities}


def _self_check() -> None:  # the generator's identifiers pass the validators they are meant to
    make = _Make(random.Random(1))
    assert valid_resident_id(make.resident_id()) and valid_uscc(make.uscc())
