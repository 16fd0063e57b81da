"""Parse PowerShell with tree-sitter-powershell and check rules on the parse tree.

Used at load time (inline PowerShell in plans must parse) and on every generated script in the
tests and in ``psgen lint``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, List


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int      # 1-based
    column: int    # 1-based
    message: str

    def format(self, file: str = "<script>") -> str:
        return f"{file}:{self.line}:{self.column}: {self.rule}: {self.message}"


@lru_cache(maxsize=1)
def _parser():
    import tree_sitter as ts
    import tree_sitter_powershell as tsp

    return ts.Parser(ts.Language(tsp.language()))


def parse(text: str):
    """Parse PowerShell source text; returns a tree-sitter Tree."""
    return _parser().parse(text.encode("utf-8"))


def walk(node) -> Iterator:
    cursor = [node]
    while cursor:
        n = cursor.pop()
        yield n
        cursor.extend(reversed(n.children))


def _col(text_line: bytes, byte_col: int) -> int:
    return len(text_line[:byte_col].decode("utf-8", "replace")) + 1


def syntax_errors(text: str) -> List[Finding]:
    """ERROR and MISSING nodes as findings (1-based), the most precise first.

    tree-sitter wraps a broken statement in nested ERROR nodes: the innermost one with some
    text is where the parser gave up, so it comes first; MISSING tokens come before both.
    """
    tree = parse(text)
    if not tree.root_node.has_error:
        return []
    lines = text.encode("utf-8").split(b"\n")
    missing: List[Finding] = []
    inner: List[Finding] = []
    outer: List[Finding] = []
    for n in walk(tree.root_node):
        row, col = n.start_point
        if n.is_missing:
            missing.append(Finding("syntax", row + 1, _col(lines[row], col),
                                   f"missing {n.type!r}"))
        elif n.type == "ERROR":
            body = n.text.decode("utf-8", "replace") if n.text else ""
            if not body.strip():
                outer.append(Finding("syntax", row + 1, _col(lines[row], col),
                                     "unexpected end of the code"))
                continue
            snippet = body.strip().splitlines()[0][:40]
            nested = any(d.type == "ERROR" and d is not n and (d.text or b"").strip()
                         for d in walk(n))
            (outer if nested else inner).append(Finding(
                "syntax", row + 1, _col(lines[row], col),
                f"cannot parse PowerShell near {snippet!r}"))
    return missing + inner + outer


def has_here_string(text: str) -> bool:
    """True when the code holds a here-string (whose lines must not be re-indented)."""
    if "@'" not in text and '@"' not in text:
        return False
    return any("here_string" in n.type for n in walk(parse(text).root_node))


# --------------------------------------------------------------------------- rules

# Built-in aliases of Windows PowerShell 5.1 and PowerShell 7 (Get-Alias), plus Unix-style ones.
ALIASES = frozenset("""
% ? ac asnp cat cd cfs chdir clc clear clhy cli clp cls clv cnsn compare copy cp cpi cpp curl
cvpa dbp del diff dir dnsn ebp echo epal epcsv epsn erase etsn exsn fc fhx fl foreach ft fw gal
gbp gc gcb gci gcm gcs gdr ghy gi gin gjb gl gm gmo gp gps gpv group gsn gsnp gsv gtz gu gv gwmi
h history icm iex ihy ii ipal ipcsv ipmo ipsn irm ise iwmi iwr kill lp ls man md measure mi mount
move mp mv nal ndr ni nmo npssc nsn nv ogv oh popd ps pushd pwd r rbp rcjb rcsn rd rdr ren ri rjb
rm rmdir rmo rni rnp rp rsn rsnp rujb rv rvpa rwmi sajb sal saps sasv sbp sc scb select set shcm
si sl sleep sls sort sp spjb spps spsv start stz sujb sv swmi tee trcm type wget where wjb write
""".split())

SEVEN_ONLY_PARAMETERS = frozenset(
    p.lower() for p in ("-AsHashtable", "-AsByteStream", "-Parallel", "-AdditionalChildPath",
                        "-SkipCertificateCheck", "-NoProxy")
)
SEVEN_ONLY_VARIABLES = frozenset(v.lower() for v in ("$IsWindows", "$IsLinux", "$IsMacOS",
                                                     "$IsCoreCLR"))

STATE_CHANGING_VERBS = frozenset(
    "set new remove move rename start stop restart clear enable disable add register unregister "
    "reset install uninstall suspend resume update import copy out mount dismount repair "
    "initialize format grant revoke block unblock protect unprotect publish unpublish".split()
)
# Commands with a state-changing verb that change nothing outside the script's own process.
PROCESS_LOCAL = frozenset(c.lower() for c in (
    "New-Object", "New-TimeSpan", "New-Guid", "Start-Sleep", "Add-Member", "Add-Type",
    "Set-StrictMode", "Out-Null", "Out-String", "Set-Variable", "Clear-Variable",
    "New-Variable", "Remove-Variable", "Import-Module", "Import-LocalizedData", "Update-TypeData",
    "Update-FormatData", "Out-Host", "Out-Default", "Start-Transcript", "Stop-Transcript",
    "Out-GridView", "Import-Csv", "Import-Clixml",
))
# Script blocks the runtime only invokes inside its own ShouldProcess branch.
GUARDED_TABLE_KEYS = frozenset(("fix", "rollback"))


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


def _ancestors(node):
    n = node.parent
    while n is not None:
        yield n
        n = n.parent


_NEGATED_SP = re.compile(r"(-not\s*|!\s*)\(?\s*\$PSCmdlet\.ShouldProcess\(", re.I)


def _guarded_by_should_process(node) -> bool:
    """Inside ``if (... -and $PSCmdlet.ShouldProcess(...))`` (not negated, not or-ed), or in a
    steps-table script block the runtime only runs inside its own ShouldProcess branch."""
    for a in _ancestors(node):
        if a.type in ("if_statement", "elseif_clause"):
            body = next((c for c in a.children if c.type == "statement_block"), None)
            if body is not None and not (body.start_byte <= node.start_byte < body.end_byte):
                continue  # the command is in the condition or an else branch
            head = _text(a)[: (body.start_byte - a.start_byte) if body is not None else None]
            if ("$PSCmdlet.ShouldProcess(" in head and not _NEGATED_SP.search(head)
                    and " -or " not in head.lower()):
                return True
        if a.type == "hash_entry":
            key = a.children[0] if a.children else None
            if key is not None and _text(key).lower() in GUARDED_TABLE_KEYS:
                return True
    return False


def _command_name(node) -> str:
    for c in node.children:
        if c.type == "command_name":
            return _text(c)
    return ""


def _elements(node):
    for c in node.children:
        if c.type == "command_elements":
            return [e for e in c.children if e.type != "command_argument_sep"]
    return []


def _positional_arguments(node, source: bytes):
    """Arguments not bound to a preceding -Parameter."""
    pending = False
    for e in _elements(node):
        if e.type == "command_parameter":
            # The next argument is this parameter's value (``-Name value`` or ``-Name:value``);
            # switches followed by a positional argument cannot be told apart without metadata.
            pending = True
            continue
        if e.type in ("redirection", "file_redirection_operator", "merging_redirection_operator"):
            continue
        if pending:
            pending = False
            continue
        if _text(e).startswith("@") and not _text(e).startswith(("@(", "@{", "@'", '@"')):
            continue  # splatting (@params) binds by name
        yield e


MAX_LINE = 115  # PoshCode style guide (pwsh.MAX_LINE wraps generated values to it)


def lint_script(text: str, *, rules: frozenset | None = None) -> List[Finding]:
    """Check generated (or hand-written) PowerShell against psgen's rules.

    Rules: syntax, ascii, alias, invoke-expression, ps7-only, named-parameters, should-process,
    journal-before-fix, try-needs-catch, trailing-whitespace, line-length.
    """
    findings: List[Finding] = list(syntax_errors(text))
    if any(not ch.isascii() for ch in text):
        pos = next(i for i, ch in enumerate(text) if not ch.isascii())
        line = text.count("\n", 0, pos) + 1
        findings.append(Finding("ascii", line, pos - text.rfind("\n", 0, pos),
                                f"non-ASCII character U+{ord(text[pos]):04X}"))
    for i, line in enumerate(text.split("\n"), 1):
        stripped = line[:-1] if line.endswith("\r") else line
        if stripped != stripped.rstrip():
            findings.append(Finding("trailing-whitespace", i, len(stripped.rstrip()) + 1,
                                    "trailing whitespace"))
        if len(stripped) > MAX_LINE and "# SIG #" not in stripped:
            findings.append(Finding("line-length", i, MAX_LINE + 1,
                                    f"line is {len(stripped)} characters; the limit is {MAX_LINE}"))
    source = text.encode("utf-8")
    tree = parse(text)
    journal_seen: dict = {}
    for node in walk(tree.root_node):
        row, col = node.start_point
        if node.type == "command":
            name = _command_name(node)
            low = name.lower()
            if low in ALIASES:
                findings.append(Finding("alias", row + 1, col + 1,
                                        f"alias {name!r}: write the full command name"))
            if low in ("invoke-expression", "iex"):
                findings.append(Finding("invoke-expression", row + 1, col + 1,
                                        "Invoke-Expression runs text as code; call commands directly"))
            for e in _elements(node):
                if e.type == "command_parameter" and _text(e).rstrip(":").lower() in SEVEN_ONLY_PARAMETERS:
                    findings.append(Finding("ps7-only", e.start_point[0] + 1, e.start_point[1] + 1,
                                            f"{_text(e)} does not exist in Windows PowerShell 5.1"))
            if "-" in name and not low.endswith((".exe", ".cmd", ".ps1")):
                for arg in _positional_arguments(node, source):
                    findings.append(Finding(
                        "named-parameters", arg.start_point[0] + 1, arg.start_point[1] + 1,
                        f"positional argument {_text(arg)[:30]!r} to {name}: name the parameter"))
                verb = low.split("-", 1)[0]
                args = _text(node).lower()
                bookkeeping = "-whatif:$false" in args
                if (verb in STATE_CHANGING_VERBS and low not in PROCESS_LOCAL
                        and "-psgen" not in low and not bookkeeping
                        and not _guarded_by_should_process(node)):
                    findings.append(Finding(
                        "should-process", row + 1, col + 1,
                        f"{name} changes state outside a $PSCmdlet.ShouldProcess branch"))
                if low == "save-psgenjournal":
                    fn = next((a for a in _ancestors(node) if a.type == "function_statement"), None)
                    journal_seen.setdefault(fn.id if fn else None, node.start_byte)
            if "-phase 'set'" in _text(node).lower():
                fn = next((a for a in _ancestors(node) if a.type == "function_statement"), None)
                seen = journal_seen.get(fn.id if fn else None)
                fn_text = _text(fn) if fn else ""
                if seen is None or seen > node.start_byte:
                    findings.append(Finding("journal-before-fix", row + 1, col + 1,
                                            "a fix is applied before its journal write"))
                elif "ShouldProcess(" not in fn_text:
                    findings.append(Finding("should-process", row + 1, col + 1,
                                            "a fix is applied without asking ShouldProcess"))
        elif node.type == "variable" and _text(node).lower() in SEVEN_ONLY_VARIABLES:
            findings.append(Finding("ps7-only", row + 1, col + 1,
                                    f"{_text(node)} does not exist in Windows PowerShell 5.1"))
        elif node.type == "try_statement":
            kinds = {c.type for c in node.children}
            if not kinds & {"catch_clauses", "catch_clause", "finally_clause"}:
                findings.append(Finding("try-needs-catch", row + 1, col + 1,
                                        "try needs a catch or finally block"))
        elif node.type == "pipeline_chain" and any(c.type in ("&&", "||") for c in node.children):
            findings.append(Finding("ps7-only", row + 1, col + 1,
                                    "&& and || pipeline chains need PowerShell 7"))
    findings.sort(key=lambda f: (f.line, f.column, f.rule))
    if rules is not None:
        findings = [f for f in findings if f.rule in rules]
    return findings
