"""What the auditor says, in Chinese and English: one template per kind of statement."""

from __future__ import annotations

__all__ = ["ACCEPT", "DECISION_EN", "DECISION_ZH", "REJECT", "TEXT", "UNDETERMINED"]

ACCEPT, REJECT, UNDETERMINED = "accept", "reject", "undetermined"

# kind → (zh, en) message templates.
TEXT: dict[str, tuple[str, str]] = {
    "field_missing": ("报告缺少“{item}”（{cite}）。缺少任一要素的报告视为无效，应退回补全。",
                      "The report lacks '{item}' ({cite}); a report missing any element is invalid and goes back for completion."),
    "column_missing": ("{record}缺少“{item}”的实测值（{cite}）。",
                       "The {record_en} has no measured values for '{item}' ({cite})."),
    "value_missing": ("{where}的“{item}”没有实测值。", "{where_en} has no value for '{item}'."),
    "value_unreadable": ("{where}的“{item}”实测值“{measured}”无法识别为数值。",
                         "{where_en}: the value '{measured}' for '{item}' is not a number."),
    "pieces_missing": ("批量 {lot} 件，逐件检验记录只有 {count} 件（{cite} 规定逐件检验）。",
                       "The lot is {lot} pieces but the per-piece record has {count} ({cite}: every piece is inspected)."),
    "pieces_extra": ("逐件检验记录有 {count} 件，多于批量 {lot} 件。", "The per-piece record has {count} pieces, more than the lot of {lot}."),
    "out_of_limit": ("{where}{item} {measured}{unit} 超出 {cite} 要求 {limit}{side}{note}。",
                     "{where_en}: {item} {measured}{unit} is outside {cite}: {limit}{side_en}{note}."),
    "out_of_limit_text": ("{where}{item}为“{measured}”，不符合 {cite} 要求。", "{where_en}: {item} is '{measured}', which {cite} does not allow."),
    "verdict_pass": ("件号 {piece} 报告判为“{reported}”，但{reasons}，按 {cite} 应判为不合格品。",
                     "Piece {piece} is reported '{reported}', but {reasons}; by {cite} it is nonconforming."),
    "verdict_fail": ("件号 {piece} 报告判为“{reported}”，但各项实测值均在要求之内。",
                     "Piece {piece} is reported '{reported}', but every value is within its limit."),
    "pieces_count": ("结论写逐件检验合格 {r_pass} 件、不合格 {r_fail} 件；按实测值应为合格 {c_pass} 件、不合格 {c_fail} 件（件号 {pieces}）。",
                     "The conclusion says {r_pass} pieces conforming and {r_fail} nonconforming; the values give {c_pass} and {c_fail} (pieces {pieces})."),
    "sample_count": ("结论写样本不合格 {reported} 件，抽样记录中不合格 {computed} 件（样本序号 {samples}）。",
                     "The conclusion says {reported} nonconforming in the sample; the record has {computed} (samples {samples})."),
    "sample_declared": ("抽样记录标明样本量 {declared}，实有 {count} 行。", "The sampling record says a sample of {declared} but has {count} rows."),
    "sample_size": ("批量 {lot} 件应抽样 {required} 件（{cite}），报告只抽了 {count} 件。",
                    "A lot of {lot} needs a sample of {required} ({cite}); the report sampled {count}."),
    "lot_outside": ("批量 {lot} 件不在 {cite} 抽样方案的批量范围内，无法确定样本量。",
                    "A lot of {lot} is outside the lot sizes of {cite}; the sample size cannot be set."),
    "no_samples": ("报告没有抽样检验记录（{cite} 规定{items}按抽样检验）。",
                   "The report has no sampling record ({cite}: {items} are inspected by sample)."),
    "decision": ("报告批判定“{reported_zh}”，按 {cite} 应为“{computed_zh}”：样本量 {n} 时 Ac={ac}、Re={re}，样本不合格 {d} 件{extra}。",
                 "The report decides '{reported_en}'; by {cite} it should be '{computed_en}': for a sample of {n}, Ac={ac} and Re={re}, with {d} nonconforming{extra_en}."),
    "decision_missing": ("报告没有写明批判定（接收/拒收）（{cite}）。", "The report states no lot decision (accept/reject) ({cite})."),
    "sample_unknown": ("样本序号 {sample} 的件号 {piece} 不在本批逐件检验记录中。", "Sample {sample} names piece {piece}, which is not in this lot's per-piece record."),
    "wrong_standard": ("报告的检验依据为“{cited}”，与审核所用标准 {standard} 不一致。",
                       "The report cites '{cited}' as its standard, not {standard}, the one it was audited against."),
    "model_unknown": ("产品型号 {model} 不在 {cite} 的型号表中（{models}），{item}无法判定。",
                      "The model {model} is not in the table of {cite} ({models}); {item} cannot be judged."),
    "escalation": ("本批“{item}”有 {count} 件不合格（件号 {pieces}），达到 {cite}“{threshold} 件及以上”的规定，应启动 {action} 质量问题分析{told}。",
                   "{count} pieces fail '{item}' in this lot (pieces {pieces}); {cite} requires the {action} analysis once {threshold} or more fail{told_en}."),
}  # fmt: skip
DECISION_ZH = {ACCEPT: "接收", REJECT: "拒收", UNDETERMINED: "不可判定", None: "未写明"}
DECISION_EN = {ACCEPT: "accept", REJECT: "reject", UNDETERMINED: "undetermined", None: "not stated"}
