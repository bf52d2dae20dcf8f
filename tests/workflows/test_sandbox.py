"""The sandbox runs real, isolated processes: each test runs user code and checks what it could do."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from workflows import sandbox
from workflows.sandbox import SandboxPool, StepLimits, cgroups, launch

ROOT = Path(__file__).resolve().parents[2]
WORKER_SECRETS = {
    "DJANGO_SECRET_KEY": "leak-django-secret", "SECRET_KEY": "leak-secret", "DATABASE_URL": "postgres://leak",
    "CREDTOOL_ENCRYPTION_KEY": "leak-fernet", "CELERY_BROKER_URL": "redis://leak", "AWS_SECRET_ACCESS_KEY": "leak-aws",
    "CREDTOOL_APP_ENV_GREETING": "leak-app-env",
}


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    pool = SandboxPool(size=2)
    assert pool.warm(wait_s=20)
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def uids_pool() -> Iterator[SandboxPool]:
    """The fallback where steps get no cgroup each: a uid of its own per running step."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CREDTOOL_SANDBOX_CGROUPS", "off")
        found = launch.detect()
    assert found.cgroups is None and found.uids is not None, launch.isolation_status(found)
    pool = SandboxPool(size=2, isolation=found)
    assert pool.warm(wait_s=20)
    yield pool
    pool.shutdown()


@pytest.fixture(params=["cgroups", "uids"])
def each_pool(request: pytest.FixtureRequest) -> SandboxPool:
    """Both ways a root worker keeps steps apart: a cgroup per step, or (without) a uid per step."""
    if request.param == "cgroups" and sandbox.isolation().cgroups is None:
        pytest.skip(f"no cgroup per step here: {sandbox.isolation_status()}")
    return request.getfixturevalue("pool" if request.param == "cgroups" else "uids_pool")


def needs_cgroups() -> None:
    if sandbox.isolation().cgroups is None:
        pytest.skip(f"no cgroup per step here: {sandbox.isolation_status()}")


def run(pool: SandboxPool, code: str, **kwargs) -> sandbox.StepResult:
    kwargs.setdefault("limits", StepLimits(timeout_s=10))
    return pool.run_step(code, step_name="step1", **kwargs)


def named(marker: str) -> set[int]:
    """Processes (anywhere on the machine) whose name is ``marker``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == marker:
                    found.add(int(entry))
            except OSError:
                pass
    return found


def name_self(marker: str) -> str:
    """Step code that renames its process, so the test can look for it from outside."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\n"


class Watch:
    """Records the processes named ``marker`` while a step runs, from a thread of the test."""

    def __init__(self, marker: str) -> None:
        self.marker, self.seen, self._stop = marker, set(), threading.Event()
        self._thread = threading.Thread(target=self._poll)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.seen |= named(self.marker)
            time.sleep(0.02)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def alive(marker: str, within_s: float = 0.0) -> set[int]:
    """The processes named ``marker`` that are not dead (a killed one waits as a zombie until
    whoever inherited it reaps it, which for an orphan of a plain process is not the worker),
    after up to ``within_s`` for a SIGKILL already sent to take effect."""
    deadline = time.monotonic() + within_s
    while True:
        found = set()
        for pid in named(marker):
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX":
                    found.add(pid)
            except (OSError, IndexError):
                pass
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.01)


