"""The workflow editor (the workflow's own fields, its steps and its parameters) and the Run workflow form."""
from __future__ import annotations

import keyword
from functools import cached_property
from typing import Any, Callable

from django import forms
from django.urls import reverse
from django.utils.html import format_html

from profiles.models import Profile

from .models import RESERVED_STEP_NAMES, StepType, Workflow, identifier
from .parameters import InvalidValues, is_json, parse_values
from .schedules import InvalidSchedule, normalise, parse
from .step_code import check_syntax
from .step_types import integration_steps

STEP_PREFIX = "steps"
PARAM_PREFIX = "params"


class WorkflowForm(forms.ModelForm):
    schedule_profile = forms.ModelChoiceField(
        label="Schedule profile", queryset=Profile.objects.all(), empty_label=None, required=False,
        help_text="The profile its scheduled runs run under.",
        error_messages={"invalid_choice": "That profile no longer exists; choose one from the list."},
    )

    class Meta:
        model = Workflow
        fields = ["name", "description", "schedule", "schedule_profile"]
        help_texts = {
            "name": "Referenced in bindings as {{name.response…}}: letters, digits and underscores.",
            "schedule": "A cron expression (minute hour day-of-month month day-of-week), e.g. "
                        "<code>*/15 * * * *</code>; blank: not scheduled.",
        }
        widgets = {"name": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
                   "schedule": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                                      "placeholder": "*/15 * * * *"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        # As it is typed: what it means and when it runs next, beside the field.
        self.fields["schedule"].widget.attrs.update({
            "hx-get": reverse("workflows:schedule_reading"), "hx-trigger": "input changed delay:400ms",
            "hx-target": "#schedule-reading", "hx-swap": "outerHTML", "aria-describedby": "id_schedule_helptext schedule-reading"})
        if not self.initial.get("schedule_profile"):
            self.initial["schedule_profile"] = Profile.objects.default()

    def clean_schedule(self) -> str:
        schedule = normalise(self.cleaned_data["schedule"])
        if schedule:
            try:
                parse(schedule)
            except InvalidSchedule as exc:
                raise forms.ValidationError(str(exc)) from exc
        return schedule

    def clean_schedule_profile(self) -> Profile | None:
        # Not posted (a script, an old page): the default profile, Production.
        return self.cleaned_data["schedule_profile"] or Profile.objects.default()


class RunForm(forms.Form):
    """The profile a run of a workflow runs under, and a field per parameter (``param-<name>``, so a
    parameter cannot clash with the form's own fields) prefilled with its default.
    ``cleaned_data["params"]`` holds the values, by ``parameters.parse_values``."""

    profile = forms.ModelChoiceField(
        label="Profile", queryset=Profile.objects.all(), to_field_name="key", empty_label=None, required=False,
        error_messages={"invalid_choice": "There is no profile “%(value)s” (it may have just been deleted); "
                                          "choose one from the list."},
    )

    def __init__(self, *args: Any, workflow: Workflow, last_choice: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        chosen = Profile.objects.filter(key=last_choice).first() if last_choice else None
        self.fields["profile"].initial = chosen or Profile.objects.default()
        self.workflow = workflow
        for p in workflow.parameters:
            name, default = p["name"], p.get("default", "")
            self.fields[f"param-{name}"] = forms.CharField(
                label=name, required=False, strip=False, initial=default,
                widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
                help_text=format_html("<code>params.{}</code>: {}", name, "parsed as JSON, because its default "
                                      "is JSON." if is_json(default) else "text."))

    def parameter_fields(self) -> list[forms.BoundField]:
        return [self[f"param-{p['name']}"] for p in self.workflow.parameters]

    def clean_profile(self) -> Profile | None:
        # Not posted at all (a script, an old page): what a run with no profile runs under.
        return self.cleaned_data["profile"] or Profile.objects.default()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # A parameter not posted at all (a script, an old page) takes its default.
        typed = {p["name"]: cleaned.get(f"param-{p['name']}", "") for p in self.workflow.parameters
                 if f"param-{p['name']}" in self.data}
        try:
            cleaned["params"] = parse_values(self.workflow, typed)
        except InvalidValues as exc:
            for name, message in exc.errors.items():
                self.add_error(f"param-{name}", message)
        return cleaned


class StepForm(forms.Form):
    """One step: a Python step's code, or an Integration step's integration and request (the
    request editor of its kind: Query, or Method, Path and Body). ``cleaned_data["request"]`` is
    what is stored as the step's code either way."""

    name = forms.CharField(label="Step name", max_length=64, validators=[identifier],
                           widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    step_type = forms.ChoiceField(label="Step type", choices=StepType.choices, initial=StepType.PYTHON,
                                  required=False)
    code = forms.CharField(
        label="Code", strip=False, max_length=100_000, required=False,
        widget=forms.Textarea(attrs={"rows": 10, "class": "code", "spellcheck": "false", "data-run-shortcut": "",
                                     "data-editor": "python"}),
        help_text="A Python function body: <code>return</code> gives the step's output. "
                  "<code>Env.name</code> reads CREDTOOL_APP_ENV_NAME on the worker; earlier steps are "
                  "<code>stepname.output</code>; parameters are <code>params.name</code>. "
                  "<code>profile</code> is the run's profile key (e.g. <code>\"staging\"</code>); "
                  "CREDTOOL_PROFILE_STAGING_ENV_NAME, if set, overrides <code>Env.name</code> in Staging runs.",
    )
    integration = forms.ChoiceField(label="Integration", required=False, choices=[("", "Choose an integration")])
    sql = forms.CharField(
        label="Query", strip=False, max_length=100_000, required=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "code", "spellcheck": "false", "data-editor": "sql"}),
        help_text="<code>{{params.name}}</code> and <code>{{stepname.output…}}</code> are sent as bound "
                  "parameters, never pasted into the SQL: write them bare, "
                  "<code>where item = {{params.item}}</code>, not in quotes. The output is "
                  "<code>{\"columns\", \"rows\", \"truncated\"}</code> of the last statement, one object a row.",
    )
    method = forms.ChoiceField(label="Method", required=False, choices=[("GET", "GET")], initial="GET")
    path = forms.CharField(
        label="Path", required=False, max_length=8000,
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off", "class": "code",
                                      "placeholder": "/users/{{params.id}}"}),
        help_text="Joined to the base URL; bindings in it are URL-encoded.")
    body = forms.CharField(
        label="Body", required=False, max_length=100_000, strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "code",
                                     "placeholder": '{"item": {{params.item}}}'}),
        help_text="JSON; a binding is JSON-encoded (<code>{\"item\": {{params.item}}}</code>), or escaped "
                  "inside a string. The output is <code>{\"status\", \"headers\", \"body\"}</code>.")
    timeout_s = forms.IntegerField(label="Timeout (seconds)", initial=30, min_value=1, max_value=600)

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.provider = integration_steps()
        self.parameter_names: list[str] = []
        self.earlier_steps: list[str] = []
        if self.provider is None:  # no app provides Integration steps: Python only
            self.fields["step_type"].choices = [c for c in StepType.choices if c[0] == StepType.PYTHON]
        else:
            self.fields["integration"].choices = [("", "Choose an integration"), *self.provider.choices(user)]
            self.fields["method"].choices = [(m, m) for m in self.provider.methods]
        # Changing the type or the integration shows that editor's fields, keeping what was typed.
        for name in ("step_type", "integration"):
            self.fields[name].widget.attrs.update({
                "hx-post": reverse("workflows:edit_steps"), "hx-include": "#steps", "hx-target": "#steps",
                "hx-trigger": "change", "hx-vals": '{"action": "refresh"}'})

    def _current(self, name: str) -> str:
        return str(self[name].value() or "")

    @property
    def is_integration(self) -> bool:
        return self._current("step_type") == StepType.INTEGRATION

    @cached_property
    def editor(self) -> str:
        """The chosen integration's request editor ("sql", "http"), "" until one is chosen."""
        chosen = self._current("integration")
        return self.provider.editor(chosen) if self.provider and chosen else ""

    def carried_fields(self) -> list[forms.BoundField]:
        """The other type's (or editor's) fields, not shown but posted along hidden, so that
        switching back finds what was typed."""
        if not self.is_integration:
            shown = {"code"}
        else:
            shown = {"integration", *{"sql": ("sql",), "http": ("method", "path", "body")}.get(self.editor, ())}
        return [self[name] for name in ("code", "integration", "sql", "method", "path", "body") if name not in shown]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name in RESERVED_STEP_NAMES:
            raise forms.ValidationError(f"“{name}” is reserved; choose another step name.")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        cleaned["step_type"] = cleaned.get("step_type") or StepType.PYTHON
        if cleaned["step_type"] == StepType.PYTHON:
            code = cleaned.get("code", "")
            problem = check_syntax(code) if code.strip() else "Write the step's code."
            if problem:
                self.add_error("code", problem)
            cleaned["request"], cleaned["integration"] = code, None
            return cleaned
        if not cleaned.get("integration"):
            self.add_error("integration", "Choose the integration this step queries.")
            return cleaned
        editor = self.provider.editor(cleaned["integration"]) if self.provider else ""
        for field, message in self.provider.problems(editor, cleaned, self.parameter_names,
                                                     self.earlier_steps).items():
            self.add_error(field, message)
        cleaned["request"] = self.provider.compose(editor, cleaned)
        cleaned["integration"] = int(cleaned["integration"])
        return cleaned


