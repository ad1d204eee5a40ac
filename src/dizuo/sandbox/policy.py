"""What SQL may run in the sandbox, checked before anything runs, and the plan that runs it.

A query is parsed with sqlglot (DuckDB's dialect) and must be one ``SELECT`` over one granted
dataset: no joins, subqueries, CTEs, set operations, window functions or table functions; only the
scalar functions in :data:`SCALARS`; only columns the grant allows, never an identifier column.

An **aggregate** query (``GROUP BY`` or aggregates) groups by plain columns, and each aggregate reads
one column (or ``*``): ``count``, ``sum`` and ``avg`` of any granted column, ``min``, ``max`` and
``median`` of public columns only; no ``FILTER`` or ``CASE`` inside an aggregate (they would
describe a smaller set than the group). The plan adds hidden columns (the group's keys, its row
count, each aggregated column's count) for disclosure control. A **rows** query (no aggregate) needs
a grant that lets rows leave.

Every refusal names its reason and where in the SQL it is (line and column).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from dizuo.sandbox.columns import Column, Refused

__all__ = ["SCALARS", "Column", "Plan", "Refused", "plan"]

# Scalar functions a query may call (sqlglot's expression classes, and DuckDB names it leaves
# anonymous): arithmetic, text, dates, conditionals. Anything else (file readers, settings,
# randomness, system functions) is refused.
SCALARS: frozenset[type[Any]] = frozenset(
    {
        exp.Abs, exp.Round, exp.Floor, exp.Ceil, exp.Sqrt, exp.Ln, exp.Log, exp.Pow, exp.Sign,
        exp.Lower, exp.Upper, exp.Length, exp.Substring, exp.Trim, exp.Concat, exp.Left, exp.Right,
        exp.Replace, exp.StrPosition,
        exp.Year, exp.Month, exp.Day, exp.Quarter, exp.DateTrunc, exp.TimestampTrunc, exp.DateDiff,
        exp.DateAdd, exp.DateSub, exp.CurrentDate, exp.Extract, exp.StrToDate, exp.StrToTime,
        exp.Coalesce, exp.Nullif, exp.If, exp.Case, exp.Cast, exp.TryCast, exp.Greatest, exp.Least,
    }
)  # fmt: skip
ANONYMOUS = frozenset({"date_part", "datepart", "strftime", "strptime", "age", "left", "right", "floor"})
COUNTING = (exp.Count, exp.Sum, exp.Avg)
ORDERING = (exp.Min, exp.Max, exp.Median)


@dataclass(frozen=True)
class Aggregate:
    """An output column that is exactly one aggregate: its function and column (None: ``*``)."""

    position: int
    function: str  # count | sum | avg | min | max | median
    column: str | None
    distinct: bool


@dataclass
class Plan:
    kind: Literal["aggregate", "rows"]
    sql: str  # what runs: the query, with the hidden columns after the visible ones
    visible: int  # how many columns the caller asked for
    group_by: list[str] = field(default_factory=list)  # the plain columns the query groups by
    where: exp.Expr | None = None
    conjuncts: list[exp.Expr] = field(default_factory=list)  # the WHERE, as ANDed parts
    aggregates: list[Aggregate] = field(default_factory=list)  # output columns that are one aggregate
    counted: list[str] = field(default_factory=list)  # aggregated columns: hidden count after __n
    key_positions: list[int] = field(default_factory=list)  # output columns that are group keys


def _where(node: Any) -> tuple[int | None, int | None]:
    """The line and column of *node* (its first identifier that knows its place)."""
    if node is None:
        return None, None
    for part in node.walk():
        meta = part.meta if isinstance(part, exp.Expr) else {}
        if "line" in meta:
            return meta["line"], meta["col"] - len(
                str(part.this if isinstance(part, exp.Identifier) else "")
            ) + 1
    return None, None


def _refuse(code: str, zh: str, en: str, node: Any = None) -> Refused:
    line, col = _where(node)
    return Refused(code, zh, en, line, col)


def parse(sql: str) -> exp.Expr:
    """One statement, parsed; :class:`Refused` ``sandbox_sql_invalid`` with the position if not."""
    try:
        statements = [s for s in sqlglot.parse(sql, dialect="duckdb") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        what = first.get("description", str(exc))
        raise Refused(
            "sandbox_sql_invalid",
            f"SQL 语法错误：{what}",
            f"SQL syntax error: {what}",
            first.get("line"),
            first.get("col"),
        ) from None
    except TokenError as exc:
        raise Refused(
            "sandbox_sql_invalid", f"SQL 无法切分：{exc}", f"SQL cannot be tokenized: {exc}"
        ) from None
    if len(statements) != 1:
        raise Refused("sandbox_sql_invalid", "须是一条 SQL 语句", "must be exactly one SQL statement")
    return statements[0]


def conjuncts(condition: exp.Expr | None) -> list[exp.Expr]:
    """*condition* as the parts it ANDs together (``NOT (a OR b)`` is ``NOT a`` and ``NOT b``)."""
    if condition is None:
        return []
    if isinstance(condition, exp.Paren):
        return conjuncts(condition.this)
    if isinstance(condition, exp.And):
        return conjuncts(condition.left) + conjuncts(condition.right)
    if isinstance(condition, exp.Not):
        inner = condition.this.unnest() if isinstance(condition.this, exp.Paren) else condition.this
        if isinstance(inner, exp.Or):
            return conjuncts(exp.not_(inner.left)) + conjuncts(exp.not_(inner.right))
        if isinstance(inner, exp.Not):
            return conjuncts(inner.this)
    return [condition]


def all_of(parts: Iterable[exp.Expr]) -> exp.Expr:
    """The AND of *parts* (TRUE for none)."""
    listed = [exp.paren(part.copy()) for part in parts]
    return exp.and_(*listed) if listed else exp.true()


class _Checker:
    def __init__(self, table: str, columns: dict[str, Column], allowed: set[str], rows_allowed: bool) -> None:
        self.table, self.columns, self.allowed, self.rows_allowed = table, columns, allowed, rows_allowed

    def column(self, node: exp.Column, aliases: set[str]) -> None:
        name = node.name
        if node.table and node.table != self.table:
            raise _refuse(
                "sandbox_query_refused",
                f"列 {node.sql()} 不属于数据集 {self.table}",
                f"column {node.sql()} is not of the dataset {self.table}",
                node,
            )
        if name in aliases and name not in self.columns:
            return
        known = self.columns.get(name)
        if known is None:
            raise _refuse(
                "sandbox_sql_invalid",
                f"数据集 {self.table} 没有列 {name}（有：{'、'.join(self.columns)}）",
                f"the dataset {self.table} has no column {name} (it has: {', '.join(self.columns)})",
                node,
            )
        if known.sensitivity == "identifier":
            raise _refuse(
                "sandbox_query_refused",
                f"列 {name} 是标识符，不能出现在查询里",
                f"column {name} is an identifier and may not appear in a query",
                node,
            )
        if name not in self.allowed:
            raise _refuse(
                "sandbox_query_refused",
                f"授权不包括列 {name}（可用：{'、'.join(sorted(self.allowed)) or '无'}）",
                f"your grant does not include column {name} (granted: {', '.join(sorted(self.allowed)) or 'none'})",
                node,
            )

    def function(self, node: exp.Func) -> None:
        if isinstance(node, (exp.AggFunc, exp.Connector)) or type(node) in SCALARS:  # AND, OR: operators
            return
        if isinstance(node, exp.Anonymous) and node.name.lower() in ANONYMOUS:
            return
        name = node.sql_name() if not isinstance(node, exp.Anonymous) else node.name
        raise _refuse(
            "sandbox_query_refused", f"不允许调用函数 {name}", f"the function {name} is not allowed", node
        )

    def aggregate(self, node: exp.AggFunc) -> tuple[str, str | None, bool]:
        """Check one aggregate; its function, column (None: ``*``) and whether DISTINCT."""
        if not isinstance(node, COUNTING + ORDERING):
            raise _refuse(
                "sandbox_query_refused",
                f"不允许聚合函数 {node.sql_name()}（可用 count、sum、avg；公开列还可用 min、max、median）",
                f"the aggregate {node.sql_name()} is not allowed (count, sum, avg; min, max, median of public columns)",
                node,
            )
        argument = node.this
        distinct = isinstance(argument, exp.Distinct)
        if distinct:
            inner = argument.expressions
            argument = inner[0] if len(inner) == 1 else None
        if isinstance(node, exp.Count) and isinstance(argument, exp.Star):
            return "count", None, False
        if not isinstance(argument, exp.Column):
            raise _refuse(
                "sandbox_query_refused",
                "聚合函数的参数须是一列（或 count(*)）；要筛选请用 WHERE",
                "an aggregate's argument must be one column (or count(*)); filter with WHERE",
                node,
            )
        function = type(node).__name__.lower()
        known = self.columns.get(argument.name)
        if isinstance(node, ORDERING) and known is not None and known.sensitivity != "public":
            raise _refuse(
                "sandbox_query_refused",
                f"{function} 只能用于公开列：{argument.name} 的最值就是某个人的值",
                f"{function} is for public columns only: the extreme of {argument.name} is one person's value",
                node,
            )
        return function, argument.name, distinct


def plan(
    sql: str,
    table: str,
    columns: list[Column],
    allowed: Iterable[str],
    rows_allowed: bool,
    max_rows: int,
    clamp: bool = False,
) -> Plan:
    """Check *sql* against the dataset *table* and a grant (*allowed* columns, *rows_allowed*);
    the plan that runs it, or :class:`Refused`. With *clamp* (a grant with a privacy budget), each
    summed column that has bounds is clamped to them in what runs: they bound a noisy sum's
    sensitivity."""
    tree = parse(sql)
    known = {c.name: c for c in columns}
    check = _Checker(table, known, set(allowed), rows_allowed)
    if not isinstance(tree, exp.Select):
        raise Refused(
            "sandbox_query_refused",
            "只允许只读的 SELECT 查询",
            f"only read-only SELECT queries may run (this is {type(tree).__name__.upper()})",
            1,
            1,
        )
    for kind, zh, en in (
        (exp.With, "不支持 WITH（CTE）", "WITH (common table expressions) is not supported"),
        (exp.Window, "不允许窗口函数", "window functions are not allowed"),
        (
            exp.Filter,
            "聚合里不允许 FILTER；请用 WHERE",
            "FILTER inside an aggregate is not allowed; use WHERE",
        ),
        (exp.Lateral, "不允许 LATERAL", "LATERAL is not allowed"),
        (exp.Into, "不允许 SELECT INTO", "SELECT INTO is not allowed"),
    ):
        found = tree.find(kind)
        if found is not None:
            raise _refuse("sandbox_query_refused", zh, en, found)
    for node in tree.find_all(exp.Select, exp.Subquery, exp.SetOperation):
        if node is not tree:
            raise _refuse("sandbox_query_refused", "不允许子查询或集合运算", "subqueries and set operations are not allowed", node)  # fmt: skip
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None:
        raise _refuse("sandbox_query_refused", f"须查询数据集 {table}（FROM {table}）", f"the query must read the dataset {table} (FROM {table})", tree)  # fmt: skip
    for join in tree.args.get("joins") or []:
        other = join.this
        name = other.name if isinstance(other, exp.Table) else other.sql()
        if name != table:
            raise _refuse("sandbox_query_refused", f"未获授权使用数据集 {name}", f"the dataset {name} is not granted to you", other)  # fmt: skip
        raise _refuse("sandbox_query_refused", "不支持 JOIN", "joins are not supported", other)
    origin = source.this
    if (
        not isinstance(origin, exp.Table)
        or not isinstance(origin.this, exp.Identifier)
        or origin.args.get("db")
    ):
        raise _refuse("sandbox_query_refused", f"FROM 须是数据集名 {table}", f"FROM must name the dataset {table}", origin)  # fmt: skip
    if origin.name != table:
        raise _refuse("sandbox_query_refused", f"未获授权使用数据集 {origin.name}", f"the dataset {origin.name} is not granted to you", origin)  # fmt: skip
    alias = origin.alias
    if alias:
        check.table = alias
    aliases = {e.alias for e in tree.expressions if isinstance(e, exp.Alias)}
    for part in tree.walk():
        if isinstance(part, exp.Column):
            check.column(part, aliases)
        elif isinstance(part, exp.Func):
            check.function(part)
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            raise _refuse("sandbox_query_refused", "请列出要查的列，不用 *", "name the columns rather than *", star)  # fmt: skip
    aggregated = [node for node in tree.find_all(exp.AggFunc)]
    group = tree.args.get("group")
    where = tree.args.get("where")
    condition = where.this if where is not None else None
    if not aggregated and group is None:
        if not rows_allowed:
            raise _refuse(
                "sandbox_query_refused",
                "授权不允许逐行结果离开沙盒：请用聚合（count、sum、avg … GROUP BY）",
                "your grant does not let row-level results leave: aggregate (count, sum, avg … GROUP BY)",
                tree,
            )
        limited = tree.copy().limit(max_rows + 1) if tree.args.get("limit") is None else tree.copy()
        return Plan("rows", limited.sql(dialect="duckdb"), len(tree.expressions), where=condition)
    bounds = {c.name: c.bounds for c in columns if c.bounds} if clamp else {}
    return _aggregate_plan(tree, check, aggregated, condition, bounds)


def _aggregate_plan(
    tree: exp.Select,
    check: _Checker,
    aggregated: list[exp.AggFunc],
    condition: exp.Expr | None,
    bounds: dict[str, tuple[float, float]],
) -> Plan:
    counted: set[str] = set()
    for node in aggregated:
        if (name := check.aggregate(node)[1]) is not None:
            counted.add(name)
        if node.find_ancestor(exp.AggFunc) is not None:
            raise _refuse("sandbox_query_refused", "聚合不能嵌套", "aggregates may not nest", node)
    selected = {e.alias_or_name: e.unalias() for e in tree.expressions}
    keys: list[str] = []
    group = tree.args.get("group")
    for item in group.expressions if group is not None else []:
        target = item
        if isinstance(item, exp.Literal) and item.is_int and 0 < int(item.this) <= len(tree.expressions):
            target = tree.expressions[int(item.this) - 1].unalias()
        elif isinstance(item, exp.Column) and item.name in selected and item.name not in check.columns:
            target = selected[item.name]
        if not isinstance(target, exp.Column):
            raise _refuse(
                "sandbox_query_refused",
                "GROUP BY 只能按列分组（不能按表达式）",
                "GROUP BY takes plain columns only (not expressions)",
                item,
            )
        keys.append(target.name)
    outputs: list[Aggregate] = []
    key_positions: list[int] = []
    for position, item in enumerate(tree.expressions):
        inner = item.unalias()
        if isinstance(inner, exp.Column) and inner.name in keys:
            key_positions.append(position)
            continue
        if inner.find(exp.AggFunc) is None:
            raise _refuse(
                "sandbox_query_refused",
                f"{item.sql()} 既不是聚合也不在 GROUP BY 里",
                f"{item.sql()} is neither an aggregate nor in GROUP BY",
                item,
            )
        for column in inner.find_all(exp.Column):
            if column.find_ancestor(exp.AggFunc) is None and column.name not in keys:
                raise _refuse(
                    "sandbox_query_refused",
                    f"列 {column.name} 在聚合之外，须在 GROUP BY 里",
                    f"column {column.name} is outside an aggregate and must be in GROUP BY",
                    column,
                )
        if isinstance(inner, exp.AggFunc):
            function, name, distinct = check.aggregate(inner)
            outputs.append(Aggregate(position, function, name, distinct))
    run = _clamped(tree.copy(), bounds) if bounds else tree.copy()
    hidden: list[Any] = [exp.column(key, quoted=True).as_(f"__g{i}") for i, key in enumerate(keys)]
    hidden.append(exp.Count(this=exp.Star()).as_("__n"))
    hidden += [
        exp.Count(this=exp.column(name, quoted=True)).as_(f"__c{i}") for i, name in enumerate(sorted(counted))
    ]
    run.set("expressions", [*run.expressions, *hidden])
    return Plan(
        "aggregate",
        run.sql(dialect="duckdb"),
        len(tree.expressions),
        group_by=keys,
        where=condition,
        conjuncts=conjuncts(condition),
        aggregates=outputs,
        counted=sorted(counted),
        key_positions=key_positions,
    )


def quoted(name: str) -> str:
    return exp.column(name, quoted=True).sql(dialect="duckdb")


def _counted(condition: str) -> str:
    """Rows where *condition* holds, counted (a boolean projected once, then summed: three times
    faster in DuckDB than ``count(*) FILTER`` with the condition in every column)."""
    return f"coalesce(sum(CAST({condition} AS INTEGER)), 0)"


def checks_sql(table: str, plan_: Plan) -> str | None:
    """The query of the filter check: per group, the rows the WHERE keeps and the rows it would keep
    without each of its parts (a part that removes only a few rows singles them out). None when the
    WHERE has no part to drop."""
    parts = plan_.conjuncts
    if not parts:
        return None
    keys = [f"{quoted(key)} AS __g{i}" for i, key in enumerate(plan_.group_by)]
    held = [f"coalesce(({part.sql(dialect='duckdb')}), false) AS __p{i}" for i, part in enumerate(parts)]
    names = [f"__p{i}" for i in range(len(parts))]
    without = [" AND ".join(names[:i] + names[i + 1 :]) or "true" for i in range(len(parts))]
    counts = [_counted(" AND ".join(names)) + " AS __n"]
    counts += [_counted(w) + f" AS __d{i}" for i, w in enumerate(without)]
    scope = " OR ".join(
        f"({all_of(parts[:i] + parts[i + 1 :]).sql(dialect='duckdb')})" for i in range(len(parts))
    )
    inner = f'SELECT {", ".join(keys + held)} FROM "{table}" WHERE {scope}'
    group = f" GROUP BY {', '.join(f'__g{i}' for i in range(len(keys)))}" if keys else ""
    return (
        f"SELECT {', '.join([f'__g{i}' for i in range(len(keys))] + counts)} FROM ({inner}) AS __rows{group}"
    )


def history_sql(table: str, keys: list[str], now: str, before: list[str]) -> str:
    """The query of the differencing check against earlier released filters *before*: per group of
    the shared *keys*, the rows in one filter and not the other, both ways."""
    projected = [f"{quoted(key)} AS __g{i}" for i, key in enumerate(keys)]
    projected.append(f"coalesce(({now}), false) AS __now")
    projected += [f"coalesce(({old}), false) AS __o{i}" for i, old in enumerate(before)]
    counts = [f"__g{i}" for i in range(len(keys))]
    for i in range(len(before)):
        counts.append(_counted(f"__now AND NOT __o{i}") + f" AS __a{i}")
        counts.append(_counted(f"__o{i} AND NOT __now") + f" AS __b{i}")
    group = f" GROUP BY {', '.join(f'__g{i}' for i in range(len(keys)))}" if keys else ""
    return f'SELECT {", ".join(counts)} FROM (SELECT {", ".join(projected)} FROM "{table}") AS __rows{group}'


def condition_sql(condition: exp.Expr | None) -> str:
    """A WHERE as the SQL the history keeps (TRUE for none)."""
    return "TRUE" if condition is None else condition.sql(dialect="duckdb")


def _clamped(tree: exp.Expr, bounds: dict[str, tuple[float, float]]) -> Any:
    """*tree* with each ``sum`` of a column in *bounds* clamped to them."""

    def clamp(node: exp.Expr) -> Any:
        if isinstance(node, exp.Sum) and isinstance(node.this, exp.Column) and node.this.name in bounds:
            low, high = bounds[node.this.name]
            inner = exp.func("least", node.this.copy(), exp.Literal.number(high))
            return exp.Sum(this=exp.func("greatest", inner, exp.Literal.number(low)))
        return node

    return tree.transform(clamp)
