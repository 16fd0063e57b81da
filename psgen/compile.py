"""Plan -> PowerShell script text. Deterministic: same plan + same psgen = same bytes.

The script is a fixed runtime (templates/runtime.ps1.j2), the resource functions the plan uses
(templates/resources/*.ps1.j2, each once), the param() block and a table of steps. Every value
reaches PowerShell through pwsh.py; templates only place what this module prepared.
"""

from __future__ import annotations

import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List

from . import __version__, pwsh
from .errors import UserError
from .plan import ParamRef, Plan, Step

# A plan's bool is a switch: powershell.exe -File cannot bind $true to a [bool] parameter.
PS_TYPES = {"string": "string", "int": "int", "bool": "switch", "string[]": "string[]"}

EXIT_MESSAGES = {
    "0": "Done: everything is as it should be.",
    "1": "Problems were found. Run this script again without -Mode Check (or without -WhatIf) "
         "to fix them, or follow the advice above.",
    "2": "A repair did not work, so every change made by this run was undone. "
         "Please send the log file below to whoever gave you this script.",
    "3": "A repair did not work and some changes could NOT be undone. "
         "Please send the log file below to whoever gave you this script.",
    "4": "This script could not start, and nothing was changed. See the reason above.",
}

INDENT = "    "


def help_wrap(text: str, indent: int = 4, hang: int = 0, width: int = pwsh.MAX_LINE) -> str:
    """Help text as lines of at most ``width`` characters; continuation lines are indented by
    ``indent + hang``. The first line's indent is the template's."""
    lines = textwrap.wrap(pwsh.help_text(" ".join(text.split())), width=width - indent,
                          subsequent_indent=" " * hang, break_long_words=False,
                          break_on_hyphens=False) or [""]
    return ("\n" + " " * indent).join(lines)


def exit_messages(plan: Plan) -> Dict[str, str]:
    """The closing sentence for each exit code; a check-only plan cannot fix, so says so."""
    messages = dict(EXIT_MESSAGES)
    if not any(s.changes_state and not getattr(type(s.model), "read_only", False)
               and not getattr(type(s.model), "gate", False) for s in plan.steps):
        messages["1"] = ("Problems were found: see what to do above. This script only checks; "
                         "it changed nothing.")
    return messages


