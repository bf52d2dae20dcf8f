"""The sandboxed interpreter's entry point: runs ONE step, then exits.

Started as ``python -I child.py`` (isolated mode: no PYTHON* variables, no user
site, not the project on sys.path), inside bubblewrap when available. It
imports the heavy modules first, so that a pre-started process answers fast,
then blocks on stdin for exactly one request. Nothing secret is in this process
until that request arrives. Imports only the standard library and outputs.py
(bound next to this file).
"""
from __future__ import annotations

import ast
import builtins
import io
import json
import os
import resource
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outputs  # noqa: E402  (the sibling file, not a package import)

PRELOAD = ("boto3", "botocore.session", "botocore.exceptions", "base64", "datetime", "decimal", "uuid", "hashlib")


def preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module must not stop plain steps
            pass
    try:
        # Build botocore's loader caches now: the first client() otherwise reads
        # and parses its JSON models on the step's clock.
        import boto3

        boto3.session.Session().client("secretsmanager", region_name="us-east-1",
                                       aws_access_key_id="x", aws_secret_access_key="x")
    except Exception:
        pass


class CappedText(io.TextIOBase):
    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.size, self.truncated = limit, [], 0, False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        if len(text) > room:
            self.truncated = True
        return len(text)

    def value(self) -> str:
        text = "".join(self.parts)
        return text + (f"\n[truncated: output over {self.limit // 1024} KiB]" if self.truncated else "")


class StepFailure(Exception):
    """An error in the user's use of Env/params, reported as such."""


class _Env:
    def __init__(self, values: dict[str, str]) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        variable = "CREDTOOL_APP_ENV_" + name.upper()
        values = object.__getattribute__(self, "_values")
        if variable not in values:
            raise StepFailure(f"Env.{name} is not set: the worker has no {variable}")
        return values[variable]

    def __setattr__(self, name: str, value: object) -> None:
        raise StepFailure("Env is read-only")

    def __repr__(self) -> str:
        return "Env(...)"


class _Params:
    def __init__(self, values: dict) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        values = object.__getattribute__(self, "_values")
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise StepFailure(f"params.{name} is not defined (parameters: {known})")
        return values[name]

    def __getitem__(self, name: str) -> object:
        return self.__getattr__(name)

    def __repr__(self) -> str:
        return f"params({', '.join(sorted(object.__getattribute__(self, '_values')))})"


class _StepRef:
    def __init__(self, name: str, output: object) -> None:
        self.name, self.output = name, output

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def compile_step(code: str, filename: str):
    """The body becomes a function, as an AST, so line numbers stay the user's own."""
    module = ast.parse(code, filename=filename)
    function = ast.FunctionDef(
        name="__step__", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=module.body or [ast.Pass()], decorator_list=[], returns=None, type_params=[],
    )
    ast.copy_location(function, module.body[0] if module.body else function)
    if not module.body:
        function.lineno, function.col_offset = 1, 0
    wrapped = ast.Module(body=[function], type_ignores=[])
    ast.fix_missing_locations(wrapped)
    return compile(wrapped, filename, "exec")


def set_limits(limits: dict) -> None:
    mb = 1024 * 1024
    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb, limits["memory_mb"] * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size_mb"] * mb, limits["file_size_mb"] * mb))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def drop_privileges(uid: int | None, gid: int | None) -> None:
    if uid is None or os.getuid() != 0:
        return
    os.setgroups([])
    os.setgid(gid if gid is not None else uid)
    os.setuid(uid)
    # Losing root also clears every capability; check it stuck.
    if os.getuid() == 0 or os.geteuid() == 0:
        raise RuntimeError("could not drop root")


def error_line(exc: BaseException, filename: str) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def main() -> None:
    preload()
    os.write(1, b"R")  # ready: the parent starts the step's clock when it sends the request
    request = json.loads(sys.stdin.buffer.read() or b"{}")
    limits = request["limits"]
    filename = f"<step {request['step_name']}>"
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    stdout, stderr = CappedText(limits["stream_bytes"]), CappedText(limits["stream_bytes"])
    result: dict = {"ok": False, "output": None, "error": None}
    started = time.perf_counter()
    try:
        set_limits(limits)
        drop_privileges(request.get("uid"), request.get("gid"))
        sys.stdout, sys.stderr = stdout, stderr
        namespace: dict = {"__name__": "__step__", "__builtins__": builtins,
                           "Env": _Env(request["env"]), "params": _Params(request["params"])}
        for name, output in request["steps"].items():
            namespace[name] = _StepRef(name, output)
        code = compile_step(request["code"], filename)
        exec(code, namespace)
        value = outputs.to_json(namespace["__step__"]())
        encoded = json.dumps(value, ensure_ascii=False)
        if len(encoded.encode()) > limits["output_bytes"]:
            size = len(encoded.encode())
            raise StepFailure(f"step output is {_size(size)}, over the {_size(limits['output_bytes'])} limit")
        result.update(ok=True, output=value)
    except MemoryError:
        result["error"] = {"type": "MemoryError",
                           "message": f"the step ran out of memory (limit {limits['memory_mb']} MB)", "line": None}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are step errors too
        kind = "Error" if isinstance(exc, StepFailure) else type(exc).__name__
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        if isinstance(exc, outputs.OutputError):
            kind = "OutputError"
        result["error"] = {"type": kind, "message": message or kind, "line": error_line(exc, filename)}
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    result.update(duration_ms=(time.perf_counter() - started) * 1000, stdout=stdout.value(), stderr=stderr.value())
    try:
        payload = json.dumps(result, ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        payload = json.dumps({"ok": False, "output": None, "stdout": "", "stderr": "",
                              "duration_ms": result["duration_ms"],
                              "error": {"type": "OutputError", "message": str(exc), "line": None}}).encode()
    view = memoryview(payload)
    while view:
        view = view[os.write(result_fd, view):]
    os._exit(0)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


if __name__ == "__main__":
    main()
