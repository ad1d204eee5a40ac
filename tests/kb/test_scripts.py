"""A document in traditional script answers questions asked in simplified script, and is shown and
cited as written."""

from __future__ import annotations

import uuid

from dizuo.accounts import create_org
from dizuo.kb.index import terms
from dizuo.kb.models import LocalEncoder
from dizuo.kb.script import simplified
from dizuo.kb.service import KnowledgeBases
from dizuo.store import Database

TRADITIONAL = """# 雲端服務資訊安全要點

第三條 管理者帳號應啟用多因素驗證，帳號密碼長度不得少於十二個字元。

第六條 作業系統及應用軟體之安全更新，應於廠商公告後十四日內完成安裝。

第十條 備份資料應每日執行，並每半年進行一次還原演練。
"""
SIMPLIFIED = """# 算力券管理办法

第二条 审批程序由市大数据局规定，智慧城市项目优先。
"""


def test_traditional_text_gives_the_terms_of_its_simplified_words_and_simplified_text_is_kept() -> None:
    assert {"软件", "信息", "服务器"} <= set(terms("應用軟體與資訊安全，伺服器"))
    # Simplified text is not touched: Taiwan's phrase table would turn 程序 into 进程.
    assert simplified("审批程序与智慧城市") == "审批程序与智慧城市"
    assert simplified("Q/HJ 017 4.6") == "Q/HJ 017 4.6"


async def test_a_simplified_question_finds_the_traditional_clause_cited_as_written(db: Database) -> None:
    org = create_org(db, f"繁体-{uuid.uuid4().hex[:8]}").id
    kbs = KnowledgeBases(db, embedding_model="local/use-multilingual-v3")
    kbs.create(org, "安全")
    encoder = LocalEncoder()
    await kbs.add(org, "安全", "要點.md", TRADITIONAL.encode(), encoder)
    await kbs.add(org, "安全", "办法.md", SIMPLIFIED.encode(), encoder)
    for question, clause in (
        ("软件安全更新要在多少天内安装？", "第六條"),
        ("管理员账号密码至少多少位？", "第三條"),
        ("备份恢复演练多久一次？", "第十條"),
    ):
        (best,) = await kbs.query(org, "安全", question, encoder, k=1, mode="bm25")
        assert (best.source, best.clause) == ("要點.md", clause), question
        assert "軟體" in best.text or "帳號" in best.text or "備份" in best.text  # shown as written
    (own,) = await kbs.query(org, "安全", "审批程序由谁规定？", encoder, k=1, mode="bm25")
    assert own.clause == "第二条"
