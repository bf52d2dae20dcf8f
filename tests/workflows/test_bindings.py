"""The binding evaluator: examples a user would write, and hostile input from hypothesis."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.bindings import BindingError, has_bindings, parse, render, resolve, workflows_referenced

RESPONSES = {"getSecrets": {"host": "db.internal", "port": 5432, "hosts": ["a.internal", "b.internal"],
                            "db-name": "app", "env": "prod", "tls": True, "none": None,
                            "nested": {"list": [{"k": "v"}]}}}


@pytest.mark.parametrize("text, expected", [
    ("{{getSecrets.response.host}}", "db.internal"),
    ("{{ getSecrets.response.host }}", "db.internal"),
    ("{{getSecrets.response.port}}", 5432),
    ("{{getSecrets.response.hosts[0]}}", "a.internal"),
    ("{{getSecrets.response.hosts[-1]}}", "b.internal"),
    ('{{getSecrets.response["db-name"]}}', "app"),
    ("{{getSecrets.response['db-name']}}", "app"),
    ("db-{{getSecrets.response.env}}.internal", "db-prod.internal"),
    ("{{getSecrets.response.port}}/{{getSecrets.response.env}}", "5432/prod"),
    ("{{getSecrets.response.tls}}", True),
    ("tls={{getSecrets.response.tls}}", "tls=true"),
    ("{{getSecrets.response.nested.list[0].k}}", "v"),
    ("plain text with } and { and {single}", "plain text with } and { and {single}"),
])
def test_bindings_resolve_to_the_response_values(text, expected):
    assert resolve(text, RESPONSES) == expected


@pytest.mark.parametrize("text, message", [
    ("{{getSecrets.response.hots}}", 'no key "hots" in getSecrets.response (keys: db-name, env, host'),
    ("{{getSecrets.response.hosts[3]}}", "index 3 out of range in getSecrets.response.hosts (a list of 2)"),
    ("{{getSecretz.response.host}}", 'no workflow "getSecretz"'),
    ("{{getSecrets.respons.host}}", 'expected ".response" after the workflow name'),
    ("{{getSecrets.response.host.x}}", "getSecrets.response.host is a string, so it has no key"),
    ("{{getSecrets.response.none}}", "getSecrets.response.none is null"),
    ("{{getSecrets.response.host()}}", "malformed binding: unexpected '('"),
    ("{{getSecrets.response.__class__}}", 'no key "__class__"'),
    ("db {{getSecrets.response.host", 'unclosed "{{" at position 4'),
    ("{{ }}", "expected a workflow name"),
])
def test_errors_name_the_binding_and_the_problem(text, message):
    with pytest.raises(BindingError) as caught:
        resolve(text, RESPONSES)
    assert message in str(caught.value)
    if "{{" in text and "}}" in text:
        assert text[text.index("{{"):text.index("}}") + 2] in str(caught.value)


def test_referenced_workflows_and_detection():
    assert workflows_referenced("{{a.response.x}}-{{b.response[0]}}") == {"a", "b"}
    assert has_bindings("x {{a.response}}") and not has_bindings("no braces")


def test_substituted_values_are_never_expanded_again():
    responses = {"w": {"evil": "{{w.response.secret}}", "secret": "s3cr3t"}}
    assert render("{{w.response.evil}}", responses) == "{{w.response.secret}}"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_raises_nothing_but_binding_errors(text):
    try:
        render(text, {"w": {"a": 1}})
    except BindingError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["{{", "}}", "w.response", "[0]", "['a']", ".a", "[", "]", "'", '"', "\\", " ", "\x00", "é"]),
       st.integers(min_value=1, max_value=3000))
def test_hostile_repetition_stays_bounded(piece, count):
    text = ("{{w.response" + piece * count + "}}")[:20_000]
    try:
        resolve(text, {"w": {"a": [1]}})
    except BindingError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200).filter(lambda t: "{{" not in t))
def test_text_without_bindings_is_returned_unchanged(text):
    assert render(text, {}) == text


def paths(value, prefix=()):
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, prefix + (index,))


@settings(max_examples=300, deadline=None)
@given(JSON, st.data())
def test_every_path_in_a_response_resolves_to_its_value(response, data):
    path, value = data.draw(st.sampled_from(list(paths(response))))
    expression = "{{w.response" + "".join(f"[{k}]" if isinstance(k, int) else f"[{json.dumps(k)}]" for k in path) + "}}"
    if value is None:
        with pytest.raises(BindingError):
            resolve(expression, {"w": response})
    else:
        assert resolve(expression, {"w": response}) == value


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=6, max_size=20, alphabet="XYZQ0123456789"),
       st.text(min_size=1, max_size=8, alphabet="abcdefgh"))
def test_error_messages_never_contain_a_value(secret, missing_key):
    responses = {"w": {"password": secret, "inner": {"token": secret}, "list": [secret]}}
    for expression in (f"{{{{w.response.{missing_key}x}}}}", "{{w.response.password.x}}",
                       "{{w.response.list[5]}}", "{{w.response.inner[0]}}", "{{w.response.list.x}}"):
        try:
            resolve(expression, responses)
        except BindingError as error:
            assert secret not in str(error)


def test_parse_keeps_literal_pieces_in_order():
    pieces = parse("a{{w.response.x}}b")
    assert pieces[0] == "a" and pieces[2] == "b" and pieces[1].path == ("x",)
