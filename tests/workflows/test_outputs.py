"""A step's return value becomes JSON: what each Python type turns into, and clear errors for the rest."""
from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.outputs import OutputError, dumps, to_json


def test_common_python_values_become_json():
    value = {"when": datetime.datetime(2024, 5, 1, 12, 30), "day": datetime.date(2024, 5, 1),
             "at": datetime.time(8, 15), "took": datetime.timedelta(minutes=1, milliseconds=500),
             "price": decimal.Decimal("9.99"), "count": decimal.Decimal("10"), "id": uuid.UUID(int=7),
             "raw": b"\xff\x00", "text": b"hi", "tags": {"b", "a"}, "pair": (1, 2), 3: "int key",
             "inf": float("inf"), "nan": float("nan"), "dnan": decimal.Decimal("NaN")}
    assert to_json(value) == {
        "when": "2024-05-01T12:30:00", "day": "2024-05-01", "at": "08:15:00", "took": 60.5,
        "price": 9.99, "count": 10, "id": "00000000-0000-0000-0000-000000000007",
        "raw": "/wA=", "text": "hi", "tags": ["a", "b"], "pair": [1, 2], "3": "int key",
        "inf": None, "nan": None, "dnan": None}


def test_aware_datetimes_keep_their_offset():
    moment = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert to_json(moment) == "2024-05-01T12:00:00+02:00"


def test_keys_become_text_as_json_writes_them():
    assert to_json({1: "a", 2.5: "b", False: "c", None: "d", datetime.date(2024, 1, 2): "e"}) == {
        "1": "a", "2.5": "b", "false": "c", "null": "d", "2024-01-02": "e"}


def test_sets_that_cannot_sort_still_become_lists():
    assert sorted(to_json({1, "a"}), key=str) == [1, "a"]


def test_anything_else_is_an_error_naming_the_type_and_place():
    class Foo:
        pass

    with pytest.raises(OutputError, match=r'^step output at \["a"\]\[2\]: object of type Foo is not JSON serializable$'):
        to_json({"a": [0, 1, Foo()]})
    with pytest.raises(OutputError, match=r"^step output: object of type Foo"):
        to_json(Foo())


def test_a_tuple_key_is_refused_with_its_place():
    with pytest.raises(OutputError, match=r'at \["rows"\]: a dict key of type tuple'):
        to_json({"rows": {(1, 2): "x"}})


def test_a_self_containing_value_is_refused_not_a_crash():
    loop: list = []
    loop.append(loop)
    with pytest.raises(OutputError, match="nested more than 100 levels"):
        to_json(loop)


def test_numbers_too_big_for_json_are_handled():
    with pytest.raises(OutputError, match="too large for JSON"):
        to_json({"n": 10 ** 5000})
    assert to_json(decimal.Decimal("1E+5000")) is None  # beyond a float: like infinity
    assert to_json(decimal.Decimal("12E+3")) == 12000


def test_dumps_writes_compact_utf8_json():
    assert dumps({"name": "Zoë", "n": decimal.Decimal("2")}) == '{"name":"Zoë","n":2}'


def test_output_error_is_a_value_error():
    assert issubclass(OutputError, ValueError)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
                    | st.dates() | st.datetimes() | st.times() | st.timedeltas() | st.uuids() | st.decimals(),
                    lambda c: st.lists(c, max_size=3) | st.tuples(c, c)
                    | st.dictionaries(st.text(max_size=5) | st.integers(), c, max_size=3)
                    | st.frozensets(st.integers(), max_size=3), max_leaves=15))
def test_converted_values_always_serialise_and_are_stable(value):
    converted = to_json(value)
    text = json.dumps(converted, allow_nan=False)
    assert to_json(json.loads(text)) == json.loads(text)
