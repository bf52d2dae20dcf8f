"""A cgroup per step, so its limits hold for all of its processes together (pure: no Django).

RLIMIT_AS bounds one process and RLIMIT_NPROC counts a whole uid: a step that
forks ten 300 MB children passes the first, and all steps share the second.
Here the worker gives every child a cgroup of its own, made before the child
starts and killed and removed after it, with

- a memory limit for every process of the step together (v2 ``memory.max``;
  v1 ``memory.limit_in_bytes`` and, where swap is accounted, ``memory.memsw.*``);
- a process and thread limit (``pids.max``), so its forks touch no other step;

and every step sits under one parent, ``credtool-steps``, whose CPU weight is a
quarter of the default (v2 ``cpu.weight``, v1 ``cpu.shares``): when the CPU is
busy, all steps together yield to the worker's own threads. The weight is the
parent's, not each step's, for two reasons: per step, eight busy steps would
together outweigh the worker again; and removing a used per-step CPU cgroup takes
1-12 ms on this kernel (the scheduler's group teardown waits for RCU), where
memory and pids take 0.1 ms.

The step's processes join before bwrap starts: a tiny ``/bin/sh`` runs first,
writes its own pid into each ``cgroup.procs``, then execs bwrap
(``subprocess.Popen`` in a threaded worker has no safe hook between fork and
exec, and bwrap forks at once, so writing the pid after Popen would race).
An OOM kill inside the cgroup is read from its counter (v2 ``memory.events``,
v1 ``memory.oom_control``), so a step whose child was killed fails even when
its main process returns.

After the step, every process in the cgroup is killed before the worker goes on;
the empty directories are removed a moment later by a background thread, because
rmdir waits on the kernel's global cgroup lock, which another child joining its
cgroup at that moment holds for milliseconds (measured: 1-15 ms per step here).

Layout: ``<the worker's cgroup>/credtool-steps/step-<pid>-<start>-<n>`` in the
memory and pids hierarchies on v1 (and ``credtool-steps`` itself for cpu); on v2,
where a cgroup that holds processes cannot hand memory to children,
``credtool-steps`` sits beside the worker's cgroup (or under the root).
``<pid>-<start>`` names the worker process (its start time guards against pid
reuse), so leftovers of a dead worker can be told from groups in use.
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PARENT = "credtool-steps"
PREFIX = "step-"
MB = 1024 * 1024
# v2's scale (default 100); v1's cpu.shares is the same fraction of 1024. Only
# matters when the CPU is busy: then all steps together get a quarter of what a
# default sibling (the worker) gets, and an idle worker still leaves them all of it.
CPU_WEIGHT = 25
DEFAULT_CPU_WEIGHT = 100
# Until its request a child only imports boto3 (~50 MB, one thread, plus bwrap's two
# processes): generous bounds for that; the step's own limits are set at request time.
STARTUP_MEMORY_MB = 512
STARTUP_PIDS = 16
# Joins the cgroup.procs files given as arguments, then execs the rest: every process
# of the step, bwrap's first fork included, is born inside the step's cgroup. A failed
# write ends the launcher (exit 125) before anything of the step runs.
JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"'
KILL_WITHIN_S = 2.0

_counter = itertools.count(1)


@dataclass(frozen=True)
class Cgroups:
    """Where this machine lets the worker make step cgroups: ``parents`` maps memory and
    pids to their ``credtool-steps`` directory (one directory on v2); ``cpu`` is the group
    every step's processes share for the CPU weight (on v2 the same parent), if any."""

    version: int
    parents: dict[str, Path]
    cpu: Path | None = None

    def describe(self) -> str:
        return f"v{self.version}: memory, pids" + (", cpu" if self.cpu is not None else "")

    def create(self) -> StepGroup:
        """A fresh, empty step cgroup with start-up limits (raised per step by ``StepGroup.allow``)."""
        name = f"{PREFIX}{os.getpid()}-{_start_time(os.getpid())}-{next(_counter)}"
        # v1 hierarchies are separate trees: joining the step's memory and pids groups
        # leaves the process in the worker's cpu group, so it joins the steps' one too.
        shared = [self.cpu] if self.version == 1 and self.cpu is not None else []
        group = StepGroup(self.version, {controller: parent / name for controller, parent in self.parents.items()},
                          shared)
        try:
            for directory in group.directories:
                directory.mkdir()
                group.made.append(directory)
            group.set_memory(STARTUP_MEMORY_MB * MB)
            _write(group.dirs["pids"] / "pids.max", STARTUP_PIDS)
            if self.version == 2:
                memory = group.dirs["memory"]
                _write_if_present(memory / "memory.swap.max", 0)  # the limit is RAM, not RAM plus swap
                _write_if_present(memory / "memory.oom.group", 1)  # an OOM kill takes the whole step
        except BaseException:
            group.remove()
            raise
        return group

    def remove_leftovers(self) -> int:
        """Kill and remove the step cgroups of worker processes that are gone; returns how many."""
        removed = 0
        names = set()
        for parent in self.parents.values():
            try:
                names |= {entry.name for entry in os.scandir(parent) if entry.name.startswith(PREFIX)}
            except OSError:
                continue
        for name in sorted(names):
            owner = _owner(name)
            if owner is None or _start_time(owner[0]) == owner[1]:
                continue  # not ours to judge, or its worker is alive (and may be using it)
            group = StepGroup(self.version, {c: p / name for c, p in self.parents.items()})
            group.made = [d for d in group.directories if d.is_dir()]
            if group.remove():
                removed += 1
        return removed


