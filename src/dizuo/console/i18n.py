"""The console's words in zh-CN and English, and how dates, money and names are shown.

Templates call ``t("key")``; a key missing in either language fails a test, not a page. Messages of
errors raised by the services come from :mod:`dizuo.errors` in the same language.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from dizuo.errors import Lang
from dizuo.store import utc

__all__ = ["LANGS", "TEXT", "Lang", "Words", "bilingual", "pinyin_key"]

LANGS: tuple[Lang, ...] = ("zh", "en")

TEXT: dict[str, tuple[str, str]] = {
    # the frame
    "brand": ("底座 · 控制台", "dizuo console"),
    "skip": ("跳到正文", "Skip to content"),
    "nav": ("主导航", "Main navigation"),
    "nav.overview": ("概览", "Overview"),
    "nav.orgs": ("组织", "Organizations"),
    "nav.keys": ("API 密钥", "API keys"),
    "nav.wallet": ("钱包与算力券", "Wallet & vouchers"),
    "nav.usage": ("用量", "Usage"),
    "nav.deployments": ("部署", "Deployments"),
    "nav.compute": ("算力", "Compute"),
    "compute.title": ("算力资源池与作业", "Compute pools and jobs"),
    "compute.pools": ("资源池", "Pools"),
    "compute.jobs": ("作业", "Jobs"),
    "compute.pool": ("资源池", "Pool"),
    "compute.region": ("区域", "Region"),
    "compute.accelerator": ("加速卡", "Accelerator"),
    "compute.price": ("价格（元/卡·时、核·时、GB·时）", "Price (CNY per accelerator-, CPU-, GB-hour)"),
    "compute.clearance": ("最高数据级别", "Cleared up to"),
    "compute.accelerators_free": ("空闲加速卡", "Accelerators free"),
    "compute.cpus_free": ("空闲 CPU", "CPUs free"),
    "compute.in_use": ("运行 / 等待", "Running / waiting"),
    "compute.up": ("可用", "Up"),
    "compute.down": ("无响应", "Down"),
    "compute.id": ("作业 ID", "Job ID"),
    "compute.org": ("组织", "Organization"),
    "compute.state": ("状态", "State"),
    "compute.kind": ("类型", "Kind"),
    "compute.name": ("名称 / 命令", "Name / command"),
    "compute.started": ("开始", "Started"),
    "compute.progress": ("已运行 / 最长", "Run / longest"),
    "compute.money": ("费用（预占）", "Cost (held)"),
    "compute.none": (
        "还没有作业。用 `dizuo compute submit` 或 POST /v1/compute/jobs 提交。",
        "No jobs yet. Submit one with `dizuo compute submit` or POST /v1/compute/jobs.",
    ),
    "compute.considered": ("调度：考虑过的资源池", "Placement: the pools considered"),
    "compute.feasible": ("可行", "Feasible"),
    "compute.estimate": ("预计费用（元）", "Estimate (CNY)"),
    "compute.wait": ("等待", "Wait"),
    "compute.reason": ("原因", "Reason"),
    "compute.charge": ("费用", "Charge"),
    "compute.cost": ("费用（元）", "Cost (CNY)"),
    "compute.voucher_paid": ("算力券支付（元）", "Paid by vouchers (CNY)"),
    "compute.own_paid": ("企业自付（元）", "Paid by the organization (CNY)"),
    "compute.held": ("预占（元）", "Held (CNY)"),
    "compute.seconds": ("计费秒数", "Seconds charged"),
    "compute.logs": ("日志", "Logs"),
    "compute.logs_unavailable": (
        "资源池的集群暂时无法访问，日志稍后可见。",
        "The pool's cluster cannot be reached now; the logs will show later.",
    ),
    "compute.message": ("说明", "Message"),
    "compute.state.queued": ("排队", "Queued"),
    "compute.state.placing": ("调度中", "Placing"),
    "compute.state.pending": ("等待资源", "Pending"),
    "compute.state.running": ("运行中", "Running"),
    "compute.state.succeeded": ("成功", "Succeeded"),
    "compute.state.failed": ("失败", "Failed"),
    "compute.state.cancelled": ("已取消", "Cancelled"),
    "compute.utilization": (
        "过去 24 小时加速卡利用率（%，无加速卡的资源池为 CPU）",
        "Accelerator utilization over the last 24 hours (%; CPUs for pools without accelerators)",
    ),
    "nav.batches": ("批处理", "Batches"),
    "batches.title": ("批处理", "Batches"),
    "batches.id": ("批处理", "Batch"),
    "batches.endpoint": ("端点", "Endpoint"),
    "batches.model": ("模型", "Model"),
    "batches.progress": ("进度（已回答 / 总行数）", "Progress (answered / lines)"),
    "batches.completed": ("成功", "Answered"),
    "batches.failed": ("失败", "Refused"),
    "batches.cost": ("已计费（元）", "Charged so far (CNY)"),
    "batches.created": ("创建", "Created"),
    "batches.files": ("结果", "Results"),
    "batches.output": ("输出文件", "Output file"),
    "batches.errors": ("错误文件", "Error file"),
    "batches.none": (
        "还没有批处理。用 `dizuo batch submit` 或 OpenAI SDK 的 client.batches.create 提交。",
        "No batches yet. Submit one with `dizuo batch submit` or the OpenAI SDK's client.batches.create.",
    ),
    "batches.status.validating": ("校验中", "Validating"),
    "batches.status.in_progress": ("运行中", "In progress"),
    "batches.status.finalizing": ("汇总中", "Finalizing"),
    "batches.status.completed": ("已完成", "Completed"),
    "batches.status.failed": ("失败", "Failed"),
    "batches.status.expired": ("已过期", "Expired"),
    "batches.status.cancelling": ("取消中", "Cancelling"),
    "batches.status.cancelled": ("已取消", "Cancelled"),
    "nav.agents": ("智能体", "Agents"),
    "nav.indicators": ("监测指标", "Indicators"),
    "indicators.title": ("监测指标", "Monitoring indicators"),
    "indicators.month": ("月份", "Month"),
    "indicators.download": ("下载 Excel", "Download Excel"),
    "indicators.registered": ("注册组织", "Registered"),
    "indicators.active": ("活跃组织", "Active"),
    "indicators.agent_share": ("智能体普及率", "Share using agents"),
    "indicators.agent_using": ("使用智能体的组织", "Using agents"),
    "indicators.active_agents": ("活跃智能体", "Active agents"),
    "indicators.calls": ("调用次数", "Calls"),
    "indicators.tokens": ("tokens", "Tokens"),
    "indicators.spend": ("花费（元）", "Spend (CNY)"),
    "indicators.voucher_paid": ("算力券支付（元）", "Paid by vouchers (CNY)"),
    "indicators.compute_hours": ("算力作业时长（小时）", "Compute job hours"),
    "indicators.target_title": ("智能体普及率与年度目标", "Agent adoption against the year's target"),
    "indicators.against_target": (
        "{share}%（{using} / {total} 个组织），目标 {target}%。",
        "{share}% ({using} of {total} organizations); the target is {target}%.",
    ),
    "indicators.no_target": ("{share}%；该年份没有设定目标。", "{share}%; no target is set for that year."),
    "indicators.by_industry": ("按行业", "By industry"),
    "indicators.by_district": ("按区县", "By district"),
    "indicators.by_size": ("按规模", "By size"),
    "indicators.group": ("分组", "Group"),
    "indicators.unset": ("（未填）", "(not given)"),
    "indicators.scenarios": ("场景清单（各阶段，现在）", "Scenarios by stage, now"),
    "nav.scenarios": ("场景清单", "Scenarios"),
    "nav.sandbox": ("数据沙盒", "Data sandbox"),
    "sandbox.title": ("政务数据沙盒", "Government data sandbox"),
    "sandbox.intro": (
        "数据所有方登记数据集并按用途授权；企业的查询在数据旁运行，只有通过披露控制的结果才会离开沙盒，每次决定都记入审计。",
        "Data owners register datasets and grant them for a purpose; enterprises' queries run next to "
        "the data, only results that pass disclosure control leave, and every decision is audited.",
    ),
    "sandbox.catalog": ("数据目录", "Catalog"),
    "sandbox.dataset": ("数据集", "Dataset"),
    "sandbox.owner": ("数据所有方", "Owner"),
    "sandbox.class": ("分级", "Class"),
    "sandbox.class.general": ("一般数据", "General"),
    "sandbox.class.important": ("重要数据", "Important"),
    "sandbox.personal": ("含个人信息", "Personal information"),
    "sandbox.rows": ("行数", "Rows"),
    "sandbox.columns": ("列", "Columns"),
    "sandbox.schedule": ("更新频率", "Updated"),
    "sandbox.sensitivity.identifier": ("标识符", "identifier"),
    "sandbox.sensitivity.quasi": ("准标识符", "quasi-identifier"),
    "sandbox.sensitivity.sensitive": ("敏感", "sensitive"),
    "sandbox.sensitivity.public": ("公开", "public"),
    "sandbox.no_datasets": (
        "还没有数据集。数据所有方用 `dizuo sandbox dataset add` 登记。",
        "No datasets yet. Data owners register them with `dizuo sandbox dataset add`.",
    ),
    "sandbox.query": ("查询", "Query"),
    "sandbox.sql_hint": (
        "一条只读 SELECT，以数据集名为表名；只能用授权的列，标识符列不可用；聚合按列分组。",
        "One read-only SELECT naming the dataset as its table; granted columns only, never identifiers; "
        "aggregates group by columns.",
    ),
    "sandbox.run": ("运行", "Run"),
    "sandbox.no_grant": (
        "本组织还没有有效的数据使用授权。用 `dizuo sandbox request` 或 POST /v1/sandbox/requests 申请。",
        "Your organization has no active grant yet. Request one with `dizuo sandbox request` or "
        "POST /v1/sandbox/requests.",
    ),
    "sandbox.result": ("结果", "Result"),
    "sandbox.nothing_left": ("没有可以离开沙盒的结果。", "Nothing may leave the sandbox."),
    "sandbox.withheld": ("隐去的分组：{n}", "Groups withheld: {n}"),
    "sandbox.grants": ("申请与授权", "Requests and grants"),
    "sandbox.org": ("组织", "Organization"),
    "sandbox.purpose": ("用途", "Purpose"),
    "sandbox.used": ("已用查询", "Queries used"),
    "sandbox.state": ("状态", "State"),
    "sandbox.state.active": ("有效", "Active"),
    "sandbox.state.revoked": ("已撤销", "Revoked"),
    "sandbox.state.expired": ("已过期", "Expired"),
    "sandbox.state.pending": ("待审批", "Pending"),
    "sandbox.revoke": ("撤销", "Revoke"),
    "sandbox.request": ("申请使用", "Request"),
    "sandbox.grant": ("批准", "Grant"),
    "sandbox.refuse": ("拒绝", "Refuse"),
    "sandbox.rows_allowed": ("允许逐行结果离开", "Rows may leave"),
    "sandbox.expires": ("到期日", "Expires"),
    "sandbox.log": ("查询记录", "Query log"),
    "sandbox.when": ("时间", "When"),
    "sandbox.decision": ("决定", "Decision"),
    "sandbox.decision.released": ("放行", "Released"),
    "sandbox.decision.refused": ("拒绝", "Refused"),
    "sandbox.rows_out": ("带出行数", "Rows out"),
    "sandbox.withheld_col": ("隐去分组", "Withheld"),
    "scenarios.title": ("场景清单", "Scenario lists"),
    "scenarios.public_title": ("已发布的应用场景清单", "Published application scenarios"),
    "scenarios.public_link": ("公开清单", "Public list"),
    "scenarios.stage": ("阶段", "Stage"),
    "scenarios.all_stages": ("全部阶段", "All stages"),
    "scenarios.list": ("清单批次", "List"),
    "scenarios.name": ("场景", "Scenario"),
    "scenarios.demand": ("需求方", "Demand side"),
    "scenarios.industry": ("行业", "Industry"),
    "scenarios.district": ("区县", "District"),
    "scenarios.budget": ("预算（元）", "Budget (CNY)"),
    "scenarios.taker": ("揭榜方", "Taken by"),
    "scenarios.contact": ("联系人", "Contact"),
    "scenarios.none": (
        "还没有场景。用 `dizuo scenario create` 或 `dizuo scenario import` 录入。",
        "No scenarios yet. Add them with `dizuo scenario create` or `dizuo scenario import`.",
    ),
    "scenario.stage.draft": ("草稿", "Draft"),
    "scenario.stage.submitted": ("已提交", "Submitted"),
    "scenario.stage.under_review": ("评审中", "Under review"),
    "scenario.stage.selected": ("入选", "Selected"),
    "scenario.stage.rejected": ("未入选", "Rejected"),
    "scenario.stage.published": ("已发布", "Published"),
    "scenario.stage.taken": ("已揭榜", "Taken"),
    "scenario.stage.in_construction": ("建设中", "In construction"),
    "scenario.stage.accepted": ("已验收", "Accepted"),
    "scenario.stage.benchmark": ("标杆", "Benchmark"),
    "scenario.stage.closed": ("已关闭", "Closed"),
    "indicators.definitions": (
        "各指标定义见 `docs/indicators.md`，也可用 `dizuo indicators --month YYYY-MM` 导出。",
        "Definitions in `docs/indicators.md`; also `dizuo indicators --month YYYY-MM`.",
    ),
    "agents.title": ("智能体", "Agents"),
    "agents.name": ("调用名", "Called as"),
    "agents.owner": ("所属组织", "Owner"),
    "agents.description": ("说明", "Description"),
    "agents.tools": ("工具", "Tools"),
    "agents.version": ("最新版本", "Newest version"),
    "agents.draft": ("草稿（未发布）", "Draft (not published)"),
    "agents.listed": ("全平台目录", "Platform catalog"),
    "agents.platform": ("已评测上架 · 评级 {grade}", "Evaluated and listed · grade {grade}"),
    "agents.untested": ("仅本组织 · 未评测", "Organization only · untested"),
    "agents.calls": ("近 30 天调用", "Calls, 30 days"),
    "agents.users": ("近 30 天使用组织", "Organizations using it, 30 days"),
    "agents.none": (
        "还没有智能体。用 `dizuo agent create --org 组织 --file 智能体.yaml` 创建，`dizuo agent publish` 发布。",
        "No agents yet. Create one with `dizuo agent create --org ORG --file AGENT.yaml`, publish it with `dizuo agent publish`.",
    ),
    "agents.adoption": ("智能体应用指标（近 {days} 天）", "Agent adoption (last {days} days)"),
    "agents.new": ("新建智能体", "New agent"),
    "agents.edit": ("编辑", "Edit"),
    "agents.edit.title": ("新建智能体", "New agent"),
    "agents.edit.change": ("编辑智能体 {name}", "Edit the agent {name}"),
    "agents.edit.back": ("← 返回智能体列表", "← Back to the agents"),
    "agents.edit.org": ("请先选择组织", "Choose the organization first"),
    "agents.edit.org_label": ("所属组织", "Organization"),
    "agents.edit.definition": ("定义（YAML）", "Definition (YAML)"),
    "agents.edit.hint": (
        "与 `dizuo agent create --file` 的文件相同：name、model、instructions、tools（kb_search、http、mcp、sandbox_query）、max_steps、max_cost、data_class、visibility。保存只改草稿；发布后草稿成为新版本，本组织的密钥即可调用 `agent/名称`。",
        "The same as a file for `dizuo agent create --file`: name, model, instructions, tools (kb_search, http, mcp, sandbox_query), max_steps, max_cost, data_class, visibility. Saving changes the draft; publishing makes the draft the next version, which the organization's keys call as `agent/NAME`.",
    ),
    "agents.edit.save": ("保存草稿", "Save the draft"),
    "agents.edit.publish": ("保存并发布", "Save and publish"),
    "agents.edit.saved": ("草稿已保存。", "The draft is saved."),
    "agents.edit.published": ("已发布为第 {version} 版。", "Published as version {version}."),
    "agents.edit.versions": ("已发布的版本：", "Published versions:"),
    "agents.adoption.summary": (
        "活跃智能体 {active} 个；使用至少一个智能体的组织 {using} / {total}（{share}%）。",
        "{active} active agents; {using} of {total} organizations used at least one ({share}%).",
    ),
    "overview.agents_active": ("活跃智能体（近 30 天）", "Active agents (30 days)"),
    "overview.agents_share": ("使用智能体的组织占比", "Organizations using agents"),
    "agents.catalog": ("智能体目录", "Agents"),
    "agents.adoption.by": ("维度", "By"),
    "agents.adoption.group": ("分组", "Group"),
    "agents.adoption.using": ("使用的组织 / 组织数", "Using / organizations"),
    "agents.adoption.share": ("占比", "Share"),
    "agents.adoption.industry": ("行业", "Industry"),
    "agents.adoption.district": ("区县", "District"),
    "agents.adoption.unset": ("（未填）", "(not given)"),
    "nav.playground": ("体验", "Playground"),
    "nav.guard": ("数据风险", "Data risk"),
    "nav.issuer": ("算力券发放", "Voucher programs"),
    "nav.kbs": ("知识库", "Knowledge bases"),
    "nav.evals": ("测试验证", "Evaluations"),
    "nav.audit": ("审计日志", "Audit trail"),
    "nav.account": ("账号安全", "Account"),
    "account.title": ("账号安全", "Account and security"),
    "account.password": ("修改密码", "Change password"),
    "account.password_hint": (
        "修改后，此账号在所有浏览器上的登录都会结束，需用新密码重新登录。",
        "After the change, this account is signed out in every browser; sign in again with the new password.",
    ),
    "account.current": ("当前密码", "Current password"),
    "account.new": ("新密码", "New password"),
    "account.new_hint": ("至少 8 个字符", "At least 8 characters"),
    "account.change": ("修改密码", "Change password"),
    "account.tokens": ("管理 API 令牌", "Admin API tokens"),
    "account.expires_days": ("有效天数", "Valid for (days)"),
    "account.expires_hint": ("留空则一直有效，直到吊销", "Leave empty for a token valid until revoked"),
    "account.new_token": ("创建令牌", "Create token"),
    "account.revoked": ("已吊销", "Revoked"),
    "account.active": ("有效", "Active"),
    "account.disabled": ("已停用", "Disabled"),
    "account.everywhere": ("在所有设备上退出", "Sign out everywhere"),
    "account.everywhere_hint": (
        "结束此账号的所有控制台登录，并吊销它的全部管理 API 令牌。",
        "Ends every console session of this account and revokes all its admin API tokens.",
    ),
    "account.members": ("成员", "Members"),
    "account.username": ("用户名", "Username"),
    "account.role": ("角色", "Role"),
    "account.change_state": ("停用或启用", "Disable or enable"),
    "account.disable": ("停用", "Disable"),
    "account.enable": ("启用", "Enable"),
    "account.locks": ("登录锁定", "Locked sign-ins"),
    "account.locked_who": ("用户名或地址", "Username or address"),
    "account.failures": ("连续失败次数", "Failures in a row"),
    "account.locked_until": ("锁定至", "Locked until"),
    "account.done.revoked": ("令牌已吊销。", "The token was revoked."),
    "account.done.disable": (
        "成员已停用，其登录和令牌立即失效。",
        "The member was disabled; its sessions and tokens stopped working.",
    ),
    "account.done.enable": ("成员已启用。", "The member was enabled."),
    "signed_in_as": ("当前用户", "Signed in as"),
    "sign_out": ("退出", "Sign out"),
    "language": ("语言", "Language"),
    "role.platform-admin": ("平台管理员", "platform admin"),
    "role.org-admin": ("组织管理员", "organization admin"),
    "role.org-developer": ("组织开发者", "organization developer"),
    "role.voucher-issuer": ("算力券发放方", "voucher issuer"),
    "role.auditor": ("审计员", "auditor"),
    "org": ("组织", "Organization"),
    "all_orgs": ("全部组织", "All organizations"),
    "show": ("查看", "Show"),
    "none_yet": ("暂无记录。", "Nothing yet."),
    "saved": ("已保存。", "Saved."),
    "fix_below": ("请修改下面标出的内容。", "Please correct the fields marked below."),
    "optional": ("（可选）", "(optional)"),
    "colon": ("：", ": "),
    "list_sep": ("、", ", "),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    # sign-in
    "login.title": ("登录", "Sign in"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Sign in"),
    "login.failed": ("用户名或密码不正确。", "The username or password is wrong."),
    "login.expired": ("页面已过期，请重新登录。", "The page expired; please sign in again."),
    "login.locked": (
        "登录失败次数过多，已暂时锁定。请 {minutes} 分钟后再试，或请管理员用 `dizuo admin set-password` 重设密码。",
        "Too many failed sign-ins: locked for now. Try again in {minutes} min, or ask an operator to reset "
        "the password with `dizuo admin set-password`.",
    ),
    "login.hint": (
        "首个管理员用 `dizuo admin create-user --role platform-admin --username 名字` 创建。",
        "Create the first admin with `dizuo admin create-user --role platform-admin --username NAME`.",
    ),
    # errors
    "error.title": ("出错了", "Something went wrong"),
    "error.denied": ("你没有权限查看此页面或执行此操作。", "You may not see this page or take this action."),
    "error.not_found": ("没有这个页面。", "There is no such page."),
    "error.csrf": (
        "表单已过期（安全校验失败），请刷新页面后重试。",
        "The form expired (security check failed); reload the page and try again.",
    ),
    "error.back": ("返回概览", "Back to the overview"),
    # overview
    "overview.title": ("概览", "Overview"),
    "overview.range": ("时间范围", "Time range"),
    "overview.day": ("最近 24 小时", "Last 24 hours"),
    "overview.week": ("最近 7 天", "Last 7 days"),
    "overview.month": ("最近 30 天", "Last 30 days"),
    "overview.calls": ("调用次数", "Calls"),
    "overview.errors": ("失败", "Errors"),
    "overview.tokens": ("Token 数", "Tokens"),
    "overview.spend": ("费用（元）", "Spend (CNY)"),
    "overview.voucher": ("算力券支付（元）", "Paid by vouchers (CNY)"),
    "overview.latency": ("延迟中位数", "Median latency"),
    "overview.chart_calls": ("调用与失败", "Calls and errors"),
    "overview.chart_tokens": ("Token（输入 / 输出）", "Tokens (prompt / completion)"),
    "overview.chart_spend": ("费用与算力券支付（元）", "Spend and voucher payments (CNY)"),
    "overview.chart_latency": ("延迟（毫秒）", "Latency (ms)"),
    "overview.prompt": ("输入", "prompt"),
    "overview.completion": ("输出", "completion"),
    "overview.live": ("每 {seconds} 秒自动刷新", "Refreshes every {seconds} seconds"),
    # organizations
    "orgs.title": ("组织", "Organizations"),
    "orgs.name": ("名称", "Name"),
    "orgs.uscc": ("统一社会信用代码", "Unified social credit code"),
    "orgs.industry": ("行业", "Industry"),
    "orgs.district": ("区县", "District"),
    "orgs.region": ("数据所在区域", "Region"),
    "orgs.region_hint": (
        "部署的区域代码（如 cq）：核心数据只送往该区域的部署",
        "A deployments' region code (e.g. cq): its core data goes only to deployments there",
    ),
    "orgs.size": ("规模", "Size"),
    "orgs.data_class": ("默认数据分级", "Default data class"),
    "orgs.create": ("新建组织", "New organization"),
    "orgs.created": ("已创建组织 {name}。", "Created the organization {name}."),
    "size.small": ("小型", "small"),
    "size.medium": ("中型", "medium"),
    "size.large": ("大型", "large"),
    "class.general": ("一般", "general"),
    "class.important": ("重要", "important"),
    "class.core": ("核心", "core"),
    # keys
    "keys.title": ("API 密钥", "API keys"),
    "keys.name": ("名称", "Name"),
    "keys.prefix": ("前缀", "Prefix"),
    "keys.models": ("允许的模型", "Allowed models"),
    "keys.models_hint": ("用逗号分隔；留空表示全部模型", "Comma-separated; empty means every model"),
    "keys.expires": ("有效至（含）", "Valid through"),
    "keys.state": ("状态", "State"),
    "keys.rpm": ("每分钟请求数（RPM）", "Requests per minute (RPM)"),
    "keys.tpm": ("每分钟 Token 数（TPM）", "Tokens per minute (TPM)"),
    "keys.concurrency": ("并发上限", "Concurrent calls"),
    "keys.active": ("有效", "active"),
    "keys.revoked": ("已吊销", "revoked"),
    "keys.expired": ("已过期", "expired"),
    "keys.create": ("创建密钥", "Create key"),
    "keys.revoke": ("吊销", "Revoke"),
    "keys.confirm_revoke": (
        "确定吊销这个密钥？使用它的调用将在一秒内被拒绝。",
        "Revoke this key? Calls using it are refused within a second.",
    ),
    "keys.new_title": ("新密钥（只显示这一次）", "New key (shown this once)"),
    "keys.new_hint": (
        "请立即复制保存。平台只保存它的哈希，之后无法再次查看。",
        "Copy it now. The platform stores only its hash; it cannot be shown again.",
    ),
    "keys.created": ("创建时间", "Created"),
    # wallet and vouchers
    "wallet.title": ("钱包与算力券", "Wallet and vouchers"),
    "wallet.balance": ("余额（元）", "Balance (CNY)"),
    "wallet.held": ("冻结中（元）", "Held by calls in flight (CNY)"),
    "wallet.held_by_jobs": ("算力作业预占（元）", "Held by compute jobs (CNY)"),
    "wallet.vouchers": ("算力券", "Vouchers"),
    "wallet.topups": ("充值记录", "Top-ups"),
    "wallet.topup": ("充值", "Top up"),
    "wallet.amount": ("金额（元）", "Amount (CNY)"),
    "wallet.note": ("备注", "Note"),
    "wallet.time": ("时间", "Time"),
    "wallet.topped_up": ("已充值 {amount} 元。", "Added CNY {amount}."),
    "voucher.issuer": ("发放方", "Issuer"),
    "voucher.program": ("项目", "Program"),
    "voucher.face": ("面额（元）", "Face value (CNY)"),
    "voucher.remaining": ("剩余（元）", "Remaining (CNY)"),
    "voucher.copay": ("补贴比例", "Co-pay share"),
    "voucher.copay_hint": (
        "每笔符合条件的费用由算力券支付的比例，如 0.3",
        "Share of each eligible charge the voucher pays, e.g. 0.3",
    ),
    "voucher.scope": ("适用范围", "Scope"),
    "voucher.providers": ("供应商", "Providers"),
    "voucher.regions": ("区域", "Regions"),
    "voucher.models": ("模型", "Models"),
    "voucher.list_hint": ("用逗号分隔；留空表示不限", "Comma-separated; empty means any"),
    "voucher.any": ("不限", "any"),
    "voucher.valid_from": ("生效日", "Valid from"),
    "voucher.valid_to": ("有效至（含）", "Valid through"),
    "voucher.state": ("状态", "State"),
    "voucher.issue": ("发放算力券", "Issue a voucher"),
    "voucher.issued": ("已发放算力券，面额 {amount} 元。", "Issued a voucher of CNY {amount}."),
    "voucher.revoke": ("收回余额", "Take back the rest"),
    "voucher.confirm_revoke": ("确定收回这张算力券的未用余额？", "Take back this voucher's unspent rest?"),
    "voucher.org": ("受券组织", "Organization"),
    "state.active": ("可用", "active"),
    "state.expired": ("已过期", "expired"),
    "state.revoked": ("已收回", "revoked"),
    "state.not_yet_valid": ("未生效", "not yet valid"),
    "state.exhausted": ("已用完", "used up"),
    # usage
    "usage.title": ("用量", "Usage"),
    "usage.since": ("开始日期", "From"),
    "usage.until": ("结束日期（含）", "To (inclusive)"),
    "usage.model": ("模型", "Model"),
    "usage.filter": ("筛选", "Filter"),
    "usage.export_csv": ("导出 CSV", "Export CSV"),
    "usage.export_xlsx": ("导出 Excel", "Export Excel"),
    "usage.time": ("时间", "Time"),
    "usage.deployment": ("部署", "Deployment"),
    "usage.tokens": ("Token（输入/输出）", "Tokens (in/out)"),
    "usage.cost": ("费用（元）", "Cost (CNY)"),
    "usage.voucher_part": ("算力券（元）", "Voucher (CNY)"),
    "usage.latency": ("延迟（毫秒）", "Latency (ms)"),
    "usage.status": ("状态", "Status"),
    "usage.data_class": ("数据分级", "Data class"),
    "status.ok": ("成功", "ok"),
    "status.estimated": ("用量为估算", "usage estimated"),
    "status.client_gone": ("客户端提前断开", "client left early"),
    "status.upstream_cut": ("上游中断", "upstream cut off"),
    "status.blocked": ("数据风险拦截", "blocked by the guard"),
    "usage.count": ("共 {count} 条，费用合计 {cost} 元。", "{count} records, CNY {cost} in all."),
    "usage.shown": (
        "页面显示最近 {shown} 条；导出包含全部。",
        "The page shows the latest {shown}; exports hold them all.",
    ),
    # deployments
    "deployments.title": ("部署", "Deployments"),
    "deployments.name": ("部署", "Deployment"),
    "deployments.model": ("模型别名", "Model alias"),
    "deployments.provider": ("供应商", "Provider"),
    "deployments.filing": ("备案", "Filing"),
    "deployments.unfiled": ("未备案", "not filed"),
    "deployments.placement": ("区域 / 云 / 加速卡", "Region / cloud / accelerator"),
    "deployments.price": ("价格（元/百万 Token，入/出）", "Price (CNY per million tokens, in/out)"),
    "deployments.health": ("健康", "Health"),
    "deployments.latency": ("近期延迟", "Recent latency"),
    "deployments.matrix": ("数据分级许可", "Data-class clearance"),
    "deployments.matrix_hint": (
        "✓ 可处理该级别数据；核心数据只在所示区域内处理（* 表示运营方允许跨区域）。",
        "✓ may serve that class; core data only for organizations of the region shown (* the operator allows any region).",
    ),
    "health.closed": ("正常", "healthy"),
    "health.open": ("熔断", "circuit open"),
    "health.half_open": ("探测中", "probing"),
    "health.unavailable": ("不可用", "unavailable"),
    # playground
    "playground.title": ("体验", "Playground"),
    "playground.steps": ("智能体的步骤", "The agent's steps"),
    "playground.key": ("API 密钥", "API key"),
    "playground.key_hint": (
        "调用与正式 API 完全相同：计费、限流与数据风险策略都照常生效。密钥只留在本页内存中。",
        "Calls go through the real API: metering, limits and the data-risk policy apply. The key stays in this page's memory only.",
    ),
    "playground.model": ("模型", "Model"),
    "playground.message": ("消息", "Message"),
    "playground.send": ("发送", "Send"),
    "playground.answer": ("回答", "Answer"),
    "playground.waiting": ("等待回答……", "Waiting for the answer…"),
    "aigc.export": ("导出回答（含 AIGC 标识）", "Export the answer (with its AIGC label)"),
    "aigc.meaning": ("人工智能生成内容", "AI-generated content"),
    # guard
    "guard.title": ("数据风险事件", "Data-risk events"),
    "guard.time": ("时间", "Time"),
    "guard.direction": ("方向", "Direction"),
    "guard.action": ("处理", "Action"),
    "guard.counts": ("发现的类型与数量", "Types found and counts"),
    "guard.request": ("请求 ID", "Request id"),
    "guard.prompt": ("提示词", "prompt"),
    "guard.answer": ("回答", "answer"),
    "guard.log": ("记录", "logged"),
    "guard.redact": ("脱敏", "redacted"),
    "guard.block": ("拦截", "blocked"),
    "entity.CN_RESIDENT_ID": ("身份证号", "resident ID"),
    "entity.CN_MOBILE": ("手机号", "mobile number"),
    "entity.BANK_CARD": ("银行卡号", "bank card"),
    "entity.CN_USCC": ("统一社会信用代码", "credit code (USCC)"),
    "entity.EMAIL": ("电子邮箱", "e-mail"),
    "entity.CN_PASSPORT": ("护照号", "passport"),
    "entity.CN_LICENSE_PLATE": ("车牌号", "licence plate"),
    "entity.API_KEY": ("API 密钥", "API key"),
    "entity.CN_HK_MACAO_PERMIT": ("港澳通行证", "HK/Macao travel permit"),
    "entity.IP_ADDRESS": ("IP 地址", "IP address"),
    "entity.PRIVATE_KEY": ("私钥", "private key"),
    "entity.BEARER_TOKEN": ("访问令牌", "bearer token"),
    "entity.KEYWORD": ("自定义关键词", "custom keyword"),
    "entity.CUSTOM": ("自定义规则", "custom pattern"),
    "guard.never_values": (
        "只记录类型与数量，从不保存原始值。",
        "Only types and counts are kept, never the values.",
    ),
    # the audit trail
    "audit.title": ("审计日志", "Audit trail"),
    "audit.about": (
        "每一项管理操作都按顺序记录，每条记录与前一条以哈希相连，每天签名一次；"
        "用 dizuo audit verify 校验是否有记录被改动、删除或调换顺序。",
        "Every administrative act, in order; each record is chained by hash to the one before and the"
        " chain is signed daily. dizuo audit verify finds any record changed, removed or reordered.",
    ),
    "audit.seq": ("序号", "No."),
    "audit.actor": ("操作人", "Actor"),
    "audit.action": ("操作", "Action"),
    "audit.target": ("对象", "Target"),
    "audit.detail": ("详情", "Detail"),
    "audit.hash": ("哈希", "Hash"),
    "audit.all_actions": ("全部操作", "All actions"),
    "audit.count": (
        "共 {count} 条；页面显示最近 {shown} 条。",
        "{count} records; the page shows the latest {shown}.",
    ),
    "audit.family.org": ("组织", "Organizations"),
    "audit.family.key": ("API 密钥", "API keys"),
    "audit.family.guard": ("数据风险策略", "Guard policies"),
    "audit.family.wallet": ("充值", "Top-ups"),
    "audit.family.voucher": ("算力券", "Vouchers"),
    "audit.family.deployment": ("部署与价格", "Deployments and prices"),
    "audit.family.member": ("成员与令牌", "Members and tokens"),
    "audit.family.sign-in": ("登录", "Sign-ins"),
    "audit.family.export": ("数据导出", "Data exports"),
    "audit.family.audit": ("审计日志导出与签名", "Audit exports and checkpoints"),
    "audit.family.retention": ("留存清理", "Retention"),
    # knowledge bases
    "kbs.title": ("知识库", "Knowledge bases"),
    "kbs.description": ("说明", "Description"),
    "kbs.embedding": ("向量模型", "Embedding model"),
    "kbs.documents": ("文档", "Documents"),
    "kbs.chunks": ("片段", "Chunks"),
    "kbs.characters": ("字数", "Characters"),
    "kbs.source": ("文件", "File"),
    "kbs.bytes": ("大小（字节）", "Size (bytes)"),
    "kbs.updated": ("更新时间", "Updated"),
    "kbs.key_hint": (
        "上传与提问通过正式 API（/v1/knowledge-bases）完成，向量化与回答照常计费。密钥只留在本页内存中。",
        "Uploads and questions go through the real API (/v1/knowledge-bases); embeddings and answers are metered as usual. The key stays in this page's memory only.",
    ),
    "kbs.base": ("知识库", "Knowledge base"),
    "kbs.file": (
        "文件（Markdown、DOCX、PDF、XLSX、CSV、HTML、TXT）",
        "File (Markdown, DOCX, PDF, XLSX, CSV, HTML, TXT)",
    ),
    "kbs.upload": ("上传", "Upload"),
    "kbs.uploaded": ("已加入 {source}：{chunks} 个片段。", "Added {source}: {chunks} chunks."),
    "kbs.question": ("问题", "Question"),
    "kbs.ask": ("提问", "Ask"),
    "kbs.default_model": ("平台默认", "the platform's default"),
    "kbs.english_only": ("仅英文", "English only"),
    "kbs.english_only_hint": (
        "标“仅英文”的模型不能用中文作答：中文问题会直接给出知识库中最相关的原文。",
        "Models marked English only cannot answer in Chinese: Chinese questions get the passages that answer them.",
    ),
    "kbs.answer": ("回答", "Answer"),
    "kbs.citations": ("引用", "Citations"),
    "kbs.none": (
        "这个组织还没有知识库：用 `dizuo kb create` 或 API 创建。",
        "This organization has no knowledge base yet: create one with `dizuo kb create` or the API.",
    ),
    # evaluations
    "evals.title": ("测试验证", "Evaluations"),
    "evals.catalog": ("模型目录（各套件最新一次的等级）", "Model catalog (grade of each suite's latest run)"),
    "evals.model": ("模型", "Model"),
    "evals.suite": ("测试套件", "Suite"),
    "evals.status": ("状态", "Status"),
    "evals.overall": ("总分", "Overall"),
    "evals.grade": ("等级", "Grade"),
    "evals.reason": ("依据", "Why"),
    "evals.started": ("开始时间", "Started"),
    "evals.open": ("查看报告", "Open the report"),
    "evals.runs": ("运行记录", "Runs"),
    "run.queued": ("排队中", "queued"),
    "run.running": ("运行中", "running"),
    "run.done": ("已完成", "done"),
    "run.failed": ("失败", "failed"),
    "run.interrupted": ("已中断", "interrupted"),
    "evals.hint": (
        "运行新的测试：在平台所在的机器上运行 `dizuo eval run`（完成后记录到这里），或 `POST /admin/v1/evals`。",
        "Start a run with `dizuo eval run` on the platform's machine (recorded here when done) "
        "or `POST /admin/v1/evals`.",
    ),
    # issuer
    "issuer.title": ("算力券发放", "Voucher programs"),
    "issuer.name": ("发放方", "Issuer"),
    "issuer.report": ("月度报告", "Monthly report"),
    "issuer.month": ("月份", "Month"),
    "issuer.paid": ("已支付（元）", "Paid (CNY)"),
    "issuer.calls": ("调用次数", "Calls"),
    "issuer.jobs": ("调用 / 作业次数", "Calls / jobs"),
    "issuer.kind_model": ("模型调用", "Model calls"),
    "issuer.kind_compute": ("算力作业", "Compute jobs"),
    "issuer.accelerator_hours": ("卡时", "Accelerator-hours"),
}


def bilingual(text: str, lang: str) -> str:
    """Pick one side of a ``中文 / English`` text (as ``parse_cny`` and the services write them)."""
    zh, sep, en = text.partition(" / ")
    return (zh if lang == "zh" else en) if sep else text


def pinyin_key(text: str) -> tuple[str, ...]:
    """Sort key that orders Chinese names by pinyin, as Chinese readers expect (not by code point).

    pypinyin loads its dictionaries (about 55 MB, phrases included, so that 重庆 sorts under C) on
    first use: a worker that never renders a console page never pays for them."""
    from pypinyin import Style, lazy_pinyin

    return tuple(lazy_pinyin(text.casefold(), style=Style.TONE3))


class Words:
    """The words of one page view: ``t`` translates, the rest format values for people."""

    def __init__(self, lang: Lang, zone: ZoneInfo) -> None:
        self.lang = lang
        self.zone = zone

    def t(self, key: str, **params: object) -> str:
        zh, en = TEXT[key]
        text = zh if self.lang == "zh" else en
        return text.format(**params) if params else text

    def when(self, moment: dt.datetime | str | None, *, date_only: bool = False) -> str:
        """Show a moment in the platform's time zone: ``2026-11-23 14:05``."""
        if moment is None or moment == "":
            return ""
        return self._local(moment).strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M:%S")

    def _local(self, moment: dt.datetime | str) -> dt.datetime:
        """A stored moment (an ISO string or a datetime; naive ones are UTC) in the platform's zone."""
        return utc(dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment).astimezone(
            self.zone
        )

    def through(self, moment: dt.datetime | str) -> str:
        """Show the end of a window as people write it: a window ending at local midnight is valid
        through the day before (``2030-12-31``), any other end with its time."""
        local = self._local(moment)
        if local.time() == dt.time():
            return (local - dt.timedelta(days=1)).strftime("%Y-%m-%d")
        return local.strftime("%Y-%m-%d %H:%M")

    def pick(self, text: str | None) -> str:
        """One side of a service's ``中文 / English`` text, in this page's language."""
        return bilingual(text or "", self.lang)

    @staticmethod
    def cny(amount: str) -> str:
        """An exact CNY amount (``"33.104500"``) as people read money: ``33.10``, thousands grouped;
        an amount spent that rounds to nothing reads ``< 0.01``, not a misleading ``0.00``."""
        exact = Decimal(amount)
        shown = exact.quantize(Decimal("0.01"), ROUND_HALF_UP)
        if exact > 0 and shown == 0:
            return "< 0.01"
        return f"{shown:,.2f}"

    @staticmethod
    def percent(share: str) -> str:
        """``"0.3000"`` → ``"30%"`` (a co-pay share as people say it)."""
        value = Decimal(share) * 100
        return f"{value.normalize():f}%"
