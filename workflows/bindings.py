"""``{{ workflow.response.path }}`` bindings: a small safe evaluator (pure: stdlib only, no Django).

A field such as ``db-{{getSecrets.response.env}}.internal`` is literal text with
bindings in it. Grammar of the text between ``{{`` and ``}}``::

    binding  := ws NAME ".response" accessor* ws
    (in an Integration step's request, ``parse(text, member=None)``:
     binding  := ws NAME accessor* ws, e.g. params.item or first.output.rows[0])
    accessor := "." NAME | "[" ws INDEX ws "]" | "[" ws STRING ws "]"
    NAME     := [A-Za-z_][A-Za-z0-9_]*          (ASCII, like a workflow's name)
    INDEX    := "-"? [0-9]+                     (a negative index counts from the end)
    STRING   := '"' ... '"' | "'" ... "'"       (escapes: \\" \\' \\\\ and nothing else)
    ws       := spaces, tabs, newlines

Contracts:

* Evaluation only looks up keys in JSON objects (``dict``) and indexes in JSON
  arrays (``list``): no ``eval``, no ``ast``, no attribute access, no template
  engine. ``{{w.response.__class__}}`` is a missing key like any other.
* A substituted value is never expanded again, even if it holds ``{{...}}``
  (like healthchecks' ``hc/lib/string.py: replace()``).
* Literal text may hold a lone ``{``, ``}`` or ``}}``; a ``{{`` must open a
  well-formed binding closed by ``}}``. There is no escape for a literal ``{{``.
* Every failure is a ``BindingError`` (a ``ValueError``) whose message names the
  binding and the problem, and may list key *names* and types and lengths, but
  never a value found in a response: those are usually secrets.
* Cost is linear in the text: one left-to-right scan, no regular expressions.
  Texts longer than ``MAX_TEXT_LENGTH``, paths deeper than ``MAX_PATH_DEPTH`` and
  renders longer than ``MAX_RENDERED_LENGTH`` are refused with a clear message.

Rendering a value as text (``render``, and ``evaluate_text`` on mixed text):

* strings as they are; ``true``/``false`` for booleans, as in the JSON the user sees;
* integers in decimal; floats as Python's shortest round-trip ``repr``, except
  that a whole float is written without ``.0`` (``5432.0`` -> ``5432``): JSON
  producers disagree on ``5432`` vs ``5432.0``, and ``host:5432.0`` never works;
* objects and arrays as compact JSON (``{"a":1}``, ``[1,2]``), non-ASCII kept;
* ``null`` is an error (``... is null``), in ``render`` and ``evaluate_text`` alike: a
  null host or password is almost always a missing secret or a misspelt key,
  and an empty string would fail later with a far less helpful message (or,
  worse, connect without a password).
"""
from __future__ import annotations

import copy
import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_PATH_DEPTH", "MAX_RENDERED_LENGTH", "MAX_TEXT_LENGTH",
    "Binding", "BindingError",
    "evaluate", "evaluate_text", "has_bindings", "parse", "render", "value_text", "workflows_referenced",
]

MAX_TEXT_LENGTH = 10_000
MAX_PATH_DEPTH = 32
# 10,000 characters of "{{w.response}}" over a large response could render
# gigabytes; a credential field has no business being longer than this.
MAX_RENDERED_LENGTH = 1_000_000

OPEN, CLOSE = "{{", "}}"
_WHITESPACE = " \t\r\n"
_QUOTES = "\"'"
_MAX_INDEX_DIGITS = 18  # int() of a 5,000-digit string raises ValueError in Python 3.11
_MAX_KEYS_LISTED = 10
_MAX_KEY_SHOWN = 40  # characters of one key name in a message
_MAX_SOURCE_SHOWN = 80  # characters of a malformed binding echoed in a message


class BindingError(ValueError):
    """A binding that is malformed or does not match the responses.

    ``str(error)`` is the user-facing message, ``"<expression>: <detail>"``, e.g.
    ``{{getSecrets.response.hots}}: no key "hots" (keys: host, port, username)``.
    ``expression`` is the offending ``{{...}}`` text (``""`` when the problem is
    the whole text, e.g. an unclosed ``{{`` or a text that is too long);
    ``position`` is the 1-based position of its ``{{`` in the text, if known.
    """

    def __init__(self, expression: str, detail: str, *, position: int | None = None) -> None:
        self.expression = expression
        self.detail = detail
        self.position = position
        super().__init__(f"{expression}: {detail}" if expression else detail)


