"""The real ansible-playbook, over ansible_connection: psrp, against loopback WinRM endpoints.

Each endpoint plays one Windows host. Ansible's psrp connection plugin (pypsrp) opens a real
runspace pool and sends what it sends to Windows: its bootstrap wrapper script, with the exec
wrapper, the module wrapper, win_powershell.ps1 and its module_utils as pipeline input. The
handler checks all of it (byte for byte against the installed ansible-core and ansible.windows,
and the script against the role's file), binds the parameters the way PowerShell would, and
answers with the JSON win_powershell returns: ``changed``/``failed``/``result`` as the psgen
script sets them through $Ansible for that host's situation.

What the handler cannot do is run PowerShell: the outcome of the script on each host
(compliant, fixed, failed) is modelled here, and the rules the script applies to report it
(changed = a step fixed or undone, or one Fix would change under -WhatIf; failed = exit 2-4) are
restated in ``ansible_variables``; test_ansible.py checks the script states the same rules.
"""

from __future__ import annotations

import base64
import json
import re
import threading

import pytest

from psgen.build import build_plans
from psgen.lint import parse
from psgen.load import load_plan
from tests.ansible_support import ansible_playbook, json_report, run_playbook
from tests.test_ansible import supports_should_process

PLAN = "windows/print-spooler"
USER, PASSWORD = "ansible", "s3cret-pw"
SCENARIOS = ("compliant", "drifted", "broken", "unmet")


# ------------------------------------------------------------------------------ what Ansible sends


def _installed_ansible():
    """The exact texts ansible-core and ansible.windows send to a Windows host."""
    import pkgutil

    from ansible.executor.powershell.module_manifest import _get_powershell_script

    from ansible.plugins.shell.powershell import ShellModule

    # The psrp plugin decodes the shell plugin's -EncodedCommand (lines stripped, blanks gone).
    command = ShellModule().build_module_command("", "", "")
    return {
        "bootstrap": base64.b64decode(command.split(" ")[-1]).decode("utf-16-le"),
        "exec_wrapper": _get_powershell_script("exec_wrapper.ps1").decode(),
        "module": pkgutil.get_data("ansible_collections.ansible.windows.plugins.modules",
                                   "win_powershell.ps1"),
    }


