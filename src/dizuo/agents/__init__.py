"""Agents (智能体): definitions an organization writes, versions it publishes, and the loop that runs
them server-side when a client calls ``agent/NAME`` like a model."""

from dizuo.errors import catalogue

# The messages of the agents' errors.
MESSAGES = catalogue(
    {
        "agent_not_found": (
            "智能体 {name!r} 不存在、尚未发布，或不属于此密钥的组织。可用 `dizuo agent list` 查看。",
            "There is no agent {name!r} this key's organization may call (or it has no published version). "
            "See `dizuo agent list`.",
        ),
        "agent_exists": (
            "智能体 {name!r} 已存在。请用 `dizuo agent update` 修改它，或换一个名称。",
            "An agent named {name!r} already exists. Change it with `dizuo agent update`, or pick another name.",
        ),
        "agent_untested": (
            "智能体 {model} 要向全平台发布，须先通过评测：用 `dizuo eval run --model {model}` 跑工具调用"
            "（tool-calling）与拒答（refusal）评测，且评级为 A–C。现在：{found}。",
            "Publishing {model} to every organization needs it evaluated first: run the tool-calling and a "
            "refusal suite against it (`dizuo eval run --model {model}`) for a grade of A to C. Now: {found}.",
        ),
        "agent_step_limit": (
            "智能体 {name!r} 在 {steps} 次模型调用（max_steps）后仍未给出答案，已停止。请提高 max_steps 或简化问题。",
            "The agent {name!r} had no answer after {steps} model calls (max_steps) and was stopped. Raise "
            "max_steps or ask a simpler question.",
        ),
        "agent_cost_limit": (
            "智能体 {name!r} 本次调用已花费 ¥{spent}，达到上限 ¥{limit}（max_cost），已停止。请提高 max_cost。",
            "The agent {name!r} spent ¥{spent} on this call, its limit of ¥{limit} (max_cost), and was "
            "stopped. Raise max_cost.",
        ),
    }
)
