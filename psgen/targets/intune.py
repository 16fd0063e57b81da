"""Intune Remediations: NAME.detect.ps1, NAME.remediate.ps1 and NAME.intune.json.

Both scripts are the compiled runtime with the Intune entry (templates/intune.ps1.j2): no
parameters, Check or Fix mode fixed, one summary line on the output stream, nothing on the error
stream, a sysnative re-launch from a 32-bit host. NAME.intune.json is the Microsoft Graph
``deviceHealthScript`` body (with ``psgen build --sign``: the signed scripts and
enforceSignatureCheck, see :func:`after_signing`), so an admin uploads the pair with one call::

    POST https://graph.microsoft.com/beta/deviceManagement/deviceHealthScripts

What Intune requires and this module refuses to build otherwise (facts in
shared/reference/fleet.md): each script 1 to 200,000 bytes (signature included), no reboot
commands, no parameters the device would have to supply.
"""

from __future__ import annotations

import base64
import json
from typing import Dict, List, Optional

from ..compile import context, environment, to_script_bytes
from ..errors import Problem, UserError
from ..plan import Plan

MAX_SCRIPT_BYTES = 200_000  # the portal rejects larger files; "< 200 KB" in Microsoft's docs
SUMMARY_LIMIT = 2048        # Intune keeps at most 2,048 characters of output
HEAD_LIMIT = 400            # status part of the summary line, always kept
TAIL_LIMIT = 300            # " | log: PATH", always kept
TRUNCATION_MARKER = " | ...[truncated, see log]"
GRAPH_URL = "https://graph.microsoft.com/beta/deviceManagement/deviceHealthScripts"
ROLES = {"Check": "detect", "Fix": "remediate"}

# Headline word per exit code, for the summary line.
STATUS_WORDS = {
    "Check": {"0": "COMPLIANT", "1": "DRIFT", "2": "FAILED", "3": "FAILED", "4": "CANNOT RUN"},
    "Fix": {"0": "COMPLIANT", "1": "NEEDS ATTENTION", "2": "FIX FAILED, ROLLED BACK",
            "3": "FIX FAILED, ROLLBACK INCOMPLETE", "4": "CANNOT RUN"},
}
# Exit code when the script itself stops unexpectedly: detection must not trigger a remediation
# on an unknown state (4: nothing changed); remediation may have changed something (3).
CRASH_EXIT = {"Check": 4, "Fix": 3}

# Commands that restart or shut down Windows, and commands that restart it unless told not to.
REBOOT_COMMANDS = frozenset(c.lower() for c in (
    "Restart-Computer", "Stop-Computer", "shutdown", "shutdown.exe", "tsshutdn", "tsshutdn.exe",
))
NEEDS_NORESTART = frozenset(c.lower() for c in (
    "Enable-WindowsOptionalFeature", "Disable-WindowsOptionalFeature", "Add-WindowsPackage",
    "Remove-WindowsPackage", "Add-WindowsCapability", "Remove-WindowsCapability",
))
REBOOT_CIM_METHODS = frozenset(("reboot", "shutdown", "win32shutdown", "win32shutdowntracker"))


def reboot_commands(text: str) -> List[str]:
    """Each command in ``text`` that would restart or shut down Windows, as 'line N: command'."""
    from ..lint import parse, walk

    found: List[str] = []
    for node in walk(parse(text).root_node):
        if node.type != "command":
            continue
        name = ""
        elements: list = []
        for child in node.children:
            if child.type == "command_name":
                name = child.text.decode("utf-8", "replace")
            elif child.type == "command_elements":
                elements = [e.text.decode("utf-8", "replace") for e in child.children
                            if e.type != "command_argument_sep"]
        low = name.lower().strip("'\"")
        low = low.rsplit("\\", 1)[-1]
        params = [e.lower().rstrip(":") for e in elements if e.startswith("-")]
        line = node.start_point[0] + 1
        snippet = " ".join(node.text.decode("utf-8", "replace").split())[:80]
        if low in REBOOT_COMMANDS:
            found.append(f"line {line}: {snippet}")
        elif "-restart" in params:
            found.append(f"line {line}: {snippet}")
        elif low in NEEDS_NORESTART and "-norestart" not in params:
            found.append(f"line {line}: {snippet} (without -NoRestart it may restart Windows)")
        elif low == "invoke-cimmethod" and any(
                e.strip("'\"").lower() in REBOOT_CIM_METHODS for e in elements):
            found.append(f"line {line}: {snippet}")
    return found


def _check_plan(plan: Plan) -> None:
    problems: List[Problem] = []
    for name, p in plan.parameters.items():
        if p.required:
            problems.append(Problem(
                f"parameter {name} is required, and Intune cannot pass parameters to a script",
                file=plan.source, hint=f"give {name} a default in the plan (or build a copy of the "
                "plan with the value you want) to build it for Intune"))
    for step in plan.steps:
        for phase in ("check", "fix", "verify", "rollback", "capture", "when"):
            code = getattr(step, phase, None)
            if code is None:
                continue
            for hit in reboot_commands(code.ps):
                problems.append(Problem(
                    f"step {step.id}: its {phase} code restarts or shuts down Windows ({hit}), "
                    "which Intune Remediations do not allow", file=plan.source,
                    hint="remove the restart; return PsgenRestartRequired = $true in the step's "
                    "state instead, and the summary line will ask for a restart"))
    if problems:
        raise UserError(problems)