def script_parameters(script: str) -> dict:
    """Name -> (type, ValidateSet values or None) of the script's param() block."""
    root = parse(script).root_node
    block = next(c for c in root.children if c.type == "param_block")
    text = block.text.decode("ascii")
    body = text[text.index("param(") + len("param("):]
    params, pending = {}, None
    for line in body.splitlines():
        line = line.strip()
        m = re.match(r"\[ValidateSet\((.*)\)\]$", line)
        if m:
            pending = [v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", m.group(1))]
            continue
        m = re.match(r"\[([\w\[\]]+)\]\$(\w+)", line)
        if m:
            params[m.group(2)] = (m.group(1), pending)
            pending = None
    return params


class Host:
    """One simulated Windows host running the psgen script under win_powershell."""

    def __init__(self, name: str, scenario: str, plan, script: str, sent: dict):
        self.name = name
        self.scenario = scenario
        self.plan = plan
        self.script = script
        self.sent = sent
        self.calls: list[dict] = []      # what reached the script: parameters, WhatIf, Confirm
        self.problems: list[str] = []   # anything Ansible sent that Windows would not accept

    # -- the endpoint handler ----------------------------------------------------------------
    def __call__(self, req, io):
        try:
            return self._handle(req)
        except AssertionError as exc:
            self.problems.append(f"{self.name}: {exc}")
            raise

    def _handle(self, req):
        assert req.username == USER
        assert req.script == self.sent["bootstrap"], "not ansible-core's bootstrap wrapper"
        assert req.parameters == {} and req.arguments == []
        lines = list(req.input)
        assert lines[1] == "\0\0\0\0", "bootstrap input separator"
        boot, manifest = json.loads(lines[0]), json.loads("".join(lines[2:]))
        assert boot["name"] == "exec_wrapper" and boot["script"] == self.sent["exec_wrapper"]
        actions = manifest["actions"]
        assert [a["name"] for a in actions] == ["module_wrapper.ps1"], "no become, async or coverage"
        wrapper = actions[0]["params"]
        module_name = "ansible_collections.ansible.windows.plugins.modules.win_powershell.ps1"
        assert wrapper["Script"] == module_name
        assert base64.b64decode(manifest["scripts"][module_name]["script"]) == self.sent["module"]
        for util in wrapper["CSharpModules"] + wrapper["PowerShellModules"]:
            assert util in manifest["scripts"], f"module_util {util} not sent"
        (variable,) = wrapper["Variables"]
        assert variable["Name"] == "complex_args" and variable["Scope"] == "Global"
        return json.dumps(self.win_powershell(variable["Value"]))

    # -- ansible.windows.win_powershell, as it runs on Windows ------------------------------------
    def win_powershell(self, args: dict) -> dict:
        module_args = {k: v for k, v in args.items() if not k.startswith("_ansible_")}
        # The role's file, as the action plugin read it on the controller, CRLF and all.
        assert args["script"] == self.script, "the script is not the role's file"
        assert "path" not in args and args["depth"] == 12
        check_mode = bool(args["_ansible_check_mode"])
        answer = {"changed": False, "failed": False, "result": {}, "host_out": "", "host_err": "",
                  "output": [], "error": [], "warning": [], "verbose": [], "debug": [],
                  "information": [], "invocation": {"module_args": module_args}}
        should_process = supports_should_process(args["script"])
        if check_mode and not should_process:
            answer.update(changed=True, msg="skipped, running in check mode")
            return answer
        parameters = dict(args.get("parameters") or {})
        if should_process:
            parameters.update(Confirm=False, WhatIf=check_mode)
        declared = script_parameters(args["script"])
        for name, value in parameters.items():
            if name in ("WhatIf", "Confirm"):
                continue
            if name not in declared:
                return self._binding_error(answer, f"A parameter cannot be found that matches "
                                                   f"parameter name '{name}'.")
            _, choices = declared[name]
            if choices is not None and str(value) not in choices:
                return self._binding_error(answer, f"Cannot validate argument on parameter "
                                                   f"'{name}'. The argument \"{value}\" does not "
                                                   f"belong to the set \"{','.join(choices)}\"")
        self.calls.append(parameters)
        mode = parameters.get("Mode", "Fix")
        result = simulate_run(self.plan, self.scenario, mode, parameters.get("WhatIf", False),
                              self.name)
        changed, failed = ansible_variables(self.plan, result, mode, parameters.get("WhatIf", False))
        answer.update(changed=changed, failed=failed, result=result,
                      host_out="".join(f"{s['status']}: {s['title']}\r\n" for s in result["steps"]))
        return answer

    @staticmethod
    def _binding_error(answer: dict, message: str) -> dict:
        answer["failed"] = True
        answer["changed"] = True  # $Ansible.Changed defaults to true; the script never ran
        answer["error"] = [{"output": message, "exception": {"message": message,
                            "type": "System.Management.Automation.ParameterBindingException"},
                            "fully_qualified_error_id": "NamedParameterNotFound"}]
        return answer


# ------------------------------------------------------------------------------ the script's side


def _kind(step) -> str:
    if step.model is not None:
        return "finding" if type(step.model).read_only else "resource"
    return "inline" if step.fix is not None else "finding"


def simulate_run(plan, scenario: str, mode: str, whatif: bool, computer: str) -> dict:
    """The -Json document the psgen script returns on a host in this situation."""
    steps = [{"id": s.id, "title": s.title, "status": "compliant", "before": {"Present": True},
              "after": None, "message": "OK: nothing to do.", "duration_ms": 4} for s in plan.steps]
    exit_code = 0
    first = next(i for i, s in enumerate(plan.steps) if _kind(s) != "finding")
    target = steps[first]
    if scenario == "unmet":
        for s in steps:
            s.update(status="skipped", message="Not run: it must run as Administrator.")
        exit_code = 4
    elif scenario in ("drifted", "broken") and mode != "Rollback":
        target.update(status="drift", message="Problem found: " + plan.steps[first].explain.strip())
        if mode == "Check":
            exit_code = 1
        elif whatif:
            target["message"] += " Not changed (-WhatIf, or not confirmed)."
            exit_code = 1
        elif scenario == "drifted":
            target.update(status="fixed", after={"Present": True}, message="Fixed.")
        else:
            target.update(status="rolled_back", message="Undone: back to how it was before.")
            exit_code = 2
    return {
        "schema": 1, "plan": plan.name, "title": plan.title, "planSha256": plan.sha256,
        "psgenVersion": "0.1.0", "mode": mode, "whatIf": bool(whatif), "computer": computer,
        "runId": "20260101-000000-42", "exit_code": exit_code, "duration_ms": 20,
        "log": rf"C:\ProgramData\psgen\{plan.name}\psgen.log",
        "journal": None if exit_code != 2 else rf"C:\ProgramData\psgen\{plan.name}\journal.json",
        "steps": steps,
    }


def ansible_variables(plan, result: dict, mode: str, whatif: bool) -> tuple[bool, bool]:
    """$Ansible.Changed and $Ansible.Failed as the script's Ansible entry sets them."""
    kinds = {s.id: _kind(s) for s in plan.steps}
    changed = any(s["status"] in ("fixed", "rolled_back") for s in result["steps"]) or (
        whatif and mode == "Fix" and any(s["status"] == "drift" and kinds[s["id"]] != "finding"
                                         for s in result["steps"]))
    return changed, result["exit_code"] >= 2


# ------------------------------------------------------------------------------ the fixture


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The built role, four endpoints (one per scenario) and an inventory pointing at them."""
    from tests.winrm_endpoint import WinRMEndpoint

    ansible_playbook()  # skip or fail early, with the reason
    root = tmp_path_factory.mktemp("ansible-psrp")
    out = root / "out"
    build_plans([PLAN], out_dir=out, target="ansible", echo=lambda _: None)
    plan = load_plan(PLAN)
    script = (out / "roles" / plan.name / "files" / f"{plan.name}.ps1").read_bytes().decode("ascii")
    sent = _installed_ansible()
    hosts, endpoints = {}, []
    inventory = ["windows:", "  hosts:"]
    for scenario in SCENARIOS:
        host = Host(scenario, scenario, plan, script, sent)
        ep = WinRMEndpoint(host, users={USER: PASSWORD}, name=scenario).start()
        hosts[scenario], endpoints = host, endpoints + [ep]
        inventory += [
            f"    {scenario}:",
            "      ansible_host: 127.0.0.1",
            f"      ansible_port: {ep.port}",
            "      ansible_connection: psrp",
            "      ansible_psrp_protocol: http",
            "      ansible_psrp_auth: basic",
            "      ansible_psrp_message_encryption: never",
            "      ansible_psrp_operation_timeout: 10",
            "      ansible_psrp_read_timeout: 30",
            f"      ansible_user: {USER}",
            f"      ansible_password: {PASSWORD}",
        ]
    (out / "inventory.yml").write_text("\n".join(inventory) + "\n", encoding="ascii")
    lock = threading.Lock()

    def play(*extra):
        with lock:
            for h in hosts.values():
                h.calls.clear()
            proc = run_playbook(["-i", "inventory.yml", f"{plan.name}.yml", *extra], cwd=out,
                                home=root / "ansible")
            report = json_report(proc)
            problems = [p for h in hosts.values() for p in h.problems]
            assert not problems, problems
            return proc, report

    yield play, hosts, endpoints
    for ep in endpoints:
        ep.stop()


def _task(report: dict, host: str) -> dict:
    tasks = report["plays"][0]["tasks"]
    assert "Validating arguments" in tasks[0]["task"]["name"]
    assert tasks[1]["task"]["name"] == "print-spooler : Repair the Print Spooler service"
    return tasks[1]["hosts"][host]


def _stats(report: dict, host: str) -> tuple:
    s = report["stats"][host]
    return s["ok"], s["changed"], s["failures"], s["unreachable"]


# ------------------------------------------------------------------------------ the runs


def test_fix_run_reports_ok_changed_and_failed_per_host(fleet):
    play, hosts, _ = fleet
    proc, report = play()
    assert proc.returncode == 2, "a failed host makes ansible-playbook exit 2"
    # ok counts the argument validation task too.
    assert _stats(report, "compliant") == (2, 0, 0, 0)
    assert _stats(report, "drifted") == (2, 1, 0, 0)
    assert _stats(report, "broken") == (1, 0, 1, 0)
    assert _stats(report, "unmet") == (1, 0, 1, 0)
    for name, host in hosts.items():
        # Mode from the role's defaults; -WhatIf:$false and -Confirm:$false from win_powershell.
        assert host.calls == [{"Mode": "Fix", "Confirm": False, "WhatIf": False}], name
    compliant, drifted = _task(report, "compliant"), _task(report, "drifted")
    assert compliant["changed"] is False and compliant["result"]["exit_code"] == 0
    assert drifted["changed"] is True and drifted["result"]["exit_code"] == 0
    assert [s["status"] for s in drifted["result"]["steps"]] == ["fixed", "compliant", "compliant"]
    broken = _task(report, "broken")
    assert broken["failed"] is True and broken["result"]["exit_code"] == 2
    assert broken["result"]["steps"][0]["status"] == "rolled_back"
    assert _task(report, "unmet")["result"]["exit_code"] == 4
    # The task result is the script's -Json document, under result.
    assert set(drifted["result"]) >= {"schema", "plan", "mode", "whatIf", "exit_code", "steps", "log"}


def test_check_mode_passes_whatif_and_reports_what_fix_would_change(fleet):
    play, hosts, _ = fleet
    proc, report = play("--check")
    assert proc.returncode == 2  # the host whose precondition is unmet still fails
    assert _stats(report, "compliant") == (2, 0, 0, 0)
    assert _stats(report, "drifted") == (2, 1, 0, 0)
    assert _stats(report, "broken") == (2, 1, 0, 0)  # nothing was tried, so nothing failed
    assert _stats(report, "unmet") == (1, 0, 1, 0)
    for name, host in hosts.items():
        assert host.calls == [{"Mode": "Fix", "Confirm": False, "WhatIf": True}], name
    drifted = _task(report, "drifted")
    assert drifted["result"]["whatIf"] is True and drifted["result"]["exit_code"] == 1
    assert "fixed" not in [s["status"] for s in drifted["result"]["steps"]]


def test_check_mode_of_the_plan_changes_nothing_and_drift_is_not_a_failure(fleet):
    play, hosts, _ = fleet
    proc, report = play("-e", "print_spooler_mode=Check",
                        "-e", '{"print_spooler_parameters": {"StartType": "manual"}}')
    assert proc.returncode == 2
    assert _stats(report, "compliant") == (2, 0, 0, 0)
    assert _stats(report, "drifted") == (2, 0, 0, 0)
    assert _stats(report, "broken") == (2, 0, 0, 0)
    assert _stats(report, "unmet") == (1, 0, 1, 0)
    for name, host in hosts.items():
        assert host.calls == [{"Mode": "Check", "StartType": "manual", "Confirm": False,
                               "WhatIf": False}], name
    assert _task(report, "drifted")["result"]["exit_code"] == 1


def test_parameters_outside_the_argument_spec_never_reach_a_host(fleet):
    play, hosts, endpoints = fleet
    before = [len(ep.requests) for ep in endpoints]
    proc, report = play("-e", '{"print_spooler_parameters": {"Unknown": "x"}}')
    assert proc.returncode == 2
    for name in hosts:
        assert _stats(report, name) == (0, 0, 1, 0)
        assert "Unknown" in report["plays"][0]["tasks"][0]["hosts"][name]["msg"]
    assert [len(ep.requests) for ep in endpoints] == before
