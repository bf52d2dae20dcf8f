"""The ``{{...}}`` binding evaluator: what a user writes, what they see when it is wrong, and hostile input.

Pure module: runs without Django (``-p no:django``).
"""
from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.bindings import (
    MAX_PATH_DEPTH,
    MAX_TEXT_LENGTH,
    Binding,
    BindingError,
    evaluate,
    has_bindings,
    parse,
    render,
    evaluate_text,
    value_text,
    workflows_referenced,
)

RESPONSES: dict[str, Any] = {
    "getSecrets": {
        "host": "db.internal", "port": 5432, "username": "app", "hosts": ["a.internal", "b.internal"],
        "db-name": "app_db", "env": "prod", "tls": True, "debug": False, "none": None, "ratio": 0.25,
        "whole": 5432.0, "nested": {"list": [{"k": "v"}]}, "it's": 1, 'say "hi"': 2, "back\\slash": 3,
        "options": {"sslmode": "require", "ünï": "ok"},
    },
    "other": ["x", "y"],
}

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- what a user writes -------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("{{getSecrets.response.host}}", "db.internal"),
    ("{{ getSecrets.response.host }}", "db.internal"),
    ("\n\t{{getSecrets.response.host}}  ", "db.internal"),
    ("{{getSecrets.response.port}}", 5432),
    ("{{getSecrets.response.hosts[0]}}", "a.internal"),
    ("{{getSecrets.response.hosts[-1]}}", "b.internal"),
    ("{{getSecrets.response.hosts[ 1 ]}}", "b.internal"),
    ('{{ getSecrets.response["db-name"] }}', "app_db"),
    ("{{getSecrets.response['db-name']}}", "app_db"),
    ("{{getSecrets.response['it\\'s']}}", 1),
    ('{{getSecrets.response["say \\"hi\\""]}}', 2),
    ('{{getSecrets.response["back\\\\slash"]}}', 3),
    ('{{getSecrets.response.options["ünï"]}}', "ok"),
    ("{{getSecrets.response.nested.list[0].k}}", "v"),
    ("{{getSecrets.response.nested.list[0]}}", {"k": "v"}),
    ("{{getSecrets.response.tls}}", True),
    ("{{other.response[1]}}", "y"),
])
def test_a_field_that_is_one_binding_gets_the_raw_json_value(text, expected):
    assert evaluate_text(text, RESPONSES) == expected
    assert type(evaluate_text(text, RESPONSES)) is type(expected)


@pytest.mark.parametrize("text, expected", [
    ("db-{{getSecrets.response.env}}.internal", "db-prod.internal"),
    ("postgres://{{getSecrets.response.username}}@x", "postgres://app@x"),
    ("{{getSecrets.response.host}}:{{getSecrets.response.port}}", "db.internal:5432"),
    ("tls={{getSecrets.response.tls}} debug={{getSecrets.response.debug}}", "tls=true debug=false"),
    ("port {{getSecrets.response.whole}}", "port 5432"),
    ("ratio {{getSecrets.response.ratio}}", "ratio 0.25"),
    ("opts={{getSecrets.response.options}}", 'opts={"sslmode":"require","ünï":"ok"}'),
    ("hosts={{getSecrets.response.hosts}}", 'hosts=["a.internal","b.internal"]'),
    ("plain text with } and { and {single} and }} too", "plain text with } and { and {single} and }} too"),
    ("", ""),
])
def test_bindings_mixed_with_literal_text_render_as_text(text, expected):
    assert render(text, RESPONSES) == expected
    assert evaluate_text(text, RESPONSES) == expected


@pytest.mark.parametrize("value, text", [
    ("as is", "as is"), (True, "true"), (False, "false"), (0, "0"), (-7, "-7"),
    (5432.0, "5432"), (-2.0, "-2"), (0.1, "0.1"), (1e300, "1e+300"), (2.0**60, "1.152921504606847e+18"),
    ({"a": [1, None]}, '{"a":[1,null]}'), ([], "[]"), ({"é": "ü"}, '{"é":"ü"}'),
])
def test_values_are_written_as_a_user_reading_json_would_expect(value, text):
    assert value_text(value) == text


