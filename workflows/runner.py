"""Runs a workflow's steps in order, each in the sandbox, and records the run masked.

The unmasked outcome exists only in the memory of the process that ran it (a
worker): integrations use it to fill credentials; every stored or shown copy
goes through ``credtool.masking``, by key and by value: a text that any step
returned under a secret-looking key (or that an ``Env`` value under such a name
holds) is masked wherever it shows up again, in later outputs, stdout, stderr
and errors.

Every run runs under a profile (its own, else ``Profile.objects.default()``,
recorded on the row): its steps read the profile's key as ``profile`` and
``Env`` as built for that profile (``sandbox.profile_env_from``), and the
masking uses the same values.

A run being executed can be cancelled (``cancel``): the worker's watcher calls the
run's ``CancelToken``, which kills the running step's processes (or cancels an
Integration step's statement on its server); the run ends "Cancelled" with what
that step printed so far, and later steps never start.

Python steps run here, in the sandbox. Other step types are run by the app that
owns them, registered with ``register_step_type`` (the integrations app runs
Integration steps): this app never imports it.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from credtool.masking import mask_secrets, mask_text, secret_values
from profiles.models import Profile
from runs import lifecycle
from runs.models import RunStatus

from . import sandbox

from .models import StepRun, StepType, Workflow, WorkflowRun

log = logging.getLogger(__name__)

CANCELLED_WHILE_RUNNING = "Cancelled while running."


@dataclass
class StepOutcome:
    name: str
    status: str
    output: Any = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    error_type: str = ""
    error_message: str = ""
    error_line: int | None = None
    # More texts to mask wherever this run is stored or shown (an integration's secret values).
    hidden: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepSpec:
    """A step as the runner needs it: ``code`` is a Python step's code or an Integration step's request."""

    name: str
    code: str
    timeout_s: int = 30
    type: str = StepType.PYTHON
    integration_id: int | None = None


@dataclass(frozen=True)
class RunContext:
    """Who and what a run is for: what a step of another type needs beside its inputs."""

    profile: Profile | None = None
    user: AbstractBaseUser | None = None
    run_id: int | None = None
    workflow_name: str = ""


# A step type's runner: (step, params, earlier outputs by step name, context, cancel) -> its outcome.
StepRunner = Callable[[StepSpec, dict[str, Any], dict[str, Any], RunContext, "sandbox.Cancellation | None"],
                      "StepOutcome"]
_step_runners: dict[str, StepRunner] = {}


def register_step_type(type_: str, run: StepRunner) -> None:
    _step_runners[type_] = run


@dataclass
class WorkflowOutcome:
    status: str
    steps: list[StepOutcome] = field(default_factory=list)
    error: str = ""
    error_step: str = ""
    duration_ms: float = 0.0
    # The error as stored and shown: Env values and secret outputs masked (set by record()).
    masked_error: str = ""

    @property
    def response(self) -> Any:
        """The last step's output: what ``{{<workflow>.response}}`` refers to."""
        return self.steps[-1].output if self.steps and self.status == RunStatus.SUCCEEDED else None

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    def __repr__(self) -> str:  # outputs may hold secrets; never print them
        return f"WorkflowOutcome(status={self.status!r}, steps={len(self.steps)}, error_step={self.error_step!r})"


