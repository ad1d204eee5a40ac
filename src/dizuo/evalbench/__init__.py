"""The test-and-verification bench (大模型、智能体测试验证): suites, runner, scores, grades, reports.

The bench reaches models over HTTP, through the gateway or any OpenAI-compatible base URL, so that
it measures what users get. See docs/evals.md.
"""

from dizuo.evalbench.grades import REQUIREMENTS, catalog_grade, summarise
from dizuo.evalbench.report import compare_runs, load_run, render_compare
from dizuo.evalbench.runner import RunConfig, RunConflict, RunFailed, run_suite
from dizuo.evalbench.suites import BankError, Item, Suite, builtin_suites, load_suite

__all__ = [
    "REQUIREMENTS",
    "BankError",
    "Item",
    "RunConfig",
    "RunConflict",
    "RunFailed",
    "Suite",
    "builtin_suites",
    "catalog_grade",
    "compare_runs",
    "load_run",
    "load_suite",
    "render_compare",
    "run_suite",
    "summarise",
]
