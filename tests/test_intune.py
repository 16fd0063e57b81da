"""Intune Remediations target: the contract Intune imposes, checked on every catalog plan.

Nothing here runs PowerShell (no machine here has it). The scripts are parsed with
tree-sitter-powershell and their structure is checked: one summary line on the output stream,
nothing on the error stream, the sysnative re-launch, the exit-code paths, no reboot commands.
What only Windows can show is in tests/pester/Intune.Tests.ps1 (not run here).
"""

from __future__ import annotations

import base64
import functools
import json
import re

import pytest

from psgen.errors import UserError
from psgen.lint import lint_script, parse, walk
from psgen.load import catalog, load_plan
from psgen.targets import TARGETS, outputs
from psgen.targets import intune
from tests.helpers import REPO, load

CATALOG = [name for name, _ in catalog()]
MODES = {"detect": "Check", "remediate": "Fix"}


@pytest.fixture(scope="module")
def built():
    """catalog name -> {file name: bytes} for the intune target."""
    return {name: outputs(load_plan(name), "intune") for name in CATALOG}


@functools.lru_cache(maxsize=16)
def tree(text: str):
    return parse(text)


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


def _command_name(node) -> str:
    for c in node.children:
        if c.type == "command_name":
            return _text(c)
    return ""


def _function_of(node) -> str | None:
    n = node.parent
    while n is not None:
        if n.type == "function_statement":
            for c in n.children:
                if c.type == "function_name":
                    return _text(c)
        n = n.parent
    return None


def commands(text: str):
    """(command name, enclosing function or None, node) for every command in the script."""
    for node in walk(tree(text).root_node):
        if node.type == "command":
            yield _command_name(node), _function_of(node), node


def top_level(text: str):
    root = tree(text).root_node
    body = next(c for c in root.children if c.type == "statement_list")
    return [s for s in body.children if s.type != "comment"]


# ------------------------------------------------------------------------------ registration


def test_target_is_registered_and_listed_in_the_cli_help():
    from typer.testing import CliRunner

    from psgen.cli import app

    assert TARGETS["intune"] == "psgen.targets.intune"
    result = CliRunner().invoke(app, ["build", "--help"])
    assert "intune" in result.output


