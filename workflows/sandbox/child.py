"""The sandboxed interpreter's entry point: runs ONE step, then exits.

Started as ``python -I child.py OUTPUTS_PY`` (isolated mode: no PYTHON*
variables, no user site, not the project on sys.path), inside bubblewrap when
available. Imports only the standard library and outputs.py (by file path, so
the step cannot ``import`` our files by accident).

Protocol, on the pipes the parent holds:
1. preload the heavy modules (boto3), then write ``R`` on stdout: ready;
2. read ONE JSON request from stdin until EOF: code, step_name, steps, params,
   env, profile, limits, uid/gid. Nothing secret is in this process before this point
   (limits.processes is null when the step's cgroup bounds its processes);
3. set the limits (hard = soft, so the step cannot raise them), become the
   unprivileged user, point fds 0-2 at /dev/null and ``sys.stdout``/``stderr``
   at capped buffers, run the code as the body of a function;
4. write ONE JSON result on the original stdout (kept on a private, close-on-exec
   fd): ok, output, stdout, stderr, duration_ms, error {type, message, line}.
   Before it, while the step runs, each write to ``print``'s streams goes out as
   it happens, one JSON line ``["stdout", text]`` per write (within the stream's
   cap): a step that is killed (cancelled) still shows what it printed. The result
   is the last line.
"""
from __future__ import annotations

import ast
import builtins
import gc
import importlib.util
import io
import json
import math
import os
import resource
import sys
import threading
import time
import traceback

PRELOAD = ("boto3", "botocore.exceptions", "base64", "datetime", "decimal", "hashlib", "hmac", "re",
           "urllib.request", "uuid")
MB = 1024 * 1024


