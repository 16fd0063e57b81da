"""The Cowork repair catalog: resources (structure on the parse tree) and plans (bytes, rules,
nothing machine-specific hardcoded). Nothing here runs PowerShell: what only Windows can show
is listed in the Pester suite's backlog (see the resource docstrings and the final report)."""

from __future__ import annotations

import re
from functools import lru_cache

import pytest

from psgen.compile import compile_plan
from psgen.lint import lint_script, parse, syntax_errors, walk
from psgen.load import load_plan
from psgen.resources import registry

registry()  # generic first, then cowork: the order the schema and `psgen resources` show
from psgen.resources import cowork  # noqa: E402
from tests.helpers import REPO, load

PLANS = ["cowork/doctor", "cowork/repair-network", "cowork/reset-session-disk",
         "cowork/fix-wsl-conflict"]
COWORK = sorted(name for name, cls in registry().items() if cls.__module__ == cowork.__name__)
REQUIRED = {"log_contains": {"paths": ["%ProgramData%\\Claude\\Logs\\cowork-service.log"],
                             "pattern": "UNREACHABLE"}}
# Property keys that configure how an undo behaves, not what the machine should look like:
# the only ones Restore may read besides the captured state.
RESTORE_CONFIG_KEYS = {"ClearCache", "WaitSeconds", "TimeoutSeconds", "AppsClosed",
                       "IgnorePaths", "App", "Processes"}
STATE_CHANGING = re.compile(
    r"^(Set|New|Remove|Move|Rename|Start|Stop|Restart|Clear|Enable|Disable|Add|Register|"
    r"Unregister|Reset|Install|Uninstall|Suspend|Resume|Update|Copy|Mount|Dismount|Repair)-",
    re.I)
PROCESS_LOCAL = {"new-object", "start-sleep", "add-member", "add-type"}


# --------------------------------------------------------------------------- helpers

def _text(node) -> str:
    return node.text.decode("utf-8")


@lru_cache(maxsize=None)
def resource_script(name: str) -> str:
    """A one-step plan using ``name`` with its default properties, compiled."""
    import json

    plan = load(f"""
        psgen: 1
        name: one-{name.replace('_', '-')}
        title: One {name}
        requires: {{admin: true}}
        steps:
          - id: only
            title: Only step
            explain: It checks one thing.
            resource: {name}
            with: {json.dumps(REQUIRED.get(name, {}))}
        """, f"{name}.yaml")
    return compile_plan(plan).decode("ascii")


def functions(text: str) -> dict:
    """Function name -> function_statement node."""
    out = {}
    for node in walk(parse(text).root_node):
        if node.type == "function_statement":
            name = next(_text(c) for c in node.children if c.type == "function_name")
            out[name] = node
    return out


def commands(node):
    for n in walk(node):
        if n.type == "command":
            name = next((_text(c) for c in n.children if c.type == "command_name"), "")
            yield name, n


def state_reads(node, variable: str = "$State"):
    """Member names read directly off ``variable`` ($State.Key)."""
    for n in walk(node):
        if n.type == "member_access" and n.children and _text(n.children[0]).lower() == \
                variable.lower():
            yield _text(n.children[-1])


def hash_keys(node) -> set:
    return {_text(n.children[0]) for n in walk(node) if n.type == "hash_entry"}


def string_literals(text: str):
    for n in walk(parse(text).root_node):
        if n.type in ("verbatim_string_characters", "expandable_string_literal"):
            yield n


def top_state_tables(get_fn):
    """The [ordered]@{...} a Get returns: `return [ordered]@{` or `$state = [ordered]@{`."""
    tables = []
    for n in walk(get_fn):
        if n.type != "hash_literal_expression":
            continue
        head = _text(get_fn)[: n.start_byte - get_fn.start_byte].rstrip()
        last = head.splitlines()[-1].strip() if head else ""
        if last in ("return [ordered]", "$state = [ordered]"):
            tables.append(n)
    return tables


def direct_keys(table) -> list:
    body = next(c for c in table.children if c.type == "hash_entry" or c.type.endswith("body")
                or c.type == "hash_literal_body")
    entries = [c for c in (body.children if body.type != "hash_entry" else [body])
               if c.type == "hash_entry"]
    return [_text(e.children[0]) for e in entries]