def run_steps(steps: list[StepSpec] | list[tuple[str, str, int]], *, params: dict[str, Any], env: dict[str, str],
              profile: str | None = None, cancel: sandbox.Cancellation | None = None,
              context: RunContext | None = None) -> WorkflowOutcome:
    """Run ``(name, code, timeout_s)`` steps in order, each reading ``profile`` (a profile's key);
    stop at the first failure, or when ``cancel`` is cancelled: the running step is stopped
    (``sandbox.run_step`` kills its processes) and no later step starts.

    ``cancel`` is the seam for every kind of step: a step that runs elsewhere (e.g. an
    integration's query) hands it its own callback while it runs (``cancel.on_cancel(...)``,
    cancelling the statement on its server) and clears it after, as ``sandbox.run_step`` does.
    """
    started = time.perf_counter()
    outputs: dict[str, Any] = {}
    outcome = WorkflowOutcome(status=RunStatus.SUCCEEDED)
    for spec in steps:
        spec = spec if isinstance(spec, StepSpec) else StepSpec(*spec)
        name, code, timeout_s = spec.name, spec.code, spec.timeout_s
        if cancel is not None and cancel.cancelled:  # asked between two steps
            outcome.status, outcome.error = RunStatus.CANCELLED, CANCELLED_WHILE_RUNNING
            break
        if spec.type != StepType.PYTHON:
            step = _run_other(spec, params, dict(outputs), context or RunContext(), cancel)
            outcome.steps.append(step)
            if step.status != RunStatus.SUCCEEDED:
                outcome.status, outcome.error_step = step.status, name
                outcome.error = (CANCELLED_WHILE_RUNNING if step.status == RunStatus.CANCELLED
                                 else f"step {name}: {step.error_message}")
                break
            outputs[name] = step.output
            continue
        result = sandbox.run_step(
            code, step_name=name, steps=dict(outputs), params=params, env=env, profile=profile,
            limits=sandbox.StepLimits(timeout_s=timeout_s), cancel=cancel,
        )
        step = StepOutcome(
            name=name, status=RunStatus.SUCCEEDED, output=result.output, stdout=result.stdout,
            stderr=result.stderr, duration_ms=result.duration_ms,
        )
        outcome.steps.append(step)
        if result.cancelled:  # its processes are gone; later steps do not start
            step.status = outcome.status = RunStatus.CANCELLED
            step.output = None
            outcome.error_step, outcome.error = name, CANCELLED_WHILE_RUNNING
            break
        if not result.ok:
            step.status = RunStatus.TIMED_OUT if result.timed_out else RunStatus.FAILED
            step.output = None
            if result.error is not None:
                step.error_type, step.error_message, step.error_line = (
                    result.error.type, result.error.message, result.error.line)
            outcome.status = step.status
            outcome.error_step = name
            where = f" (line {step.error_line})" if step.error_line else ""
            outcome.error = f"step {name}{where}: {step.error_type + ': ' if step.error_type else ''}{step.error_message}"
            break
        outputs[name] = result.output
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcome


def _run_other(spec: StepSpec, params: dict[str, Any], outputs: dict[str, Any], context: RunContext,
               cancel: sandbox.Cancellation | None) -> StepOutcome:
    run = _step_runners.get(spec.type)
    if run is None:
        return StepOutcome(spec.name, RunStatus.FAILED, error_message=f"this worker cannot run {spec.type} steps")
    started = time.perf_counter()
    step = run(spec, params, outputs, context, cancel)
    step.duration_ms = step.duration_ms or (time.perf_counter() - started) * 1000
    if step.status != RunStatus.SUCCEEDED:
        step.output = None
    return step


def worker_env(profile: Profile | None = None) -> dict[str, str]:
    """What steps under ``profile`` read as ``Env`` on this worker: its ``CREDTOOL_APP_ENV_*`` values,
    overridden by the profile's own (without a profile, the shared values alone)."""
    if profile is None:
        return sandbox.app_env_from(os.environ)
    return sandbox.profile_env_from(os.environ, profile.key)


def steps_of(workflow: Workflow) -> list[StepSpec]:
    return [StepSpec(s.name, s.code, s.timeout_s, s.step_type, s.integration_id) for s in workflow.steps.all()]


def hidden_values(outcome: WorkflowOutcome, env: dict[str, str]) -> list[str]:
    """Every text to mask in what is stored or shown of ``outcome``: the secret ``Env`` values and
    whatever any step returned under a secret-looking key."""
    hidden = secret_values(env)
    for step in outcome.steps:
        hidden.extend(secret_values(step.output))
        hidden.extend(step.hidden)
    return hidden


def store_outcome(run_id: int, outcome: WorkflowOutcome, env: dict[str, str], *,
                  also_hidden: list[str] | tuple[str, ...] = ()) -> bool:
    """Store the outcome of running run ``run_id``, masked by key and by value; False if the run
    was no longer running (its lease had expired and it was reaped)."""
    hidden = hidden_values(outcome, env) + list(also_hidden)

    def clean(text: str) -> str:
        return mask_text(text, hidden)

    outcome.masked_error = clean(outcome.error)
    with transaction.atomic():
        stored = lifecycle.finish(
            WorkflowRun, run_id, outcome.status, output=mask_secrets(outcome.response, hidden),
            error=outcome.masked_error, error_step=outcome.error_step, duration_ms=outcome.duration_ms)
        if stored:
            StepRun.objects.bulk_create([
                StepRun(
                    run_id=run_id, position=i, step_name=s.name, status=s.status, duration_ms=s.duration_ms,
                    output=mask_secrets(s.output, hidden), stdout=clean(s.stdout), stderr=clean(s.stderr),
                    error_type=s.error_type, error_message=clean(s.error_message), error_line=s.error_line,
                )
                for i, s in enumerate(outcome.steps)
            ])
    return stored