@dataclass(frozen=True)
class Binding:
    """One ``{{...}}`` in a text: ``text[start:end] == source``."""

    source: str  # the whole "{{...}}", as written
    workflow: str  # the name it starts with: a workflow's (or in a step, "params" or a step's)
    path: tuple[str | int, ...]  # str: an object key; int: an array index
    start: int
    end: int
    # What must follow the name: ".response" in credential fields; nothing in a step's request.
    member: str | None = "response"

    @property
    def expression(self) -> str:
        """The binding written canonically, without braces: ``getSecrets.response.hosts[0]``."""
        return self.path_text()

    def path_text(self, depth: int | None = None) -> str:
        """The workflow's response followed by the first ``depth`` accessors (all by default)."""
        parts = [self.workflow + (f".{self.member}" if self.member else "")]
        for item in self.path[:depth]:
            if isinstance(item, int):
                parts.append(f"[{item}]")
            elif _is_name(item):
                parts.append(f".{item}")
            else:
                parts.append('["' + item.replace("\\", "\\\\").replace('"', '\\"') + '"]')
        return "".join(parts)


# --- parsing ----------------------------------------------------------------------------------

def _is_name_start(c: str) -> bool:
    return c == "_" or "a" <= c <= "z" or "A" <= c <= "Z"


def _is_name_char(c: str) -> bool:
    return _is_name_start(c) or "0" <= c <= "9"


def _is_name(s: str) -> bool:
    return bool(s) and _is_name_start(s[0]) and all(_is_name_char(c) for c in s)


def _show_char(c: str) -> str:
    # repr makes invisible characters (a NUL, a non-breaking space) visible.
    return repr(c)


class _Malformed(Exception):
    """Raised inside the scanner; parse() turns it into a BindingError with the binding's text."""

    def __init__(self, detail: str, at: int) -> None:
        self.detail, self.at = detail, at


class _Unclosed(Exception):
    pass


class _Scanner:
    """Reads one binding from ``text`` starting just after its ``{{``; each character is read once."""

    def __init__(self, text: str, i: int) -> None:
        self.text, self.i = text, i

    def peek(self) -> str:
        if self.i >= len(self.text):
            raise _Unclosed
        return self.text[self.i]

    def skip_whitespace(self) -> None:
        while self.peek() in _WHITESPACE:
            self.i += 1

    def name(self, what: str, hint: str = "") -> str:
        start = self.i
        if not _is_name_start(self.peek()):
            raise _Malformed(f"expected {what} at position {self.i + 1}{hint}", self.i)
        while _is_name_char(self.peek()):
            self.i += 1
        return self.text[start:self.i]

    def quoted(self) -> str:
        quote = self.peek()
        self.i += 1
        out: list[str] = []
        while (c := self.peek()) != quote:
            if c == "\\":
                self.i += 1
                escaped = self.peek()
                if escaped not in "\\\"'":
                    raise _Malformed(
                        f"unknown escape \\{escaped} at position {self.i}: only \\\", \\' and \\\\ are escapes",
                        self.i,
                    )
                c = escaped
            out.append(c)
            self.i += 1
        self.i += 1
        return "".join(out)

    def index(self) -> int:
        start = self.i
        if self.peek() == "-":
            self.i += 1
        digits_start = self.i
        while "0" <= self.peek() <= "9":
            self.i += 1
        if self.i == digits_start:
            raise _Malformed(f"expected a number or a quoted key after '[' at position {start + 1}", start)
        if self.i - digits_start > _MAX_INDEX_DIGITS:
            raise _Malformed(f"the index at position {start + 1} is too large", start)
        return int(self.text[start:self.i])

    def binding(self, member: str | None) -> tuple[str, tuple[str | int, ...]]:
        """Name and path; leaves ``i`` just after the closing ``}}``."""
        self.skip_whitespace()
        workflow = self.name("a workflow name" if member else "a name")
        if member:
            after, suffix = self.i, f".{member}"
            if not (self.text.startswith(suffix, after)
                    and not (after + len(suffix) < len(self.text) and _is_name_char(self.text[after + len(suffix)]))):
                raise _Malformed(f'expected "{suffix}" after the workflow name', after)
            self.i += len(suffix)
        path: list[str | int] = []
        while True:
            c = self.peek()
            if c not in ".[":
                break
            if len(path) >= MAX_PATH_DEPTH:
                raise _Malformed(f"a path may be at most {MAX_PATH_DEPTH} keys deep", self.i)
            self.i += 1
            if c == ".":
                path.append(self.name(
                    "a key name after '.'",
                    ' (write ["key"] for a key that is not a plain name, [0] for an index)',
                ))
                continue
            self.skip_whitespace()
            path.append(self.quoted() if self.peek() in _QUOTES else self.index())
            self.skip_whitespace()
            if self.peek() != "]":
                raise _Malformed(f"expected ']' at position {self.i + 1}", self.i)
            self.i += 1
        self.skip_whitespace()
        if not self.text.startswith(CLOSE, self.i):
            c = self.peek()
            hint = ' (write ["key"] for a key that is not a plain name)' if c == "-" else ""
            raise _Malformed(f"unexpected {_show_char(c)} at position {self.i + 1}{hint}", self.i)
        self.i += len(CLOSE)
        return workflow, tuple(path)