# --------------------------------------------------------------------------- resources

def test_the_catalog_registers_every_issue_resource():
    assert set(COWORK) >= {
        "dns_servers", "winnat_rule", "hns_network_absent", "service_running", "app_closed",
        "session_disk_reset", "log_contains", "virtualization", "tunnel_adapters",
        "proxy_configured", "free_disk_space", "vhdx_attributes", "dns_servers_check",
        "winnat_rule_check", "service_running_check"}


@pytest.mark.parametrize("name", COWORK)
def test_resource_script_parses_and_passes_every_lint_rule(name):
    text = resource_script(name)
    assert syntax_errors(text) == []
    findings = lint_script(text)
    assert findings == [], "\n".join(f.format(name) for f in findings)


@pytest.mark.parametrize("name", COWORK)
def test_every_phase_is_present_with_the_resource_signature(name):
    cls = registry()[name]
    fns = functions(resource_script(name))
    phases = ["Get", "Test"] + ([] if cls.read_only else ["Set", "Restore"])
    for phase in phases:
        fn = fns.get(f"{phase}-Psgen{cls.noun}")
        assert fn is not None, f"{phase}-Psgen{cls.noun} missing"
        body = _text(fn)
        assert "[System.Collections.IDictionary]$Property" in body
        if phase != "Get":
            assert "[object]$State" in body
        if phase in ("Set", "Restore"):
            assert "[CmdletBinding(SupportsShouldProcess = $true)]" in body
    if cls.read_only:
        # A finding (a check-only twin too) never brings code that could change anything.
        for phase in ("Set", "Restore"):
            assert f"{phase}-Psgen{cls.noun}" not in fns


@pytest.mark.parametrize("name", COWORK)
def test_get_and_test_change_nothing_and_never_ask_should_process(name):
    cls = registry()[name]
    fns = functions(resource_script(name))
    for phase in ("Get", "Test"):
        fn = fns[f"{phase}-Psgen{cls.noun}"]
        assert "ShouldProcess" not in _text(fn)
        for cmd, _ in commands(fn):
            assert not (STATE_CHANGING.match(cmd) and cmd.lower() not in PROCESS_LOCAL), cmd


@pytest.mark.parametrize("name", [n for n in COWORK if not registry()[n].read_only])
def test_set_is_guarded_and_only_the_runtime_calls_it_after_the_journal(name):
    cls = registry()[name]
    text = resource_script(name)
    fns = functions(text)
    set_fn = fns[f"Set-Psgen{cls.noun}"]
    changing = [c for c, _ in commands(set_fn)
                if STATE_CHANGING.match(c) and c.lower() not in PROCESS_LOCAL
                and "-psgen" not in c.lower()]
    if name == "app_closed":
        assert changing == []  # a gate: it refuses, it never changes anything
    else:
        assert changing and "$PSCmdlet.ShouldProcess(" in _text(set_fn)
    # Set is reached only through the steps table, i.e. Invoke-PsgenPhase -Phase 'Set', which
    # the lint rule journal-before-fix holds to a Save-PsgenJournal first.
    uses = [m.start() for m in re.finditer(re.escape(f"Set-Psgen{cls.noun}"), text)]
    defs = [m.start() for m in re.finditer(re.escape(f"function Set-Psgen{cls.noun} "), text)]
    table = [m.start() for m in re.finditer(re.escape(f"Set = 'Set-Psgen{cls.noun}'"), text)]
    assert len(uses) == len(defs) + len(table) == 2
    step_fn = fns["Invoke-PsgenStep"]
    body = _text(step_fn)
    assert body.index("Save-PsgenJournal") < body.index("-Phase 'Set'")


