from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.outputs import OutputError, to_json


def test_common_python_values_become_json():
    value = {"when": datetime.datetime(2024, 5, 1, 12, 30), "day": datetime.date(2024, 5, 1),
             "price": decimal.Decimal("9.99"), "count": decimal.Decimal("10"), "id": uuid.UUID(int=7),
             "raw": b"\xff\x00", "text": b"hi", "tags": {"b", "a"}, "pair": (1, 2), 3: "int key", "inf": float("inf")}
    assert to_json(value) == {"when": "2024-05-01T12:30:00", "day": "2024-05-01", "price": 9.99, "count": 10,
                              "id": "00000000-0000-0000-0000-000000000007", "raw": "/wA=", "text": "hi",
                              "tags": ["a", "b"], "pair": [1, 2], "3": "int key", "inf": None}


def test_anything_else_is_an_error_naming_the_type_and_place():
    with pytest.raises(OutputError, match=r'at \["rows"\]\[1\]: object of type object'):
        to_json({"rows": [1, object()]})


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
                    | st.dates() | st.uuids() | st.decimals(),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)
                    | st.frozensets(st.integers(), max_size=3), max_leaves=15))
def test_converted_values_always_serialise(value):
    json.dumps(to_json(value), allow_nan=False)