@dataclass
class StepGroup:
    """One step's cgroup (one directory per hierarchy on v1). Made by ``Cgroups.create``;
    ``discard`` (or ``remove``) when the step is over, whatever happened."""

    version: int
    dirs: dict[str, Path]  # memory and pids: this step's own directories
    shared: list[Path] = field(default_factory=list)  # groups it joins but does not own (v1: cpu)
    made: list[Path] = field(default_factory=list)  # those of ``dirs`` that exist
    memory_limit: int | None = None  # as last set, so raising it needs no read

    @property
    def directories(self) -> list[Path]:
        return list(dict.fromkeys(self.dirs.values()))

    @property
    def procs_files(self) -> list[str]:
        return [str(directory / "cgroup.procs") for directory in self.directories + self.shared]

    def launcher(self, argv: list[str]) -> list[str]:
        """``argv`` behind the shell that joins this cgroup first (see JOIN)."""
        return ["/bin/sh", "-c", JOIN, "credtool-join", str(len(self.procs_files)), *self.procs_files, *argv]

    def join(self, pid: int) -> None:
        """Move ``pid`` in: only for a process that has started nothing yet (the plain fallback)."""
        for path in self.procs_files:
            _write(Path(path), pid)

    def allow(self, memory_mb: int, processes: int) -> None:
        """The step's own limits, set before its request is sent.

        Memory: what the waiting child already holds (its imports) plus ``memory_mb``, so
        the step has all of its allowance. Processes: the step's own process counts as one
        of ``processes``, as it did under RLIMIT_NPROC; bwrap's two processes do not.
        """
        memory = self.dirs["memory"]
        used = _read_int(memory / ("memory.current" if self.version == 2 else "memory.usage_in_bytes"))
        self.set_memory(used + memory_mb * MB)
        pids = self.dirs["pids"]
        _write(pids / "pids.max", _read_int(pids / "pids.current") + max(processes, 1) - 1)

    def set_memory(self, limit: int) -> None:
        memory = self.dirs["memory"]
        if self.version == 2:
            _write(memory / "memory.max", limit)
        else:
            # v1 requires memsw.limit >= limit at every moment: raise memsw first, lower it last.
            # (memsw exists only where swap is accounted; its absence is the one expected error.)
            memsw = memory / "memory.memsw.limit_in_bytes"
            raising = self.memory_limit is not None and limit >= self.memory_limit  # None: unlimited
            if raising:
                _write_if_present(memsw, limit)
            _write(memory / "memory.limit_in_bytes", limit)
            if not raising:
                _write_if_present(memsw, limit)
        self.memory_limit = limit

    def oom_kills(self) -> int:
        """How many processes the kernel has killed in this cgroup for want of memory."""
        path = self.dirs["memory"] / ("memory.events" if self.version == 2 else "memory.oom_control")
        match = re.search(r"^oom_kill (\d+)$", path.read_text(), re.MULTILINE)
        return int(match.group(1)) if match else 0

    def pids(self) -> set[int]:
        """The processes in the cgroup. One hierarchy tells: a process joins all of them or
        (its launcher failing) ends before it runs anything."""
        for directory in self.made:
            try:
                return {int(line) for line in (directory / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                continue
        return set()

    def kill(self) -> bool:
        """SIGKILL every process in the cgroup until none is left; False if some outlive it."""
        deadline = time.monotonic() + KILL_WITHIN_S
        pause = 0.0002
        # pids.max bounds what a fork race can add, so a few passes empty it.
        while pids := self.pids():
            if time.monotonic() > deadline:
                log.warning("step cgroup %s: processes %s outlived SIGKILL", self.made[0].name, sorted(pids))
                return False
            if self.version == 2:
                _write_if_present(self.made[0] / "cgroup.kill", 1, quiet=True)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(pause)  # a killed process leaves once its memory is torn down: ~1 ms
            pause = min(pause * 2, 0.01)
        return True

    def discard(self) -> None:
        """Kill every process now; remove the directories in the background (see the module's doc)."""
        self.kill()
        _reaper.put(self)

    def remove(self) -> bool:
        """Kill what is left, and remove the directories; False (and logged) if they stay."""
        deadline = time.monotonic() + KILL_WITHIN_S
        self.kill()
        for directory in list(reversed(self.made)):
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY: a killed process is still on its way out
                    if time.monotonic() > deadline:
                        log.warning("could not remove step cgroup %s: %s", directory, exc)
                        return False
                    self.kill()
                    time.sleep(0.0005)
            self.made.remove(directory)
        return True


class _Reaper:
    """The background thread that removes discarded step cgroups (one per process, started lazily)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[StepGroup] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._pending = 0
        self._pid = 0

    def put(self, group: StepGroup) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked worker: threads do not survive fork
                self._pid, self._pending = os.getpid(), 0
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._run, args=(self._queue,), name="sandbox-cgroup-reaper",
                                 daemon=True).start()
            self._pending += 1
        self._queue.put(group)

    def _run(self, groups: queue.SimpleQueue[StepGroup]) -> None:
        while True:
            group = groups.get()
            try:
                group.remove()
            except Exception:
                log.exception("could not remove step cgroup %s", group.directories)
            with self._lock:
                self._pending -= 1
                self._lock.notify_all()

    def drain(self, timeout_s: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._pending <= 0 or self._pid != os.getpid(), timeout_s)


_reaper = _Reaper()


def drain(timeout_s: float = 5.0) -> bool:
    """Wait until every discarded step cgroup of this process is removed (at shutdown)."""
    return _reaper.drain(timeout_s)


def detect(setting: str = "auto") -> tuple[Cgroups | None, str]:
    """``(cgroups, "")`` when each step can have a cgroup on this machine, else ``(None, why not)``.

    Makes the ``credtool-steps`` parents, proves the whole path with one throwaway
    group (make it, start a process in it, kill, remove), and removes the leftovers
    of dead workers. ``setting`` is CREDTOOL_SANDBOX_CGROUPS: ``auto`` or ``off``.
    """
    if setting == "off":
        return None, "switched off by CREDTOOL_SANDBOX_CGROUPS=off"
    if os.geteuid() != 0:
        return None, "the worker is not root"
    try:
        found = locate(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        return None, f"cannot read this process's cgroups: {exc}"
    if isinstance(found, str):
        return None, found
    version, own = found
    try:
        groups = _prepare(version, own)
        probe = groups.create()
        try:
            done = subprocess.run(probe.launcher(["/bin/true"]), stdin=subprocess.DEVNULL, capture_output=True,
                                  env={"PATH": "/usr/bin:/bin"}, timeout=10)
        finally:
            probe.remove()
        if done.returncode != 0:
            raise OSError(done.stderr.decode(errors="replace").strip()[-200:] or f"exit code {done.returncode}")
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"cannot make cgroups (v{version}): {exc}"
    removed = groups.remove_leftovers()
    if removed:
        log.info("removed %d step cgroups left by workers that are gone", removed)
    return groups, ""


def locate(mountinfo: str, cgroup: str) -> tuple[int, dict[str, Path]] | str:
    """This process's own cgroup directory per controller, and the version to use, from the
    texts of /proc/self/mountinfo and /proc/self/cgroup; or a sentence saying why there is none.

    v2 when the unified hierarchy offers memory and pids; v1 when separate hierarchies do
    (cpu is optional either way). A hybrid machine whose v2 mount holds none of them is v1.
    """
    mounts: list[tuple[str, str, str, set[str]]] = []  # fstype, mount root, mount point, options
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash + 3 < len(fields) and fields[dash + 1] in ("cgroup", "cgroup2"):
            mounts.append((fields[dash + 1], _unescape(fields[3]), _unescape(fields[4]),
                           set(fields[dash + 3].split(","))))
    paths: dict[str, str] = {}  # controller ("" for v2) -> this process's path in that hierarchy
    for line in cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]

    def directory(fstype: str, controller: str) -> Path | None:
        path = paths.get(controller if fstype == "cgroup" else "")
        if path is None:
            return None
        for kind, root, point, options in mounts:
            if kind != fstype or (fstype == "cgroup" and controller not in options):
                continue
            relative = os.path.relpath(path, root)
            if not relative.startswith(".."):
                return Path(os.path.normpath(os.path.join(point, relative)))
        return None

    unified = directory("cgroup2", "")
    if unified is not None:
        try:
            offered = set((unified / "cgroup.controllers").read_text().split())
        except OSError:
            offered = set()
        if {"memory", "pids"} <= offered:
            return 2, {name: unified for name in ("memory", "pids", "cpu") if name in offered}
    own = {name: found for name in ("memory", "pids", "cpu") if (found := directory("cgroup", name)) is not None}
    if "memory" in own and "pids" in own:
        return 1, own
    return "no cgroup hierarchy here offers both memory and pids"


def _prepare(version: int, own: dict[str, Path]) -> Cgroups:
    """Make (or reuse) the ``credtool-steps`` parents and give them the lower CPU weight."""
    if version == 1:
        parents = {controller: own[controller] / PARENT for controller in ("memory", "pids")}
        for parent in parents.values():
            parent.mkdir(exist_ok=True)
        cpu = own["cpu"] / PARENT if "cpu" in own else None
        if cpu is not None:
            cpu.mkdir(exist_ok=True)
            _write(cpu / "cpu.shares", CPU_WEIGHT * 1024 // DEFAULT_CPU_WEIGHT)
        return Cgroups(1, parents, cpu)
    directory = own["memory"]
    # A v2 cgroup that holds processes cannot pass memory or pids on to children (only the
    # root may): our cgroup holds the worker, so the parent goes beside it, where the same
    # controllers are already enabled (they are in our cgroup.controllers). At the top of
    # what we can see (the root, or a container's namespace root) it goes below us.
    base = directory if os.path.ismount(directory) else directory.parent
    wanted = [name for name in ("memory", "pids", "cpu") if name in own]
    if base == directory:
        for name in wanted:
            _write_if_present(base / "cgroup.subtree_control", f"+{name}", quiet=True)
    parent = base / PARENT
    parent.mkdir(exist_ok=True)
    offered = set((parent / "cgroup.controllers").read_text().split())
    if not {"memory", "pids"} <= offered:
        raise OSError(f"{parent} is given no memory or pids controller: a v2 cgroup that holds processes "
                      "cannot pass them on (run the worker in a cgroup delegated to it, e.g. systemd Delegate=yes)")
    # Memory and pids per step; the CPU weight on the parent (every step below it) only.
    for name in ("memory", "pids"):
        _write(parent / "cgroup.subtree_control", f"+{name}")
    cpu = parent if "cpu" in offered else None
    if cpu is not None:
        _write(cpu / "cpu.weight", CPU_WEIGHT)
    return Cgroups(2, {"memory": parent, "pids": parent}, cpu)


def _owner(name: str) -> tuple[int, int] | None:
    match = re.fullmatch(rf"{PREFIX}(\d+)-(\d+)-\d+", name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; fields after ")" start at 3


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def _read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def _write(path: Path, value: object) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _write_if_present(path: Path, value: object, *, quiet: bool = False) -> None:
    try:
        _write(path, value)
    except FileNotFoundError:
        pass
    except OSError:
        if not quiet:
            raise
