"""Runs one untrusted Python step in a separate, isolated, fresh interpreter (pure: no Django).

    result = sandbox.run_step(code, step_name="getSecrets", steps={"first": {...}},
                              params={...}, env=sandbox.profile_env_from(os.environ, "staging"),
                              profile="staging", limits=sandbox.StepLimits(timeout_s=30),
                              cancel=token)  # optional: token.cancel() from another thread kills the step
    result.ok, result.output, result.error.type/.message/.line, result.timed_out, result.cancelled

The code is a function body (a top-level ``return`` gives the output) and sees
``Env`` (``Env.x`` is CREDTOOL_APP_ENV_X, or the profile's own
CREDTOOL_PROFILE_<KEY>_ENV_X), ``profile`` (the key, e.g. "staging"),
``params`` and each earlier step by name (``first.output``). Its output comes
back as JSON (see workflows.outputs).

- launch.py: how a child is started (bubblewrap, or a plain process with a warning);
- cgroups.py: a cgroup per step (memory for all its processes, pids.max, a lower CPU weight);
- uids.py: where there is no such cgroup, a uid of its own per running step;
- child.py: the entry point inside the sandbox;
- exchange.py: one request and one result with one child, under the wall clock;
- pool.py: children started ahead of time, each used once; more of them after a burst.

Settings (environment, read at first use; a bad value raises ValueError):
CREDTOOL_SANDBOX_POOL (4: ready children when idle), CREDTOOL_SANDBOX_POOL_MAX (8: what a
burst of concurrent steps may grow that to, for the next such burst, until a minute idle),
CREDTOOL_SANDBOX_NETWORK (on | none),
CREDTOOL_SANDBOX_CGROUPS (auto | off), CREDTOOL_SANDBOX_UIDS (3100000-3100063).
"""
from __future__ import annotations

from typing import Mapping

from .exchange import StepError, StepLimits, StepResult
from .launch import Isolation, isolation, isolation_status
from .pool import Cancellation, SandboxPool, default_pool, run_step, shutdown

APP_ENV_PREFIX = "CREDTOOL_APP_ENV_"

__all__ = [
    "APP_ENV_PREFIX", "Cancellation", "Isolation", "SandboxPool", "StepError", "StepLimits", "StepResult",
    "app_env_from", "default_pool", "isolation", "isolation_status", "profile_env_from", "profile_env_prefix", "run_step",
    "shutdown",
]


def app_env_from(environ: Mapping[str, str]) -> dict[str, str]:
    """The CREDTOOL_APP_ENV_* variables of ``environ``: what steps read as ``Env``."""
    return {name: value for name, value in environ.items() if name.startswith(APP_ENV_PREFIX)}


def profile_env_prefix(profile_key: str) -> str:
    """Where one profile's own Env variables start: ``CREDTOOL_PROFILE_STAGING_ENV_`` for "staging"."""
    return f"CREDTOOL_PROFILE_{profile_key.upper()}_ENV_"


def profile_env_from(environ: Mapping[str, str], profile_key: str) -> dict[str, str]:
    """What steps of a run under ``profile_key`` read as ``Env``, under CREDTOOL_APP_ENV_* names.

    Every CREDTOOL_APP_ENV_X, then each CREDTOOL_PROFILE_<KEY>_ENV_X (KEY: the
    key upper-cased) in its place, for that profile only: ``Env.x`` in a
    staging run reads CREDTOOL_PROFILE_STAGING_ENV_X when the worker has it.
    An override set to the empty string still overrides (the step reads ""):
    it is how a worker that serves several profiles keeps a shared value from
    one of them, e.g. production's AWS keys from staging runs.
    """
    env = app_env_from(environ)
    prefix = profile_env_prefix(profile_key)
    for name, value in environ.items():
        if name.startswith(prefix):
            env[APP_ENV_PREFIX + name[len(prefix):]] = value
    return env
