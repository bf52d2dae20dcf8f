"""``{{ workflow.response.path }}`` bindings: a small safe evaluator (pure: no Django).

Grammar of the text inside ``{{ }}``::

    binding  := ws NAME ".response" accessor* ws
    accessor := "." NAME | "[" INTEGER "]" | "[" STRING "]"
    STRING   := "..." or '...' with backslash escapes

Evaluation only looks up keys in JSON objects and indexes in JSON arrays: no
``eval``, no attribute access on Python objects, no template engine. A value
substituted into the text is never expanded again (like healthchecks'
``hc/lib/string.replace``). Error messages name the binding and the keys that
exist, never a value found on the way (values may be secrets).

Rendering to text: strings as they are, numbers as JSON writes them, booleans as
``true``/``false``, objects and arrays as compact JSON. A ``null`` is an error:
an empty host or password would silently fall back to something else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

MAX_TEXT = 10_000
MAX_DEPTH = 32
OPEN, CLOSE = "{{", "}}"


class BindingError(ValueError):
    def __init__(self, expression: str, message: str) -> None:
        self.expression = expression
        self.message = message
        super().__init__(f"{expression}: {message}" if expression else message)


@dataclass(frozen=True)
class Binding:
    source: str  # the whole "{{...}}"
    workflow: str
    path: tuple[str | int, ...]
    start: int
    end: int

    def describe(self, upto: int | None = None) -> str:
        """``getSecrets.response.hosts[0]``: the path written back, up to ``upto`` accessors."""
        parts = [f"{self.workflow}.response"]
        for item in self.path[:upto]:
            if isinstance(item, int):
                parts.append(f"[{item}]")
            elif item.isidentifier():
                parts.append(f".{item}")
            else:
                parts.append(f"[{json.dumps(item)}]")
        return "".join(parts)


def _is_name_start(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_name_char(c: str) -> bool:
    return _is_name_start(c) or ("0" <= c <= "9")


class _Parser:
    def __init__(self, inner: str, source: str) -> None:
        self.s, self.i, self.source = inner, 0, source

    def fail(self, message: str) -> BindingError:
        return BindingError(self.source, f"malformed binding: {message}")

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def name(self, what: str) -> str:
        start = self.i
        if self.i >= len(self.s) or not _is_name_start(self.s[self.i]):
            raise self.fail(f"expected {what} at position {self.i + 1}")
        while self.i < len(self.s) and _is_name_char(self.s[self.i]):
            self.i += 1
        return self.s[start:self.i]

    def string(self) -> str:
        """A quoted key: "..." with JSON's escapes, or '...' where a backslash escapes the next character."""
        quote, start = self.s[self.i], self.i
        self.i += 1
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
            elif c == quote:
                self.i += 1
                if quote == '"':
                    try:
                        return json.loads(self.s[start:self.i])
                    except ValueError:
                        raise self.fail("invalid escape in a quoted key") from None
                return "".join(out)
            else:
                out.append(c)
                self.i += 1
        raise self.fail("unclosed string key")

    def parse(self) -> tuple[str, tuple[str | int, ...]]:
        self.skip_ws()
        workflow = self.name("a workflow name")
        if not self.s.startswith(".response", self.i) or (
            self.i + 9 < len(self.s) and _is_name_char(self.s[self.i + 9])
        ):
            raise self.fail('expected ".response" after the workflow name')
        self.i += len(".response")
        path: list[str | int] = []
        while True:
            if self.i >= len(self.s) or self.s[self.i] in " \t\r\n":
                break
            if len(path) >= MAX_DEPTH:
                raise self.fail(f"more than {MAX_DEPTH} keys deep")
            c = self.s[self.i]
            if c == ".":
                self.i += 1
                path.append(self.name("a key name after '.'"))
            elif c == "[":
                self.i += 1
                self.skip_ws()
                if self.i < len(self.s) and self.s[self.i] in "\"'":
                    path.append(self.string())
                else:
                    start = self.i
                    if self.i < len(self.s) and self.s[self.i] == "-":
                        self.i += 1
                    while self.i < len(self.s) and self.s[self.i].isdigit() and self.s[self.i].isascii():
                        self.i += 1
                    digits = self.s[start:self.i]
                    if digits in ("", "-") or len(digits) > 9:
                        raise self.fail("expected a number or a quoted key inside [ ]")
                    path.append(int(digits))
                self.skip_ws()
                if self.i >= len(self.s) or self.s[self.i] != "]":
                    raise self.fail("expected ']'")
                self.i += 1
            else:
                raise self.fail(f"unexpected {c!r} at position {self.i + 1}")
        self.skip_ws()
        if self.i != len(self.s):
            raise self.fail(f"unexpected {self.s[self.i]!r} at position {self.i + 1}")
        return workflow, tuple(path)


