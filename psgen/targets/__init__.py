"""Build targets: what files a plan compiles to.

A target is a module with ``outputs(plan, stem) -> dict[file name, bytes]``. ``script`` is the
standalone .ps1; fleet engines (Intune, Ansible) add their own modules here. ``psgen build``
computes every output of every plan first and writes only when all of them succeeded, each file
atomically, so a mistake never leaves half a build behind.
"""

from __future__ import annotations

import importlib
from typing import Dict

TARGETS: Dict[str, str] = {
    "script": "psgen.targets.script",
    "intune": "psgen.targets.intune",
    "ansible": "psgen.targets.ansible",
}


def outputs(plan, target: str = "script", stem: str | None = None, **options) -> Dict[str, bytes]:
    """File name -> bytes for ``plan`` compiled for ``target``."""
    module = importlib.import_module(TARGETS[target])
    return module.outputs(plan, stem or plan.name, **options)
