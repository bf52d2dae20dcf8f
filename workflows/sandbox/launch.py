"""How a sandboxed interpreter is started: bubblewrap when it works, else a plain process.

The worker that calls us holds SECRET_KEY, DATABASE_URL, the Fernet keys and the
broker URL in its environment and memory, and can read the project tree. A child
started here gets none of that:

- a fresh interpreter by fork+exec (``subprocess.Popen``, no ``preexec_fn``),
  in a new session, with an environment of five fixed variables;
- under bubblewrap: new PID, IPC, UTS (and cgroup) namespaces, so the worker's
  ``/proc/<pid>`` is out of sight; a mount namespace holding only ``/usr``, a
  few files of ``/etc`` (DNS, TLS, users), the Python installation, the
  virtualenv, the two files of the child, a fresh ``/proc``, a minimal ``/dev``
  and an empty tmpfs as the working directory; ``no_new_privs`` and nosuid mounts.

Why no ``--unshare-user`` when we are root: bubblewrap maps the sandbox's user to
the caller's, so a root worker's steps would still be uid 0 to the kernel, where
RLIMIT_NPROC does not apply and every root-owned file in reach is the step's own.
Instead the child starts as root holding only CAP_SETUID/CAP_SETGID, imports its
modules, and when the request comes sets its limits and becomes the unprivileged
``credtool-sandbox`` user (which also makes an iptables owner match possible).
A non-root worker uses a user namespace, as bubblewrap intends.

What a step may use, across all of its processes: a root worker gives each child a
cgroup of its own (cgroups.py: memory for all the step's processes together,
pids.max, a CPU weight below the worker's), made before the child starts and
killed and removed after it. Where the machine offers no such cgroup, each running
step gets a uid of its own instead (uids.py), so that at least RLIMIT_NPROC counts
one step's processes. A non-root worker has neither: memory is limited per process
(RLIMIT_AS), and its steps share its user's process count.

Settings, from the environment, read at first use (a bad value raises ValueError):
- CREDTOOL_SANDBOX_NETWORK: ``on`` (default; steps must reach AWS) or ``none``
  (bubblewrap's --unshare-net: a step has its own loopback and nothing else);
- CREDTOOL_SANDBOX_CGROUPS: ``auto`` (default: a cgroup per step where possible) or ``off``;
- CREDTOOL_SANDBOX_UIDS: the fallback's uids, default ``3100000-3100063``.
"""
from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from . import cgroups, uids
from .cgroups import Cgroups, StepGroup
from .uids import Lease, UidPool

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CHILD = HERE / "child.py"
OUTPUTS = HERE.parent / "outputs.py"
SANDBOX_USER = "credtool-sandbox"  # created by `make system-packages`
NOBODY = 65534
NETWORK_SETTING = "CREDTOOL_SANDBOX_NETWORK"
CGROUPS_SETTING = "CREDTOOL_SANDBOX_CGROUPS"
# Not /tmp: the project (and the virtualenv bound into the sandbox) may itself live
# under /tmp, as in a CI clone, and the working directory must be empty.
WORK_DIR = "/step"
WORK_DIR_BYTES = 64 * 1024 * 1024
# /etc pieces that name resolution, TLS and user lookups read; nothing else of /etc.
ETC_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
             "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/etc/ca-certificates", "/etc/localtime",
             "/etc/passwd", "/etc/group")
CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORK_DIR, "TMPDIR": WORK_DIR,
    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
    # botocore would otherwise fall back to the instance's role on EC2 when a step
    # gives no keys; a step's AWS identity must come from Env, explicitly.
    "AWS_EC2_METADATA_DISABLED": "true",
}


class SandboxUnavailable(RuntimeError):
    """No child can be started for a step; the message says why, for the step's error."""


@dataclass(frozen=True)
class Isolation:
    mode: str  # "bubblewrap" or "process"
    uid: int | None  # the user steps run as; None: the worker's own
    gid: int | None
    warning: str = ""
    network: str = "on"  # CREDTOOL_SANDBOX_NETWORK: "on" or "none"
    cgroups: Cgroups | None = None  # a cgroup per step, when the machine offers one
    uids: UidPool | None = None  # else a uid per running step, instead of ``uid``
    no_cgroups: str = ""  # why steps get no cgroup each


