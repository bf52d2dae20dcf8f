"""Where each kind puts a bound value (no server needed): PostgreSQL's $n where its parser reads a
parameter, PyMySQL's %s where sqlparse reads a bare name, REST's encodings; and what each refuses."""
from __future__ import annotations

import json

import pytest

from integrations.kinds.base import BoundRequest, StageError
from integrations.kinds.mysql import bound_statements
from integrations.kinds.postgres import split_statements
from integrations.kinds.rest import encoded

INJECTION = "x' or '1'='1"


def bound(*parts: str, values: tuple = ()) -> BoundRequest:
    return BoundRequest(parts, values, tuple(f"{{{{params.v{i}}}}}" for i in range(len(values))))


def test_postgres_sends_each_value_as_a_parameter_of_its_own_statement():
    first, second = split_statements(bound("select qty from t where item = ", " and note like '50%'; select ", "",
                                           values=(INJECTION, 5)))
    assert (first.query, first.params) == ("select qty from t where item = %s and note like '50%%'", (INJECTION,))
    assert (second.query, second.params) == ("select %s", (5,))


@pytest.mark.parametrize("parts", [("select '", "'"), ("select 1 -- ", "\n"), ("select $$", "$$")])
def test_postgres_refuses_a_value_inside_quotes_a_comment_or_a_dollar_quoted_body(parts):
    with pytest.raises(StageError, match="inside a quoted string, a comment or a dollar-quoted body"):
        split_statements(bound(*parts, values=(INJECTION,)))


def test_postgres_refuses_a_placeholder_the_user_wrote():
    with pytest.raises(StageError, match=r"its own placeholder \$1"):
        split_statements(bound("select $1, ", "", values=(1,)))


def test_mysql_sends_each_value_as_a_pymysql_parameter():
    assert bound_statements(bound("select qty from t where item = ", " and note like '50%'", values=(INJECTION,))) == [
        ("select qty from t where item = %s and note like '50%%'", (INJECTION,))]


@pytest.mark.parametrize("parts", [("select '", "'"), ("select 1 -- ", "\n"), ("select `", "`")])
def test_mysql_refuses_a_value_inside_quotes_a_comment_or_a_name(parts):
    with pytest.raises(StageError, match="inside a quoted string, a comment or a name"):
        bound_statements(bound(*parts, values=(INJECTION,)))


def test_rest_url_encodes_path_and_query_and_json_encodes_the_body():
    text = encoded(bound("POST /items/", "?q=", '\n\n{"name": "', '", "n": ', "}",
                         values=("a/b?c", "x&y=1", 'say "hi"', {"k": [1]})))
    head, _, body = text.partition("\n\n")
    assert head == "POST /items/a%2Fb%3Fc?q=x%26y%3D1"
    assert json.loads(body) == {"name": 'say "hi"', "n": {"k": [1]}}


def test_rest_refuses_a_method_from_a_binding():
    with pytest.raises(ValueError, match="the method cannot be a binding"):
        encoded(bound("", " /items", values=("GET",)))
