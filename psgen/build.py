"""Build orchestration: load every plan, compute every output, then write (or compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .errors import UserError


SIGNATURE_MARK = b"\r\n# SIG # Begin signature block\r\n"


def unsigned(data: bytes) -> bytes:
    """A script's bytes without its Authenticode block (``--check`` ignores signatures)."""
    at = data.find(SIGNATURE_MARK)
    return data if at < 0 else data[:at]


def plan_outputs(plans: Sequence[str], *, output: Optional[Path], out_dir: Optional[Path],
                 target: str = "script", sign: Optional[Callable[[bytes, str], bytes]] = None,
                 **options) -> Dict[Path, bytes]:
    """Path -> bytes for every output of every plan. Raises UserError before anything is
    written if any plan is invalid. ``sign(data, name)`` signs each .ps1 output (after the
    cache: signatures are never cached); a target may then rebuild files that embed its
    scripts through ``after_signing(files)``."""
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
        if sign is not None:
            import importlib

            files = {n: sign(d, n) if n.endswith(".ps1") else d for n, d in files.items()}
            hook = getattr(importlib.import_module(TARGETS[target]), "after_signing", None)
            if hook is not None:
                files = hook(files)
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
                echo: Callable[[str], None] = print,
                sign: Optional[Callable[[bytes, str], bytes]] = None, **options) -> List[Path]:
    """Write (or, with check, compare) all outputs. Returns the stale paths in check mode.

    ``check`` compares scripts without their signature blocks, so signed committed scripts are
    current when their content is."""
    from .util import write_atomic

    files = plan_outputs(plans, output=output, out_dir=out_dir, target=target,
                         sign=None if check else sign, **options)
    check_view = None
    if check:  # the target module imports the compiler: only load it when it is needed
        import importlib

        from .targets import TARGETS

        check_view = getattr(importlib.import_module(TARGETS[target]), "check_view", None)
    stale: List[Path] = []
    for path, data in files.items():
        if check:
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                current = None
            if current is not None and path.suffix == ".ps1":
                current = unsigned(current)
            elif current is not None and check_view is not None:
                current = check_view(path.name, current)  # e.g. NAME.intune.json embeds scripts
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