def wait_gone(marker: str, within_s: float = 2.0) -> set[int]:
    deadline = time.monotonic() + within_s
    while (left := named(marker)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def while_running(pool: SandboxPool, code: str, marker: str, inspect, **kwargs) -> tuple[sandbox.StepResult, object]:
    """Run ``code`` (which names itself ``marker``, then waits) and call ``inspect(pid)`` while it runs."""
    with ThreadPoolExecutor(1) as threads:
        step = threads.submit(run, pool, code, **kwargs)
        deadline = time.monotonic() + 20
        while not (pids := named(marker)) and not step.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pids, step.result() if step.done() else "the step never started"
        seen = inspect(min(pids))
        return step.result(), seen


def cgroup_dirs(pid: int) -> dict[str, Path]:
    """``pid``'s cgroup directory per controller (memory, pids, cpu), from /proc as this process sees it."""
    mounts: dict[str, tuple[str, str]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype, options = fields[fields.index("-") + 1], fields[fields.index("-") + 3]
        if fstype == "cgroup":
            mounts.update({name: (fields[3], fields[4]) for name in options.split(",")})
        elif fstype == "cgroup2":
            mounts[""] = (fields[3], fields[4])
    found: dict[str, Path] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            if name in mounts:
                root, point = mounts[name]
                found[name] = Path(os.path.normpath(os.path.join(point, os.path.relpath(path, root))))
    unified = found.pop("", None)
    if unified is not None and "memory" in (unified / "cgroup.controllers").read_text().split():
        return {name: unified for name in ("memory", "pids", "cpu")}
    return {name: found[name] for name in ("memory", "pids", "cpu") if name in found}


def removed_soon(*paths: Path, within_s: float = 2.0) -> bool:
    """Every process of a step is killed before its result returns; its cgroup's directories
    are removed just after, off the step's time (rmdir can wait on the kernel's cgroup lock)."""
    deadline = time.monotonic() + within_s
    while any(path.exists() for path in paths) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not any(path.exists() for path in paths)


def limits_of(dirs: dict[str, Path]) -> dict[str, int]:
    """The memory limit and pids.max/current of a step's cgroup, and the CPU weight (on v2's
    scale) that all steps share: v1's cpu group of the step, v2's parent of its cgroup."""
    def number(path: Path) -> int:
        return int(path.read_text().split()[0])

    memory, pids = dirs["memory"], dirs["pids"]
    v2 = (memory / "memory.max").exists()
    cpu = memory.parent if v2 else dirs["cpu"]
    found = {"memory": number(memory / ("memory.max" if v2 else "memory.limit_in_bytes")),
             "pids.max": number(pids / "pids.max"), "pids.current": number(pids / "pids.current"),
             "cpu_weight": number(cpu / "cpu.weight") if v2 else number(cpu / "cpu.shares") * 100 // 1024}
    if (memory / "memory.memsw.limit_in_bytes").exists():
        found["memsw"] = number(memory / "memory.memsw.limit_in_bytes")
    return found


class MemAvailable:
    """The host's MemAvailable, sampled from a thread while a step runs: its largest drop, in MB."""

    def __init__(self) -> None:
        self.start = self.lowest = self.read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll)

    @staticmethod
    def read() -> int:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
        raise AssertionError("no MemAvailable in /proc/meminfo")

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.lowest = min(self.lowest, self.read())
            time.sleep(0.01)

    @property
    def drop_mb(self) -> int:
        return self.start - self.lowest

    def __enter__(self) -> MemAvailable:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --- Running code -------------------------------------------------------------------

def test_steps_run_under_bubblewrap():
    assert sandbox.isolation().mode == "bubblewrap", sandbox.isolation_status()
    assert "bubblewrap" in sandbox.isolation_status()


def test_a_root_worker_gives_each_step_a_cgroup_where_the_machine_has_them():
    own = cgroup_dirs(os.getpid())
    if os.geteuid() != 0 or not {"memory", "pids"} <= set(own):
        pytest.skip("needs a root worker and cgroups with memory and pids")
    status = sandbox.isolation_status()
    assert sandbox.isolation().cgroups is not None, status
    version = 2 if own["memory"] == own["pids"] else 1
    assert f", in a cgroup per step (v{version}: memory, pids, cpu)" in status


def test_return_gives_the_output(pool):
    result = run(pool, "x = 40\nreturn {'n': x + 2}")
    assert result.ok and result.output == {"n": 42} and result.error is None


def test_try_except_else_finally_and_a_final_return_run_unchanged(pool):
    code = ("try:\n    value = int('nope')\nexcept ValueError:\n    value = -1\nelse:\n    value = 0\n"
            "finally:\n    done = True\nreturn [value, done]")
    assert run(pool, code).output == [-1, True]


def test_code_without_return_gives_null(pool):
    result = run(pool, "x = 1")
    assert result.ok and result.output is None


def test_functions_imports_and_classes_defined_in_the_step_work(pool):
    code = ("import json\nfactor = 3\ndef scale(n):\n    return n * factor\n"
            "class Box:\n    def __init__(self, v):\n        self.v = scale(v)\n"
            "return json.loads(json.dumps([Box(i).v for i in range(3)]))")
    assert run(pool, code).output == [0, 3, 6]


def test_syntax_error_reports_the_users_line(pool):
    result = run(pool, "x = 1\ny = (\n")
    assert (result.ok, result.error.type, result.error.line) == (False, "SyntaxError", 2)
    assert "never closed" in result.error.message
    assert run(pool, "a = 1\nb = 2\nif b print(a)\n").error.line == 3


def test_exception_reports_type_message_and_the_users_line(pool):
    result = run(pool, "a = 1\nb = {}\nreturn b['missing']")
    assert (result.error.type, result.error.message, result.error.line) == ("KeyError", "'missing'", 3)
    nested = run(pool, "def inner():\n    raise RuntimeError('deep')\n\ninner()")
    assert (nested.error.type, nested.error.message, nested.error.line) == ("RuntimeError", "deep", 2)


# --- What the code sees -------------------------------------------------------------

def test_env_reads_the_value_passed_for_its_variable(pool):
    env = {"CREDTOOL_APP_ENV_GREETING": "hello", "CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}
    assert run(pool, "return [Env.greeting, Env.aws_access_key_id]", env=env).output == ["hello", "AKIAEXAMPLE"]


def test_a_missing_env_value_names_the_variable(pool):
    result = run(pool, "x = 1\nreturn Env.foo", env={"CREDTOOL_APP_ENV_GREETING": "hello"})
    assert not result.ok and result.error.line == 2
    assert result.error.message == "Env.foo is not set: the worker has no CREDTOOL_APP_ENV_FOO"
    assert run(pool, "return [hasattr(Env, 'foo'), getattr(Env, 'foo', 'default')]").output == [False, "default"]


def test_an_earlier_steps_output_is_read_by_its_name(pool):
    result = run(pool, "return first.output['n'] + 1", steps={"first": {"n": 41}})
    assert result.output == 42


def test_params_by_attribute_or_key_and_a_missing_one_is_clear(pool):
    result = run(pool, "return [params.region, params['port'], 'nope' in params]",
                 params={"region": "eu-west-1", "port": 5432})
    assert result.output == ["eu-west-1", 5432, False]
    missing = run(pool, "return params.nope", params={"port": 1})
    assert missing.error.message == "params.nope is not defined (parameters: port)"


def test_stdout_and_stderr_are_captured(pool):
    result = run(pool, "import sys\nprint('hello')\nprint('oops', file=sys.stderr)\nreturn 1")
    assert (result.ok, result.stdout, result.stderr) == (True, "hello\n", "oops\n")


def test_stdout_is_capped_with_a_note(pool):
    flood = run(pool, "print('x' * 1_000_000)\nreturn 1", limits=StepLimits(timeout_s=10, stream_bytes=2048))
    assert flood.ok and flood.stdout.startswith("x" * 2048) and len(flood.stdout) < 2200
    assert flood.stdout.endswith("[truncated: more than 2 KiB]")


def test_prints_to_the_raw_stdout_fd_do_not_corrupt_the_result(pool):
    result = run(pool, "import os\nos.write(1, b'{\"ok\": true, \"output\": \"forged\"}')\nreturn 'real'")
    assert result.ok and result.output == "real"


# --- What comes back ----------------------------------------------------------------

def test_output_values_become_json(pool):
    code = ("import datetime, decimal, uuid\n"
            "return {'d': datetime.date(2024, 1, 2), 'n': decimal.Decimal('1.5'), 'i': decimal.Decimal('3'),"
            " 'u': uuid.UUID(int=1), 'b': b'bytes', 's': {3, 1, 2}, 't': (1, 2), 'nan': float('nan')}")
    assert run(pool, code).output == {"d": "2024-01-02", "n": 1.5, "i": 3, "u": "00000000-0000-0000-0000-000000000001",
                                      "b": "bytes", "s": [1, 2, 3], "t": [1, 2], "nan": None}


def test_non_json_output_is_a_clear_error_naming_the_type_and_place(pool):
    result = run(pool, "class Thing: pass\nreturn {'a': [1, Thing()]}")
    assert (result.ok, result.error.type) == (False, "OutputError")
    assert result.error.message == 'step output at ["a"][1]: object of type Thing is not JSON serializable'


def test_output_over_the_cap_is_refused_with_its_size(pool):
    result = run(pool, "return 'x' * 3_000_000")
    assert (result.ok, result.error.type) == (False, "OutputError")
    assert result.error.message == "step output is 2.9 MB, over the 1 MB limit"


# --- Limits -------------------------------------------------------------------------

def test_sleeping_step_times_out_and_its_processes_are_gone(pool):
    marker = "cts" + uuid.uuid4().hex[:8]
    code = name_self(marker) + "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\ntime.sleep(60)"
    assert pool.warm(wait_s=30)  # time the step, not a cold start on a busy host
    with Watch(marker) as watch:
        started = time.monotonic()
        result = run(pool, code, limits=StepLimits(timeout_s=1))
        elapsed = time.monotonic() - started
    assert result.timed_out and not result.ok
    assert result.error.message == "the step timed out after 1 s and was stopped"
    assert elapsed < 5
    assert len(watch.seen) == 2, "the step and its forked child should have been running"
    assert wait_gone(marker) == set()


def test_busy_loop_times_out_and_its_process_is_gone(pool):
    marker = "ctb" + uuid.uuid4().hex[:8]
    with Watch(marker) as watch:
        result = run(pool, name_self(marker) + "while True:\n    pass", limits=StepLimits(timeout_s=1))
    assert result.timed_out and "timed out after 1 s" in result.error.message
    assert watch.seen and wait_gone(marker) == set()


def test_cpu_limit_stops_a_busy_loop_before_the_wall_clock(pool):
    result = run(pool, "while True:\n    pass", limits=StepLimits(timeout_s=30, cpu_s=1))
    assert result.timed_out and result.error.message == "the step timed out after 1 s of CPU time and was stopped"


def test_limits_are_set_per_step_in_a_prestarted_child(each_pool):
    code = ("import resource as r\nreturn {n: r.getrlimit(getattr(r, n)) for n in "
            "('RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NPROC', 'RLIMIT_CPU')}")
    mb = 1024 * 1024
    small = run(each_pool, code, limits=StepLimits(timeout_s=10, memory_mb=300, file_size_mb=2, processes=20, cpu_s=3))
    large = run(each_pool, code, limits=StepLimits(timeout_s=10, memory_mb=700, file_size_mb=5, processes=30, cpu_s=9))
    assert small.output["RLIMIT_AS"] == [300 * mb, 300 * mb] and large.output["RLIMIT_AS"] == [700 * mb, 700 * mb]
    assert small.output["RLIMIT_FSIZE"] == [2 * mb, 2 * mb]
    if each_pool.isolation.cgroups is None:  # the step's own uid: RLIMIT_NPROC is its process limit
        assert small.output["RLIMIT_NPROC"] == [20, 20]
    else:  # pids.max is; every step shares the uid, so its RLIMIT_NPROC must leave room for all of them
        assert small.output["RLIMIT_NPROC"][0] >= 4096
    soft, hard = small.output["RLIMIT_CPU"]
    assert 3 <= soft <= 5 and hard == soft + 1  # the imports' CPU time plus the step's 3 s


def test_each_step_runs_in_a_cgroup_of_its_own_with_its_limits(pool):
    needs_cgroups()
    marker = "ctc" + uuid.uuid4().hex[:8]
    own = cgroup_dirs(os.getpid())

    def inspect(pid: int) -> tuple[dict[str, Path], dict[str, int]]:
        dirs = cgroup_dirs(pid)
        return dirs, limits_of(dirs)

    result, (dirs, limits) = while_running(pool, name_self(marker) + "import time\ntime.sleep(1)\nreturn 1", marker,
                                           inspect, limits=StepLimits(timeout_s=10, memory_mb=300, processes=20))
    assert result.ok, result.error
    assert set(dirs) == {"memory", "pids", "cpu"} and not set(dirs.items()) & set(own.items())
    assert dirs["memory"] != own["memory"] and dirs["pids"] != own["pids"]
    mb = 1024 * 1024
    # The step's 300 MB on top of what its pre-started interpreter already held.
    assert 300 * mb < limits["memory"] < 500 * mb and limits.get("memsw", limits["memory"]) == limits["memory"]
    # Its own process among its 20; bwrap's (2 of pids.current) on top.
    assert limits["pids.max"] - limits["pids.current"] == 19
    assert limits["cpu_weight"] < 100  # below the default: under load the worker comes first
    assert removed_soon(dirs["memory"], dirs["pids"]), "the step's cgroup must go with it"


@pytest.mark.parametrize("ending", ["returns", "times out, leaving a process in its own session", "crashes"])
def test_a_steps_cgroup_is_removed_after_it_whatever_happened(pool, ending):
    needs_cgroups()
    marker = "ctr" + uuid.uuid4().hex[:8]
    code = name_self(marker) + {
        "returns": "import time\ntime.sleep(0.5)\nreturn 1",
        "times out, leaving a process in its own session":
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\ntime.sleep(60)",
        "crashes": "import os, time\ntime.sleep(0.5)\nos._exit(3)",
    }[ending]
    result, dirs = while_running(pool, code, marker, cgroup_dirs, limits=StepLimits(timeout_s=1.5))
    assert result.ok == (ending == "returns")
    assert alive(marker) == set(), "no process of the step may outlive its result"
    assert dirs and removed_soon(dirs["memory"], dirs["pids"])


def test_step_cgroups_left_by_a_dead_worker_are_removed_at_start():
    needs_cgroups()
    # A worker process that made a step cgroup and died without removing it.
    script = ("import os, sys\nfrom workflows.sandbox import launch\n"
              "group = launch.isolation().cgroups.create()\nprint(*group.directories, flush=True)\nos._exit(0)")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    left = [Path(path) for path in done.stdout.split()]
    assert left and all(path.is_dir() for path in left), done.stderr
    ours = sandbox.isolation().cgroups.create()  # a live worker's, maybe about to be used
    try:
        launch.detect()  # what a starting pool does once
        assert not any(path.exists() for path in left)
        assert all(path.is_dir() for path in ours.directories)
    finally:
        ours.remove()


def test_the_cgroups_to_use_are_found_from_proc_on_v1_v2_and_a_hybrid(tmp_path):
    # This machine is v1 only (its v2 mount has no memory): v2 is checked from /proc's texts.
    v1_mounts = ("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                 "36 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                 "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n")
    v1_self = "8:pids:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/workers\n"
    hybrid_unified = tmp_path / "unified"
    hybrid_unified.mkdir()
    (hybrid_unified / "cgroup.controllers").write_text("hugetlb\n")
    hybrid = v1_mounts + f"41 31 0:38 / {hybrid_unified} rw - cgroup2 cgroup2 rw\n"
    expected_v1 = (1, {"memory": Path("/sys/fs/cgroup/memory/process_api/abc"), "pids": Path("/sys/fs/cgroup/pids"),
                       "cpu": Path("/sys/fs/cgroup/cpu,cpuacct/workers")})
    assert cgroups.locate(v1_mounts, v1_self) == expected_v1
    assert cgroups.locate(hybrid, v1_self + "0::/\n") == expected_v1
    worker = tmp_path / "v2" / "system.slice" / "credtool.service"
    worker.mkdir(parents=True)
    (worker / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    v2_mounts = f"30 23 0:26 / {tmp_path / 'v2'} rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert cgroups.locate(v2_mounts, "0::/system.slice/credtool.service\n") == (
        2, {"memory": worker, "pids": worker, "cpu": worker})
    assert isinstance(cgroups.locate("", "0::/\n"), str)  # none at all: a reason, not a crash


def test_a_step_is_held_to_its_memory_limit_for_all_its_processes_together(pool):
    needs_cgroups()
    # Ten children of 300 MB each: every process is under the step's 512 MB (RLIMIT_AS),
    # their sum is not. bytes * n writes every page, so the memory is really used.
    code = ("import os, time\nfor _ in range(10):\n    if os.fork() == 0:\n        data = b'x' * (300 * 1024 * 1024)\n"
            "        time.sleep(20)\n        os._exit(0)\nfor _ in range(10):\n    os.wait()\nreturn 'survived'")
    assert pool.warm(wait_s=30)  # time the step, not a cold start on a busy host
    with MemAvailable() as host:
        started = time.monotonic()
        result = run(pool, code, limits=StepLimits(timeout_s=15, memory_mb=512))
        elapsed = time.monotonic() - started
    assert (result.ok, result.error.type) == (False, "MemoryError"), result.error
    assert result.error.message == "the step exceeded its memory limit (512 MB) and was stopped"
    assert host.drop_mb < 700, f"the host lost {host.drop_mb} MB to one step"
    assert elapsed < 10, "an OOM kill must stop the step, not leave its survivors to the timeout"


def test_a_step_whose_child_was_killed_for_memory_fails_even_if_it_returns(pool):
    needs_cgroups()
    code = ("import os\npid = os.fork()\nif pid == 0:\n    data = b'x' * (400 * 1024 * 1024)\n    os._exit(0)\n"
            "data = b'y' * (200 * 1024 * 1024)\nos.waitpid(pid, 0)\nreturn 'survived'")
    result = run(pool, code, limits=StepLimits(timeout_s=15, memory_mb=512))
    assert (result.ok, result.output, result.error.type) == (False, None, "MemoryError"), result.error
    assert result.error.message == "the step exceeded its memory limit (512 MB) and was stopped"


def test_memory_bomb_fails_with_memory_error_not_a_hang(pool):
    assert pool.warm(wait_s=30)  # time the step, not a cold start on a busy host
    started = time.monotonic()
    growing = run(pool, "chunks = []\nwhile True:\n    chunks.append(' ' * 1_000_000)",
                  limits=StepLimits(timeout_s=20, memory_mb=256))
    assert time.monotonic() - started < 15
    assert (growing.ok, growing.error.type, growing.error.line) == (False, "MemoryError", 3)
    assert growing.error.message == "the step ran out of memory (limit 256 MB)"
    at_once = run(pool, "data = bytearray(4 * 1024 ** 3)")
    assert at_once.error.type == "MemoryError"


def test_files_can_be_written_up_to_the_file_size_limit(pool):
    small = run(pool, "open('notes.txt', 'w').write('hi')\nreturn open('notes.txt').read()")
    assert small.output == "hi"
    big = run(pool, "with open('big', 'wb') as f:\n    f.write(b'x' * (4 * 1024 * 1024))\nreturn 1",
              limits=StepLimits(timeout_s=10, file_size_mb=1))
    assert (big.ok, big.error.type, big.error.message) == (False, "OSError", "[Errno 27] File too large")


def test_fork_bomb_is_stopped_by_the_process_limit_and_cleaned_up(each_pool):
    marker = "ctf" + uuid.uuid4().hex[:8]
    code = ("import ctypes, os, time\nr, w = os.pipe()\npids = []\ntry:\n    while True:\n        pid = os.fork()\n"
            "        if pid == 0:\n"
            f"            ctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\n"
            "            os.write(w, b'.')\n            time.sleep(60)\n            os._exit(0)\n        pids.append(pid)\n"
            "except OSError as exc:\n    error = exc.errno\n"
            "named = 0\nwhile named < len(pids):\n    named += len(os.read(r, 100))\n"
            "time.sleep(0.5)  # for the test's watcher\nreturn {'forked': len(pids), 'errno': error}")
    assert each_pool.warm(wait_s=30)  # time the step, not a cold start on a busy host
    with Watch(marker) as watch:
        started = time.monotonic()
        result = run(each_pool, code, limits=StepLimits(timeout_s=20, processes=16))
        elapsed = time.monotonic() - started
    assert result.ok, result.error
    assert 5 <= result.output["forked"] < 16 and result.output["errno"] == 11  # EAGAIN
    assert elapsed < 15, "sleeping children must not hold the result back"
    assert len(watch.seen) >= 5
    assert wait_gone(marker) == set()


# Forks to its process limit, says so by its name, and holds its processes until the
# test closes the connection it opens (a socket needs no new process or thread).
HOLD_THE_PROCESS_LIMIT = """import ctypes, os, socket, time
pids = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        pids.append(pid)
except OSError as exc:
    error = exc.errno
ctypes.CDLL(None).prctl(15, params.marker.encode(), 0, 0, 0)
socket.create_connection(('127.0.0.1', params.port), timeout=20).recv(1)
return {'forked': len(pids), 'errno': error, 'uid': os.getuid()}
"""


def test_a_step_holding_its_process_limit_does_not_stop_another_steps_threads_or_subprocesses(each_pool):
    marker = "cth" + uuid.uuid4().hex[:8]
    other_step = ("import os, subprocess, threading\nthread = threading.Thread(target=lambda: None)\nthread.start()\n"
                  "thread.join()\nreturn [subprocess.run(['echo', 'ran'], capture_output=True, text=True).stdout, "
                  "os.getuid()]")
    assert each_pool.warm(wait_s=30)
    with ThreadPoolExecutor(1) as threads, socket.socket() as release:
        release.bind(("127.0.0.1", 0))
        release.listen(1)
        release.settimeout(20)
        holder = threads.submit(run, each_pool, HOLD_THE_PROCESS_LIMIT, limits=StepLimits(timeout_s=30, processes=16),
                                params={"marker": marker, "port": release.getsockname()[1]})
        deadline = time.monotonic() + 20
        while not named(marker) and not holder.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert named(marker), holder.result().error if holder.done() else "the first step never filled its limit"
        # While the first step holds all its processes; with the same limit, so a count
        # shared between the two would have no room left.
        other = run(each_pool, other_step, limits=StepLimits(timeout_s=10, processes=16))
        still_holding = bool(named(marker)) and not holder.done()
        release.accept()[0].close()
        held = holder.result()
    assert held.ok, held.error
    assert 5 <= held.output["forked"] < 16 and held.output["errno"] == 11  # EAGAIN: its own limit
    assert still_holding
    assert other.ok, other.error
    assert other.output[0] == "ran\n"
    # With a cgroup each, steps may share a uid; without, each has its own.
    assert (other.output[1] == held.output["uid"]) == (each_pool.isolation.cgroups is not None)


def test_a_forked_process_cannot_answer_for_the_step(pool):
    result = run(pool, "import os\nif os.fork() == 0:\n    raise ValueError('child')\nos.wait()\nreturn 'parent'")
    assert result.ok and result.output == "parent"


# --- Isolation from the worker ------------------------------------------------------

def test_the_step_environment_holds_none_of_the_workers_secrets(monkeypatch):
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    fresh = SandboxPool(size=0)  # its child starts now, while this process holds the variables
    result = fresh.run_step("import os\nreturn dict(os.environ)", step_name="env", limits=StepLimits(timeout_s=10))
    assert result.ok, result.error
    assert set(result.output) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PWD", "AWS_EC2_METADATA_DISABLED"}
    assert not any(secret in json.dumps(result.output) for secret in WORKER_SECRETS.values())


def test_a_waiting_child_holds_no_secret_before_its_request(monkeypatch):
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    fresh = SandboxPool(size=1)
    fresh.warm()
    try:
        deadline = time.monotonic() + 5
        while not fresh.ready_pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        (top,) = fresh.ready_pids()
        family = descendants(top) | {top}
        while len(family) < 3 and time.monotonic() < deadline:  # bwrap, its init in the namespace, python
            time.sleep(0.01)
            family = descendants(top) | {top}
        assert len(family) >= 3
        for pid in family:
            held = Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
            assert not any(secret.encode() in held for secret in WORKER_SECRETS.values()), pid
    finally:
        fresh.shutdown()


# Looks for params.needle where a step can look: its environment, every /proc/*/environ and
# cmdline it may read, and files under / (breadth first, so /etc and the tops of the
# Python trees come before deep site-packages; bounded as a real probe would be).
SEARCH_FOR_NEEDLE = """import os
needle = params.needle.encode()
found = [name for name, value in os.environ.items() if needle in f"{name}={value}".encode()]
for entry in os.listdir('/proc'):
    if entry.isdigit() or entry in ('self', 'thread-self'):
        for name in ('environ', 'cmdline'):
            try:
                with open(f'/proc/{entry}/{name}', 'rb') as f:
                    if needle in f.read():
                        found.append(f'/proc/{entry}/{name}')
            except OSError:
                pass
files, queue = 0, ['/']
while queue and files < 5000:
    for item in sorted(os.scandir(queue.pop(0)), key=lambda e: e.name):
        if item.path in ('/proc', '/sys', '/dev', '/usr') or files >= 5000:
            continue
        try:
            if item.is_dir(follow_symlinks=False):
                queue.append(item.path)
            elif item.is_file(follow_symlinks=False) and item.stat().st_size < 1024 * 1024:
                files += 1
                with open(item.path, 'rb') as f:
                    if needle in f.read():
                        found.append(item.path)
        except OSError:
            pass
return {'found': found, 'files': files}
"""


def test_a_step_cannot_find_the_apps_database_password_anywhere(monkeypatch):
    password = f"app-db-password-{uuid.uuid4().hex}"
    monkeypatch.setenv("DATABASE_URL", f"postgresql://credtool:{password}@127.0.0.1:5432/credtool")
    fresh = SandboxPool(size=1)  # its child starts now, while this process holds DATABASE_URL
    assert fresh.warm(wait_s=20)
    try:
        result = fresh.run_step(SEARCH_FOR_NEEDLE, step_name="search", params={"needle": password},
                                limits=StepLimits(timeout_s=60))
    finally:
        fresh.shutdown()
    assert result.ok, result.error
    assert result.output["found"] == []
    assert result.output["files"] > 500, "the search should have read a good part of what the step can see"


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_the_worker_process_is_invisible_and_the_step_is_unprivileged(pool):
    code = ("import os\nprocs = {p: open(f'/proc/{p}/cmdline').read().split('\\0')[0] for p in os.listdir('/proc')"
            " if p.isdigit()}\n"
            "def readable(path):\n    try:\n        open(path).read()\n        return True\n    except OSError:\n"
            "        return False\n"
            f"status = open('/proc/self/status').read()\n"
            f"return {{'procs': procs, 'worker': readable('/proc/{os.getpid()}/environ'),"
            " 'init': readable('/proc/1/environ'), 'uid': os.getuid(), 'gid': os.getgid(),"
            " 'caps': [l for l in status.splitlines() if l.startswith(('CapEff', 'CapPrm', 'NoNewPrivs'))]}")
    result = run(pool, code)
    assert result.ok, result.error
    assert set(result.output["procs"].values()) <= {"bwrap", sys.executable}, result.output["procs"]
    assert len(result.output["procs"]) <= 3
    assert result.output["worker"] is False and result.output["init"] is False
    assert result.output["uid"] != 0 and result.output["gid"] != 0
    assert result.output["caps"] == ["CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "NoNewPrivs:\t1"]


def test_the_project_tree_and_its_database_cannot_be_read(pool):
    database = ROOT / f"db-sandbox-probe-{uuid.uuid4().hex[:8]}.sqlite3"
    database.write_text("not for steps")
    try:
        paths = [ROOT / "manage.py", database, ROOT / "credtool" / "settings.py", Path("/etc/shadow")]
        assert all(p.read_bytes() for p in paths)  # readable here, by the worker
        for path in paths:
            result = run(pool, f"return open({str(path)!r}).read()")
            assert not result.ok and result.error.type == "FileNotFoundError", (path, result)
        listing = run(pool, "import os\ndef ls(path):\n    try:\n        return sorted(os.listdir(path))\n"
                      "    except FileNotFoundError:\n        return None\n"
                      f"return [ls({str(ROOT)!r}), ls('/root'), ls('/etc')]")
        project, home, etc = listing.output
        assert (project, home) == (python_entries_in(ROOT), python_entries_in(Path("/root")))
        assert "shadow" not in etc and set(etc) <= {Path(p).parts[2] for p in launch.ETC_FILES}
    finally:
        database.unlink()


def python_entries_in(directory: Path) -> list[str] | None:
    """What a step sees in ``directory``: only the Python installation and the virtualenv, which the
    sandbox binds (with their parents) from where they really are; None when neither is below it.

    A venv at ROOT/.venv made from pyenv's Python under /root shows ``[".venv"]`` and ``[".pyenv"]``;
    one made from Debian's /usr/bin/python3 in /tmp shows neither directory at all.
    """
    prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), os.path.abspath(sys.prefix)}
    entries = {Path(prefix).relative_to(directory).parts[0] for prefix in prefixes
               if Path(prefix) != directory and Path(prefix).is_relative_to(directory) and prefix != "/usr"
               and not prefix.startswith("/usr/")}
    return sorted(entries) or None


def test_the_apps_settings_cannot_be_imported(pool):
    assert run(pool, "import credtool.settings").error.type == "ModuleNotFoundError"
    result = run(pool, "from django.conf import settings\nreturn settings.SECRET_KEY")
    assert result.error.type == "ImproperlyConfigured"


def test_python_and_its_packages_are_read_only(pool):
    result = run(pool, "import boto3, os\nopen(os.path.join(os.path.dirname(boto3.__file__), 'x.py'), 'w')")
    assert result.error.type in ("OSError", "PermissionError") and "Read-only" in result.error.message


def test_the_working_directory_is_an_empty_temp_dir_of_its_own(pool):
    first = run(pool, "import os\nopen('left-behind', 'w').write('x')\nreturn [os.getcwd(), os.listdir('.')]")
    assert first.output == [launch.WORK_DIR, ["left-behind"]]
    assert run(pool, "import os\nreturn os.listdir('.')").output == []


# --- What steps are for -------------------------------------------------------------

@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=url,
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_secret(Name="postgresSecrets", SecretString=json.dumps({"host": "db", "password": "pw"}))
    yield url
    server.stop()


def test_boto3_reads_a_secret_as_the_product_example_does(pool, moto_url):
    code = ('import boto3, json\nclient = boto3.session.Session().client(service_name="secretsmanager", '
            'region_name="us-east-1",\n    aws_access_key_id=Env.aws_access_key_id, '
            'aws_secret_access_key=Env.aws_secret_access_key, endpoint_url=params.endpoint)\n'
            'secret = client.get_secret_value(SecretId="postgresSecrets")["SecretString"]\nreturn json.loads(secret)')
    env = {"CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": "test", "CREDTOOL_APP_ENV_AWS_SECRET_ACCESS_KEY": "test"}
    result = run(pool, code, env=env, params={"endpoint": moto_url})
    assert result.ok, (result.error, result.stderr)
    assert result.output == {"host": "db", "password": "pw"}


def test_a_missing_secret_reports_the_aws_error(pool, moto_url):
    code = ('import boto3\nc = boto3.client("secretsmanager", region_name="us-east-1", aws_access_key_id="t",'
            f' aws_secret_access_key="t", endpoint_url={moto_url!r})\nreturn c.get_secret_value(SecretId="nope")')
    result = run(pool, code)
    assert (result.error.type, result.error.line) == ("ResourceNotFoundException", 3)


def test_name_resolution_and_tls_certificates_work(pool):
    code = ("import socket, ssl, botocore.httpsession as h\n"
            "return [socket.getaddrinfo('localhost', 443)[0][4][0] in ('127.0.0.1', '::1'),"
            " ssl.create_default_context().cert_store_stats()['x509_ca'] > 0,"
            " len(open(h.DEFAULT_CA_BUNDLE).read()) > 1000]")
    assert run(pool, code).output == [True, True, True]


# --- The network --------------------------------------------------------------------

@pytest.fixture
def local_port() -> Iterator[int]:
    """A TCP port listening on 127.0.0.1, in the worker's network namespace."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


TRY_THE_NETWORK = """import socket
def attempt(action):
    try:
        action()
        return 'ok'
    except OSError as exc:
        return type(exc).__name__
tried = {'local': attempt(lambda: socket.create_connection(('127.0.0.1', params.port), timeout=3).close()),
         'interfaces': sorted(name for _, name in socket.if_nameindex())}
if params.everything:
    tried['resolve'] = attempt(lambda: socket.getaddrinfo('secretsmanager.us-east-1.amazonaws.com', 443))
    tried['outside'] = attempt(lambda: socket.create_connection(('1.1.1.1', 443), timeout=3).close())
return tried
"""


def test_by_default_a_step_can_reach_a_port_on_the_worker_host(pool, local_port):
    result = run(pool, TRY_THE_NETWORK, params={"port": local_port, "everything": False})
    assert result.ok, result.error
    assert result.output["local"] == "ok"


def test_with_network_none_a_step_reaches_nothing_but_its_own_loopback(monkeypatch, local_port):
    monkeypatch.setenv("CREDTOOL_SANDBOX_NETWORK", "none")
    found = launch.detect()
    assert launch.isolation_status(found).endswith("; with no network but their own loopback")
    result = SandboxPool(size=0, isolation=found).run_step(
        TRY_THE_NETWORK, step_name="net", params={"port": local_port, "everything": True},
        limits=StepLimits(timeout_s=20))
    assert result.ok, result.error
    assert result.output == {"local": "ConnectionRefusedError", "interfaces": ["lo"],
                             "resolve": "gaierror", "outside": "OSError"}, result.output


def test_network_none_without_bubblewrap_refuses_steps():
    fallback = launch.plain_process("bubblewrap is switched off for this test", network="none")
    result = SandboxPool(size=0, isolation=fallback).run_step("return 1", step_name="net",
                                                              limits=StepLimits(timeout_s=10))
    assert (result.ok, result.error.type) == (False, "SandboxError")
    assert "CREDTOOL_SANDBOX_NETWORK=none needs bubblewrap" in result.error.message


# --- Settings -----------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("CREDTOOL_SANDBOX_NETWORK", "off"), ("CREDTOOL_SANDBOX_CGROUPS", "yes"),
    ("CREDTOOL_SANDBOX_UIDS", "3100000"), ("CREDTOOL_SANDBOX_UIDS", "0-63"),
    ("CREDTOOL_SANDBOX_UIDS", "3100063-3100000"), ("CREDTOOL_SANDBOX_UIDS", "900-1100"),  # 999: credtool-sandbox
])
def test_a_bad_sandbox_setting_fails_loudly_at_first_use(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(launch, "_detected", None)  # as in a worker that has not used the sandbox yet
    with pytest.raises(ValueError, match=name):
        sandbox.isolation()
    with pytest.raises(ValueError, match=name):  # and every time after, until it is fixed
        sandbox.isolation_status()


def test_without_cgroups_each_running_step_has_a_uid_of_its_own_from_the_setting(uids_pool, monkeypatch):
    status = launch.isolation_status(uids_pool.isolation)
    assert status.startswith("workflow steps run in bubblewrap, each as its own uid from 3100000-3100063, "
                             "without a cgroup per step (switched off by CREDTOOL_SANDBOX_CGROUPS=off)")
    assert 3_100_000 <= run(uids_pool, "import os\nreturn os.getuid()").output <= 3_100_063
    monkeypatch.setenv("CREDTOOL_SANDBOX_CGROUPS", "off")
    monkeypatch.setenv("CREDTOOL_SANDBOX_UIDS", "3100100-3100101")
    narrow = SandboxPool(size=0, isolation=launch.detect())
    with ThreadPoolExecutor(2) as threads:
        uids = list(threads.map(lambda _: narrow.run_step("import os, time\ntime.sleep(0.5)\nreturn os.getuid()",
                                                          step_name="uid").output, range(2)))
    assert sorted(uids) == [3_100_100, 3_100_101]


# --- The pool -----------------------------------------------------------------------

def test_the_pool_hands_each_process_out_once(pool):
    assert pool.warm(wait_s=20)
    prestarted = set(pool.ready_pids())
    results = [run(pool, "return 1") for _ in range(4)]
    pids = [r.pid for r in results]
    assert all(r.ok for r in results) and len(set(pids)) == 4
    assert pids[0] in prestarted
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # used once, then stopped
    with ThreadPoolExecutor(6) as threads:
        parallel = list(threads.map(lambda i: run(pool, f"return {i}"), range(6)))
    assert [r.output for r in parallel] == list(range(6))
    assert len({r.pid for r in parallel} | set(pids)) == 10
    assert len(set(pool.handed_out)) == len(pool.handed_out)


def test_a_prestarted_child_has_boto3_imported_before_the_request(pool):
    # What makes a pooled step fast (timings belong to make bench): the heavy
    # imports happened while the child waited, not on the step's clock.
    assert pool.warm(wait_s=20)
    result = run(pool, "import sys\nreturn 'boto3' in sys.modules and 'botocore.session' in sys.modules")
    assert result.ok and result.output is True


def test_without_bubblewrap_steps_still_run_with_a_cleared_environment(monkeypatch):
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    fallback = launch.plain_process("bubblewrap is switched off for this test")
    assert "plain processes" in fallback.warning
    plain = SandboxPool(size=0, isolation=fallback)
    result = plain.run_step("import os\nopen('x', 'w').write('1')\nreturn [os.getcwd(), dict(os.environ)]",
                            step_name="plain", limits=StepLimits(timeout_s=10))
    assert result.ok, result.error
    workdir, environ = result.output
    assert Path(workdir).name.startswith("credtool-step-") and not Path(workdir).exists()
    assert not any(secret in json.dumps(environ) for secret in WORKER_SECRETS.values())
    slow = plain.run_step("import time\ntime.sleep(30)", step_name="plain", limits=StepLimits(timeout_s=1))
    assert slow.timed_out
    # A child left behind holds the result pipe open: the step's end, not EOF, must end the wait.
    marker = "ctp" + uuid.uuid4().hex[:8]
    started = time.monotonic()
    orphaning = plain.run_step(f"import os, time\nif os.fork() == 0:\n    {name_self(marker).replace(chr(10), '; ')}"
                               "time.sleep(30)\nreturn 'done'", step_name="plain", limits=StepLimits(timeout_s=20))
    assert orphaning.output == "done" and time.monotonic() - started < 15
    assert wait_gone(marker) == set()


@pytest.mark.parametrize("confinement", ["cgroups", "uids"])
def test_without_bubblewrap_a_process_the_step_moved_to_its_own_session_is_killed_too(confinement, monkeypatch):
    # No PID namespace here, and killing the process group misses a setsid() child: the
    # step's cgroup (or its uid of its own) is what finds it.
    if confinement == "cgroups":
        needs_cgroups()
        found = replace(launch.plain_process("bubblewrap is switched off for this test"),
                        cgroups=sandbox.isolation().cgroups)
    else:
        monkeypatch.setenv("CREDTOOL_SANDBOX_CGROUPS", "off")
        per_step = launch.detect().uids
        found = launch.plain_process("bubblewrap is switched off for this test", uids=per_step)
        if found.uids is None:
            pytest.skip(found.warning)  # Python unreadable to other users (pyenv under /root): runs as root
    marker = "cts" + uuid.uuid4().hex[:8]
    code = (f"import ctypes, os, time\nif os.fork() == 0:\n    os.setsid()\n"
            f"    ctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\n    time.sleep(30)\n    os._exit(0)\n"
            "time.sleep(0.5)\nreturn os.getuid()")
    with Watch(marker) as watch:
        result = SandboxPool(size=0, isolation=found).run_step(code, step_name="plain", limits=StepLimits(timeout_s=10))
    assert result.ok, result.error
    assert watch.seen, "the step's child should have been running"
    # With a cgroup the worker waits until they are gone; a uid's are SIGKILLed, and the
    # kernel ends them within milliseconds.
    assert alive(marker, within_s=0 if confinement == "cgroups" else 1) == set(), \
        "no process of the step may outlive its result"


def test_app_env_from_picks_only_credtool_app_env_variables():
    assert sandbox.app_env_from({"CREDTOOL_APP_ENV_X": "1", "SECRET_KEY": "s", "CREDTOOL_DEBUG": "1"}) == {
        "CREDTOOL_APP_ENV_X": "1"}
