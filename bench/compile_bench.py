"""Compile benchmark (issue: compile plans into scripts).

(a) `psgen build` of a realistic 10-step plan, whole process, against the floor
    `python -c "import jinja2, pydantic, ruamel.yaml"`; runs alternate side by side so machine
    noise hits both. Target: median ratio <= 1.5. Reported cold (no caches) and warm.
(b) In-process compile of the same plan (already loaded): plans per second (target >= 500)
    and the ratio to a bare Jinja render of the same templates with the same context.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLAN = HERE / "ten_steps.yaml"
RUNS = int(os.environ.get("BENCH_RUNS", "15"))


def _time(cmd, env) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def process_ratio() -> dict:
    out = Path(tempfile.mkdtemp()) / "bench.ps1"
    build = [sys.executable, "-m", "psgen", "build", str(PLAN), "-o", str(out)]
    floor = [sys.executable, "-c", "import jinja2, pydantic, ruamel.yaml"]
    base_env = dict(os.environ)
    cache = tempfile.mkdtemp()
    cold_env = dict(base_env, PSGEN_CACHE_DIR=cache, PSGEN_NO_CACHE="1")
    warm_env = dict(base_env, PSGEN_CACHE_DIR=cache)
    _time(build, warm_env)  # fill the warm cache and the OS file cache
    _time(floor, base_env)
    cold, warm, flo = [], [], []
    for _ in range(RUNS):
        flo.append(_time(floor, base_env))
        cold.append(_time(build, cold_env))
        warm.append(_time(build, warm_env))
    f = statistics.median(flo)
    return {"floor_ms": f * 1000, "cold_ms": statistics.median(cold) * 1000,
            "warm_ms": statistics.median(warm) * 1000,
            "cold_ratio": statistics.median(cold) / f, "warm_ratio": statistics.median(warm) / f}


def in_process() -> dict:
    os.environ["PSGEN_NO_CACHE"] = "1"
    from psgen.compile import compile_plan, context, environment
    from psgen.load import load_plan

    plan = load_plan(PLAN)
    compile_plan(plan)
    template = environment().get_template("script.ps1.j2")
    ctx = context(plan)
    n = 300
    rounds_full, rounds_bare = [], []
    for _ in range(5):  # alternate the two measurements
        t = time.perf_counter()
        for _ in range(n):
            compile_plan(plan)
        rounds_full.append((time.perf_counter() - t) / n)
        t = time.perf_counter()
        for _ in range(n):
            template.render(**ctx)
        rounds_bare.append((time.perf_counter() - t) / n)
    full, bare = statistics.median(rounds_full), statistics.median(rounds_bare)
    return {"plans_per_s": 1 / full, "bare_render_per_s": 1 / bare, "ratio_to_bare": full / bare}


def main() -> int:
    p = process_ratio()
    print(f"compile (a) psgen build, 10-step plan, whole process, median of {RUNS}:")
    print(f"    floor (import jinja2, pydantic, ruamel.yaml): {p['floor_ms']:.0f} ms")
    print(f"    cold (no caches): {p['cold_ms']:.0f} ms  ratio {p['cold_ratio']:.2f}x (target <= 1.5x)")
    print(f"    warm (caches filled): {p['warm_ms']:.0f} ms  ratio {p['warm_ratio']:.2f}x (target <= 1.5x)")
    q = in_process()
    print("compile (b) in-process compile of the loaded plan:")
    print(f"    {q['plans_per_s']:.0f} plans/s (target >= 500); bare Jinja render of the same "
          f"templates {q['bare_render_per_s']:.0f}/s; ratio {q['ratio_to_bare']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
