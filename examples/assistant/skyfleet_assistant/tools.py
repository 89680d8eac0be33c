"""The assistant's built-in tools: deterministic functions of their argument text (and of
the injected clock), so that the model's second call is as reproducible as its first.

A model asks for one with a line `TOOL: <name> <arguments>` (`find_tool_call`). A tool's
error is its result, handed back to the model to read ("error: division by zero"): the
model asked wrongly, which is neither the client's fault nor a failure of the run.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

MAX_EXPRESSION = 200
"""Characters of a `calc` expression at most."""
MAX_EXPONENT = 1000
"""Largest power `calc` raises to, and `MAX_DIGITS` the longest integer it makes: a
model's `9**9**9` must not take the host's CPU for minutes."""
MAX_DIGITS = 1000

TOOL_LINE = re.compile(r"^TOOL:[ \t]*(\S+)[ \t]*(.*?)[ \t]*$", re.MULTILINE)


class ToolError(ValueError):
    """A tool could not answer its arguments."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    args: str


def find_tool_call(answer: str) -> ToolCall | None:
    """The first `TOOL:` line of a model's answer, if it has one."""
    match = TOOL_LINE.search(answer)
    return ToolCall(match.group(1), match.group(2)) if match else None


_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def calc(expression: str) -> str:
    """Arithmetic on numbers (+ - * / // % **, parentheses), read as a Python expression
    tree and evaluated node by node: no names, calls or attributes, so nothing but
    arithmetic can run."""
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from None
    value = _evaluate(tree.body)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 10/2 is "5", as a person would write it
    return str(value)


def _evaluate(node: ast.expr) -> float:
    constant = node.value if isinstance(node, ast.Constant) else None
    if isinstance(constant, int | float) and not isinstance(constant, bool):
        return constant
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} over {MAX_EXPONENT}")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("result too large") from None
        if isinstance(value, complex):  # (-8) ** 0.5
            raise ToolError("result is not a real number")
        if isinstance(value, int) and abs(value) >= 10**MAX_DIGITS:
            raise ToolError(f"result over {MAX_DIGITS} digits")
        return value
    raise ToolError(f"not arithmetic: {ast.unparse(node)!r}")


def clock(now: Callable[[], datetime]) -> str:
    """The current time in UTC, ISO 8601 to the second."""
    return now().isoformat(timespec="seconds")


TOOLS = ("calc", "clock")


def run_tool(call: ToolCall, now: Callable[[], datetime]) -> str:
    """The tool's result, or its error as the result ("error: ..."), for the model."""
    try:
        if call.name == "calc":
            return calc(call.args)
        if call.name == "clock":
            return clock(now)
    except ToolError as exc:
        return f"error: {exc}"
    return f"error: unknown tool {call.name!r} (tools: {', '.join(TOOLS)})"