def _excerpt(text: str) -> str:
    return text if len(text) <= _MAX_SOURCE_SHOWN else text[:_MAX_SOURCE_SHOWN] + "…"


def _check_length(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"bindings are read from text, not {type(text).__name__}")
    if len(text) > MAX_TEXT_LENGTH:
        raise BindingError("", f"the text is {len(text):,} characters long; the limit is {MAX_TEXT_LENGTH:,}")


def parse(text: str, *, member: str | None = "response") -> list[str | Binding]:
    """Split ``text`` into literal pieces and bindings, in order; each binding's name is followed
    by ``.<member>`` (``None``: by nothing, as in a step's ``{{params.item}}``).

    Literal pieces are non-empty and never adjacent; ``"".join`` of the pieces'
    texts (``Binding.source`` for bindings) gives back ``text``. Raises
    ``BindingError`` for a malformed or unclosed binding or a text longer than
    ``MAX_TEXT_LENGTH``; never anything else for a ``str``.
    """
    _check_length(text)
    pieces: list[str | Binding] = []
    position = 0
    while (start := text.find(OPEN, position)) >= 0:
        if start > position:
            pieces.append(text[position:start])
        # Without any "}}" after it, the "{{" is unclosed whatever else is wrong.
        if text.find(CLOSE, start + len(OPEN)) < 0:
            raise BindingError("", f'unclosed "{OPEN}" at position {start + 1}', position=start + 1)
        scanner = _Scanner(text, start + len(OPEN))
        try:
            workflow, path = scanner.binding(member)
        except _Unclosed:
            # A quoted key swallowed the only "}}".
            raise BindingError("", f'unclosed "{OPEN}" at position {start + 1}', position=start + 1) from None
        except _Malformed as problem:
            close = text.find(CLOSE, max(problem.at, start + len(OPEN)))
            source = text[start:close + len(CLOSE)] if close >= 0 else text[start:]
            raise BindingError(_excerpt(source), f"malformed binding: {problem.detail}", position=start + 1) from None
        pieces.append(Binding(text[start:scanner.i], workflow, path, start, scanner.i, member))
        position = scanner.i
    if position < len(text):
        pieces.append(text[position:])
    return pieces


def has_bindings(text: object) -> bool:
    """Whether ``text`` is a string holding a ``{{`` (it may still be malformed: see ``parse``).

    Anything that is not a string (a port stored as an int) has no bindings.
    """
    return isinstance(text, str) and OPEN in text


def workflows_referenced(text: str) -> set[str]:
    """Names of the workflows whose responses ``text`` binds to. Raises ``BindingError`` like ``parse``."""
    return {piece.workflow for piece in parse(text) if isinstance(piece, Binding)}


# --- evaluation -------------------------------------------------------------------------------

def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"a string of {len(value)} character{'' if len(value) == 1 else 's'}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def _show_key(key: object) -> str:
    shown = str(key)
    return shown if len(shown) <= _MAX_KEY_SHOWN else shown[:_MAX_KEY_SHOWN] + "…"


def _names_listed(names: list[str], what: str) -> str:
    """``keys: a, b, c`` capped to a few names; names only, never values."""
    if not names:
        return f"no {what}"
    shown = ", ".join(_show_key(n) for n in sorted(names)[:_MAX_KEYS_LISTED])
    more = len(names) - _MAX_KEYS_LISTED
    return f"{what}: {shown}" + (f", … and {more} more" if more > 0 else "")


def _did_you_mean(wanted: str, names: list[str]) -> str:
    """``did you mean "host"? `` for a near miss (names only), or ``""``."""
    # difflib compares with every name, quadratically in their lengths: keep it to small objects.
    if len(names) > 1000 or len(wanted) > 100:
        return ""
    close = difflib.get_close_matches(wanted, [n for n in names if len(n) <= 100], n=2, cutoff=0.6)
    if not close:
        close = [n for n in names if n.lower() == wanted.lower()][:1]
    if not close:
        return ""
    return "did you mean " + " or ".join(f'"{_show_key(n)}"' for n in close) + "? "