@pytest.mark.parametrize("name", COWORK)
def test_state_has_the_same_keys_every_time_and_phases_read_only_those(name):
    cls = registry()[name]
    fns = functions(resource_script(name))
    get_fn = fns[f"Get-Psgen{cls.noun}"]
    tables = top_state_tables(get_fn)
    assert tables, "Get returns no [ordered] state table"
    key_sets = {tuple(sorted(hash_keys(t) - set().union(*(
        hash_keys(n) for n in walk(t) if n.type == "hash_literal_expression" and n != t))))
        for t in tables}
    assert len(key_sets) == 1, f"Get returns different key sets: {key_sets}"
    keys = set(next(iter(key_sets)))
    assert "PsgenSkip" in keys and "PsgenDetail" in keys
    # Keys are only assigned, never added: `$state.New = ...` would change the shape.
    for n in walk(get_fn):
        if n.type == "assignment_expression":
            target = _text(n.children[0])
            m = re.match(r"^\$state\.(\w+)$", target)
            if m:
                assert m.group(1) in keys, f"Get adds key {m.group(1)}"
    for phase in ("Test", "Set", "Restore"):
        fn = fns.get(f"{phase}-Psgen{cls.noun}")
        if fn is None:
            continue
        for key in state_reads(fn):
            assert key in keys, f"{phase} reads $State.{key}, which Get does not capture"
        # The state may come back from the journal as a PSCustomObject: no hashtable-only API.
        assert not re.search(r"\$State\.(Contains|ContainsKey|Keys|Values)\b|\$State\[",
                             _text(fn))


@pytest.mark.parametrize("name", [n for n in COWORK if not registry()[n].read_only])
def test_restore_uses_only_captured_state(name):
    cls = registry()[name]
    fns = functions(resource_script(name))
    restore = fns[f"Restore-Psgen{cls.noun}"]
    calls = {c for c, _ in commands(restore)}
    # It never recomputes what the machine should look like (that is Get's and the plan's job).
    assert f"Get-Psgen{cls.noun}" not in calls
    for key in state_reads(restore, "$Property"):
        assert key in RESTORE_CONFIG_KEYS, f"Restore reads the plan's $Property.{key}"


def test_findings_are_read_only_and_bring_no_set_or_restore():
    for name in ("log_contains", "virtualization", "tunnel_adapters", "proxy_configured",
                 "free_disk_space", "vhdx_attributes"):
        cls = registry()[name]
        assert cls.read_only
        fns = functions(resource_script(name))
        assert f"Set-Psgen{cls.noun}" not in fns and f"Restore-Psgen{cls.noun}" not in fns
        template = (REPO / "templates" / cls.template()).read_text()
        assert "ShouldProcess" not in template
    for name in ("dns_servers_check", "winnat_rule_check", "service_running_check",
                 "session_disk_check"):
        cls = registry()[name]
        assert cls.read_only and ".fix." not in cls.template()
        text = resource_script(name)
        assert "Kind = 'finding'" in text and "Set = $null" in text and "Restore = $null" in text
        # The same Get and Test as the resource it checks for.
        base = registry()[name.replace("_check", "_reset") if name == "session_disk_check"
                          else name.removesuffix("_check")]
        assert base.noun == cls.noun and cls.template() in base.modules


def _template(name: str) -> str:
    return (REPO / "templates" / "resources" / f"{name}.ps1.j2").read_text()


def _cowork_templates():
    names = set(COWORK) | {"cowork_helpers"}
    for path in sorted((REPO / "templates" / "resources").glob("*.ps1.j2")):
        if path.name.split(".")[0] in names:
            yield path


def test_templates_are_ascii_and_never_download_or_write_to_the_output_stream():
    paths = list(_cowork_templates())
    assert len(paths) >= 17
    for path in paths:
        text = path.read_text(encoding="ascii")
        for bad in ("Invoke-Expression", "Write-Host", "Write-Output", "Install-Module",
                    "Save-Module", "Invoke-WebRequest", "Invoke-RestMethod", "DownloadFile",
                    "http://", "https://", "Remove-Item"):
            assert bad not in text, f"{path.name}: {bad}"