def test_a_null_value_is_an_error_not_an_empty_string():
    for text in ("{{getSecrets.response.none}}", "x{{getSecrets.response.none}}"):
        with pytest.raises(BindingError, match=r"getSecrets\.response\.none is null"):
            evaluate_text(text, RESPONSES)


def test_resolve_returns_a_copy_so_callers_cannot_change_the_responses():
    options = evaluate_text("{{getSecrets.response.options}}", RESPONSES)
    options["sslmode"] = "disable"
    assert RESPONSES["getSecrets"]["options"]["sslmode"] == "require"


def test_parse_keeps_literal_pieces_and_bindings_in_order_with_positions():
    text = 'a{{w.response.x}}b{{ v.response["k}}"][-2] }}'
    pieces = parse(text)
    assert pieces[0] == "a" and pieces[2] == "b" and len(pieces) == 4
    first, second = pieces[1], pieces[3]
    assert first == Binding("{{w.response.x}}", "w", ("x",), 1, 17)
    assert second.workflow == "v" and second.path == ("k}}", -2)
    assert text[second.start:second.end] == second.source
    assert second.expression == 'v.response["k}}"][-2]'


def test_referenced_workflows_and_detection():
    assert workflows_referenced("{{a.response.x}}-{{b.response[0]}}-{{a.response}}") == {"a", "b"}
    assert workflows_referenced("no bindings") == set()
    assert has_bindings("x {{a.response}}")
    assert not has_bindings("no braces }} {")
    assert not has_bindings(5432)


def test_substituted_values_are_never_expanded_again():
    responses = {"w": {"evil": "{{w.response.secret}}", "secret": "s3cr3t", "half": "{{"}}
    assert render("{{w.response.evil}}", responses) == "{{w.response.secret}}"
    assert render("{{w.response.half}}w.response.secret}}", responses) == "{{w.response.secret}}"


def test_nothing_but_json_keys_and_indexes_is_looked_up():
    class Sneaky(dict):
        secret = "attribute"

    responses = {"w": Sneaky(a=1)}
    for text in ("{{w.response.secret}}", "{{w.response.__class__}}", "{{w.response.keys}}"):
        with pytest.raises(BindingError, match="no key"):
            render(text, responses)
    for text in ("{{w.response.a()}}", "{{w.response.a + 1}}", "{{w.response.a|upper}}", "{{__import__('os')}}"):
        with pytest.raises(BindingError, match="malformed binding"):
            render(text, responses)


# --- what a user sees when it is wrong ------------------------------------------------------------

SMALL = {"getSecrets": {"host": "h", "port": 1, "username": "u", "hosts": ["a", "b"], "nested": {"x": 1}}}


@pytest.mark.parametrize("text, message", [
    ("{{getSecrets.response.hots}}",
     '{{getSecrets.response.hots}}: no key "hots" (did you mean "hosts" or "host"? keys: host, hosts, nested, port, username)'),
    ("{{getSecrets.response.hosts[3]}}", "{{getSecrets.response.hosts[3]}}: index 3 out of range in "
                                         "getSecrets.response.hosts (list of 2)"),
    ("{{getSecrets.response.hosts[-3]}}", "index -3 out of range"),
    ("{{getSecretz.response.host}}",
     '{{getSecretz.response.host}}: no workflow "getSecretz" (did you mean "getSecrets"? workflows: getSecrets)'),
    ("{{getSecrets.respons.host}}",
     '{{getSecrets.respons.host}}: malformed binding: expected ".response" after the workflow name'),
    ("{{getSecrets.responses}}", 'expected ".response" after the workflow name'),
    ("db {{getSecrets.response.host", 'unclosed "{{" at position 4'),
    ('{{getSecrets.response["}}"]', 'unclosed "{{" at position 1'),
    ("{{getSecrets.response.nested.y}}", 'no key "y" in getSecrets.response.nested (keys: x)'),
    ("{{getSecrets.response.host.x}}", 'getSecrets.response.host is a string of 1 character, so it has no key "x"'),
    ("{{getSecrets.response.port[0]}}", "getSecrets.response.port is a number, so it has no index [0]"),
    ("{{getSecrets.response.hosts.first}}", "getSecrets.response.hosts is a list of 2, not an object"),
    ("{{getSecrets.response[0]}}", "getSecrets.response is an object, not a list: use a key (keys: host"),
    ("{{getSecrets.response.db-name}}", 'unexpected \'-\' at position 25 (write ["key"]'),
    ("{{getSecrets.response.0}}", "expected a key name after '.'"),
    ("{{getSecrets.response.host()}}", "malformed binding: unexpected '('"),
    ("{{getSecrets.response[x]}}", "expected a number or a quoted key"),
    ("{{getSecrets.response[0}}", "expected ']'"),
    ('{{getSecrets.response["a\\n"]}}', "unknown escape \\n"),
    ("{{getSecrets.response[" + "9" * 30 + "]}}", "is too large"),
    ("{{ }}", "{{ }}: malformed binding: expected a workflow name"),
    ("{{1abc.response}}", "expected a workflow name"),
    ("{{{getSecrets.response.host}}}", "malformed binding"),
])
def test_errors_name_the_binding_and_the_problem(text, message):
    with pytest.raises(BindingError) as caught:
        evaluate_text(text, SMALL)
    assert message in str(caught.value)


