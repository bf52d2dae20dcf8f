"""The sandbox runs real, isolated processes: each test runs user code and checks what it could do."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from workflows import sandbox
from workflows.sandbox import SandboxPool, StepLimits

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pool():
    pool = SandboxPool(size=2)
    yield pool
    pool.shutdown()


def run(pool, code, **kwargs):
    kwargs.setdefault("limits", StepLimits(timeout_s=10))
    return pool.run_step(code, step_name="step1", **kwargs)


def test_bubblewrap_isolation_is_in_force():
    assert sandbox.isolation().mode == "bubblewrap", sandbox.isolation_status()


def test_return_gives_the_output(pool):
    result = run(pool, "x = 40\nreturn {'n': x + 2}")
    assert result.ok and result.output == {"n": 42}


def test_try_except_else_and_a_final_return_run_unchanged(pool):
    code = ("try:\n    value = int('nope')\nexcept ValueError:\n    value = -1\nelse:\n    value = 0\n"
            "finally:\n    done = True\nreturn [value, done]")
    assert run(pool, code).output == [-1, True]


def test_no_return_gives_null(pool):
    result = run(pool, "x = 1")
    assert result.ok and result.output is None


def test_syntax_error_reports_the_users_line(pool):
    result = run(pool, "x = 1\ny = (\n")
    assert not result.ok and result.error.type == "SyntaxError" and result.error.line in (2, 3)


def test_exception_reports_type_message_and_line(pool):
    result = run(pool, "a = 1\nb = {}\nreturn b['missing']")
    assert (result.error.type, result.error.message, result.error.line) == ("KeyError", "'missing'", 3)


def test_env_reads_app_env_variables_and_a_missing_one_is_named(pool):
    env = {"CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}
    assert run(pool, "return Env.aws_access_key_id", env=env).output == "AKIAEXAMPLE"
    result = run(pool, "return Env.region", env=env)
    assert not result.ok and "CREDTOOL_APP_ENV_REGION" in result.error.message


def test_earlier_steps_and_params_are_readable(pool):
    result = run(pool, "return first.output['host'] + ':' + params.port",
                 steps={"first": {"host": "db"}}, params={"port": "5432"})
    assert result.output == "db:5432"
    missing = run(pool, "return params.nope", params={"port": "1"})
    assert "params.nope is not defined (parameters: port)" in missing.error.message


def test_stdout_and_stderr_are_captured_and_capped(pool):
    result = run(pool, "import sys\nprint('hello')\nprint('oops', file=sys.stderr)\nreturn 1")
    assert result.stdout == "hello\n" and result.stderr == "oops\n"
    flood = run(pool, "print('x' * 1_000_000)\nreturn 1", limits=StepLimits(timeout_s=10, stream_bytes=1000))
    assert flood.ok and len(flood.stdout) < 1100 and "[truncated" in flood.stdout


def test_outputs_become_json(pool):
    code = ("import datetime, decimal, uuid\n"
            "return {'d': datetime.date(2024, 1, 2), 'n': decimal.Decimal('1.5'), 'i': decimal.Decimal('3'),"
            " 'u': uuid.UUID(int=1), 'b': b'bytes', 's': {3, 1, 2}, 't': (1, 2), 'nan': float('nan')}")
    assert run(pool, code).output == {"d": "2024-01-02", "n": 1.5, "i": 3, "u": "00000000-0000-0000-0000-000000000001",
                                      "b": "bytes", "s": [1, 2, 3], "t": [1, 2], "nan": None}


def test_non_json_output_is_a_clear_error_naming_the_type(pool):
    result = run(pool, "class Thing: pass\nreturn {'a': [Thing()]}")
    assert not result.ok and result.error.type == "OutputError"
    assert "Thing" in result.error.message and '["a"][0]' in result.error.message


def test_output_over_the_cap_is_refused(pool):
    result = run(pool, "return 'x' * 3_000_000")
    assert not result.ok and "over the 1.0 MB limit" in result.error.message


def test_busy_loop_times_out_and_the_process_is_gone(pool):
    result = run(pool, "while True: pass", limits=StepLimits(timeout_s=2))
    assert result.timed_out and "timed out" in result.error.message
    assert not Path(f"/proc/{result.pid}").exists()


def test_sleeping_step_is_stopped_by_the_wall_clock(pool):
    result = run(pool, "import time\ntime.sleep(60)", limits=StepLimits(timeout_s=1))
    assert result.timed_out and "timed out after 1 s" in result.error.message
    assert result.duration_ms < 5000
    assert not Path(f"/proc/{result.pid}").exists()


def test_memory_bomb_fails_with_memory_error(pool):
    result = run(pool, "data = bytearray(4 * 1024 ** 3)", limits=StepLimits(timeout_s=10, memory_mb=512))
    assert not result.ok and result.error.type == "MemoryError"


def test_file_size_is_limited(pool):
    result = run(pool, "with open('big', 'wb') as f:\n    f.write(b'x' * (4 * 1024 * 1024))\nreturn 1",
                 limits=StepLimits(timeout_s=10, file_size_mb=1))
    assert not result.ok


def test_process_count_is_limited(pool):
    code = ("import os\nchildren = 0\ntry:\n    for _ in range(200):\n        pid = os.fork()\n"
            "        if pid == 0:\n            import time; time.sleep(5); os._exit(0)\n        children += 1\n"
            "except OSError as e:\n    return {'stopped_at': children, 'error': e.__class__.__name__}\nreturn {'stopped_at': children}")
    result = run(pool, code, limits=StepLimits(timeout_s=10, processes=16))
    assert result.ok and result.output["stopped_at"] < 16 and "error" in result.output


def test_environment_holds_nothing_of_the_worker(pool, monkeypatch):
    for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "CREDTOOL_ENCRYPTION_KEY", "CELERY_BROKER_URL"):
        monkeypatch.setenv(name, f"leak-{name}")
    fresh = SandboxPool(size=0)  # children started now, with the variables set in this process
    result = fresh.run_step("import os\nreturn dict(os.environ)", step_name="env", limits=StepLimits(timeout_s=10))
    assert result.ok and not any("leak-" in v for v in result.output.values())
    assert set(result.output) <= {"PATH", "HOME", "LANG", "TMPDIR", "PWD"}


def test_the_worker_process_is_invisible_and_its_environ_unreadable(pool):
    code = ("import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            f"worker_visible = os.path.exists('/proc/{os.getpid()}/environ')\n"
            "try:\n    open('/proc/1/environ').read()\n    readable = True\nexcept OSError:\n    readable = False\n"
            "return {'pids': pids, 'worker_visible': worker_visible, 'init_environ_readable': readable,"
            " 'uid': os.getuid()}")
    result = run(pool, code)
    assert result.ok
    assert result.output["worker_visible"] is False
    assert result.output["init_environ_readable"] is False
    assert len(result.output["pids"]) <= 3
    assert result.output["uid"] != 0


def test_the_project_tree_and_its_database_cannot_be_read(pool, tmp_path):
    secret_file = ROOT / "var" / "sandbox-probe.sqlite3"
    secret_file.parent.mkdir(exist_ok=True)
    secret_file.write_text("not for steps")
    try:
        for path in (ROOT / "manage.py", secret_file, ROOT / "credtool" / "settings.py"):
            result = run(pool, f"return open({str(path)!r}).read()")
            assert not result.ok and result.error.type in ("FileNotFoundError", "PermissionError"), (path, result)
    finally:
        secret_file.unlink()


def test_the_apps_settings_cannot_be_imported(pool):
    result = run(pool, "import credtool.settings")
    assert not result.ok and result.error.type == "ModuleNotFoundError"
    result = run(pool, "from django.conf import settings\nreturn settings.SECRET_KEY")
    assert not result.ok


def test_the_working_directory_is_empty(pool):
    assert run(pool, "import os\nreturn [os.getcwd(), os.listdir('.')]").output == ["/step", []]


def test_boto3_is_importable(pool):
    assert run(pool, "import boto3\nreturn boto3.__name__").output == "boto3"


def test_the_pool_hands_each_process_out_once(pool):
    pids = [run(pool, "import os\nreturn os.getpid()").pid for _ in range(4)]
    assert len(set(pids)) == 4
    assert len(set(pool.handed_out)) == len(pool.handed_out)
