"""Parameters: added and removed in the editor (with htmx and without JavaScript), typed on Run
workflow, and read by steps as params.<name> through a real worker."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.conftest import wait_for_final
from workflows.models import Workflow, WorkflowRun
from workflows.parameters import InvalidValues, parse_values

from .test_workflow_runs import make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


class _Fields(HTMLParser):
    """What a browser would send from a page: every input, textarea and select by name."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button", "checkbox"):
            self.values[a["name"]] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.values[a["name"]] = ""
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and ("selected" in a or self._select not in self.values):
            self.values[self._select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data.removeprefix("\n") if not self.values[self._textarea] else data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def fields_of(html: str) -> dict[str, str]:
    parser = _Fields()
    parser.feed(html)
    parser.values.pop("csrfmiddlewaretoken", None)
    return parser.values


def field_group(html: str, name: str) -> str:
    """The markup of one field (label, input, errors, help), as forms/field.html lays it out."""
    start = html.index(f'id="field-{name}"')
    end = html.find('<div class="field', start)
    return html[start:end if end != -1 else None]


def add_parameter(client, page: dict[str, str], htmx: bool = True) -> str:
    """Press Add parameter: with htmx, the parameters come back alone; without, the whole editor."""
    url = "/workflows/editor/parameters/" if htmx else "/workflows/new/"
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client.post(url, {**page, "params-action": "add"}, **headers)
    assert response.status_code == 200
    return response.content.decode()


# --- The editor ----------------------------------------------------------------------------

def test_two_parameters_added_with_add_parameter_are_saved_in_order(logged_in_client):
    page = fields_of(logged_in_client.get("/workflows/new/").content.decode())
    page.update({"name": "greet", "steps-0-code": "return params.region"})
    assert page["params-TOTAL_FORMS"] == "0"
    swapped = add_parameter(logged_in_client, page)
    assert swapped.startswith('<fieldset id="parameters"') and "Parameter name" in swapped
    assert "Default value" in swapped and "valid JSON" in swapped and ">Remove</button>" in swapped
    page.update(fields_of(swapped))
    page.update({"params-0-name": "region", "params-0-default": "eu-west-1"})
    page.update(fields_of(add_parameter(logged_in_client, page)))
    assert page["params-TOTAL_FORMS"] == "2" and page["params-0-name"] == "region"  # what was typed stays
    page.update({"params-1-name": "retries", "params-1-default": "3"})
    response = logged_in_client.post("/workflows/new/", page)
    assert response.status_code == 302, response.content.decode()
    assert Workflow.objects.get(name="greet").parameters == [
        {"name": "region", "default": "eu-west-1"}, {"name": "retries", "default": "3"}]


def test_add_parameter_without_javascript_shows_the_editor_again_and_saves_nothing(logged_in_client):
    page = fields_of(logged_in_client.get("/workflows/new/").content.decode())
    page.update({"name": "greet", "steps-0-code": "return params.region"})
    html = add_parameter(logged_in_client, page, htmx=False)
    assert "<h1>New workflow</h1>" in html and 'value="greet"' in html and "return params.region" in html
    assert 'name="params-0-name"' in html and "nothing was saved" not in html
    assert not Workflow.objects.exists()
    # The editor's first submit button, the one Enter presses, is Save: not Add parameter or Remove.
    form = html[html.index('<form method="post" class="form wide"'):]
    first_button = form[form.index("<button"):form.index("</button>")]
    assert 'type="submit"' in first_button and first_button.endswith(">Save") and "name=" not in first_button


def test_remove_takes_out_that_parameter_only(logged_in_client):
    workflow = make_workflow("w", ("first", "return 1"), parameters=[
        {"name": "region", "default": "eu-west-1"}, {"name": "retries", "default": "3"}])
    page = fields_of(logged_in_client.get(f"/workflows/{workflow.pk}/edit/").content.decode())
    response = logged_in_client.post("/workflows/editor/parameters/", {**page, "params-action": "remove-0"},
                                     HTTP_HX_REQUEST="true")
    page.update(fields_of(response.content.decode()))
    page = {k: v for k, v in page.items() if not k.startswith("params-1-")}  # gone from the page
    assert page["params-TOTAL_FORMS"] == "1" and page["params-0-name"] == "retries"
    assert logged_in_client.post(f"/workflows/{workflow.pk}/edit/", page).status_code == 302
    workflow.refresh_from_db()
    assert workflow.parameters == [{"name": "retries", "default": "3"}] and workflow.revision == 2


@pytest.mark.parametrize("name, message", [
    ("2bad", "Use letters, digits and underscores"),
    ("class", "“class” is reserved"),
    ("_values", "“_values” is reserved"),
    ("profile", "“profile” is reserved"),
    ("", "This field is required."),
])
def test_a_bad_parameter_name_is_refused_beside_it_and_nothing_is_saved(logged_in_client, name, message):
    workflow = make_workflow("w", ("first", "return 1"), parameters=[{"name": "region", "default": "x"}])
    page = fields_of(logged_in_client.get(f"/workflows/{workflow.pk}/edit/").content.decode())
    html = logged_in_client.post(f"/workflows/{workflow.pk}/edit/", {
        **page, "description": "changed", "params-0-name": name}).content.decode()
    assert message in field_group(html, "params-0-name") and "nothing was saved" in html
    workflow.refresh_from_db()
    assert workflow.description == "" and workflow.parameters == [{"name": "region", "default": "x"}]


def test_a_duplicate_parameter_name_is_refused_beside_the_second(logged_in_client):
    workflow = make_workflow("w", ("first", "return 1"), parameters=[
        {"name": "region", "default": "a"}, {"name": "zone", "default": "b"}])
    page = fields_of(logged_in_client.get(f"/workflows/{workflow.pk}/edit/").content.decode())
    html = logged_in_client.post(f"/workflows/{workflow.pk}/edit/", {
        **page, "steps-0-code": "return 2", "params-1-name": "region"}).content.decode()
    assert "There is already a parameter named “region”." in field_group(html, "params-1-name")
    assert "already" not in field_group(html, "params-0-name") and "nothing was saved" in html
    workflow.refresh_from_db()
    assert workflow.steps.get().code == "return 1" and [p["name"] for p in workflow.parameters] == ["region", "zone"]


def test_saving_unchanged_parameters_logs_no_changed_fields(logged_in_client):
    from audit.models import AuditEvent

    workflow = make_workflow("w", ("first", "return 1"), parameters=[
        {"name": "region", "default": " spaced "}, {"name": "n", "default": "5"}])
    page = fields_of(logged_in_client.get(f"/workflows/{workflow.pk}/edit/").content.decode())
    assert logged_in_client.post(f"/workflows/{workflow.pk}/edit/", page).status_code == 302
    workflow.refresh_from_db()
    assert AuditEvent.objects.get(action="change").detail["fields"] == [] and workflow.revision == 1


# --- The rule: text, unless the default is JSON ---------------------------------------------

class _W:
    def __init__(self, *parameters: tuple[str, str]) -> None:
        self.parameters = [{"name": n, "default": d} for n, d in parameters]


def test_values_are_text_unless_the_default_is_json():
    workflow = _W(("item", "apple"), ("n", "5"), ("opts", '{"a": 1}'), ("blank", ""), ("nan", "NaN"))
    assert parse_values(workflow, {}) == {"item": "apple", "n": 5, "opts": {"a": 1}, "blank": "", "nan": "NaN"}
    assert parse_values(workflow, {"item": "7", "n": "7", "opts": "[1, null]", "nan": "1"}) == {
        "item": "7", "n": 7, "opts": [1, None], "blank": "", "nan": "1"}


def test_text_that_is_not_json_for_a_json_default_and_unknown_names_are_errors_by_name():
    with pytest.raises(InvalidValues) as caught:
        parse_values(_W(("opts", '{"a": 1}'), ("n", "5")), {"opts": "not json", "n": "NaN", "nope": "1"})
    assert set(caught.value.errors) == {"opts", "n", "nope"}
    assert "Not valid JSON" in caught.value.errors["opts"]
    assert caught.value.errors["nope"] == "There is no parameter “nope” (parameters: none)."


# --- Run workflow, through the worker ----------------------------------------------------------

def run_with(client, workflow: Workflow, **typed: str) -> WorkflowRun:
    """Press Run workflow as the browser would: the page's fields, with ``typed`` typed over them."""
    page = fields_of(client.get(f"/workflows/{workflow.pk}/").content.decode())
    page.update({f"param-{name}": value for name, value in typed.items()})
    response = client.post(f"/workflows/{workflow.pk}/run/", page, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Nothing was run" not in response.content.decode()
    return wait_for_final(WorkflowRun, WorkflowRun.objects.latest("pk").pk, timeout=40)


@pytest.mark.usefixtures("celery_worker")
def test_run_workflow_shows_each_parameter_prefilled_and_a_step_reads_it(logged_in_client):
    workflow = make_workflow("fruit", ("pick", "return params.item"), parameters=[{"name": "item", "default": "apple"}])
    html = logged_in_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert '<label for="id_param-item" class="mono">item</label>' in html
    assert 'name="param-item" value="apple"' in html
    assert run_with(logged_in_client, workflow).output == "apple"
    finished = run_with(logged_in_client, workflow, item="pear")
    assert finished.output == "pear" and finished.params == {"item": "pear"}


@pytest.mark.usefixtures("celery_worker")
def test_a_value_typed_for_a_json_default_reaches_the_step_as_json(logged_in_client):
    workflow = make_workflow("count", ("add", "return [params.n, type(params.n).__name__]"),
                             parameters=[{"name": "n", "default": "5"}])
    assert run_with(logged_in_client, workflow).output == [5, "int"]
    assert run_with(logged_in_client, workflow, n="7").output == [7, "int"]


def test_text_that_is_not_json_for_a_json_default_is_refused_beside_the_input(logged_in_client):
    workflow = make_workflow("opts", ("first", "return params.opts"),
                             parameters=[{"name": "opts", "default": '{"a": 1}'}])
    page = fields_of(logged_in_client.get(f"/workflows/{workflow.pk}/").content.decode())
    bad = {**page, "param-opts": "not json"}
    html = logged_in_client.post(f"/workflows/{workflow.pk}/run/", bad, HTTP_HX_REQUEST="true").content.decode()
    assert "Nothing was run." in html
    assert 'hx-swap-oob="true"' in html and "Not valid JSON" in field_group(html, "param-opts")
    assert 'value="not json"' in field_group(html, "param-opts")  # what was typed stays
    html = logged_in_client.post(f"/workflows/{workflow.pk}/run/", bad).content.decode()
    assert "Not valid JSON" in field_group(html, "param-opts")
    assert not WorkflowRun.objects.exists()