def submit(workflow: Workflow, user: AbstractBaseUser | None, *, params: dict[str, Any] | None = None,
           trigger: str = "manual", profile: Profile | None = None) -> WorkflowRun:
    """Queue a run of ``workflow`` for a worker, under ``profile`` (else the default one)."""
    with transaction.atomic():
        run = WorkflowRun.objects.create(workflow=workflow, user=user, params=params or {}, trigger=trigger,
                                         profile=profile or Profile.objects.default(), sent_at=timezone.now())
        lifecycle.submit(run)
    return run


def cancel(run: WorkflowRun) -> WorkflowRun:
    """Cancel ``run``: a queued one ends "Cancelled" at once; a running one is stopped by its
    worker within the watcher's interval (its step's processes killed, later steps not
    started). A finished run is left as it is. Returns the run as it now stands."""
    return lifecycle.request_cancel(run)


def execute(run_id: int) -> None:
    """Worker side of a submitted run."""
    if not lifecycle.claim(WorkflowRun, run_id):
        log.info("workflow run %s is no longer queued; skipping", run_id)
        return
    run = WorkflowRun.objects.select_related("workflow", "profile", "user").get(pk=run_id)
    profile = run.profile or _record_default_profile(run)
    token = lifecycle.CancelToken()
    with lifecycle.watcher.working_on(WorkflowRun, run_id, token):
        outcome, env = _run_safely(run.workflow, {**run.workflow.default_params(), **run.params}, profile,
                                   cancel=token, user=run.user, run_id=run_id)
        store_outcome(run_id, outcome, env)
    log.info("workflow run %s %s in %.1f ms", run_id, outcome.status, outcome.duration_ms)


def run_now(workflow: Workflow, *, trigger: str, user: AbstractBaseUser | None = None,
            hide: Callable[[WorkflowOutcome], list[str]] | None = None,
            profile: Profile | None = None) -> WorkflowOutcome:
    """Run in this process (a worker) now, under ``profile`` (else the default one), record it
    masked, and return the unmasked outcome.

    ``hide`` may name more texts to mask in the record, from the outcome (the
    credentials an integration will render from it)."""
    profile = profile or Profile.objects.default()
    run = lifecycle.start_running(WorkflowRun, workflow=workflow, user=user, trigger=trigger, profile=profile)
    token = lifecycle.CancelToken()
    with lifecycle.watcher.working_on(WorkflowRun, run.pk, token):
        outcome, env = _run_safely(workflow, workflow.default_params(), profile, cancel=token, user=user,
                                   run_id=run.pk)
        store_outcome(run.pk, outcome, env, also_hidden=hide(outcome) if hide and outcome.ok else ())
    return outcome


def _record_default_profile(run: WorkflowRun) -> Profile | None:
    """The profile a run queued without one runs under, written on its row so its page says which."""
    profile = Profile.objects.default()
    WorkflowRun.objects.filter(pk=run.pk, profile__isnull=True).update(profile=profile)
    return profile


def _run_safely(workflow: Workflow, params: dict[str, Any], profile: Profile | None, *,
                cancel: lifecycle.CancelToken | None = None, user: AbstractBaseUser | None = None,
                run_id: int | None = None) -> tuple[WorkflowOutcome, dict[str, str]]:
    """Run the steps; the Env they were given comes back too, since the record masks its values."""
    env = worker_env(profile)
    context = RunContext(profile=profile, user=user, run_id=run_id, workflow_name=workflow.name)
    try:
        return run_steps(steps_of(workflow), params=params, env=env, profile=profile.key if profile else None,
                         cancel=cancel, context=context), env
    except Exception as exc:  # a bug of ours, or the sandbox could not start: the run must still end, and say why
        log.exception("workflow %s failed unexpectedly", workflow.pk)
        return WorkflowOutcome(status=RunStatus.FAILED,
                               error=f"Internal error ({type(exc).__name__}); see the worker's log."), env
