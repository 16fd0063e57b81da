"""psgen build --launcher: NAME.cmd next to NAME.ps1 for the person at the keyboard.

No cmd.exe here: the batch file is checked for its bytes, its structure (labels, no
parenthesised blocks that expand paths) and its escaping, decoded the way cmd.exe reads an
unquoted line (``%%`` -> ``%``, ``^x`` -> ``x``).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from psgen.cli import app
from psgen.errors import UserError
from psgen.launcher import cmd_quoted, cmd_text, launcher_bytes
from tests.helpers import REPO, load

ADMIN_PLAN = """
psgen: 1
name: needs-admin
title: Fix "this" & that (100% | <sure> ^done^)
requires: {admin: true}
steps:
  - id: one
    title: Step one
    explain: It checks one thing.
    check: {ps: "Test-Path -LiteralPath 'C:\\\\x'"}
"""
USER_PLAN = ADMIN_PLAN.replace("requires: {admin: true}", "requires: {admin: false}")


def _decode_unquoted(text: str) -> str:
    """What cmd.exe shows for an unquoted stretch: %% is %, a caret escapes the next char."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "%" and text[i + 1:i + 2] == "%":
            out.append("%")
            i += 2
        elif ch == "^" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            assert ch not in "&|<>%^\"", f"unescaped {ch!r} in {text!r}"
            out.append(ch)
            i += 1
    return "".join(out)


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
@settings(max_examples=300, deadline=None)
def test_cmd_text_shows_exactly_the_text(text):
    assert _decode_unquoted(cmd_text(text)) == text.replace('"', "'")


def test_cmd_text_replaces_non_ascii_and_quoted_doubles_percent():
    assert cmd_text("caf\u00e9 \u2013 ok") == "caf? ? ok"
    assert cmd_quoted("100%done") == "100%%done"


@pytest.mark.parametrize("plan_text", [ADMIN_PLAN, USER_PLAN])
def test_launcher_bytes_and_structure(plan_text):
    plan = load(plan_text, "p.yaml")
    data = launcher_bytes(plan, "needs-admin.ps1")
    text = data.decode("ascii")
    assert not re.search(rb"(?<!\r)\n", data) and data.endswith(b"\r\n")
    lines = text.split("\r\n")
    assert lines[0] == "@echo off"
    assert "setlocal EnableExtensions DisableDelayedExpansion" in lines
    assert all(len(line) < 1000 for line in lines)
    # Every goto has its label; no parenthesised blocks (a ')' in a path would end them).
    labels = {line[1:] for line in lines if line.startswith(":")}
    for target in re.findall(r"goto (\w+)", text):
        assert target in labels
    assert not any(line.rstrip().endswith("(") for line in lines)
    run = [line for line in lines if " -File " in line and not line.startswith("rem ")]
    assert run and all('-NoProfile -ExecutionPolicy Bypass -File "%PSGEN_SCRIPT%"' in line
                       for line in run)
    assert 'set "PSGEN_SCRIPT=%~dp0needs-admin.ps1"' in lines
    assert "if not defined PSGEN_NO_PAUSE pause" in lines
    assert lines[-2] == "exit /b %PSGEN_EXIT%"
    # The title shows as written, escaped for cmd.exe.
    title = next(line for line in lines if line.startswith("title "))
    assert _decode_unquoted(title[len("title "):]) == "Fix 'this' & that (100% | <sure> ^done^)"
    elevate = "-Verb RunAs" in text
    assert elevate == plan.requires.admin
    if elevate:
        assert "fltmc.exe" in text and "$env:PSGEN_LAUNCHER" in text
        # The path reaches PowerShell through the environment, never quoted into code.
        assert "%~f0" not in next(line for line in lines if "Start-Process" in line)


def test_launcher_refuses_file_names_cmd_cannot_hold():
    plan = load(USER_PLAN, "p.yaml")
    with pytest.raises(UserError, match="cannot name the script"):
        launcher_bytes(plan, "caf\u00e9.ps1")
    data = launcher_bytes(plan, "50% off & more.ps1").decode("ascii")
    assert 'set "PSGEN_SCRIPT=%~dp050%% off & more.ps1"' in data


def test_cli_build_launcher_writes_both_files(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text(ADMIN_PLAN, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["build", str(plan), "-o", str(tmp_path / "fix.ps1"),
                                 "--launcher"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fix.ps1").is_file()
    cmd = (tmp_path / "fix.cmd").read_bytes()
    assert b'set "PSGEN_SCRIPT=%~dp0fix.ps1"' in cmd
    result = runner.invoke(app, ["build", str(plan), "-o", str(tmp_path / "fix.ps1"),
                                 "--launcher", "--check"])
    assert result.exit_code == 0, result.output
    (tmp_path / "fix.cmd").write_bytes(cmd + b"rem changed\r\n")
    result = runner.invoke(app, ["build", str(plan), "-o", str(tmp_path / "fix.ps1"),
                                 "--launcher", "--check"])
    assert result.exit_code == 1 and "fix.cmd" in result.output


def test_cli_launcher_needs_the_script_target(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text(USER_PLAN, encoding="utf-8")
    result = CliRunner().invoke(app, ["build", str(plan), "--out-dir", str(tmp_path),
                                      "--launcher", "--target", "ansible"])
    assert result.exit_code != 0


def test_without_launcher_only_the_script_is_written(tmp_path):
    from psgen.build import plan_outputs

    plan = tmp_path / "p.yaml"
    plan.write_text(USER_PLAN, encoding="utf-8")
    files = plan_outputs([str(plan)], output=None, out_dir=tmp_path)
    assert sorted(p.name for p in files) == ["needs-admin.ps1"]
    files = plan_outputs([str(plan)], output=None, out_dir=tmp_path, launcher=True)
    assert sorted(p.name for p in files) == ["needs-admin.cmd", "needs-admin.ps1"]


def test_gitattributes_keep_cmd_bytes():
    attributes = (REPO / ".gitattributes").read_text()
    assert "*.cmd -text" in attributes