def test_build_command_writes_the_three_files(tmp_path):
    from typer.testing import CliRunner

    from psgen.cli import app

    result = CliRunner().invoke(app, ["build", "windows/print-spooler", "--target", "intune",
                                      "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "print-spooler.detect.ps1", "print-spooler.intune.json", "print-spooler.remediate.ps1"]


# ------------------------------------------------------------------------------ bytes


@pytest.mark.parametrize("name", CATALOG)
def test_scripts_are_ascii_crlf_without_bom_and_within_intune_size(built, name):
    files = built[name]
    stem = load_plan(name).name
    assert set(files) == {f"{stem}.detect.ps1", f"{stem}.remediate.ps1", f"{stem}.intune.json"}
    for role in MODES:
        data = files[f"{stem}.{role}.ps1"]
        assert 1 <= len(data) < 200_000
        assert not data.startswith(b"\xef\xbb\xbf")
        data.decode("ascii")
        assert data.endswith(b"\r\n") and not data.endswith(b"\r\n\r\n")
        assert b"\n" not in data.replace(b"\r\n", b""), "bare LF"
        assert b"\r" not in data.replace(b"\r\n", b""), "bare CR"


@pytest.mark.parametrize("name", CATALOG)
def test_scripts_parse_and_pass_every_lint_rule(built, name):
    stem = load_plan(name).name
    for role in MODES:
        text = built[name][f"{stem}.{role}.ps1"].decode("ascii")
        assert [f.format(f"{stem}.{role}.ps1") for f in lint_script(text)] == []


def test_build_is_deterministic():
    plan = load_plan("windows/print-spooler")
    assert outputs(plan, "intune") == outputs(load_plan("windows/print-spooler"), "intune")


# ------------------------------------------------------------------------------ modes and exits


@pytest.mark.parametrize("name", CATALOG)
def test_mode_is_fixed_and_the_script_takes_no_parameters(built, name):
    plan = load_plan(name)
    for role, mode in MODES.items():
        text = built[name][f"{plan.name}.{role}.ps1"].decode("ascii")
        param_block = next(c for c in tree(text).root_node.children if c.type == "param_block")
        assert re.search(r"\r\nparam\(\s*\)$", _text(param_block)), "Intune passes no parameters"
        assert f"\r\n$Mode = '{mode}'\r\n" in text
        # Plan parameters become variables holding the plan's defaults.
        for pname in plan.parameters:
            assert re.search(rf"\r\n\[[a-z\[\]]+\]\${pname} = ", text), pname


@pytest.mark.parametrize("name", CATALOG)
def test_exit_code_paths(built, name):
    stem = load_plan(name).name
    for role, mode in MODES.items():
        text = built[name][f"{stem}.{role}.ps1"].decode("ascii")
        exits = [_text(n) for n in walk(tree(text).root_node)
                 if n.type == "flow_control_statement" and _text(n).startswith("exit")]
        # The re-launch passes the 64-bit child's exit code on; the entry exits with the
        # runtime's code (0 compliant/fixed, 1 drift, 2-4 failures) or the crash code.
        assert exits == ["exit $PsgenChildExit", "exit $PsgenExitCode"]
        entry = text[text.rindex("\r\ntry {\r\n"):]
        assert "$PsgenExitCode = [int]$PsgenResult.exit_code" in entry
        assert f"$PsgenExitCode = {intune.CRASH_EXIT[mode]}" in entry
    runtime = built[name][f"{stem}.detect.ps1"].decode("ascii")
    plan_fn = runtime[runtime.index("function Invoke-PsgenPlan"):]
    # Check mode: drift (or a check that could not run) is exit 1; 2 and 3 only exist in Fix.
    assert "elseif ($failed -or $drift -or $unchecked) {\r\n            $exitCode = 1" in plan_fn
    assert "elseif ($blocked -or ($failed -and $Mode -eq 'Fix')) {" in plan_fn


def test_detection_crash_does_not_trigger_remediation():
    # Intune remediates only on exit 1: an unexpected stop must never look like drift.
    assert intune.CRASH_EXIT["Check"] not in (0, 1)
    assert intune.STATUS_WORDS["Check"]["1"] == "DRIFT"


# ------------------------------------------------------------------------------ output streams


@pytest.mark.parametrize("name", CATALOG)
def test_exactly_one_summary_line_on_the_output_stream(built, name):
    stem = load_plan(name).name
    writers = {"write-output", "write-host", "write-information", "out-host", "out-default",
               "write-verbose", "write-debug", "write-progress"}
    for role in MODES:
        text = built[name][f"{stem}.{role}.ps1"].decode("ascii")
        found = [(n.lower(), fn) for n, fn, _ in commands(text) if n.lower() in writers]
        top = [n for n, fn in found if fn is None]
        # One Write-Output in the re-launch branch (then exit), one at the end.
        assert top == ["write-output", "write-output"]
        # Inside functions only the runtime's console writer uses Write-Host, and it returns
        # before writing when $Json is set, which the Intune preamble does. Verbose, debug,
        # progress and information records are off by preference and redirected to $null.
        quiet = {"write-verbose", "write-debug", "write-progress", "write-information"}
        assert {(n, fn) for n, fn in found if fn is not None and n not in quiet} <= {
            ("write-host", "Write-PsgenConsole")}
        for pref in ("Verbose", "Progress", "Information", "Warning"):
            assert f"\r\n${pref}Preference = 'SilentlyContinue'\r\n" in text
        console = text[text.index("function Write-PsgenConsole"):]
        assert console.index("if ($Json) {\r\n        return") < console.index("Write-Host")
        assert "\r\n$Json = $true\r\n" in text
        assert "[Console]::Write" not in text and "[Console]::Out" not in text
        # Nothing else at the top level can emit objects: every top-level statement is an
        # assignment, a function, a control statement or one of the commands below.
        for statement in top_level(text):
            if statement.type == "pipeline":
                body = _text(statement)
                if re.match(r"^(\[[\w\[\]]+\])?\$(script:)?\w+ = ", body):
                    continue
                assert body.startswith(("Set-StrictMode ", "Write-Output ")), body[:60]
            else:
                assert statement.type in ("function_statement", "if_statement",
                                          "try_statement", "flow_control_statement"), statement.type


@pytest.mark.parametrize("name", CATALOG)
def test_nothing_is_written_to_the_error_stream_on_a_normal_run(built, name):
    stem = load_plan(name).name
    for role in MODES:
        text = built[name][f"{stem}.{role}.ps1"].decode("ascii")
        names = [n.lower() for n, _, _ in commands(text)]
        assert "write-error" not in names
        assert "[console]::error" not in text.lower() and "writeerrorline" not in text.lower()
        # The runtime's warnings (log or work folder not writable) are silenced.
        assert "\r\n$WarningPreference = 'SilentlyContinue'\r\n" in text
        # The whole run is one call whose every other stream is dropped, inside try/catch.
        entry = top_level(text)[-3]
        assert entry.type == "try_statement"
        assert "$PsgenResult = Invoke-PsgenMain 2> $null 3> $null 4> $null 5> $null 6> $null" in _text(entry)
        redirections = [n for n in walk(entry) if n.type == "redirection"]
        assert sorted(_text(r.children[0]) for r in redirections) == ["2>", "3>", "4>", "5>", "6>"]
        assert any(c.type in ("catch_clauses", "catch_clause") for c in entry.children)
        # The re-launched child's stderr is dropped under 'Continue' (5.1 would throw on 'Stop').
        statements = top_level(text)
        relaunch = _text(next(s for s in statements if s.type == "if_statement"))
        assert relaunch.index("$ErrorActionPreference = 'Continue'") < relaunch.index("2> $null")
        # No throw outside a function: the runtime's throws are caught by its callers or the
        # entry's catch.
        throws = [n for n in walk(tree(text).root_node)
                  if n.type == "flow_control_statement" and _text(n).startswith("throw")]
        assert all(_function_of(t) is not None for t in throws)


# ------------------------------------------------------------------------------ 32-bit host


@pytest.mark.parametrize("name", CATALOG)
def test_32_bit_host_relaunches_through_sysnative_before_doing_anything(built, name):
    stem = load_plan(name).name
    for role in MODES:
        text = built[name][f"{stem}.{role}.ps1"].decode("ascii")
        statements = top_level(text)
        index = next(i for i, s in enumerate(statements) if s.type == "if_statement")
        relaunch = _text(statements[index])
        assert relaunch.startswith(
            "if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {")
        assert ("Join-Path -Path $env:windir -ChildPath "
                "'sysnative\\WindowsPowerShell\\v1.0\\powershell.exe'") in relaunch
        assert "'-File', $PSCommandPath" in relaunch
        assert "& $PsgenNativeHost @PsgenArguments" in relaunch
        assert relaunch.index("Write-Output -InputObject $PsgenChildLine") < relaunch.index(
            "exit $PsgenChildExit")
        # Before the plan tables and the runtime: the 32-bit process does no work of its own.
        later = [_text(s) for s in statements[index + 1:]]
        assert any(s.startswith("$PsgenPlan = ") for s in later)
        assert not any(_text(s).startswith(("$PsgenPlan", "function ")) for s in statements[:index])


# ------------------------------------------------------------------------------ restarts


@pytest.mark.parametrize("name", CATALOG)
def test_no_reboot_commands_and_restart_is_reported_in_the_summary(built, name):
    stem = load_plan(name).name
    for role in MODES:
        text = built[name][f"{stem}.{role}.ps1"].decode("ascii")
        assert intune.reboot_commands(text) == []
        low = text.lower()
        for word in ("restart-computer", "stop-computer", "shutdown.exe", "shutdown /r"):
            assert word not in low
        assert "RESTART NEEDED: " in text and "PsgenRestartRequired" in text


REBOOTING = """
psgen: 1
name: reboots
title: Reboots
steps:
  - id: feature
    title: A feature
    explain: Needs a feature.
    check: {{ps: "$false"}}
    fix: {{ps: "{fix}"}}
    irreversible: true
"""


@pytest.mark.parametrize("fix", [
    "Restart-Computer -Force",
    "shutdown.exe /r /t 0",
    "Install-WindowsFeature -Name Foo -Restart",
    "Enable-WindowsOptionalFeature -Online -FeatureName VirtualMachinePlatform",
    "Invoke-CimMethod -ClassName Win32_OperatingSystem -MethodName Reboot",
])
def test_plan_that_restarts_windows_is_refused_with_its_step(fix):
    plan = load(REBOOTING.format(fix=fix), "reboots.yaml")
    with pytest.raises(UserError) as err:
        outputs(plan, "intune")
    text = str(err.value)
    assert "reboots.yaml" in text and "step feature" in text and "PsgenRestartRequired" in text
    # The standalone script is still allowed to restart (a person runs it).
    assert outputs(plan, "script")


def test_no_restart_flag_makes_a_feature_step_acceptable():
    fix = "Enable-WindowsOptionalFeature -Online -FeatureName VirtualMachinePlatform -NoRestart"
    files = outputs(load(REBOOTING.format(fix=fix), "reboots.yaml"), "intune")
    assert "reboots.remediate.ps1" in files


def test_required_parameter_is_refused_because_intune_passes_none():
    plan = load("""
        psgen: 1
        name: needs-token
        title: Needs a token
        parameters:
          Token: {type: string, required: true}
          Level: {type: int}
        steps:
          - id: one
            title: One
            explain: One.
            check: {ps: "$Token -ne ''"}
        """, "needs-token.yaml")
    with pytest.raises(UserError) as err:
        outputs(plan, "intune")
    assert "parameter Token is required" in str(err.value)
    assert "Level" not in str(err.value)


def test_optional_parameter_without_default_is_null_like_an_unbound_parameter():
    plan = load("""
        psgen: 1
        name: optional
        title: Optional
        parameters:
          Names: {type: 'string[]'}
        steps:
          - id: one
            title: One
            explain: One.
            check: {ps: "$null -eq $Names"}
        """, "optional.yaml")
    text = outputs(plan, "intune")["optional.detect.ps1"].decode("ascii")
    assert "\r\n[string[]]$Names = $null\r\n" in text
    assert lint_script(text) == []


def test_script_over_the_intune_size_limit_is_refused():
    big = "# " + "x" * 100 + "\n"
    check = "$true\n" + big * 2000
    plan = load("psgen: 1\nname: big\ntitle: Big\nsteps:\n  - id: one\n    title: One\n"
                "    explain: One.\n    check:\n      ps: |\n"
                + "".join("        " + line + "\n" for line in check.splitlines()), "big.yaml")
    assert len(outputs(plan, "script")["big.ps1"]) > 200_000
    with pytest.raises(UserError) as err:
        outputs(plan, "intune")
    assert "accepts at most 200,000" in str(err.value)


# ------------------------------------------------------------------------------ summary line


@pytest.mark.parametrize("name", CATALOG)
def test_summary_line_is_capped_escaped_and_ordered(built, name):
    stem = load_plan(name).name
    text = built[name][f"{stem}.detect.ps1"].decode("ascii")
    assert intune.SUMMARY_LIMIT == 2048
    tokens = text[text.index("function ConvertTo-PsgenSummaryToken"):]
    # Printable ASCII as itself, line breaks as spaces, anything else one \uXXXX token.
    assert "if ($code -ge 32 -and $code -le 126)" in tokens
    assert "$tokens.Add(('\\u{0:x4}' -f $code))" in tokens
    line_fn = text[text.index("function Get-PsgenSummaryLine"):]
    # Whole tokens only, within the limit; the marker is inserted only when items were cut.
    assert "if ($Builder.Length + $item.Length -gt $Limit) {" in text
    assert "$room = $Limit - $tailText.Length - $marker.Length" in line_fn
    assert f"$marker = '{intune.TRUNCATION_MARKER}'" in line_fn
    assert f"[int]$Limit = {intune.SUMMARY_LIMIT}" in line_fn
    assert intune.HEAD_LIMIT + intune.TAIL_LIMIT + len(intune.TRUNCATION_MARKER) < intune.SUMMARY_LIMIT
    summary_fn = text[text.index("function Get-PsgenIntuneSummary"):]
    # Most important first: restarts, then failed, rolled back, drift, fixed, skipped.
    assert "$order = @('failed', 'rolled_back', 'drift', 'fixed', 'skipped', 'compliant')" in summary_fn
    assert summary_fn.index("RESTART NEEDED") < summary_fn.index("foreach ($status in $order) {\r\n        if ($status -eq 'compliant')")
    # The child's line is capped too when the 64-bit re-launch passes it on.
    assert "$PsgenChildLine.Substring(0, 2048)" in text


# ------------------------------------------------------------------------------ Graph body


@pytest.mark.parametrize("name", CATALOG)
def test_graph_device_health_script_body(built, name):
    plan = load_plan(name)
    files = built[name]
    body = json.loads(files[f"{plan.name}.intune.json"])
    assert list(body) == ["@odata.type", "displayName", "description", "publisher", "version",
                          "runAsAccount", "runAs32Bit", "enforceSignatureCheck",
                          "detectionScriptContent", "remediationScriptContent"]
    assert body["@odata.type"] == "#microsoft.graph.deviceHealthScript"
    assert body["displayName"] == plan.title
    assert body["publisher"] == "psgen" and body["runAsAccount"] == "system"
    assert body["runAs32Bit"] is False and body["enforceSignatureCheck"] is False
    assert base64.b64decode(body["detectionScriptContent"], validate=True) == files[f"{plan.name}.detect.ps1"]
    assert base64.b64decode(body["remediationScriptContent"], validate=True) == files[f"{plan.name}.remediate.ps1"]
    files[f"{plan.name}.intune.json"].decode("ascii")


def test_build_sign_embeds_the_signed_scripts_and_enforces_the_check(tmp_path):
    """psgen build --target intune --sign: both scripts signed (still ASCII, CRLF, no BOM,
    under the size limit), the Graph body carries the signed bytes and enforceSignatureCheck;
    build --check then finds the signed outputs current."""
    from typer.testing import CliRunner

    from psgen import sign
    from psgen.cli import app

    key, cert = sign.new_self_signed("psgen intune test", key_type="p256", days=2)
    paths = sign.write_certificate_files(tmp_path / "signer", key, cert)
    pem = next(p for p in paths if str(p).endswith(".pem"))
    key_file = next(p for p in paths if str(p).endswith(".key"))
    out = tmp_path / "out"
    args = ["build", "windows/print-spooler", "--target", "intune", "--out-dir", str(out)]
    result = CliRunner().invoke(app, args + ["--sign", "--cert", str(pem), "--key", str(key_file)])
    assert result.exit_code == 0, result.output
    body = json.loads((out / "print-spooler.intune.json").read_bytes())
    assert body["enforceSignatureCheck"] is True
    unsigned = outputs(load_plan("windows/print-spooler"), "intune")
    for role, field in (("detect", "detectionScriptContent"), ("remediate", "remediationScriptContent")):
        data = (out / f"print-spooler.{role}.ps1").read_bytes()
        assert base64.b64decode(body[field]) == data
        assert b"\r\n# SIG # Begin signature block\r\n" in data
        data.decode("ascii")
        assert len(data) < 200_000 and not data.startswith(b"\xef\xbb\xbf")
        assert sign.verify_bytes(data, trusted=[cert]).ok
        assert data.startswith(unsigned[f"print-spooler.{role}.ps1"][:-2])
    check = CliRunner().invoke(app, args + ["--check"])
    assert check.exit_code == 0, check.output
    # One changed byte in an embedded script is stale again.
    body["remediationScriptContent"] = base64.b64encode(
        base64.b64decode(body["remediationScriptContent"]).replace(b"Fix", b"Fax", 1)).decode()
    (out / "print-spooler.intune.json").write_text(json.dumps(body), encoding="ascii")
    assert CliRunner().invoke(app, args + ["--check"]).exit_code == 1


def test_after_signing_leaves_enforcement_off_when_a_script_is_unsigned():
    files = outputs(load_plan("windows/print-spooler"), "intune")
    assert intune.after_signing(files)["print-spooler.intune.json"] == files["print-spooler.intune.json"]


def test_unknown_run_as_account_is_a_user_error():
    with pytest.raises(UserError):
        outputs(load_plan("windows/print-spooler"), "intune", run_as="admin")


# ------------------------------------------------------------------------------ snapshot


SHARED_START = "\r\n# The plan this script was compiled from."
SHARED_MARK = "\r\n# [the plan table, runtime and resources of the standalone script]\r\n"


def test_snapshot_bytes(snapshot):
    """Every byte of the Intune outputs is checked, but nothing is stored twice: the part the
    scripts share with the standalone script (snapshotted in test_compile) is compared with it,
    remediate is stored as its difference from detect, and the Graph body refers to both."""
    import difflib

    plan = load_plan("windows/print-spooler")
    files = outputs(plan, "intune")
    standalone = outputs(plan, "script")["print-spooler.ps1"].decode("ascii")
    shared = standalone[standalone.index(SHARED_START):
                        standalone.index("\r\n$PsgenResult = Invoke-PsgenMain\r\n")]
    own = {}
    for role in ("detect", "remediate"):
        text = files[f"print-spooler.{role}.ps1"].decode("ascii")
        assert text.count(shared) == 1, role
        own[role] = text.replace(shared, SHARED_MARK)
    snapshot.snapshot_dir = REPO / "tests" / "snapshots" / "intune"
    snapshot.assert_match(own["detect"].encode("ascii"), "windows__print-spooler.detect.ps1")
    diff = "\n".join(difflib.unified_diff(own["detect"].split("\r\n"), own["remediate"].split("\r\n"),
                                          "detect", "remediate", lineterm="", n=0)) + "\n"
    snapshot.assert_match(diff, "windows__print-spooler.remediate.diff")
    body = json.loads(files["print-spooler.intune.json"])
    for key, role in (("detectionScriptContent", "detect"), ("remediationScriptContent", "remediate")):
        assert base64.b64decode(body[key]) == files[f"print-spooler.{role}.ps1"]
        body[key] = f"<base64 of print-spooler.{role}.ps1>"
    snapshot.assert_match(json.dumps(body, indent=2) + "\n", "windows__print-spooler.intune.json")


# ------------------------------------------------------------------------------ Windows suite


@pytest.mark.parametrize("suite", ["Intune.Tests.ps1", "Ansible.Tests.ps1"])
def test_pester_suites_parse(suite):
    """The Windows-only suites (not run here; .github/workflows/windows.yml runs them)."""
    data = (REPO / "tests" / "pester" / suite).read_bytes()
    assert not re.search(rb"(?<!\r)\n", data)
    assert lint_script(data.decode("ascii"), rules=frozenset({"syntax", "ascii", "alias",
                                                              "trailing-whitespace"})) == []


def test_fleet_fixture_builds_lint_clean_for_both_targets():
    plan = load_plan(REPO / "tests" / "pester" / "fleet-fixture.yaml")
    files = outputs(plan, "intune")
    files.update(outputs(plan, "ansible"))
    scripts = {n: d for n, d in files.items() if n.endswith(".ps1")}
    assert sorted(scripts) == ["fleet-fixture.detect.ps1", "fleet-fixture.remediate.ps1",
                               "roles/fleet-fixture/files/fleet-fixture.ps1"]
    for name, data in scripts.items():
        assert lint_script(data.decode("ascii")) == [], name
    workflow = (REPO / ".github" / "workflows" / "windows.yml").read_text(encoding="utf-8")
    assert "--target intune --out-dir out/pester-intune" in workflow
    assert "--target ansible --out-dir out/pester-ansible" in workflow