def test_errors_carry_the_expression_and_its_position():
    with pytest.raises(BindingError) as caught:
        render("x = {{getSecrets.response.nope}}", SMALL)
    assert caught.value.expression == "{{getSecrets.response.nope}}"
    assert caught.value.position == 5


def test_a_long_list_of_keys_is_capped():
    responses = {"w": {f"k{i:02}": i for i in range(25)}}
    message = str(pytest.raises(BindingError, render, "{{w.response.zzz}}", responses).value)
    assert "keys: k00, k01, k02, k03, k04, k05, k06, k07, k08, k09, … and 15 more" in message
    assert "k10" not in message


def test_text_and_paths_past_the_limits_are_refused_clearly():
    with pytest.raises(BindingError, match="the limit is 10,000"):
        parse("x" * (MAX_TEXT_LENGTH + 1))
    parse("{{w.response" + "[0]" * MAX_PATH_DEPTH + "}}")
    with pytest.raises(BindingError, match=f"at most {MAX_PATH_DEPTH} keys deep"):
        parse("{{w.response" + "[0]" * (MAX_PATH_DEPTH + 1) + "}}")
    with pytest.raises(BindingError, match="rendered text would be longer"):
        render("{{w.response}}" * 500, {"w": ["x" * 10_000]})


def test_values_that_cannot_be_used_fail_as_binding_errors():
    with pytest.raises(BindingError, match="cannot be written as text"):
        render("{{w.response.a}}", {"w": {"a": {1, 2}}})
    deep: Any = []
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(BindingError, match="cannot be written as text"):
        render("x{{w.response}}", {"w": deep})
    with pytest.raises(BindingError, match="nested too deeply"):
        evaluate_text("{{w.response}}", {"w": deep})


# --- hostile input ----------------------------------------------------------------------------------

HOSTILE_PIECES = ["{{", "}}", "{", "}", "w.response", "[0]", "[-1]", "['a']", '["a"]', ".a", "[", "]", "'", '"',
                  "\\", " ", "\n", "\x00", "é", "\u200b", "\ud800", "𝔘", ".response", "[99999999999999999999]"]


@FAST
@given(st.text(max_size=300) | st.lists(st.sampled_from(HOSTILE_PIECES), max_size=80).map("".join))
def test_arbitrary_text_raises_nothing_but_binding_errors(text):
    try:
        pieces = parse(text)
    except BindingError:
        return
    # When it parses, the pieces give back the text exactly.
    assert "".join(p if isinstance(p, str) else p.source for p in pieces) == text
    try:
        evaluate_text(text, {"w": {"a": [1, "x"]}})
    except BindingError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(HOSTILE_PIECES), st.integers(min_value=1, max_value=12_000), st.booleans())
