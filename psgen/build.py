"""Build orchestration: load every plan, compute every output, then write (or compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .errors import UserError


def plan_outputs(plans: Sequence[str], *, output: Optional[Path], out_dir: Optional[Path],
                 target: str = "script", **options) -> Dict[Path, bytes]:
    """Path -> bytes for every output of every plan. Raises UserError before anything is
    written if any plan is invalid."""
    from .load import load_plan
    from .targets import TARGETS, outputs

    if target not in TARGETS:
        raise UserError.single(f"unknown build target {target!r}",
                               hint=f"choose one of: {', '.join(TARGETS)}")
    if output is not None and len(plans) > 1:
        raise UserError.single("-o/--output takes one plan; several were given",
                               hint="use --out-dir DIR to build several plans")
    if output is not None and out_dir is not None:
        raise UserError.single("give either -o/--output or --out-dir, not both")
    from . import cache
    from .load import read_plan_bytes, resolve

    result: Dict[Path, bytes] = {}
    problems = []
    for ref in plans:
        path = resolve(ref)
        raw = read_plan_bytes(path)
        stem = None
        if output is not None:
            stem = output.stem if output.suffix == ".ps1" else output.name
        k = cache.key(raw, target=target, stem=stem, **options)
        files = cache.get(k)
        if files is None:
            try:
                plan = load_plan(path)
            except UserError as exc:
                problems.extend(exc.problems)
                continue
            files = outputs(plan, target, stem=stem or plan.name, **options)
            cache.put(k, files)
        folder = output.parent if output is not None else (out_dir or Path("."))
        for name, data in files.items():
            path = folder / name
            if path in result:
                raise UserError.single(f"two plans would both write {path}",
                                       hint="plan names must differ, or build them separately")
            result[path] = data
    if problems:
        raise UserError(problems)
    return result


def build_plans(plans: Sequence[str], *, output: Optional[Path] = None,
                out_dir: Optional[Path] = None, target: str = "script", check: bool = False,
                echo: Callable[[str], None] = print, **options) -> List[Path]:
    """Write (or, with check, compare) all outputs. Returns the stale paths in check mode."""
    from .util import write_atomic

    files = plan_outputs(plans, output=output, out_dir=out_dir, target=target, **options)
    stale: List[Path] = []
    for path, data in files.items():
        if check:
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                current = None
            if current != data:
                stale.append(path)
                echo(f"stale: {path}" + (" (missing)" if current is None else ""))
            continue
    if check:
        return stale
    for folder in sorted({p.parent for p in files}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError.single(f"cannot create the output folder {folder}: "
                                   f"{exc.strerror or exc}",
                                   hint="choose another output path") from None
    for path, data in files.items():
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise UserError.single(f"cannot write {path}: {exc.strerror or exc}",
                                   hint="check the folder's permissions and free space") from None
        echo(f"wrote {path} ({len(data)} bytes)")
    return stale