class BaseStepFormSet(forms.BaseFormSet):
    """The steps; ``parameter_names`` (set before validating) are what their bindings may read,
    with the steps before each."""

    parameter_names: list[str] = []

    def _construct_form(self, i: int, **kwargs: Any) -> StepForm:
        form = super()._construct_form(i, **kwargs)
        form.parameter_names = self.parameter_names
        form.earlier_steps = [self._name_of(j) for j in range(i)]
        return form

    def _name_of(self, j: int) -> str:
        if self.is_bound:
            return str(self.data.get(f"{self.add_prefix(j)}-name", ""))
        initial = self.initial or []
        return str(initial[j].get("name", "")) if j < len(initial) else ""

    def clean(self) -> None:
        if any(self.errors):
            return
        names = [f.cleaned_data.get("name") for f in self.forms if f.cleaned_data]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise forms.ValidationError(f"Step names must be unique: {', '.join(duplicates)}.")
        if not names:
            raise forms.ValidationError("Add at least one step.")


StepFormSet = forms.formset_factory(StepForm, formset=BaseStepFormSet, extra=0, min_num=0)


class ParameterForm(forms.Form):
    name = forms.CharField(label="Parameter name", max_length=64, validators=[identifier],
                           widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    # Not stripped: the value a run gets is the value typed here.
    # Its help text, the rule for values, is said once above the rows (_parameters.html).
    default = forms.CharField(
        label="Default value", max_length=1000, required=False, strip=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                      "aria-describedby": "parameters-help"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A blank row is an error beside its name, never a parameter dropped without a word.
        super().__init__(*args, label_suffix="", **{**kwargs, "empty_permitted": False})

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        # params.class would not parse; params._values reads the sandbox's own attribute; a
        # parameter named like a step's variable (params.profile beside profile) only confuses.
        if keyword.iskeyword(name) or name.startswith("_") or name in RESERVED_STEP_NAMES:
            raise forms.ValidationError(f"“{name}” is reserved; choose another parameter name.")
        return name


class BaseParameterFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        seen: set[str] = set()
        for form in self.forms:
            name = form.cleaned_data.get("name")
            if name is None:  # refused already, beside the field
                continue
            if name in seen:
                form.add_error("name", f"There is already a parameter named “{name}”.")
            seen.add(name)


ParameterFormSet = forms.formset_factory(ParameterForm, formset=BaseParameterFormSet, extra=0, max_num=100,
                                         validate_max=True)


def step_initial(workflow: Workflow | None) -> list[dict[str, Any]]:
    if workflow is None:
        return [{"name": "step1", "step_type": StepType.PYTHON, "code": "return {\"hello\": \"world\"}\n",
                 "timeout_s": 30}]
    rows = []
    provider = integration_steps()
    for s in workflow.steps.all():
        row: dict[str, Any] = {"name": s.name, "step_type": s.step_type, "timeout_s": s.timeout_s}
        if s.is_integration and provider is not None:
            row["integration"] = str(s.integration_id)
            row.update(provider.decompose(provider.editor(s.integration_id), s.code))
        else:
            row["code"] = s.code
        rows.append(row)
    return rows


def posted_rows(data: Any, prefix: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a formset as posted, in order, whether or not they are valid."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS", 0)), 100)
    except ValueError:
        total = 0
    return [{f: data.get(f"{prefix}-{i}-{f}", "") for f in fields} for i in range(total)]