def parse(text: str) -> list[str | Binding]:
    """Literal pieces and bindings, in order. Raises BindingError on a malformed binding."""
    if len(text) > MAX_TEXT:
        raise BindingError("", f"the text is longer than {MAX_TEXT} characters")
    pieces: list[str | Binding] = []
    position = 0
    while True:
        start = text.find(OPEN, position)
        if start < 0:
            if position < len(text):
                pieces.append(text[position:])
            return pieces
        end = text.find(CLOSE, start + 2)
        if end < 0:
            raise BindingError(_excerpt(text[start:]), f'unclosed "{{{{" at position {start + 1}')
        if start > position:
            pieces.append(text[position:start])
        source = text[start:end + 2]
        inner = text[start + 2:end]
        if OPEN in inner:
            raise BindingError(_excerpt(source), 'malformed binding: "{{" inside a binding')
        workflow, path = _Parser(inner, source).parse()
        pieces.append(Binding(source, workflow, path, start, end + 2))
        position = end + 2


def _excerpt(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def has_bindings(text: str) -> bool:
    return isinstance(text, str) and OPEN in text


def workflows_referenced(text: str) -> set[str]:
    return {p.workflow for p in parse(text) if isinstance(p, Binding)}


def evaluate(binding: Binding, responses: Mapping[str, Any]) -> Any:
    """The JSON value a binding points at."""
    if binding.workflow not in responses:
        raise BindingError(binding.source, f'no workflow "{binding.workflow}"')
    value = responses[binding.workflow]
    for depth, key in enumerate(binding.path):
        where = binding.describe(depth)
        if isinstance(value, dict):
            if not isinstance(key, str) or key not in value:
                shown = ", ".join(sorted(map(str, value))[:10]) + (", …" if len(value) > 10 else "")
                wanted = f"key {json.dumps(key)}" if isinstance(key, str) else f"index [{key}]"
                raise BindingError(
                    binding.source,
                    f"no {wanted} in {where} (keys: {shown or 'none'})" if isinstance(key, str)
                    else f"{where} is an object, not a list: use a key (keys: {shown or 'none'})",
                )
            value = value[key]
        elif isinstance(value, list):
            if not isinstance(key, int):
                raise BindingError(binding.source, f'{where} is a list of {len(value)}, not an object: use an index such as [0]')
            if not -len(value) <= key < len(value):
                raise BindingError(binding.source, f"index {key} out of range in {where} (a list of {len(value)})")
            value = value[key]
        else:
            raise BindingError(binding.source, f"{where} is {_type_name(value)}, so it has no {_accessor(key)}")
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a " + type(value).__name__


def _accessor(key: str | int) -> str:
    return f"index [{key}]" if isinstance(key, int) else f'key "{key}"'


def to_text(binding: Binding, value: Any) -> str:
    if value is None:
        raise BindingError(binding.source, f"{binding.describe()} is null")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def render(text: str, responses: Mapping[str, Any]) -> str:
    """``text`` with each binding replaced by its value as text; values are never re-expanded."""
    out: list[str] = []
    for piece in parse(text):
        out.append(piece if isinstance(piece, str) else to_text(piece, evaluate(piece, responses)))
    return "".join(out)


def resolve(text: str, responses: Mapping[str, Any]) -> Any:
    """The raw JSON value when ``text`` is exactly one binding (e.g. a port 5432), else ``render``."""
    pieces = parse(text)
    meaningful = [p for p in pieces if not (isinstance(p, str) and not p.strip())]
    if len(meaningful) == 1 and isinstance(meaningful[0], Binding):
        value = evaluate(meaningful[0], responses)
        if value is None:
            raise BindingError(meaningful[0].source, f"{meaningful[0].describe()} is null")
        return value
    return render(text, responses)
