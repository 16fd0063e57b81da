"""`make bench` / `python -m bench`: every benchmark, one after the other, printing ratios.

Each benchmark compares side by side within its own run (machines here are noisy).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    from bench import compile_bench, sign_bench

    print("== compile ==", flush=True)
    compile_bench.main()
    print("\n== sign ==", flush=True)
    sign_bench.main()
    print("\n== push ==", flush=True)
    # Its own process: it starts loopback endpoint processes and one client process per P.
    return subprocess.call([sys.executable, str(HERE / "push_bench.py"), "--repeat", "3"])


if __name__ == "__main__":
    raise SystemExit(main())