def new_step(rows: list[dict[str, str]]) -> dict[str, str]:
    taken = {r.get("name") for r in rows}
    n = len(rows) + 1
    while f"step{n}" in taken:
        n += 1
    return {"name": f"step{n}", "step_type": StepType.PYTHON, "code": "return None\n", "timeout_s": "30"}


def new_parameter(rows: list[dict[str, str]]) -> dict[str, str]:
    return {"name": "", "default": ""}  # no made-up name: the user names it


def rearrange(rows: list[dict[str, str]], action: str,
              new_row: Callable[[list[dict[str, str]]], dict[str, str]] = new_step) -> list[dict[str, str]]:
    """Apply an editor action ("add", "remove-2", "up-1", "down-0") to the posted rows."""
    rows = list(rows)
    verb, _, index_text = action.partition("-")
    if verb == "add":
        rows.append(new_row(rows))
        return rows
    try:
        index = int(index_text)
    except ValueError:
        return rows
    if not 0 <= index < len(rows):
        return rows
    if verb == "remove":
        rows.pop(index)
    elif verb == "up" and index > 0:
        rows[index - 1], rows[index] = rows[index], rows[index - 1]
    elif verb == "down" and index < len(rows) - 1:
        rows[index + 1], rows[index] = rows[index], rows[index + 1]
    return rows