def test_native_exes_are_followed_by_an_exit_code_check():
    for path in sorted((REPO / "templates" / "resources").glob("*.ps1.j2")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.search(r"(^|[=(]\s*)&\s*\$exe\b", line.strip()) or "@(& $exe" in line:
                window = "\n".join(lines[i + 1:i + 3])
                assert "$LASTEXITCODE" in window, f"{path.name}:{i + 1}: {line.strip()}"


# --------------------------------------------------------------------------- resource behaviour

def test_dns_captures_static_or_dhcp_per_family_and_restores_exactly():
    fns = functions(resource_script("dns_servers"))
    get = _text(fns["Get-PsgenDnsAdapter"])
    assert "IPv4Static" in get and "IPv6Static" in get
    static = _text(fns["Test-PsgenStaticDnsServer"])
    assert "Tcpip6" in static and "'NameServer'" in static
    restore = _text(fns["Restore-PsgenDnsServerList"])
    assert restore.index("-ResetServerAddresses") < restore.index("-ServerAddresses $servers")
    assert "$adapter.IPv4Static" in restore and "$adapter.IPv6Static" in restore
    # Found again by alias: Cowork may re-create the adapter with a new index.
    assert "$_.InterfaceAlias -eq $alias" in restore
    set_fn = _text(fns["Set-PsgenDnsServerList"])
    assert "Clear-DnsClientCache" in set_fn
    # Wanted servers come from the machine when the plan gives none.
    assert "Get-PsgenMainDnsServer" in _text(fns["Get-PsgenDnsServerList"])


def test_winnat_reads_the_subnet_from_the_machine_and_handles_home_and_ghosts():
    text = resource_script("winnat_rule")
    fns = functions(text)
    get = _text(fns["Get-PsgenWinNatRule"])
    assert "'MSFT_NetNat'" in get and "$state.PsgenSkip" in get
    assert "Get-PsgenHnsNetwork" in get and "Get-PsgenAdapterPrefix" in get
    set_fn = _text(fns["Set-PsgenWinNatRule"])
    assert "duplicate name|System Error 52" in set_fn and "restart" in set_fn
    assert "Nothing was changed." in set_fn
    restore = _text(fns["Restore-PsgenWinNatRule"])
    assert "$State.Nats" in restore and "$existed.Count -eq 0 -and $created.Count -gt 0" in restore
    assert not re.search(r"\b172\.1[67]\b", "".join(_text(n) for n in string_literals(text)))


def test_hns_uses_builtin_tools_only_and_restore_restarts_the_service():
    fns = functions(resource_script("hns_network_absent"))
    tool = _text(fns["Get-PsgenHnsTool"])
    assert tool.index("'Get-HnsNetwork'") < tool.index("'System32\\hnsdiag.exe'")
    get = _text(fns["Get-PsgenHnsNetworkAbsent"])
    assert "PsgenSkip = 'This computer has neither" in get.replace("$state.", "")
    restore = _text(fns["Restore-PsgenHnsNetworkAbsent"])
    assert "Restart-Service" in restore and "Start-Service" in restore
    assert "Cowork creates it again" in restore
    assert "Remove-HnsNetwork" in _text(fns["Set-PsgenHnsNetworkAbsent"])
    assert "restarts the service" in registry()["hns_network_absent"].undo


def test_service_restart_requires_the_app_closed_and_follows_this_runs_changes():
    fns = functions(resource_script("service_running"))
    set_fn = _text(fns["Set-PsgenServiceRunning"])
    assert set_fn.index("Get-PsgenOpenApp") < set_fn.index("Restart-Service")
    assert "throw" in set_fn[: set_fn.index("Restart-Service")]
    assert "'PsgenJournal'" in _text(fns["Get-PsgenLastChangeUtc"])
    assert "$State.StartedUtc -lt" in _text(fns["Test-PsgenServiceRunning"]).replace(
        "[string]", "")


def test_session_disk_is_renamed_never_deleted_waits_bounded_and_rolls_back():
    fns = functions(resource_script("session_disk_reset"))
    set_fn = _text(fns["Set-PsgenSessionDiskReset"])
    order = [set_fn.index(s) for s in ("Get-PsgenOpenApp", "Stop-Service", "Move-Item",
                                       "Start-Service", "$deadline", "throw ('Cowork did not")]
    assert order == sorted(order)
    assert "-Destination $State.Backup" in set_fn
    assert "Remove-Item" not in _text(fns["Restore-PsgenSessionDiskReset"])
    restore = _text(fns["Restore-PsgenSessionDiskReset"])
    assert restore.index(".new") < restore.index("-Destination $State.Disk")
    assert "The fix stopped before the rename" in restore
    get = _text(fns["Get-PsgenSessionDiskReset"])
    assert "Find-PsgenCoworkBundle" in get and "$state.Backup = $backup" in get
    helpers = _template("cowork_helpers")
    assert helpers.index(r"\[Server\]\s+Bundle:") < helpers.index("foreach ($pattern in $Candidate)")


def test_log_finding_honours_cleared_by_and_skips_when_no_log_exists():
    fns = functions(resource_script("log_contains"))
    get = _text(fns["Get-PsgenLogPattern"])
    assert "$Property.ClearedBy" in get and "$state.PsgenSkip" in get


# --------------------------------------------------------------------------- plans

@lru_cache(maxsize=None)
def plan_script(ref: str) -> bytes:
    return compile_plan(load_plan(ref))


@pytest.mark.parametrize("ref", PLANS)
def test_plan_script_passes_every_rule_and_the_byte_contract(ref):
    data = plan_script(ref)
    assert lint_script(data.decode("ascii")) == []
    assert not re.search(rb"(?<!\r)\n", data) and data.endswith(b"\r\n")
    assert not data.startswith(b"\xef\xbb\xbf") and b"\t" not in data
    # Intune's remediation scripts are limited to 200 KB; stay well below.
    assert 30_000 < len(data) < 150_000, len(data)


@pytest.mark.parametrize("ref", PLANS)
def test_plan_snapshot(ref):
    # The committed example is the snapshot (nothing generated is stored twice).
    committed = REPO / "examples" / "cowork" / (ref.split("/")[-1] + ".ps1")
    assert plan_script(ref) == committed.read_bytes(), "run: make examples"



IPV4 = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
HUMAN_TEXT = {"Title", "Explain", "Advice", "WhenReason", "FixSummary"}


def _ancestors(node):
    n = node.parent
    while n is not None:
        yield n
        n = n.parent


@pytest.mark.parametrize("ref", PLANS)
def test_nothing_machine_specific_is_hardcoded(ref):
    text = plan_script(ref).decode("ascii")
    for node in string_literals(text):
        s = _text(node)
        # Words for people (explain, advice) may give examples; code and properties may not.
        entry = next((a for a in _ancestors(node) if a.type == "hash_entry"), None)
        human = entry is not None and _text(entry.children[0]) in HUMAN_TEXT
        if not human:
            assert not IPV4.search(s.replace("0.0.0.0/0", "")), \
                f"IP address or subnet in a string: {s[:80]}"
        assert not re.search(r"[A-Za-z]:\\Users\\", s, re.I), s[:80]
        assert not re.search(r"[A-Za-z]:\\ProgramData", s, re.I), s[:80]
        assert "pzs8sxrjxfjjc" not in s, "package family name: match Claude_* instead"
    plan = load_plan(ref)
    for step in plan.steps:
        if step.model is None:
            continue
        for key, value in step.model.properties().items():
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str) and ("vEthernet" in v or "cowork-vm" in v):
                    assert "*" in v, f"{step.id}.{key}: adapter/network name {v!r} must be a pattern"


