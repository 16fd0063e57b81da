"""The standalone script: NAME.ps1."""

from __future__ import annotations

from typing import Dict

from ..compile import compile_plan


def outputs(plan, stem: str) -> Dict[str, bytes]:
    return {f"{stem}.ps1": compile_plan(plan)}