@dataclass
class Child:
    """A started sandbox process, and what goes with it: its work directory (plain mode),
    its cgroup, its uid lease (the fallback). ``stop`` ends and removes all of them."""

    process: subprocess.Popen
    workdir: Path | None = None
    cgroup: StepGroup | None = None
    lease: Lease | None = None
    uid: int | None = None  # who the step becomes at its request (bubblewrap; a plain child already is)
    gid: int | None = None
    # bubblewrap's PID namespace: when it ends, the kernel has killed every process in it.
    namespaced: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


_detected: Isolation | None = None
_detect_lock = threading.Lock()


def isolation() -> Isolation:
    """How steps are isolated on this machine: checked once per process, then cached.

    Raises ValueError for a bad CREDTOOL_SANDBOX_* setting (every time, until it is fixed).
    """
    global _detected
    with _detect_lock:
        if _detected is None:
            _detected = detect()
            if _detected.warning:
                log.warning("workflow sandbox: %s", _detected.warning)
            elif _detected.cgroups is None:
                log.warning("workflow sandbox: %s", _resources(_detected))
        return _detected


def isolation_status(found: Isolation | None = None) -> str:
    """One line for start-up logs: how steps are isolated and limited, or the warning to show."""
    found = found or isolation()
    if found.warning:
        head = found.warning
    elif found.uids is not None:
        head = f"workflow steps run in bubblewrap, each as its own uid from {found.uids.describe()}"
    elif found.uid is None:
        head = "workflow steps run in bubblewrap, as the worker's user mapped into a user namespace"
    else:
        head = f"workflow steps run in bubblewrap as {_user_name(found.uid)} (uid {found.uid})"
    network = "; with no network but their own loopback" if found.network == "none" else ""
    return f"{head}, {_resources(found)}{network}"


def _resources(found: Isolation) -> str:
    """What bounds a step's processes together, and what is missing."""
    if found.cgroups is not None:
        return f"in a cgroup per step ({found.cgroups.describe()})"
    missing = f"without a cgroup per step ({found.no_cgroups}): a step's memory is limited per process only"
    if found.uids is not None:
        return f"{missing}, and its uid of its own bounds its processes"
    if found.uid is None and os.geteuid() == 0:
        return f"{missing}, and no process limit applies to root"
    return f"{missing}, and its processes count against the worker user's process limit"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def sandbox_ids() -> tuple[int | None, int | None]:
    """The unprivileged user a root worker's steps become; None when the worker is not root."""
    if os.geteuid() != 0:
        return None, None
    try:
        entry = pwd.getpwnam(SANDBOX_USER)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        # nobody works, but shares its process count (RLIMIT_NPROC) with other daemons.
        return NOBODY, NOBODY


def setting(name: str, default: str, allowed: tuple[str, ...]) -> str:
    """An environment setting that must be one of ``allowed``; ValueError names it and the choices."""
    value = os.environ.get(name, "").strip().lower() or default
    if value not in allowed:
        raise ValueError(f"{name} must be one of: {', '.join(allowed)} (not {os.environ[name]!r})")
    return value


def detect() -> Isolation:
    """Work out now how steps are isolated here (``isolation()`` caches it); ValueError on a bad setting.

    Also makes the step cgroups' parents and removes step cgroups left by dead workers.
    """
    network = setting(NETWORK_SETTING, "on", ("on", "none"))
    use_cgroups = setting(CGROUPS_SETTING, "auto", ("auto", "off"))
    uid_range = uids.from_environ(os.environ)
    groups, no_cgroups = cgroups.detect(use_cgroups)
    # Only root can hand out uids; with cgroups, pids.max already keeps steps apart.
    per_step = uids.pool(uid_range) if groups is None and os.geteuid() == 0 else None
    return replace(_launcher(network, per_step), cgroups=groups, no_cgroups=no_cgroups)


