"""Ansible target: the role's files, the script's $Ansible contract, and the real
ansible-playbook --syntax-check on every catalog plan. The run over psrp against the loopback
WinRM endpoint is in test_ansible_psrp.py."""

from __future__ import annotations

import re

import pytest

from psgen.build import build_plans
from psgen.lint import lint_script, parse
from psgen.load import catalog, load_plan
from psgen.targets import TARGETS, ansible, outputs
from tests.ansible_support import json_report, run_playbook
from tests.helpers import REPO, load

CATALOG = [name for name, _ in catalog()]

NASTY = """
psgen: 1
name: nasty-names
title: "Templating {{ lookup('pipe', 'id') }} must stay text"
description: "Quotes ' and \\" and {% raw %} and a colon: here"
parameters:
  Servers: {type: 'string[]', default: [1.1.1.1], pattern: '^[0-9.]+$', description: "DNS {{ x }}"}
  Retries: {type: int, default: 3, min: 1, max: 9}
  Level: {type: string, choices: [low, high], default: low}
  Token: {type: string, required: true}
  Force: {type: bool, default: false}
steps:
  - id: one
    title: "Step {{ two }}"
    explain: One.
    check: {ps: "$Token -ne ''"}
"""


def yaml_load(data: bytes):
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.constructor.add_constructor("!unsafe", lambda c, node: c.construct_scalar(node))
    return yaml.load(data.decode("ascii"))


@pytest.fixture(scope="module")
def built():
    return {name: outputs(load_plan(name), "ansible") for name in CATALOG}


def _files(stem: str) -> set:
    role = f"roles/{stem}"
    return {f"{stem}.yml", f"{stem}.requirements.yml", f"{role}/tasks/main.yml",
            f"{role}/defaults/main.yml", f"{role}/meta/main.yml",
            f"{role}/meta/argument_specs.yml", f"{role}/files/{stem}.ps1"}


def test_target_is_registered():
    assert TARGETS["ansible"] == "psgen.targets.ansible"


@pytest.mark.parametrize("name", CATALOG)
def test_role_files_are_ascii_yaml_and_name_the_module(built, name):
    plan = load_plan(name)
    stem, v = plan.name, ansible.var_prefix(plan.name)
    files = built[name]
    assert set(files) == _files(stem)
    docs = {n: yaml_load(d) for n, d in files.items() if n.endswith(".yml")}
    play = docs[f"{stem}.yml"][0]
    assert play["hosts"] == "{{ psgen_hosts | default('windows') }}"
    assert play["gather_facts"] is False and play["roles"] == [{"role": stem}]
    task = docs[f"roles/{stem}/tasks/main.yml"][0]
    assert task["ansible.windows.win_powershell"] == {
        "path": f"{stem}.ps1",
        "parameters": f"{{{{ {{'Mode': {v}_mode}} | combine({v}_parameters) }}}}",
        "depth": ansible.RESULT_DEPTH,
    }
    assert task["register"] == f"{v}_result"
    assert docs[f"roles/{stem}/defaults/main.yml"] == {f"{v}_mode": "Fix", f"{v}_parameters": {}}
    assert docs[f"{stem}.requirements.yml"] == {
        "collections": [{"name": "ansible.windows", "version": ">=3.1.0"}]}
    spec = docs[f"roles/{stem}/meta/argument_specs.yml"]["argument_specs"]["main"]["options"]
    assert spec[f"{v}_mode"]["choices"] == ["Check", "Fix", "Rollback"]
    options = spec[f"{v}_parameters"]["options"]
    assert set(options) == set(plan.parameters) | {"LogPath", "JournalPath"}
    for pname, p in plan.parameters.items():
        assert options[pname]["type"] == ansible.ARG_TYPES[p.type]
        assert options[pname].get("choices") == p.choices
        assert options[pname].get("required", False) == p.required


@pytest.mark.parametrize("name", CATALOG)
def test_script_is_the_standalone_script_with_an_ansible_ending(built, name):
    plan = load_plan(name)
    text = built[name][f"roles/{plan.name}/files/{plan.name}.ps1"].decode("ascii")
    standalone = outputs(plan, "script")[f"{plan.name}.ps1"].decode("ascii")
    assert lint_script(text) == []
    # Same parameters, runtime, steps and resources: everything from #Requires to the entry.
    start, end = "#Requires -Version 5.1\r\n", "\r\n$PsgenResult = Invoke-PsgenMain\r\n"
    assert text[text.index(start):text.index(end)] == standalone[standalone.index(start):standalone.index(end)]
    entry = text[text.index(end):]
    # Standalone (no $Ansible): exit code as usual. Under win_powershell: report through $Ansible.
    assert "$PsgenAnsible = Get-Variable -Name 'Ansible' -ValueOnly -ErrorAction 'Ignore'" in entry
    assert "if ($null -eq $PsgenAnsible) {\r\n    exit $PsgenResult.exit_code\r\n}" in entry
    assert len(re.findall(r"^\s*exit ", entry, re.M)) == 1
    assert "$PsgenAnsible.Failed = ($PsgenResult.exit_code -ge 2)" in entry
    assert "$PsgenAnsible.Changed = $PsgenChanged" in entry
    assert ("$PsgenAnsible.Result = ConvertFrom-Json -InputObject (ConvertTo-Json -InputObject "
            "$PsgenResult -Depth 12 -Compress)") in entry
    assert "if ($PsgenStepResult.status -eq 'fixed' -or $PsgenStepResult.status -eq 'rolled_back') {" in entry
    assert ("elseif ($WhatIfPreference -and $Mode -eq 'Fix' -and $PsgenStepResult.status -eq 'drift') {"
            in entry)


