"""The standalone script: NAME.ps1 (and, with ``launcher``, the double-click NAME.cmd)."""

from __future__ import annotations

from typing import Dict

from ..compile import compile_plan


def outputs(plan, stem: str, launcher: bool = False) -> Dict[str, bytes]:
    files = {f"{stem}.ps1": compile_plan(plan)}
    if launcher:
        from ..launcher import launcher_bytes

        files[f"{stem}.cmd"] = launcher_bytes(plan, f"{stem}.ps1")
    return files