def _launcher(network: str, per_step: UidPool | None) -> Isolation:
    uid, gid = sandbox_ids()
    if shutil.which("bwrap"):
        probe = Isolation("bubblewrap", uid, gid, network=network, uids=per_step)
        try:
            done = subprocess.run(bwrap_argv(probe) + [sys.executable, "-I", "-c", "print(6 * 7)"],
                                  capture_output=True, env=CHILD_ENV, timeout=30)
            if done.returncode == 0 and done.stdout.strip() == b"42":
                return probe
            reason = done.stderr.decode(errors="replace").strip()[-300:] or f"exit code {done.returncode}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        return plain_process(f"bubblewrap failed to start ({reason})", network=network, uids=per_step)
    return plain_process("bubblewrap (bwrap) is not installed; install Debian's bubblewrap package",
                         network=network, uids=per_step)


def plain_process(why: str, *, network: str = "on", uids: UidPool | None = None) -> Isolation:
    """The fallback: a plain process with a cleared environment and limits, and a warning saying why.

    With ``network="none"`` steps are refused: only bubblewrap can take the network away.
    """
    if network == "none":
        return Isolation("process", None, None, f"{why}. {NETWORK_SETTING}=none needs bubblewrap, "
                         "so workflow steps are refused", network=network)
    uid, gid = sandbox_ids()
    if uid is not None and not _reachable_by_others(_prefixes()):
        # The unprivileged user could not even start Python (e.g. pyenv under a 0700 /root).
        return Isolation("process", None, None, f"{why}. Workflow steps run in plain processes AS ROOT: "
                         "they can read the project's files and the worker's /proc entries")
    if uid is None:
        who = "as the worker's user, so they can read the worker's /proc entries and"
    elif uids is not None:
        who = f"each as its own uid from {uids.describe()}, but"
    else:
        who = f"as {_user_name(uid)}, but"
    return Isolation("process", uid, gid, f"{why}. Workflow steps run in plain processes {who} "
                     "can read every world-readable file, including the project's source", uids=uids)


def _prefixes() -> list[str]:
    """The Python installation and the virtualenv: what the child must be able to read."""
    found = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), os.path.abspath(sys.prefix)}
    return sorted(p for p in found if not p.startswith("/usr/") and p != "/usr")


def _reachable_by_others(paths: list[str]) -> bool:
    for path in paths:
        for directory in [Path(path), *Path(path).parents]:
            try:
                if not os.stat(directory).st_mode & stat.S_IXOTH:
                    return False
            except OSError:
                return False
    return True


