"""The psgen command line: thin. Parse options, call the library, print, set the exit code.

Heavy modules (pydantic, jinja2, tree-sitter, cryptography, pypsrp) are imported inside the
commands that need them so that ``psgen --version`` and ``psgen build`` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import __version__
from .errors import UserError

app = typer.Typer(
    name="psgen",
    help="Compile declarative Windows remediation plans into signed, idempotent PowerShell.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"psgen {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """psgen: plans in, PowerShell out."""


def main() -> None:
    """Console-script entry point: user mistakes become located messages and exit code 2.

    Typer's standalone mode handles usage errors (exit 2) and Ctrl-C (exit 1) itself.
    """
    try:
        app()
    except UserError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