def evaluate(binding: Binding, responses: Mapping[str, Any]) -> Any:
    """The JSON value ``binding`` points at in ``responses`` (workflow name -> response JSON).

    The value is returned as stored (not copied). Raises ``BindingError`` for a
    missing workflow, key or index, or an accessor applied to the wrong type.
    ``null`` is returned as ``None`` here; ``render`` and ``evaluate_text`` refuse it.
    """
    if binding.workflow not in responses:
        names = [str(n) for n in responses]
        what = "workflow" if binding.member else "name"
        raise BindingError(
            binding.source,
            f'no {what} "{binding.workflow}" ({_did_you_mean(binding.workflow, names)}'
            f"{_names_listed(names, what + 's')})",
            position=binding.start + 1,
        )
    value = responses[binding.workflow]
    for depth, key in enumerate(binding.path):
        # Locations are only spelt out below the response itself: there the expression says it all.
        where = f" in {binding.path_text(depth)}" if depth else ""
        if isinstance(value, Mapping):
            if isinstance(key, str) and key in value:
                value = value[key]
                continue
            names = [str(k) for k in value]
            if isinstance(key, int):
                problem = (f"{binding.path_text(depth)} is an object, not a list: use a key "
                           f"({_names_listed(names, 'keys')})")
            else:
                problem = f'no key "{_show_key(key)}"{where} ({_did_you_mean(key, names)}{_names_listed(names, "keys")})'
        elif isinstance(value, list):
            if isinstance(key, str):
                problem = f"{binding.path_text(depth)} is a list of {len(value)}, not an object: use an index such as [0]"
            elif -len(value) <= key < len(value):
                value = value[key]
                continue
            else:
                problem = f"index {key} out of range{where} (list of {len(value)})"
        else:
            accessor = f"index [{key}]" if isinstance(key, int) else f'key "{_show_key(key)}"'
            problem = f"{binding.path_text(depth)} is {_type_name(value)}, so it has no {accessor}"
        raise BindingError(binding.source, problem, position=binding.start + 1)
    return value


def value_text(value: Any) -> str:
    """``value`` as it is substituted into text (see the module docstring). Raises ``ValueError`` for null.

    Callers with a binding at hand get a ``BindingError`` naming it from ``render``.
    """
    if value is None:
        raise ValueError("null")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)  # may raise ValueError past 4,300 digits (Python's limit)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return json.dumps(value)  # repr for finite floats; NaN/Infinity as json writes them
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def _render_value(binding: Binding, value: Any) -> str:
    if value is None:
        raise BindingError(binding.source, f"{binding.expression} is null", position=binding.start + 1)
    try:
        return value_text(value)
    except (TypeError, ValueError, RecursionError):
        raise BindingError(
            binding.source, f"{binding.expression} is {_type_name(value)} that cannot be written as text",
            position=binding.start + 1,
        ) from None


def render(text: str, responses: Mapping[str, Any]) -> str:
    """``text`` with each binding replaced by its value as text; literal text is kept as is.

    A text without ``{{`` comes back unchanged. Substituted values are never
    expanded again. Raises ``BindingError`` (see ``parse`` and ``evaluate``; a
    null value is an error, and so is a result longer than ``MAX_RENDERED_LENGTH``).
    """
    out: list[str] = []
    length = 0
    for piece in parse(text):
        part = piece if isinstance(piece, str) else _render_value(piece, evaluate(piece, responses))
        length += len(part)
        if length > MAX_RENDERED_LENGTH:
            raise BindingError(
                piece.source if isinstance(piece, Binding) else "",
                f"the rendered text would be longer than {MAX_RENDERED_LENGTH:,} characters",
            )
        out.append(part)
    return "".join(out)


def evaluate_text(text: str, responses: Mapping[str, Any]) -> Any:
    """The raw JSON value when ``text`` is exactly one binding, else ``render(text, responses)``.

    ``"{{w.response.port}}"`` gives the int ``5432``, and whitespace around the
    binding is ignored; ``"{{w.response.port}}/db"`` gives the string
    ``"5432/db"``. Objects and arrays are returned as copies, so a caller cannot
    change the responses. A null value is a ``BindingError``, as in ``render``.
    """
    pieces = parse(text)
    bindings = [p for p in pieces if isinstance(p, Binding)]
    if len(bindings) == 1 and all(isinstance(p, Binding) or not p.strip(_WHITESPACE) for p in pieces):
        binding = bindings[0]
        value = evaluate(binding, responses)
        if value is None:
            raise BindingError(binding.source, f"{binding.expression} is null", position=binding.start + 1)
        if not isinstance(value, (Mapping, list)):
            return value
        try:
            return copy.deepcopy(value)
        except RecursionError:
            raise BindingError(binding.source, f"{binding.expression} is nested too deeply to use",
                               position=binding.start + 1) from None
    return render(text, responses)