def supports_should_process(script: str) -> bool:
    """What win_powershell decides from the script's AST before passing -WhatIf: the param
    block's [CmdletBinding()] has SupportsShouldProcess (bare, or = $true)."""
    root = parse(script).root_node
    block = next((c for c in root.children if c.type == "param_block"), None)
    if block is None:
        return False
    head = block.text.decode("ascii")[: block.text.decode("ascii").index("param(")]
    m = re.search(r"\[CmdletBinding\(([^)]*)\)\]", head, re.I)
    if not m:
        return False
    for arg in m.group(1).split(","):
        key, _, value = arg.partition("=")
        if key.strip().lower() == "supportsshouldprocess" and value.strip().lower() in ("", "$true"):
            return True
    return False


@pytest.mark.parametrize("name", CATALOG)
def test_check_mode_runs_the_script_with_whatif(built, name):
    plan = load_plan(name)
    assert supports_should_process(
        built[name][f"roles/{plan.name}/files/{plan.name}.ps1"].decode("ascii"))


def test_plan_text_never_reaches_ansible_templating():
    plan = load(NASTY, "nasty-names.yaml")
    files = outputs(plan, "ansible")
    for fname, data in files.items():
        if not fname.endswith(".yml"):
            continue
        text = data.decode("ascii")
        for line in text.splitlines():
            if "{{" in line and not line.lstrip().startswith("#"):
                # Only psgen's own expressions are templated; plan text is tagged !unsafe.
                assert ("!unsafe " in line or "psgen_hosts" in line
                        or "combine(nasty_names_parameters)" in line), (fname, line)
    task = yaml_load(files["roles/nasty-names/tasks/main.yml"])[0]
    assert task["name"] == "Templating {{ lookup('pipe', 'id') }} must stay text"
    spec = yaml_load(files["roles/nasty-names/meta/argument_specs.yml"])
    options = spec["argument_specs"]["main"]["options"]["nasty_names_parameters"]["options"]
    assert options["Token"]["required"] is True
    assert options["Servers"] == {"type": "list", "elements": "str", "description": "DNS {{ x }}"}
    assert options["Retries"]["type"] == "int" and options["Force"]["type"] == "bool"


def test_var_prefix():
    assert ansible.var_prefix("print-spooler") == "print_spooler"
    assert ansible.var_prefix("7zip") == "psgen_7zip"


def test_snapshot_bytes(snapshot):
    # The role's copy of the script is not snapshotted again: it is the standalone script
    # (snapshotted in test_compile) with another ending, which a test above checks.
    snapshot.snapshot_dir = REPO / "tests" / "snapshots" / "ansible"
    for fname, data in outputs(load_plan("windows/print-spooler"), "ansible").items():
        if fname.endswith(".ps1"):
            continue
        snapshot.assert_match(data, "windows__print-spooler__" + fname.replace("/", "__"))


def test_ansible_playbook_syntax_check_on_every_catalog_plan(tmp_path):
    """The real ansible-playbook parses every generated playbook and role (and a plan full of
    quotes and template markers)."""
    out = tmp_path / "out"
    nasty = tmp_path / "nasty-names.yaml"
    nasty.write_text(NASTY, encoding="utf-8")
    build_plans([*CATALOG, str(nasty)], out_dir=out, target="ansible", echo=lambda _: None)
    (out / "inventory.yml").write_text("windows:\n  hosts:\n    win1: {}\n", encoding="ascii")
    playbooks = sorted(p.name for p in out.glob("*.yml")
                       if p.name != "inventory.yml" and not p.name.endswith(".requirements.yml"))
    assert len(playbooks) == len(CATALOG) + 1
    proc = run_playbook(["-i", "inventory.yml", "--syntax-check", *playbooks], cwd=out,
                        home=tmp_path / "ansible", callback=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in playbooks:
        assert f"playbook: {name}" in proc.stdout
    assert "ERROR" not in proc.stderr


def test_argument_spec_refuses_a_bad_value_before_any_host(tmp_path):
    """The role's argument_specs run on the controller: a value outside the plan's choices
    stops the play with a message, before any connection is attempted."""
    out = tmp_path / "out"
    build_plans(["windows/print-spooler"], out_dir=out, target="ansible", echo=lambda _: None)
    from tests.winrm_endpoint import refused_port

    (out / "inventory.yml").write_text(
        "windows:\n  hosts:\n    win1: {ansible_connection: psrp, ansible_host: 127.0.0.1, "
        f"ansible_port: {refused_port()}, ansible_psrp_protocol: http}}\n", encoding="ascii")
    proc = run_playbook(["-i", "inventory.yml", "print-spooler.yml", "-e",
                         '{"print_spooler_parameters": {"StartType": "sometimes"}}'],
                        cwd=out, home=tmp_path / "ansible")
    report = json_report(proc)
    assert proc.returncode == 2
    assert report["stats"]["win1"]["failures"] == 1 and report["stats"]["win1"]["ok"] == 0
    task = report["plays"][0]["tasks"][0]
    assert "Validating arguments" in task["task"]["name"]
    assert "StartType" in task["hosts"]["win1"]["msg"] and "sometimes" in task["hosts"]["win1"]["msg"]
