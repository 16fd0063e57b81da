"""`make demo`: compile the whole catalog into a folder, with an explain page per plan."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from .build import build_plans
    from .errors import UserError
    from .explain import explain_markdown
    from .load import catalog, load_plan
    from .util import write_atomic

    out = Path(argv[0] if argv else "out")
    try:
        for name, path in catalog():
            folder = out / Path(name).parent
            build_plans([str(path)], out_dir=folder)
            page = folder / f"{load_plan(path).name}.md"
            write_atomic(page, explain_markdown(load_plan(path)).encode("utf-8"))
            print(f"wrote {page}")
    except UserError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"\nCatalog compiled into {out}/. Read a script, e.g.: less {out}/windows/print-spooler.ps1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