@pytest.mark.parametrize("ref", PLANS)
def test_every_step_has_title_plain_explain_and_issue_references(ref):
    plan = load_plan(ref)
    for step in plan.steps:
        assert step.title and len(step.explain.split()) >= 12, step.id
        assert step.advice, step.id
        assert step.references and all(
            r.startswith("https://github.com/anthropics/claude-code/issues/") or
            r.startswith("https://blog.") for r in step.references), step.id
        # Plain language: no PowerShell cmdlet names in what the user reads first.
        assert not re.search(r"\b[A-Z][a-z]+-[A-Z][A-Za-z]+\b", step.explain), step.id


def test_doctor_only_checks_and_ranks_root_causes_first():
    plan = load_plan("cowork/doctor")
    assert plan.requires.admin
    assert all(step.model is not None and type(step.model).read_only for step in plan.steps)
    ids = [s.id for s in plan.steps]
    assert ids[0] == "service" and ids[-1] == "api-unreachable"
    assert ids.index("virtualization") < ids.index("winnat") < ids.index("vm-dns")
    text = plan_script("cowork/doctor").decode("ascii")
    assert "Set = 'Set-Psgen" not in text and "Kind = 'resource'" not in text
    # No resource code that could change anything is even in the script.
    runtime_end = text.index("# --- helpers shared by the Cowork resources")
    for cmd, _ in commands(parse(text[runtime_end:]).root_node):
        assert not (STATE_CHANGING.match(cmd) and cmd.lower() not in PROCESS_LOCAL), cmd
    assert not re.search(r"function (Set|Restore)-Psgen", text)
    by_id = {s.id: s for s in plan.steps}
    for step_id, plan_name in (("winnat", "repair-network"), ("vm-dns", "repair-network"),
                               ("api-unreachable", "repair-network"),
                               ("session-disk-broken", "reset-session-disk")):
        assert plan_name in by_id[step_id].advice
    assert by_id["vm-dns"].when is not None


