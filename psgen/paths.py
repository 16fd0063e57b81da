"""Find the data directories (templates/, plans/) whether psgen is installed or in a checkout."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def data_dir(name: str) -> Path:
    """Return the directory ``name`` ("templates" or "plans").

    In a wheel the directories are mapped inside the package (see pyproject.toml); in a
    checkout (or an editable install) they sit at the top of the repository.
    """
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"psgen data directory {name!r} not found next to {_PACKAGE_DIR}")


def templates_dir() -> Path:
    return data_dir("templates")


def plans_dir() -> Path:
    return data_dir("plans")
