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
    }
)