def test_repair_network_order_and_gate():
    plan = load_plan("cowork/repair-network")
    assert [s.id for s in plan.steps] == ["claude-closed", "vm-dns", "winnat", "service-restart"]
    assert [s.resource for s in plan.steps] == ["app_closed", "dns_servers", "winnat_rule",
                                                "service_running"]
    assert plan.parameters["DnsServers"].default == []


def test_reset_session_disk_and_fix_wsl_conflict_shapes():
    plan = load_plan("cowork/reset-session-disk")
    assert [s.resource for s in plan.steps] == ["session_disk_reset"]
    assert plan.parameters["WaitSeconds"].min >= 30
    plan = load_plan("cowork/fix-wsl-conflict")
    assert [s.resource for s in plan.steps] == ["app_closed", "hns_network_absent"]
    assert "wsl --shutdown" in plan.steps[1].next and "wsl --shutdown" in plan.steps[1].advice


# --------------------------------------------------------------------------- resource models

@pytest.mark.parametrize("with_, message", [
    ({"servers": ["1.1.1.1", "dns.example"]}, "is not an IP address"),
    ({"service": "Cowork VM; Stop-Computer"}, "not a valid service name"),
])
def test_resource_models_refuse_bad_values(with_, message):
    from pydantic import ValidationError

    cls = registry()["dns_servers" if "servers" in with_ else "service_running"]
    with pytest.raises(ValidationError, match=message):
        cls.model_validate(with_)


def test_paths_must_be_absolute_with_at_most_one_wildcard_level():
    from pydantic import ValidationError

    cls = registry()["log_contains"]
    with pytest.raises(ValidationError, match="must be absolute"):
        cls.model_validate({"paths": ["logs\\x.log"], "pattern": "x"})
    with pytest.raises(ValidationError, match="only one folder level"):
        cls.model_validate({"paths": ["%APPDATA%\\*\\*\\x.log"], "pattern": "x"})
    with pytest.raises(ValidationError, match="invalid regular expression"):
        cls.model_validate({"paths": ["%APPDATA%\\x.log"], "pattern": "("})


def test_array_list_adds_never_reach_the_output_stream():
    # ArrayList.Add returns the index: unassigned, it would end up in a Get's returned state.
    for path in sorted((REPO / "templates" / "resources").glob("*.ps1.j2")):
        for text in path.read_text().split("\nfunction "):
            lists = re.findall(r"(\$\w+) = New-Object -TypeName 'System\.Collections\.ArrayList'",
                               text)
            for var in set(lists):
                for m in re.finditer(re.escape(var) + r"\.Add\(", text):
                    line = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
                    assert line.strip() == "$null =", f"{path.name}: {line.strip()}{var}.Add("


# --------------------------------------------------------------------------- examples

def test_examples_are_current():
    """examples/cowork holds each plan's script, launcher and explain page, as built now."""
    from psgen.build import build_plans
    from psgen.explain import explain_markdown

    folder = REPO / "examples" / "cowork"
    messages = []
    stale = build_plans(PLANS, out_dir=folder, launcher=True, check=True, echo=messages.append)
    assert stale == [], "run: psgen build " + " ".join(PLANS) + \
        " --out-dir examples/cowork --launcher\n" + "\n".join(messages)
    for ref in PLANS:
        name = ref.split("/")[-1]
        page = (folder / f"{name}.md").read_text(encoding="utf-8")
        assert page == explain_markdown(load_plan(ref)), \
            f"run: psgen explain {ref} -o examples/cowork/{name}.md"
    expected = {f"{ref.split('/')[-1]}{ext}" for ref in PLANS for ext in (".ps1", ".cmd", ".md")}
    present = {p.name for p in folder.iterdir() if p.name != "README.md"}
    assert present == expected
