"""Scenario lists (场景清单): needs, their lifecycle, the program office's numbered lists."""

from dizuo.errors import catalogue

# The messages of the scenario lists' and the supply catalog's errors.
MESSAGES = catalogue(
    {
        "scenario_not_found": (
            "没有场景 {id}，或本组织无权查看。",
            "There is no scenario {id} this organization may see.",
        ),
        "scenario_move_not_allowed": (
            "场景现在处于 {status}，不能改为 {to}。此时可做的变更：{allowed}。",
            "The scenario is {status}: it cannot move to {to}. The moves there are: {allowed}.",
        ),
        "supplier_not_found": (
            "供给能力目录中没有组织 {id} 的条目。",
            "The supply catalog has no entry of the organization {id}.",
        ),
        "scenario_application_not_found": (
            "该场景没有揭榜申请 {id}。",
            "The scenario has no application {id}.",
        ),
        "scenario_not_open": (
            "场景 {id} 现在不能揭榜或评定（当前：{status}）：只有已发布的场景可申请，且只能对未定的申请入围或定标。",
            "The scenario {id} cannot take this now ({status}): only a published scenario takes "
            "applications, and only undecided applications are shortlisted or awarded.",
        ),
        "scenario_not_in_review": (
            "场景 {id} 现在不在评审中（当前：{status}），不能评分。",
            "The scenario {id} is not under review ({status}): it cannot be scored now.",
        ),
        "scenario_not_in_construction": (
            "场景 {id} 现在不在建设中（当前：{status}）：里程碑只能在揭榜后、验收前记录。",
            "The scenario {id} is not being built ({status}): milestones are kept between its taking "
            "and its acceptance.",
        ),
        "scenario_milestone_not_found": (
            "该场景没有里程碑 {id}。",
            "The scenario has no milestone {id}.",
        ),
        "scenario_applied": (
            "本组织已申请揭榜场景 {id}（申请 {application}），每个组织只能申请一次。",
            "This organization applied for the scenario {id} already (application {application}); one "
            "application per organization.",
        ),
    }
)
