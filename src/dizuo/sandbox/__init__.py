"""The government data sandbox (政务数据沙盒): datasets a data owner registers, purpose-bound grants to
enterprises, and queries that run next to the data; only results that pass disclosure control
leave, and every decision is audited."""

from dizuo.errors import catalogue

# The messages of the data sandbox's errors.
MESSAGES = catalogue(
    {
        "sandbox_dataset_not_found": (
            "沙盒中没有数据集 {name}。可用 `dizuo sandbox dataset list` 或 GET /v1/sandbox/datasets 查看目录。",
            "The sandbox has no dataset {name}. See the catalog with `dizuo sandbox dataset list` or "
            "GET /v1/sandbox/datasets.",
        ),
        "sandbox_dataset_taken": (
            "数据集名 {name} 已被另一数据所有方使用，请换一个名字。",
            "The dataset name {name} belongs to another data owner; choose another name.",
        ),
        "sandbox_core_data": (
            "核心数据不能登记进数据沙盒：按数据分类分级规定，核心数据不对外提供使用。",
            "Core-class data cannot be registered in the data sandbox: under the data classification rules, "
            "core data is not provided for outside use.",
        ),
        "sandbox_schema_mismatch": (
            "文件与数据集的登记不符{where_zh}：{reason_zh}。未做任何改动。",
            "The file does not match the dataset's registration{where_en}: {reason_en}. Nothing was changed.",
        ),
        "sandbox_undeclared_identifier": (
            "列 {column} 看来是{kind_zh}（抽查 {share}），却未登记为标识符：请用 --identifiers 标明。未做任何改动。",
            "Column {column} looks like {kind_en} ({share} of a sample) but is not registered as an identifier: "
            "name it with --identifiers. Nothing was changed.",
        ),
        "sandbox_request_not_found": (
            "没有本组织可见的数据使用申请 {id}。",
            "There is no sandbox access request {id} this organization may see.",
        ),
        "sandbox_grant_not_found": (
            "没有本组织可见的数据使用授权 {id}。",
            "There is no sandbox grant {id} this organization may see.",
        ),
        "sandbox_not_granted": (
            "本组织没有使用数据集 {name} 的授权。请先申请：`dizuo sandbox request {name} --org 组织名 --purpose 用途`。",
            "This organization has no grant to use the dataset {name}. Request one first: "
            "`dizuo sandbox request {name} --org ORG --purpose TEXT`.",
        ),
        "sandbox_grant_inactive": (
            "使用数据集 {name} 的授权 {id} 已{state_zh}（{at}），请重新申请。",
            "The grant {id} to use the dataset {name} was {state_en} ({at}); request a new one.",
        ),
        "sandbox_query_budget_spent": (
            "授权 {id} 的查询次数已用完（{used}/{budget}），请联系数据所有方。",
            "The grant {id} has used its query budget ({used}/{budget}); ask the data owner.",
        ),
        "sandbox_privacy_budget_spent": (
            "授权 {id} 的隐私预算不足：本次需要 ε={asked}，剩余 ε={left}。",
            "The grant {id} lacks privacy budget: this query needs ε={asked}, ε={left} is left.",
        ),
        "sandbox_jobs_not_allowed": (
            "使用数据集 {name} 的授权 {id} 不允许算力作业读取数据。请数据所有方在授权时允许作业（--jobs）。",
            "The grant {id} to use the dataset {name} does not let compute jobs read it. Ask the data owner "
            "for a grant that allows jobs (--jobs).",
        ),
        "sandbox_release_not_found": (
            "没有本组织可见的作业结果发放记录 {id}。",
            "There is no sandbox release {id} this organization may see.",
        ),
        "sandbox_output_not_found": (
            "发放记录 {id} 中没有文件 {name}。",
            "The release {id} has no file {name}.",
        ),
        "sandbox_release_not_pending": (
            "发放记录 {id} 当前为 {state}，只有待审核（pending）的才能批准或拒绝。",
            "The release {id} is {state}; only a pending one can be approved or refused.",
        ),
        "sandbox_release_held": (
            "发放记录 {id} 尚未经数据所有方批准（当前为 {state}），其文件不能取出。",
            "The release {id} has not been approved by the data owner (it is {state}); its files cannot "
            "be taken out.",
        ),
        "sandbox_sql_invalid": (
            "SQL 有误{where_zh}：{reason_zh}。未执行。",
            "The SQL is invalid{where_en}: {reason_en}. Nothing ran.",
        ),
        "sandbox_query_refused": (
            "查询被拒绝{where_zh}：{reason_zh}。未执行。",
            "The query is refused{where_en}: {reason_en}. Nothing ran.",
        ),
        "sandbox_query_failed": (
            "查询在执行中出错：{reason_zh}。没有结果离开沙盒，也不计入授权的查询次数。",
            "The query failed as it ran: {reason_en}. No result left the sandbox, and the grant was not charged.",
        ),
        "sandbox_query_timeout": (
            "查询超过 {seconds} 秒被中止，没有结果离开沙盒。请缩小范围（加 WHERE 或减少分组）。",
            "The query ran past {seconds} s and was stopped; no result left the sandbox. Narrow it (a WHERE, "
            "fewer groups).",
        ),
    }
)
