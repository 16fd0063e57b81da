"""Each parse-tree rule catches what it is for, and does not fire on the right way to write it."""

from __future__ import annotations

import pytest

from psgen.lint import lint_script, syntax_errors

BAD = {
    "alias": "gci -Path 'C:\\'\r\n",
    "invoke-expression": "Invoke-Expression -Command $text\r\n",
    "ps7-only": "$x = Get-Content -Path 'a' -AsByteStream\r\n",
    "named-parameters": "Get-Item 'C:\\x'\r\n",
    "should-process": "Remove-Item -LiteralPath 'C:\\x'\r\n",
    "try-needs-catch": "try {\r\n    $x = 1\r\n}\r\n",
    "trailing-whitespace": "$x = 1  \r\n",
    "line-length": "$x = '" + "a" * 120 + "'\r\n",
    "ascii": "$x = '\u2013'\r\n",
    "syntax": "if ($x {\r\n}\r\n",
}

GOOD = {
    "alias": "Get-ChildItem -Path 'C:\\'\r\n",
    "should-process": (
        "function Remove-Thing {\r\n    [CmdletBinding(SupportsShouldProcess = $true)]\r\n"
        "    param()\r\n    if ($PSCmdlet.ShouldProcess('C:\\x', 'Remove')) {\r\n"
        "        Remove-Item -LiteralPath 'C:\\x'\r\n    }\r\n}\r\n"),
    "bookkeeping": "Add-Content -LiteralPath $log -Value 'x' -WhatIf:$false -Confirm:$false\r\n",
    "splatting": "$p = @{ Path = 'C:\\' }\r\nGet-ChildItem @p -Force\r\n",
    "try": "try {\r\n    $x = 1\r\n}\r\ncatch {\r\n    $err = $_\r\n    throw $err\r\n}\r\n",
}


@pytest.mark.parametrize("rule", sorted(BAD))
def test_rule_fires(rule):
    assert rule in {f.rule for f in lint_script(BAD[rule])}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_rule_is_quiet_on_good_code(name):
    assert lint_script(GOOD[name]) == []


def test_negated_or_else_branch_is_not_a_guard():
    negated = ("if (-not $PSCmdlet.ShouldProcess('x', 'y')) {\r\n"
               "    Remove-Item -LiteralPath 'x'\r\n}\r\n")
    in_else = ("if ($PSCmdlet.ShouldProcess('x', 'y')) {\r\n    $a = 1\r\n}\r\nelse {\r\n"
               "    Remove-Item -LiteralPath 'x'\r\n}\r\n")
    ored = ("if ($force -or $PSCmdlet.ShouldProcess('x', 'y')) {\r\n"
            "    Remove-Item -LiteralPath 'x'\r\n}\r\n")
    for code in (negated, in_else, ored):
        assert "should-process" in {f.rule for f in lint_script(code)}, code


def test_fix_before_journal_is_caught():
    code = ("function Invoke-X {\r\n    if ($PSCmdlet.ShouldProcess('a', 'b')) {\r\n"
            "        $null = Invoke-PsgenPhase -Step $s -Phase 'Set'\r\n"
            "        Save-PsgenJournal\r\n    }\r\n}\r\n")
    assert "journal-before-fix" in {f.rule for f in lint_script(code)}
    fixed = code.replace("        $null = Invoke-PsgenPhase -Step $s -Phase 'Set'\r\n", "") \
        .replace("        Save-PsgenJournal\r\n",
                 "        Save-PsgenJournal\r\n        $null = Invoke-PsgenPhase -Step $s -Phase 'Set'\r\n")
    assert lint_script(fixed) == []


def test_syntax_errors_are_located():
    (first, *_rest) = syntax_errors("$a = 1\n$b = (2 +\n")
    assert first.line == 2
