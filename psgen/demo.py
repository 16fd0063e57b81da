"""`make demo`: compile the whole catalog into a folder, signed with a throwaway certificate,
with an explain page per plan."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from . import sign as signing
    from .build import build_plans
    from .errors import UserError
    from .explain import explain_markdown
    from .load import catalog, load_plan
    from .util import write_atomic

    out = Path(argv[0] if argv else "out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A throwaway self-signed certificate: enough to show and test signing, trusted nowhere.
        key, cert = signing.new_self_signed("psgen demo (throwaway)")
        signing.write_certificate_files(out / "demo-signing", key, cert, force=True)
        sign = signing.signing_function(out / "demo-signing.pem", out / "demo-signing.key")

        for name, path in catalog():
            folder = out / Path(name).parent
            # The script, its double-click launcher and its explain page...
            build_plans([str(path)], out_dir=folder, sign=sign, launcher=True)
            page = folder / f"{load_plan(path).name}.md"
            write_atomic(page, explain_markdown(load_plan(path)).encode("utf-8"))
            print(f"wrote {page}")
            # ...and the same plan for the fleet engines.
            for target in ("intune", "ansible"):
                build_plans([str(path)], out_dir=out / target / name, target=target, sign=sign)
    except UserError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"\nCatalog compiled into {out}/ and signed with {out}/demo-signing.pem (throwaway).")
    print(f"Check a signature: psgen verify {out}/windows/print-spooler.ps1 --ca {out}/demo-signing.pem")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
