"""Checks of a step's code at save time (compiling only: nothing runs in the web process)."""
from __future__ import annotations

import ast


def check_syntax(code: str) -> str | None:
    """A user-facing message for a syntax error in a step body, or None.

    The body is parsed as a module and then placed in a function, as the sandbox
    runs it, so a top-level ``return`` is fine and line numbers are the user's.
    """
    try:
        module = ast.parse(code, filename="<step>")
        function = ast.FunctionDef(
            name="__step__", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=module.body or [ast.Pass()], decorator_list=[], returns=None, type_params=[],
        )
        wrapped = ast.Module(body=[function], type_ignores=[])
        ast.fix_missing_locations(wrapped)
        compile(wrapped, "<step>", "exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return f"Syntax error, {where}{exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"The code cannot be compiled: {type(exc).__name__}"
    return None
