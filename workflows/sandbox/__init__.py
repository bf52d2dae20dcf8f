"""Runs one untrusted Python step in a separate, isolated, fresh interpreter (pure: no Django).

    result = sandbox.run_step(code, step_name="getSecrets", steps={"first": {...}},
                              params={...}, env=sandbox.app_env_from(os.environ),
                              limits=sandbox.StepLimits(timeout_s=30))
    result.ok, result.output, result.error.type/.message/.line, result.timed_out

The code is a function body (a top-level ``return`` gives the output) and sees
``Env`` (``Env.x`` is CREDTOOL_APP_ENV_X), ``params`` and each earlier step by
name (``first.output``). Its output comes back as JSON (see workflows.outputs).

- launch.py: how a child is started (bubblewrap, or a plain process with a warning);
- cgroups.py: a cgroup per step (memory for all its processes, pids.max, a lower CPU weight);
- uids.py: where there is no such cgroup, a uid of its own per running step;
- child.py: the entry point inside the sandbox;
- exchange.py: one request and one result with one child, under the wall clock;
- pool.py: children started ahead of time, each used once.

Settings (environment, read at first use; a bad value raises ValueError):
CREDTOOL_SANDBOX_POOL (4), CREDTOOL_SANDBOX_NETWORK (on | none),
CREDTOOL_SANDBOX_CGROUPS (auto | off), CREDTOOL_SANDBOX_UIDS (3100000-3100063).
"""
from __future__ import annotations

from typing import Mapping

from .exchange import StepError, StepLimits, StepResult
from .launch import Isolation, isolation, isolation_status
from .pool import SandboxPool, default_pool, run_step, shutdown

APP_ENV_PREFIX = "CREDTOOL_APP_ENV_"

__all__ = [
    "APP_ENV_PREFIX", "Isolation", "SandboxPool", "StepError", "StepLimits", "StepResult", "app_env_from",
    "default_pool", "isolation", "isolation_status", "run_step", "shutdown",
]


def app_env_from(environ: Mapping[str, str]) -> dict[str, str]:
    """The CREDTOOL_APP_ENV_* variables of ``environ``: what steps read as ``Env``."""
    return {name: value for name, value in environ.items() if name.startswith(APP_ENV_PREFIX)}
