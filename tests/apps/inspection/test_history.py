"""Past cases: read from Markdown or a table, linked by item, ranked by direction then words."""

from __future__ import annotations

from dizuo.apps.inspection import History, load_history
from tests.apps.inspection.reports import DEFECTS


def test_cases_are_read_with_their_fields(history: History) -> None:
    assert len(history.cases) == 7
    case = history.by_id["QD-2022-031"]
    assert case.title == "密封时间偏短"
    assert case.related == ("密封性", "配合间隙")
    assert "0.0031～0.0036 mm" in case.root_cause and case.action.startswith("研磨工序")


def test_direction_decides_between_cases_on_the_same_item(history: History) -> None:
    too_short = history.similar(["密封性", "密封时间"], "密封时间 低于 下限", "密封", "low")
    too_long = history.similar(["密封性", "密封时间"], "密封时间 高于 上限", "密封", "high")
    assert too_short[0] == "QD-2022-031" and too_short[-1] == "QD-2023-022"
    assert too_long[0] == "QD-2023-022"
    small_gap = history.similar(["配合间隙"], "配合间隙 低于 下限", "间隙", "low")
    assert small_gap[0] == "QD-2023-022"  # 间隙偏小 → 卡滞
    assert history.similar(["圆度"], "圆度 超出") == []  # no past case names roundness


def test_a_history_kept_as_a_spreadsheet_table() -> None:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["案例编号", "标题", "现象", "关联项目", "根本原因", "纠正措施"])
    sheet.append(["QD-2025-003", "硬度偏高", "柱塞硬度 HRC 65", "硬度", "回火温度偏低", "校准回火炉"])
    out = io.BytesIO()
    book.save(out)
    history = load_history([("案例.xlsx", out.getvalue()), (DEFECTS.name, DEFECTS.read_bytes())])
    assert history.by_id["QD-2025-003"].related == ("硬度",)
    assert history.similar(["硬度"], "硬度 高于 上限", "硬度", "high")[0] == "QD-2025-003"
