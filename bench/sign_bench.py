"""Signing benchmark (issue 5: Authenticode in pure Python).

Signatures per second for a 50 KB ASCII/CRLF script, psgen side by side with `osslsigncode sign`
on the same file, same key and certificate, for RSA 2048 and ECDSA P-256:

(a) psgen in process (`psgen.sign.sign_bytes`, what `psgen build --sign` calls) against
    osslsigncode as a process (its only interface): sigs/s and the ratio.
(b) Whole processes: `psgen sign FILE` against `osslsigncode sign`, runs alternating so machine
    noise hits both; and a batch of 50 files, one `psgen sign` process against 50 osslsigncode
    runs (how a catalog is signed).
(c) Verification: `psgen.sign.verify_bytes` in process, and `psgen verify FILE` as a process,
    against `osslsigncode verify`.

Run: .venv/bin/python -m bench.sign_bench   (BENCH_RUNS=n sets subprocess repetitions)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
SIZE = 50 * 1024
BATCH = 50


def script_50k() -> bytes:
    lines = []
    i = 0
    while sum(len(line) + 2 for line in lines) < SIZE:
        lines.append(f"    Write-Verbose -Message ('step {i:05d}: checking state of item ' + "
                     f"$Name + ' in ' + $Path)  # padding to make the script realistic")
        i += 1
    data = ("\r\n".join(lines) + "\r\n").encode("ascii")
    return data[:SIZE - 2] + b"\r\n" if len(data) > SIZE else data


def _run(cmd, env=None, *, remove: Path | None = None) -> float:
    if remove is not None:          # osslsigncode refuses to overwrite its -out file
        remove.unlink(missing_ok=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def _rate(fn, min_seconds: float = 1.0) -> float:
    fn()  # warm up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds and n >= 20:
            return n / elapsed


def bench_key(key_type: str, work: Path, ossl: str) -> dict:
    from psgen import sign as S

    key, cert = S.new_self_signed(f"bench {key_type}", key_type=key_type, days=2)
    signer = S.Signer(key, cert)
    prefix = work / key_type
    S.write_certificate_files(prefix, key, cert, force=True)
    crt, keyfile = f"{prefix}.pem", f"{prefix}.key"
    data = script_50k()
    src = work / f"{key_type}-src.ps1"
    src.write_bytes(data)

    # (a) in process
    psgen_rate = _rate(lambda: S.sign_bytes(data, signer))
    signed = S.sign_bytes(data, signer)
    verify_rate = _rate(lambda: S.verify_bytes(signed, trusted=[cert]))

    # (b) whole processes, alternating
    env = dict(os.environ)
    ossl_sign = [ossl, "sign", "-certs", crt, "-key", keyfile, "-in", str(src),
                 "-out", str(work / "ossl-out.ps1")]
    cli_target = work / f"{key_type}-cli.ps1"
    cli_sign = [sys.executable, "-m", "psgen", "sign", str(cli_target), "--cert", crt,
                "--key", keyfile]
    ossl_verify = [ossl, "verify", "-CAfile", crt, "-ignore-crl", "-in",
                   str(work / "ossl-out.ps1")]
    cli_verify = [sys.executable, "-m", "psgen", "verify", str(cli_target), "--ca", crt]
    cli_target.write_bytes(data)
    ossl_out = work / "ossl-out.ps1"
    _run(ossl_sign, remove=ossl_out), _run(cli_sign, env)          # warm the OS caches
    o_sign, c_sign, o_ver, c_ver = [], [], [], []
    for _ in range(RUNS):
        o_sign.append(_run(ossl_sign, remove=ossl_out))
        c_sign.append(_run(cli_sign, env))
        o_ver.append(_run(ossl_verify))  # verifies the last osslsigncode output
        c_ver.append(_run(cli_verify, env))

    # batch: one psgen process for BATCH files vs BATCH osslsigncode runs
    batch = [work / f"{key_type}-batch-{k}.ps1" for k in range(BATCH)]
    for p in batch:
        p.write_bytes(data)
    c_batch = _run([sys.executable, "-m", "psgen", "sign", *map(str, batch), "--cert", crt,
                    "--key", keyfile], env)
    o_batch = 0.0
    for p in batch:
        o_batch += _run([ossl, "sign", "-certs", crt, "-key", keyfile, "-in", str(src),
                         "-out", str(p)], remove=p)

    ossl_rate = 1 / statistics.median(o_sign)
    return {
        "key": key_type,
        "psgen_inproc": psgen_rate,
        "ossl_proc": ossl_rate,
        "psgen_proc": 1 / statistics.median(c_sign),
        "psgen_batch": BATCH / c_batch,
        "ossl_batch": BATCH / o_batch,
        "verify_inproc": verify_rate,
        "verify_proc": 1 / statistics.median(c_ver),
        "ossl_verify": 1 / statistics.median(o_ver),
    }


def main() -> int:
    ossl = shutil.which("osslsigncode")
    if ossl is None:
        print("osslsigncode not installed: run `make sysdeps`", file=sys.stderr)
        return 1
    print(f"Authenticode signing of a {SIZE // 1024} KB ASCII/CRLF script "
          f"(subprocess medians over {RUNS} runs)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench_key(k, Path(tmp), ossl) for k in ("rsa2048", "p256")]
    header = f"{'':34}" + "".join(f"{r['key']:>20}" for r in rows)
    print(header)

    def line(label, fmt):
        print(f"{label:34}" + "".join(f"{fmt(r):>20}" for r in rows))

    line("psgen sign_bytes (in process)", lambda r: f"{r['psgen_inproc']:.0f} sig/s")
    line("osslsigncode sign (process)", lambda r: f"{r['ossl_proc']:.0f} sig/s")
    line("  ratio in-process / osslsigncode", lambda r: f"{r['psgen_inproc'] / r['ossl_proc']:.1f}x")
    line("psgen sign FILE (process)", lambda r: f"{r['psgen_proc']:.1f} sig/s")
    line("  ratio process / osslsigncode", lambda r: f"{r['psgen_proc'] / r['ossl_proc']:.2f}x")
    line(f"psgen sign {BATCH} files (1 process)", lambda r: f"{r['psgen_batch']:.0f} sig/s")
    line(f"osslsigncode x{BATCH}", lambda r: f"{r['ossl_batch']:.0f} sig/s")
    line("  ratio batch / osslsigncode", lambda r: f"{r['psgen_batch'] / r['ossl_batch']:.1f}x")
    line("psgen verify_bytes (in process)", lambda r: f"{r['verify_inproc']:.0f} /s")
    line("psgen verify FILE (process)", lambda r: f"{r['verify_proc']:.1f} /s")
    line("osslsigncode verify (process)", lambda r: f"{r['ossl_verify']:.0f} /s")
    line("  ratio in-process verify / ossl", lambda r: f"{r['verify_inproc'] / r['ossl_verify']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
