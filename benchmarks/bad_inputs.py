"""Bad input answered fast: every case of ``tests/test_bad_inputs.py`` run as its own ``nasmeta`` process (what a
user waits for), timed beside ``nasmeta --help`` measured in the same run.  Prints each case's seconds and exit
code, the slowest, and the slowest / baseline ratio; exits 1 if a case does not exit 2 with one ``error:`` line.

    python benchmarks/bad_inputs.py
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cases(tmp: Path) -> list[list[str]]:
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "tests" / "test_bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module._cases(tmp)


def _run(args: list[str], env: dict[str, str]) -> tuple[float, int, list[str]]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows", *args], capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return time.perf_counter() - start, done.returncode, lines


def main() -> int:
    env = {**os.environ, "NASMETA_TRACKING": "0", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("NASMETA_DATA_DIR", None)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        env["NASMETA_HOME"] = str(tmp / "home")
        baseline = min(_run(["--help"], env)[0] for _ in range(3))
        times, failures = [], 0
        for args in _cases(tmp):
            seconds, code, lines = _run(args, env)
            ok = code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
            failures += not ok
            times.append(seconds)
            shown = " ".join(a if len(a) < 40 else a[:37] + "..." for a in args)
            print(f"{seconds:5.2f} s  exit {code}  {'ok ' if ok else 'BAD'}  {shown}")
        written = (tmp / "store").exists()
    print(f"cases {len(times)}, not one-line exit 2: {failures}, store written: {written}")
    print(
        f"baseline `nasmeta --help` {baseline:.2f} s; slowest bad input {max(times):.2f} s; "
        f"ratio={max(times) / baseline:.2f}; median {sorted(times)[len(times) // 2]:.2f} s"
    )
    return 1 if failures or written else 0


if __name__ == "__main__":
    raise SystemExit(main())
