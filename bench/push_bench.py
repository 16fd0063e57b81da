"""Benchmark: psgen push to N simulated Windows hosts over real WSMan/PSRP on loopback.

Several loopback WinRM endpoints (tests/winrm_endpoint.py, one per server process) stand in for
the fleet; N hosts (sim-001 ... with ansible_host=127.0.0.1 and one of the endpoints' ports) are
spread over them. Every host answers a compliant result after an injected delay L. For each
parallelism P, a fresh client process runs psgen.push over the inventory and reports:

    wall time, the ideal ceil(N/P) x L, their ratio, hosts lost, peak RSS of the client process.

Usage:  .venv/bin/python bench/push_bench.py [--hosts 200] [--delay 1.0] [--parallel 10,50,200]
                                             [--endpoints 4]
Targets: ratio <= 1.25 at P = 50, and no host lost at P = 200.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SCRIPT = (b"[CmdletBinding()]\r\nparam([ValidateSet('Check', 'Fix', 'Rollback')][string]$Mode = 'Fix', "
          b"[switch]$Json)\r\nWrite-Output 'bench'\r\n")


def serve(delay: float) -> None:
    """Server process: one endpoint; prints its port, serves until stdin closes."""
    from tests.winrm_endpoint import WinRMEndpoint

    def handler(req, io):
        io.sleep(delay)
        return json.dumps({"schema": 1, "plan": "bench", "mode": req.parameters.get("Mode"),
                           "exit_code": 0, "steps": [{"id": "s1", "status": "compliant"}]})

    with WinRMEndpoint(handler, users={"bench": "bench-password"}, name="bench") as ep:
        print(ep.port, flush=True)
        sys.stdin.read()  # parent closed the pipe: stop


def client(inventory: str, parallel: int, delay: float, results: str) -> None:
    """Client process: push to the inventory, print metrics as JSON."""
    import resource

    from psgen import push as P

    if os.environ.get("BENCH_SWITCH"):
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH"]))
    hosts = P.load_inventory(inventory)
    script = P.Script(SCRIPT, "bench", "bench.ps1")
    options = P.ConnectOptions(transport="http", auth="basic", username="bench", password="bench-password",
                               operation_timeout=20, retries=0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    report = P.push(script, hosts, mode="check", options=options, parallel=parallel,
                    timeout=120, results_path=results)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    peak = ru1.ru_maxrss  # KiB on Linux
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    lines = Path(results).read_text().splitlines()
    keys = [json.loads(x)["host"] for x in lines]
    ideal = math.ceil(len(hosts) / parallel) * delay
    print(json.dumps({
        "parallel": parallel, "hosts": len(hosts), "wall": wall, "ideal": ideal, "ratio": wall / ideal,
        "ok": sum(1 for r in report.results if r.ok), "lost": len(hosts) - len(set(keys)),
        "duplicates": len(keys) - len(set(keys)), "statuses": report.counts(),
        "peak_rss_mib": peak / 1024, "client_cpu_s": cpu, "rss_before_mib": rss_before / 1024,
    }))


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--delay", type=float, default=1.0, help="injected per-host delay L, seconds")
    ap.add_argument("--parallel", default="10,50,200")
    ap.add_argument("--endpoints", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=1, help="runs per P; the median wall time counts")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--client", nargs=2, metavar=("INVENTORY", "RESULTS"), help=argparse.SUPPRESS)
    ap.add_argument("--p", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.delay)
        return 0
    if args.client:
        client(args.client[0], args.p, args.delay, args.client[1])
        return 0

    servers = [subprocess.Popen([sys.executable, __file__, "--serve", "--delay", str(args.delay)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(args.endpoints)]
    failed = False
    try:
        ports = [int(s.stdout.readline()) for s in servers]
        with tempfile.TemporaryDirectory() as tmp:
            inv = Path(tmp) / "fleet.ini"
            inv.write_text("[bench]\n" + "".join(
                f"sim-{i:03d} ansible_host=127.0.0.1 ansible_port={ports[i % len(ports)]} transport=http\n"
                for i in range(1, args.hosts + 1)))
            print(f"psgen push benchmark: {args.hosts} hosts on {len(ports)} loopback endpoints, "
                  f"delay L={args.delay}s, {os.cpu_count()} CPU(s), load average {_loadavg()}")
            print(f"{'P':>5} {'wall s':>8} {'ideal s':>8} {'ratio':>6} {'ok':>5} {'lost':>5} {'dup':>4} "
                  f"{'peak RSS MiB':>13} {'client CPU s':>13} {'server CPU s':>13}")
            for p in [int(x) for x in args.parallel.split(",")]:
                runs = []
                for rep in range(args.repeat):
                    results = Path(tmp) / f"results-{p}-{rep}.jsonl"
                    server_cpu0 = sum(_cpu_seconds(s.pid) for s in servers)
                    out = subprocess.run([sys.executable, __file__, "--client", str(inv), str(results),
                                          "--p", str(p), "--delay", str(args.delay)],
                                         capture_output=True, text=True, timeout=600)
                    if out.returncode != 0:
                        print(out.stderr)
                        failed = True
                        continue
                    m = json.loads(out.stdout.strip().splitlines()[-1])
                    m["server_cpu_s"] = sum(_cpu_seconds(s.pid) for s in servers) - server_cpu0
                    runs.append(m)
                    if m["lost"] or m["duplicates"] or m["ok"] != args.hosts:
                        failed = True
                if not runs:
                    continue
                m = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
                walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
                spread = f"  (walls: {walls})" if len(runs) > 1 else ""
                print(f"{p:>5} {m['wall']:>8.2f} {m['ideal']:>8.2f} {m['ratio']:>6.2f} {m['ok']:>5} "
                      f"{max(r['lost'] for r in runs):>5} {max(r['duplicates'] for r in runs):>4} "
                      f"{max(r['peak_rss_mib'] for r in runs):>13.1f} {m['client_cpu_s']:>13.2f} "
                      f"{m['server_cpu_s']:>13.2f}{spread}")
                if p == 50 and m["ratio"] > 1.25:
                    failed = True
    finally:
        for s in servers:
            try:
                s.stdin.close()
            except OSError:
                pass
        for s in servers:
            try:
                s.wait(10)
            except subprocess.TimeoutExpired:
                s.kill()
    print("targets met" if not failed else "TARGETS MISSED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