def load_outputs(path: str):
    spec = importlib.util.spec_from_file_location("credtool_step_outputs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module must not stop plain steps
            pass
    try:
        share_botocore_loader()
        import boto3

        # Parse botocore's endpoint data and these service models now, not on the step's clock.
        for service in ("secretsmanager", "ssm"):
            boto3.session.Session().client(service, region_name="us-east-1",
                                           aws_access_key_id="x", aws_secret_access_key="x")
    except Exception:
        pass
    # Everything so far lives for the whole (short) life of this process: keep the
    # collector from walking it during the step.
    gc.collect()
    gc.freeze()


def share_botocore_loader() -> None:
    """One botocore data loader for every Session in this process.

    A step's ``boto3.session.Session()`` otherwise builds a new loader and parses
    botocore's endpoint JSON again (about 40 ms); shared, its client costs ~2 ms.
    Within one session botocore already shares these parsed files between clients,
    and this process runs one step, so sharing them across sessions changes nothing else.
    """
    import botocore.session

    original = botocore.session.create_loader
    shared = []

    def create_loader(search_path_string=None):
        if search_path_string:  # AWS_DATA_PATH or a data_path setting: as botocore does it
            return original(search_path_string)
        if not shared:
            shared.append(original())
        return shared[0]

    botocore.session.create_loader = create_loader


class Progress:
    """Sends what the step prints to the worker as it prints it (see the protocol above).

    Only the step's own process sends: a process it forked shares the pipe, and its
    lines could land inside the result. ``close`` comes before the result is written,
    and the lock makes a thread of the step that is printing at that moment finish
    its line first (a line longer than the pipe's atomic size could be split).
    """

    def __init__(self, fd: int, main_pid: int) -> None:
        self.fd, self.main_pid, self.open = fd, main_pid, True
        self.lock = threading.RLock()  # re-entrant: a signal handler that prints

    def sender(self, stream: str):
        def send(text: str) -> None:
            if not text or os.getpid() != self.main_pid:
                return
            line = (json.dumps([stream, text]) + "\n").encode()
            with self.lock:
                if self.open:
                    write_all(self.fd, line)

        return send

    def close(self) -> None:
        with self.lock:
            self.open = False


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class CappedText(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters and notes the rest was cut;
    what it keeps also goes to ``send`` as it is written."""

    encoding = "utf-8"

    def __init__(self, limit: int, send=None) -> None:
        self.limit, self.parts, self.size, self.truncated = limit, [], 0, False
        self.send = send

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
            if self.send is not None:
                self.send(text[:room])
        if len(text) > room:
            self.truncated = True
        return len(text)

    def value(self) -> str:
        text = "".join(self.parts)
        return text + (f"\n[truncated: more than {self.limit // 1024} KiB]" if self.truncated else "")


class _Env:
    """``Env.aws_access_key_id`` reads CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID as the worker passed it
    (the worker has already put the run's profile's own values in their place)."""

    def __init__(self, values: dict[str, str], profile: str | None = None) -> None:
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_profile", profile)

    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        variable = "CREDTOOL_APP_ENV_" + name.upper()
        values = object.__getattribute__(self, "_values")
        if variable not in values:
            profile = object.__getattribute__(self, "_profile")
            also = f" nor CREDTOOL_PROFILE_{profile.upper()}_ENV_{name.upper()}" if profile else ""
            # AttributeError, so hasattr(Env, "x") and getattr(Env, "x", default) work.
            raise AttributeError(f"Env.{name} is not set: the worker has no {variable}{also}")
        return values[variable]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Env is read-only")

    def __repr__(self) -> str:
        return "Env(...)"


class _Params:
    """The workflow's parameters: ``params.region`` or ``params["region"]``."""

    def __init__(self, values: dict) -> None:
        object.__setattr__(self, "_values", values)

    def _missing(self, name: str) -> str:
        known = ", ".join(sorted(object.__getattribute__(self, "_values"))) or "none"
        return f"params.{name} is not defined (parameters: {known})"

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        values = object.__getattribute__(self, "_values")
        if name not in values:
            raise AttributeError(self._missing(name))
        return values[name]

    def __getitem__(self, name: str) -> object:
        values = object.__getattribute__(self, "_values")
        if name not in values:
            raise _MissingKey(self._missing(name))
        return values[name]

    def __contains__(self, name: object) -> bool:
        return name in object.__getattribute__(self, "_values")

    def __repr__(self) -> str:
        return f"params({', '.join(sorted(object.__getattribute__(self, '_values')))})"


class _MissingKey(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class _StepRef:
    """An earlier step, as the code sees it: ``first.output["n"]``."""

    def __init__(self, name: str, output: object) -> None:
        self.name, self.output = name, output

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def compile_step(code: str, filename: str):
    """The body becomes a function's body as an AST, so line numbers stay the user's own."""
    module = ast.parse(code, filename=filename)
    function = ast.FunctionDef(
        name="__step__", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=module.body or [ast.Pass()], decorator_list=[], returns=None, type_params=[],
        lineno=1, col_offset=0,
    )
    wrapped = ast.Module(body=[function], type_ignores=[])
    ast.fix_missing_locations(wrapped)
    return compile(wrapped, filename, "exec")


def set_limits(limits: dict) -> None:
    # RLIMIT_CPU counts the whole process: add what the imports already used.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(usage.ru_utime + usage.ru_stime) + int(limits["cpu_s"])
    # SIGXCPU at the soft limit ends the step (reported as a timeout); the
    # hard limit, a second later, is SIGKILL for a step that ignores SIGXCPU.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    processes = limits["processes"]
    if processes is None:
        # The step's cgroup (pids.max) bounds its processes. RLIMIT_NPROC counts every
        # step of this uid together, so it stays at the worker's hard limit (going above
        # would need CAP_SYS_RESOURCE), far above what one step's pids.max allows.
        processes = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    # RLIMIT_AS stays per process even with a cgroup: one huge allocation fails at once
    # with Python's MemoryError instead of waking the OOM killer.
    for kind, value in ((resource.RLIMIT_AS, limits["memory_mb"] * MB),
                        (resource.RLIMIT_FSIZE, limits["file_size_mb"] * MB),
                        (resource.RLIMIT_NPROC, processes),
                        (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(kind, (value, value))


def drop_privileges(uid: int | None, gid: int | None) -> None:
    if uid is None or os.getuid() != 0:
        return
    os.setgroups([])
    os.setgid(gid if gid is not None else uid)
    os.setuid(uid)  # also clears every capability
    if 0 in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()):
        raise RuntimeError("could not drop root")


def error_line(exc: BaseException, filename: str) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno  # the deepest frame in the user's code
    return line


def describe(exc: BaseException, filename: str, limits: dict, outputs) -> dict:
    if isinstance(exc, MemoryError):
        kind, message = "MemoryError", f"the step ran out of memory (limit {limits['memory_mb']} MB)"
    elif isinstance(exc, SyntaxError):
        kind, message = type(exc).__name__, exc.msg
    elif isinstance(exc, outputs.OutputError):
        kind, message = "OutputError", str(exc)
    else:
        kind = type(exc).__name__
        message = str(exc) or kind
    return {"type": kind, "message": message, "line": error_line(exc, filename)}


def size_text(n: int) -> str:
    if n < MB // 10:
        return f"{math.ceil(n / 1024)} KB"
    return f"{n / MB:.1f}".removesuffix(".0") + " MB"


def main() -> None:
    outputs = load_outputs(sys.argv[1])
    preload()
    os.write(1, b"R")
    raw = sys.stdin.buffer.read()
    if not raw:  # the pool shut down before handing this child out
        os._exit(0)
    request = json.loads(raw)
    del raw
    limits = request["limits"]
    filename = f"<step {request['step_name']}>"
    result_fd = os.dup(1)  # close-on-exec: the step's own subprocesses do not get it
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    main_pid = os.getpid()
    progress = Progress(result_fd, main_pid)
    stdout = CappedText(limits["stream_bytes"], progress.sender("stdout"))
    stderr = CappedText(limits["stream_bytes"], progress.sender("stderr"))
    result: dict = {"ok": False, "output": None, "error": None}
    started = time.perf_counter()
    try:
        set_limits(limits)
        drop_privileges(request.get("uid"), request.get("gid"))
    except Exception as exc:  # never run user code without its limits
        result["error"] = {"type": "SandboxError", "message": f"could not confine the step: {exc}", "line": None}
    else:
        namespace: dict = {"__name__": "__step__", "__builtins__": builtins}
        for name, output in request["steps"].items():
            namespace[name] = _StepRef(name, output)
        # Set last, so these names win over an earlier step of the same name.
        profile = request.get("profile")
        namespace.update(Env=_Env(request["env"], profile), params=_Params(request["params"]), profile=profile)
        try:
            sys.stdout, sys.stderr = stdout, stderr
            exec(compile_step(request["code"], filename), namespace)
            value = namespace["__step__"]()
            if os.getpid() != main_pid:
                os._exit(0)  # a process the step forked never answers for it
            value = outputs.to_json(value)
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            if size > limits["output_bytes"]:
                raise outputs.OutputError(
                    f"step output is {size_text(size)}, over the {size_text(limits['output_bytes'])} limit")
            result.update(ok=True, output=value)
            del value
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are the step's errors too
            if os.getpid() != main_pid:
                os._exit(1)
            result["error"] = describe(exc, filename, limits, outputs)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    result.update(duration_ms=(time.perf_counter() - started) * 1000, stdout=stdout.value(), stderr=stderr.value())
    progress.close()
    # ASCII escapes: lone surrogates survive the trip, and the line holds no raw newline.
    write_all(result_fd, b"\n" + json.dumps(result).encode())
    os._exit(0)


if __name__ == "__main__":
    main()