def bwrap_argv(found: Isolation) -> list[str]:
    """bwrap and its options, up to (not including) the command."""
    argv = ["bwrap", "--die-with-parent", "--new-session",
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if found.network == "none":
        argv.append("--unshare-net")  # a network namespace of its own: loopback, nothing else
    if os.geteuid() == 0:
        # Enough to drop to the sandbox user later, nothing more.
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
    # The tmpfs comes before the binds: a bind under its path lands on top of it, not under it.
    argv += ["--perms", "01777", "--size", str(WORK_DIR_BYTES), "--tmpfs", WORK_DIR]
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    # bwrap makes the missing parents of a bind 0700 and root-owned: the step, once
    # unprivileged, could not reach them, so every parent is made 0755 first.
    made: set[str] = set()

    def parents(path: str) -> list[str]:
        args = []
        for parent in reversed(Path(path).parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        return args

    for path in ETC_FILES:
        if os.path.exists(path):
            argv += parents(path) + ["--ro-bind", path, path]
    for prefix in _prefixes():
        argv += parents(prefix) + ["--ro-bind", prefix, prefix]
    return argv + [
        "--proc", "/proc", "--dev", "/dev",
        *parents("/sandbox/child.py"),
        "--ro-bind", str(CHILD), "/sandbox/child.py", "--ro-bind", str(OUTPUTS), "/sandbox/outputs.py",
        "--chdir", WORK_DIR, "--clearenv",
        *[arg for name, value in CHILD_ENV.items() for arg in ("--setenv", name, value)],
    ]


def spawn(found: Isolation) -> Child:
    """Start one child: it imports its modules, says it is ready, and waits for one request.

    Its cgroup (if any) holds it from its first instruction; its uid (the fallback) is
    its own until ``stop``. Raises SandboxUnavailable when no child can be started.
    """
    if found.mode == "process" and found.network == "none":
        raise SandboxUnavailable(found.warning)
    try:
        lease = found.uids.take() if found.uids is not None else None
    except uids.NoFreeUid as exc:
        raise SandboxUnavailable(str(exc)) from exc
    uid, gid = (lease.uid, lease.uid) if lease is not None else (found.uid, found.gid)
    group: StepGroup | None = None
    workdir: Path | None = None
    try:
        group = found.cgroups.create() if found.cgroups is not None else None
        if found.mode == "bubblewrap":
            argv = bwrap_argv(found) + [sys.executable, "-I", "/sandbox/child.py", "/sandbox/outputs.py"]
            if group is not None:
                argv = group.launcher(argv)  # bwrap forks at once: join before it starts
            return Child(_popen(argv, cwd="/", env=CHILD_ENV), None, group, lease, uid, gid, namespaced=True)
        workdir = Path(tempfile.mkdtemp(prefix="credtool-step-"))
        if uid is not None:
            os.chown(workdir, uid, gid if gid is not None else uid)
        env = {**CHILD_ENV, "HOME": str(workdir), "TMPDIR": str(workdir)}
        # Popen changes user in C between fork and exec: safe in a threaded worker.
        user = {"user": uid, "group": gid, "extra_groups": []} if uid is not None else {}
        child = Child(_popen([sys.executable, "-I", str(CHILD), str(OUTPUTS)], cwd=str(workdir), env=env, **user),
                      workdir, group, lease, uid, gid)
    except BaseException:
        _release(group, lease, workdir, namespaced=False)
        raise
    if group is not None:
        try:
            # Already running as the step's user, so it could not join by itself. Safe
            # after Popen here: a plain child starts nothing before its request, which
            # is sent only after this.
            group.join(child.pid)
        except BaseException:
            stop(child)
            raise
    return child


def _popen(argv: list[str], *, cwd: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=cwd, env=env, start_new_session=True, close_fds=True, **kwargs)


def kill_tree(child: Child) -> None:
    """SIGKILL the child and every process of its step, now; any thread may call it (a cancel),
    until ``stop`` has reaped the child. ``stop`` still reaps, removes and gives back."""
    try:
        # The process group: the child itself, or bwrap (whose death tears down the
        # whole PID namespace, --new-session processes included).
        os.killpg(child.process.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        child.process.kill()
    except ProcessLookupError:
        pass
    if child.cgroup is not None:
        # Its processes wherever they went (another session, outside any namespace).
        # Without a cgroup or a namespace, those are found by uid, when ``stop`` gives it back.
        child.cgroup.kill()


def stop(child: Child) -> None:
    """Kill the child and everything it started, reap it, remove its cgroup and work directory,
    give back its uid. Never raises for what it could not clean (it logs it)."""
    kill_tree(child)
    child.process.wait()
    for stream in (child.process.stdin, child.process.stdout, child.process.stderr):
        try:
            stream.close()
        except OSError:
            pass
    _release(child.cgroup, child.lease, child.workdir, namespaced=child.namespaced)


def _release(group: StepGroup | None, lease: Lease | None, workdir: Path | None, *, namespaced: bool) -> None:
    """Give back what a child held. The step is over either way: a failure is logged, not raised."""
    if group is not None:
        try:
            # Kills every process of the step that outlived the child: in other sessions,
            # orphaned, still leaving a torn-down namespace; the cgroup goes a moment later.
            group.discard()
        except Exception:
            log.exception("workflow sandbox: could not remove a step's cgroup")
    if lease is not None:
        try:
            # Outside a PID namespace, a process the step moved to a session of its own
            # escaped the process group: only a kill by uid finds it.
            lease.release(kill=not namespaced)
        except Exception:
            log.exception("workflow sandbox: could not give back a step's uid")
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
