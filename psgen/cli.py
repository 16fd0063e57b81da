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


@app.command()
def validate(
    plans: List[str] = typer.Argument(..., metavar="PLAN...", help="Plan files or catalog names."),
) -> None:
    """Check plans for mistakes; print each as file:line:col with a hint."""
    from .errors import Problem
    from .load import load_plan

    problems: List[Problem] = []
    for ref in plans:
        try:
            plan = load_plan(ref)
        except UserError as exc:
            problems.extend(exc.problems)
            continue
        typer.echo(f"{plan.source}: ok ({len(plan.steps)} steps)")
    if problems:
        raise UserError(problems)


@app.command()
def build(
    plans: List[str] = typer.Argument(..., metavar="PLAN...", help="Plan files or catalog names."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Output script path (one plan only); other files of the "
        "target are written next to it."),
    out_dir: Optional[Path] = typer.Option(
        None, "--out-dir", help="Write each plan's files into this folder (default: here)."),
    target: str = typer.Option("script", "--target", help="What to build: script."),
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 naming every output that is stale."),
) -> None:
    """Compile plans into PowerShell scripts (ASCII, CRLF, deterministic bytes)."""
    from .build import build_plans

    stale = build_plans(plans, output=output, out_dir=out_dir, target=target, check=check,
                        echo=typer.echo)
    if stale:
        typer.echo(f"{len(stale)} output(s) out of date: run psgen build", err=True)
        raise typer.Exit(1)


@app.command()
def explain(
    plan_ref: str = typer.Argument(..., metavar="PLAN", help="Plan file or catalog name."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file."),
) -> None:
    """Describe a plan in Markdown: what it checks, what it may change, how to undo it."""
    from .explain import explain_markdown
    from .load import load_plan
    from .util import write_atomic

    text = explain_markdown(load_plan(plan_ref))
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(output, text.encode("utf-8"))


@app.command()
def schema(
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file."),
) -> None:
    """Print the plan format's JSON Schema (for editor autocomplete)."""
    from .plan import schema_text
    from .util import write_atomic

    text = schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(output, text.encode("utf-8"))


@app.command("list")
def list_plans() -> None:
    """List the built-in plan catalog with titles."""
    from .load import catalog, load_plan

    for name, path in catalog():
        try:
            title = load_plan(path).title
        except UserError:
            title = "(invalid plan: run psgen validate)"
        typer.echo(f"{name:32} {title}")


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