def test_hostile_repetition_fails_cleanly_and_fast(piece, count, closed):
    text = "{{w.response" + piece * count + ("}}" if closed else "")
    started = time.perf_counter()
    try:
        evaluate_text(text, {"w": {"a": [1]}})
    except BindingError:
        pass
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("text", [
    "{{a.response" + "[0]" * 10_000,
    "{{a.response" + "[0]" * 3_000 + "}}",
    "{{" * 5_000,
    "}}" * 5_000,
    "{{}}" * 2_500,
    "{{a.response}}" * 700,
    '{{a.response["' + '\\"' * 4_900 + '"]}}',
    "{{a.response['" + "}}" * 4_900 + "']}}",
    "{{ " + " " * 9_000 + "a.response }}",
    "{" * 9_999,
    "\x00" * 9_999,
])
def test_worst_case_texts_parse_in_linear_time(text):
    started = time.perf_counter()
    try:
        render(text, {"a": {"}}" * 4_900: 1, '"' * 4_900: 2}})
    except BindingError:
        pass
    assert time.perf_counter() - started < 0.5


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300).filter(lambda t: "{{" not in t))
def test_text_without_bindings_is_returned_unchanged(text):
    assert render(text, {}) == text
    assert evaluate_text(text, {}) == text
    assert not has_bindings(text)


# --- random responses and paths -----------------------------------------------------------------

KEYS = st.text(max_size=6) | st.sampled_from(["host", "}}", "{{", "a'b", 'a"b', "a\\", "\\\"", "__class__", "0"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.just("{{w.response}}"),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)


def paths(value: Any, prefix: tuple = ()):
    """Every (path, value) in a JSON value, the root included."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, prefix + (index,))


@st.composite
def written(draw, path: tuple) -> str:
    """One of the ways a user may write ``path``: dotted names, either quote, negative-free indexes, spaces."""
    parts = []
    for key in path:
        if isinstance(key, int):
            parts.append(f"[{key}]" if draw(st.booleans()) else f"[ {key} ]")
        elif key.isascii() and key.isidentifier() and draw(st.booleans()):
            parts.append(f".{key}")
        else:
            quote = draw(st.sampled_from(["'", '"']))
            escaped = key.replace("\\", "\\\\").replace(quote, "\\" + quote)
            parts.append(f"[{quote}{escaped}{quote}]")
    pad = draw(st.sampled_from(["", " ", "\n  "]))
    return "{{" + pad + "w.response" + "".join(parts) + pad + "}}"


@FAST
@given(JSON, st.data())
def test_every_path_in_a_random_response_finds_its_value(response, data):
    path, value = data.draw(st.sampled_from(list(paths(response))))
    expression = data.draw(written(path))
    responses = {"w": response}
    (binding,) = parse(expression)
    assert binding.path == path
    assert parse("{{" + binding.expression + "}}")[0].path == path  # the canonical form reads back
    assert evaluate(binding, responses) == value or value != value
    if value is None:
        with pytest.raises(BindingError, match="is null"):
            evaluate_text(expression, responses)
    else:
        assert evaluate_text(expression, responses) == value
        literal = data.draw(st.text(max_size=10).filter(lambda t: "{{" not in t and not t.endswith("{")))
        assert render(literal + expression + literal, responses) == literal + value_text(value) + literal


@FAST
@given(st.lists(st.text(max_size=12) | st.just("{{w.response.b}}") | st.just("}}"), min_size=1, max_size=4),
       st.lists(st.text(max_size=8).filter(lambda t: "{" not in t), min_size=5, max_size=5))
def test_rendered_values_are_never_expanded_again(values, literals):
    responses = {"w": {"a": values, "b": "EXPANDED"}}
    text = literals[0] + "".join(f"{{{{w.response.a[{i}]}}}}{literals[i + 1]}" for i in range(len(values)))
    expected = literals[0] + "".join(v + literals[i + 1] for i, v in enumerate(values))
    assert render(text, responses) == expected


SECRET = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789#%&", min_size=8, max_size=20)
ACCESSOR = st.sampled_from([".password", ".token", ".inner", ".list", ".missing", ".x", "[0]", "[1]", "[5]", "[-9]",
                            '["password"]', '["inner"]', ".passwordd", ".Password"])


@FAST
@given(SECRET, st.lists(ACCESSOR, max_size=4))
def test_error_messages_never_contain_a_value_from_the_response(secret, accessors):
    responses = {"w": {"password": secret, "token": [secret, {"key": secret}],
                       "inner": {"token": secret, "list": [secret, secret]}, "list": [secret]}}
    expression = "{{w.response" + "".join(accessors) + "}}"
    for text in (expression, f"prefix {expression} suffix", expression + "{{w.response.nope}}"):
        try:
            render(text, responses)
        except BindingError as error:
            assert secret not in str(error)
            assert secret not in error.expression