@lru_cache(maxsize=1)
def environment():
    """The one Jinja environment, built once per process."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from .cache import jinja_bytecode_cache
    from .paths import templates_dir

    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        bytecode_cache=jinja_bytecode_cache(),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,
    )
    env.filters["ps"] = pwsh.value
    env.filters["quote"] = pwsh.quote
    env.filters["help"] = pwsh.help_text
    env.filters["helpwrap"] = help_wrap
    env.globals["version"] = __version__
    return env


# --------------------------------------------------------------------------- values

def _with_refs(value: Any) -> Any:
    """Turn ParamRef into the script variable; everything else stays a plain value."""
    if isinstance(value, ParamRef):
        return pwsh.Raw(pwsh.variable(value.param))
    if isinstance(value, list):
        return [_with_refs(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_refs(v) for k, v in value.items()}
    return value


def _script_block(code: str, indent: int, params: str = "") -> pwsh.Raw:
    """Inline plan PowerShell as a script block, re-indented unless it holds a here-string."""
    from .lint import has_here_string

    lines = code.strip("\n").splitlines()
    body = textwrap.dedent("\n".join(line.rstrip() for line in lines))
    pad = " " * (indent + 4)
    if has_here_string(body):
        inner = body  # a here-string's closing quote must stay in column 1
    else:
        inner = "\n".join((pad + line) if line.strip() else "" for line in body.splitlines())
    head = "{" + (f"\n{pad}param({params})" if params else "")
    return pwsh.Raw(f"{head}\n{inner}\n{' ' * indent}}}")


def _parameter_context(name: str, p) -> Dict[str, Any]:
    attrs: List[str] = []
    if p.required:
        attrs.append("[Parameter(Mandatory = $true)]")
    if p.choices is not None:
        attrs.append("[ValidateSet(" + ", ".join(pwsh.value(c) for c in p.choices) + ")]")
    if p.pattern is not None and p.type != "string[]":
        # A list is checked item by item after splitting (see list_parameters): with -File,
        # powershell.exe binds "a,b" to a [string[]] parameter as ONE string.
        attrs.append(f"[ValidatePattern({pwsh.quote(p.pattern)})]")
    if p.min is not None or p.max is not None:
        lo = pwsh.integer(p.min) if p.min is not None else "[int]::MinValue"
        hi = pwsh.integer(p.max) if p.max is not None else "[int]::MaxValue"
        attrs.append(f"[ValidateRange({lo}, {hi})]")
    if p.required and p.type in ("string", "string[]"):
        attrs.append("[ValidateNotNullOrEmpty()]")
    default_ps = None if p.default is None or p.type == "bool" else pwsh.value(p.default)
    if p.default is None:
        default_text = ""
    elif isinstance(p.default, list):
        default_text = ", ".join(map(str, p.default))
    else:
        default_text = str(p.default).lower() if isinstance(p.default, bool) else str(p.default)
    return {
        "name": name,
        "description": p.description,
        "attributes": attrs,
        "ps_type": PS_TYPES[p.type],
        "default_ps": default_ps,
        "default_text": default_text,
    }


def _requires_table(req) -> Dict[str, Any]:
    return {
        "Admin": bool(req.admin) if req else False,
        "Windows": getattr(req, "windows", None) or "",
        "PowerShell": getattr(req, "powershell", None) or "",
        "Modules": list(req.modules) if req else [],
        "Commands": list(req.commands) if req else [],
    }


def _step_context(step: Step, indent: int) -> Dict[str, Any]:
    model = step.model
    table: Dict[str, Any] = {
        "Id": step.id,
        "Title": step.title,
        "Explain": " ".join(step.explain.split()),
        "Advice": " ".join(step.advice.split()),
        "Next": " ".join(step.next.split()),
    }
    block = indent + 4
    if model is not None:
        cls = type(model)
        kind = "gate" if cls.gate else "finding" if cls.read_only else "resource"
        table.update(
            Kind=kind,
            Target=model.target(),
            FixSummary="" if cls.read_only else model.fix_summary(),
            Irreversible=False,
            Property=_with_refs(model.properties()),
            Get=f"Get-Psgen{cls.noun}",
            Test=f"Test-Psgen{cls.noun}",
            Set=None if cls.read_only else f"Set-Psgen{cls.noun}",
            Restore=None if cls.read_only else f"Restore-Psgen{cls.noun}",
        )
        changes, undo = ("" if cls.read_only else cls.changes), ("" if cls.read_only else cls.undo)
    else:
        kind = "inline" if step.fix is not None else "finding"
        table.update(
            Kind=kind,
            Target=step.title,
            FixSummary="" if step.fix is None else f"apply the fix for: {step.title}",
            Irreversible=step.irreversible,
            Capture=_script_block(step.capture.ps, block) if step.capture else None,
            Check=_script_block(step.check.ps, block),
            Fix=_script_block(step.fix.ps, block) if step.fix else None,
            Verify=_script_block((step.verify or step.check).ps, block) if step.fix else None,
            Rollback=(_script_block(step.rollback.ps, block, params="$State")
                      if step.rollback else None),
        )
        changes = "" if step.fix is None else "runs the plan's own fix"
        undo = ("" if step.fix is None else
                "cannot be undone (the plan says so)" if step.irreversible
                else "runs the plan's own rollback")
    table["Requires"] = _requires_table(step.requires)
    table["When"] = _script_block(step.when.ps, block) if step.when else None
    table["WhenReason"] = step.when.reason if step.when else ""
    return {
        "id": step.id,
        "title": step.title,
        "changes": changes,
        "undo": undo,
        "table": pwsh.hashtable(table, indent),
        "template": type(model).template() if model is not None else None,
        "helpers": type(model).modules if model is not None else (),
    }


def context(plan: Plan) -> Dict[str, Any]:
    """Everything the script template needs, already converted to PowerShell where it is code."""
    steps = [_step_context(s, 4) for s in plan.steps]
    templates: List[str] = []
    for s in steps:
        for t in list(s["helpers"]) + ([s["template"]] if s["template"] else []):
            if t not in templates:
                templates.append(t)
    plan_table = {
        "Name": plan.name,
        "Title": plan.title,
        "Sha256": plan.sha256,
        "PsgenVersion": __version__,
        "Requires": dict(_requires_table(plan.requires), ListPatterns={
            n: p.pattern for n, p in plan.parameters.items()
            if p.type == "string[]" and p.pattern is not None}),
        "ExitMessages": exit_messages(plan),
    }
    description = plan.description.strip() or plan.title
    lines: List[str] = []
    for para in description.split("\n\n"):
        if lines:
            lines.append("")
        lines += textwrap.wrap(" ".join(para.split()), width=92) or [""]
    return {
        "plan": plan,
        "description_lines": [pwsh.help_text(line) for line in lines],
        "parameters": [_parameter_context(n, p) for n, p in plan.parameters.items()],
        "list_parameters": [pwsh.variable(n) for n, p in plan.parameters.items()
                            if p.type == "string[]"],
        "steps": steps,
        "plan_table": pwsh.hashtable(plan_table, 0),
        "resource_templates": templates,
    }


def to_script_bytes(text: str) -> bytes:
    """The script contract's bytes: ASCII, CRLF line endings, one final newline, no trailing
    whitespace."""
    text = text.replace("\r\n", "\n")
    if " \n" in text or "\t\n" in text:
        text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    text = text.rstrip("\n")
    out = text.replace("\n", "\r\n") + "\r\n"
    try:
        return out.encode("ascii")
    except UnicodeEncodeError as exc:  # a bug in psgen, not a user mistake
        raise AssertionError(
            f"generated script is not ASCII at offset {exc.start}: {out[exc.start - 40:exc.start + 10]!r}"
        ) from None


def compile_plan(plan: Plan, template: str = "script.ps1.j2") -> bytes:
    """Compile a loaded plan to script bytes."""
    text = environment().get_template(template).render(**context(plan))
    return to_script_bytes(text)
