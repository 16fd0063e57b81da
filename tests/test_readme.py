"""The README stays true: its example plan compiles, its commands exist."""

from __future__ import annotations

import re

from psgen.compile import compile_plan
from psgen.lint import lint_script
from tests.helpers import REPO, load

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_example_plan_compiles_clean():
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    example = next(b for b in blocks if b.startswith("psgen: 1"))
    plan = load(example, "README.md")
    assert [s.id for s in plan.steps] == ["spooler", "policy", "spool-folder"]
    assert lint_script(compile_plan(plan).decode("ascii")) == []


def test_quick_start_is_two_make_commands_that_exist():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make (\w+)", quick, re.M)
    assert commands == ["demo", "test"]
    makefile = (REPO / "Makefile").read_text()
    for c in commands:
        assert re.search(rf"^{c}:", makefile, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_every_documented_command_exists():
    from typer.main import get_command

    from psgen.cli import app

    names = set(get_command(app).commands)
    for cmd in re.findall(r"\| `psgen (\w+)", README):
        assert cmd in names, cmd
