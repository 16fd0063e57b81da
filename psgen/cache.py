"""A content-addressed cache for build outputs and compiled Jinja templates.

A build's bytes depend only on the plan file's bytes, the build options and psgen itself (its
code and templates). The key hashes all of them, so a hit returns exactly what a cold build
would write; anything else is a miss. The cache is an optimisation only: every error reading
or writing it is ignored. ``PSGEN_NO_CACHE=1`` turns it off; ``PSGEN_CACHE_DIR`` moves it
(default: ``$XDG_CACHE_HOME/psgen`` or ``~/.cache/psgen``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional

from . import __version__

_PACKAGE = Path(__file__).resolve().parent


def directory() -> Optional[Path]:
    if os.environ.get("PSGEN_NO_CACHE", "") not in ("", "0"):
        return None
    base = os.environ.get("PSGEN_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "psgen"


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """Hash of psgen's version, code and templates: any change to them is a new cache."""
    from .paths import templates_dir

    h = hashlib.sha256(__version__.encode())
    roots = [(_PACKAGE, "*.py"), (templates_dir(), "*")]
    for root, pattern in roots:
        for path in sorted(root.rglob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(path.relative_to(root).as_posix().encode() + b"\0")
                h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def key(plan_bytes: bytes, **options) -> str:
    h = hashlib.sha256(fingerprint().encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    h.update(plan_bytes)
    return h.hexdigest()


def get(k: str) -> Optional[Dict[str, bytes]]:
    d = directory()
    if d is None:
        return None
    try:
        doc = json.loads((d / "builds" / f"{k}.json").read_text(encoding="ascii"))
        return {name: base64.b64decode(data) for name, data in doc.items()}
    except (OSError, ValueError):
        return None


def put(k: str, outputs: Dict[str, bytes]) -> None:
    d = directory()
    if d is None:
        return
    try:
        from .util import write_atomic

        (d / "builds").mkdir(parents=True, exist_ok=True)
        doc = {name: base64.b64encode(data).decode("ascii") for name, data in outputs.items()}
        write_atomic(d / "builds" / f"{k}.json", json.dumps(doc).encode("ascii"))
    except Exception:  # noqa: BLE001 - the cache must never break a build
        pass


def jinja_bytecode_cache():
    """Jinja's compiled-template cache in the same folder (None when caching is off)."""
    d = directory()
    if d is None:
        return None
    try:
        from jinja2 import FileSystemBytecodeCache

        (d / "jinja").mkdir(parents=True, exist_ok=True)
        return FileSystemBytecodeCache(str(d / "jinja"))
    except OSError:
        return None