def render(plan: Plan, stem: str, mode: str) -> bytes:
    """The detection (mode 'Check') or remediation (mode 'Fix') script, unsigned."""
    ctx = context(plan)
    text = environment().get_template("intune.ps1.j2").render(
        **ctx,
        stem=stem,
        intune_mode=mode,
        role=ROLES[mode],
        summary_limit=SUMMARY_LIMIT,
        head_limit=HEAD_LIMIT,
        tail_limit=TAIL_LIMIT,
        truncation_marker=TRUNCATION_MARKER,
        status_words=_ps_table(STATUS_WORDS[mode]),
        crash_exit_code=CRASH_EXIT[mode],
    )
    data = to_script_bytes(text)
    hits = reboot_commands(data.decode("ascii"))
    if hits:  # the runtime and resources never restart Windows: this is a psgen bug
        raise AssertionError(f"generated Intune script restarts Windows: {hits}")
    return data


def _ps_table(mapping: Dict[str, str]) -> str:
    from .. import pwsh

    return pwsh.hashtable(mapping, 4)


def graph_body(plan: Plan, detect: bytes, remediate: bytes, *, signed: bool,
               publisher: str = "psgen", run_as: str = "system") -> Dict[str, object]:
    """The Microsoft Graph deviceHealthScript body (POST to GRAPH_URL)."""
    from .. import __version__

    description = " ".join((plan.description or plan.title).split())
    return {
        "@odata.type": "#microsoft.graph.deviceHealthScript",
        "displayName": plan.title,
        "description": f"{description} (psgen {__version__}, plan {plan.name}, "
                       f"sha256 {plan.sha256[:12]})",
        "publisher": publisher,
        "version": __version__,
        "runAsAccount": run_as,
        "runAs32Bit": False,
        "enforceSignatureCheck": signed,
        "detectionScriptContent": base64.b64encode(detect).decode("ascii"),
        "remediationScriptContent": base64.b64encode(remediate).decode("ascii"),
    }


def _check_size(name: str, data: bytes, source: Optional[str] = None) -> None:
    if not 1 <= len(data) <= MAX_SCRIPT_BYTES:
        raise UserError.single(
            f"{name} is {len(data):,} bytes; Intune accepts at most {MAX_SCRIPT_BYTES:,}",
            file=source, hint="split the plan into smaller plans, or shorten its inline PowerShell")


def outputs(plan: Plan, stem: str, *, publisher: str = "psgen", run_as: str = "system",
            **_options) -> Dict[str, bytes]:
    """NAME.detect.ps1, NAME.remediate.ps1 and NAME.intune.json (unsigned; ``psgen build
    --sign`` signs the scripts and then calls :func:`after_signing`)."""
    if run_as not in ("system", "user"):
        raise UserError.single(f"unknown Intune account {run_as!r}", hint="use system or user")
    _check_plan(plan)
    scripts: Dict[str, bytes] = {}
    for mode, role in ROLES.items():
        name = f"{stem}.{role}.ps1"
        scripts[name] = render(plan, stem, mode)
        _check_size(f"the Intune {role} script of plan {plan.name}", scripts[name], plan.source)
    body = graph_body(plan, scripts[f"{stem}.detect.ps1"], scripts[f"{stem}.remediate.ps1"],
                      signed=False, publisher=publisher, run_as=run_as)
    scripts[f"{stem}.intune.json"] = _json_bytes(body)
    return scripts


def _json_bytes(body: Dict[str, object]) -> bytes:
    return (json.dumps(body, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def _is_signed(data: bytes) -> bool:
    from ..build import SIGNATURE_MARK

    return SIGNATURE_MARK in data


def after_signing(files: Dict[str, bytes]) -> Dict[str, bytes]:
    """Called by ``psgen build --sign`` once the scripts are signed: NAME.intune.json carries
    the signed scripts and asks Intune to enforce the signature check."""
    out = dict(files)
    for name, data in files.items():
        if not name.endswith(".intune.json"):
            continue
        stem = name[: -len(".intune.json")]
        detect, remediate = files[f"{stem}.detect.ps1"], files[f"{stem}.remediate.ps1"]
        for script_name in (f"{stem}.detect.ps1", f"{stem}.remediate.ps1"):
            _check_size(f"the signed {script_name}", files[script_name])
        body = json.loads(data)
        body["enforceSignatureCheck"] = _is_signed(detect) and _is_signed(remediate)
        body["detectionScriptContent"] = base64.b64encode(detect).decode("ascii")
        body["remediationScriptContent"] = base64.b64encode(remediate).decode("ascii")
        out[name] = _json_bytes(body)
    return out


def check_view(name: str, data: bytes) -> bytes:
    """``data`` as an unsigned build would write it, for ``psgen build --check``: a signed
    NAME.intune.json is current when the scripts it carries are (signature blocks ignored)."""
    if not name.endswith(".intune.json"):
        return data
    from ..build import unsigned

    try:
        body = json.loads(data)
        body["enforceSignatureCheck"] = False
        for field in ("detectionScriptContent", "remediationScriptContent"):
            body[field] = base64.b64encode(unsigned(base64.b64decode(body[field]))).decode("ascii")
    except (ValueError, KeyError, TypeError):
        return data  # not what psgen writes: stale
    return _json_bytes(body)
