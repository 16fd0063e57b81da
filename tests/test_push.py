"""psgen push against the loopback WinRM endpoint: pypsrp's real client, end to end.

Each simulated host is a Python handler (see tests/winrm_endpoint.py) that checks what arrived
(the exact script bytes, typed parameters) and answers like a psgen script run with -Json.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from psgen import push as P
from psgen.cli import app
from psgen.errors import UserError
from tests.helpers import REPO
from tests.winrm_endpoint import make_tls, refused_port

PLAN = str(REPO / "plans" / "windows" / "print-spooler.yaml")
PASSWORD = "Pa55-w0rd-Z9!q"  # must never show up anywhere
USER = "admin"
FAST = dict(operation_timeout=1, connection_timeout=2, cleanup_timeout=1, backoff=0.05)


def step(sid: str, status: str, message: str = "") -> dict:
    return {"id": sid, "title": sid.replace("-", " "), "status": status, "before": None,
            "after": None, "message": message, "duration_ms": 5}


def doc(mode: str, code: int, steps: list[dict]) -> str:
    return json.dumps({"schema": 1, "plan": "print-spooler", "mode": mode, "exit_code": code,
                       "steps": steps, "log": "C:\\ProgramData\\psgen\\psgen.log"}, indent=2)


class Host:
    """A scripted Windows host: checks what arrives, answers per ``behaviour``."""

    def __init__(self, behaviour: str, expected: bytes, params: dict | None = None):
        self.behaviour = behaviour
        self.expected = expected
        self.params = params
        self.calls: list = []
        self.problems: list[str] = []
        self.stopped = threading.Event()

    def __call__(self, req, io):
        self.calls.append(req)
        if req.script is not None:
            if req.script.encode("utf-8") != self.expected:
                self.problems.append("script bytes differ from the compiled ones")
        else:  # --as-file: the command is the copied file's path
            if req.files.get(req.command) != self.expected:
                self.problems.append(f"copied file {req.command!r} differs from the compiled bytes")
        if self.params is not None and req.parameters != self.params:
            self.problems.append(f"parameters {req.parameters!r} != {self.params!r}")
        mode = req.parameters.get("Mode", "?")
        b = self.behaviour
        if b == "compliant":
            return doc(mode, 0, [step("spooler-running", "compliant"), step("printing-allowed", "compliant")])
        if b == "drift":
            return doc(mode, 1, [step("spooler-running", "drift", "the service is stopped"),
                                 step("printing-allowed", "compliant")])
        if b == "fixed":
            return doc(mode, 0, [step("spooler-running", "fixed"), step("printing-allowed", "compliant")])
        if b == "fix_failed":
            io.warning("the spooler did not start within 30 seconds")
            io.error("Start-Service : Service 'Print Spooler (Spooler)' cannot be started")
            return doc(mode, 2, [step("spooler-running", "rolled_back", "verify failed; restored"),
                                 step("printing-allowed", "failed", "the service did not start")])
        if b == "slow":
            if not io.sleep(30):
                self.stopped.set()
                return None
            return doc(mode, 0, [])
        if b == "dropped":
            io.drop_connection()
            io.sleep(0.2)
            return doc(mode, 0, [step("spooler-running", "fixed")])
        if b == "not_json":
            io.information("Fixing the spooler...")
            return "WARNING: this is Windows PowerShell 5.1 talking\r\n{ not json"
        if b == "throws":
            raise RuntimeError("Cannot bind parameter 'StartType'")
        raise AssertionError(b)


def http_host(name: str, ep) -> P.HostSpec:
    return P.HostSpec(name=name, address="127.0.0.1", port=ep.port, transport="http")


def options(**kw) -> P.ConnectOptions:
    base = dict(transport="http", auth="basic", username=USER, password=PASSWORD, **FAST)
    base.update(kw)
    return P.ConnectOptions(**base)


@pytest.fixture(scope="module")
def compiled() -> bytes:
    return P.script_from_plan(PLAN).data


@pytest.fixture(scope="module")
def other_tls(tmp_path_factory):
    """A second CA: an endpoint using it is not trusted by a client holding the first one."""
    return make_tls(tmp_path_factory.mktemp("other-tls"))


# ------------------------------------------------------------------ the fleet, through the CLI


def test_fleet_every_behaviour_through_the_cli(winrm_endpoint, winrm_tls, other_tls, compiled,
                                               tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    users = {USER: PASSWORD}
    expected_params = {"Mode": "Fix", "Json": True, "StartType": "manual"}
    hosts = {b: Host(b, compiled, expected_params)
             for b in ("compliant", "fixed", "fix_failed", "slow", "dropped", "not_json", "throws")}
    eps = {b: winrm_endpoint(h, users=users, name=b) for b, h in hosts.items()}
    eps["https-ok"] = winrm_endpoint(Host("compliant", compiled, expected_params), users=users,
                                     tls=winrm_tls, name="https-ok")
    wrong_pw = Host("compliant", compiled)
    eps["wrong-password"] = winrm_endpoint(wrong_pw, users={USER: "something else"})
    untrusted = Host("compliant", compiled)
    eps["untrusted"] = winrm_endpoint(untrusted, users=users, tls=other_tls)
    lines = ["# fleet under test", "[windows]"]
    for name, ep in eps.items():
        scheme = "https" if ep.ssl else "http"
        lines.append(f"{name.replace('_', '-')} ansible_host=127.0.0.1 ansible_port={ep.port} "
                     f"ansible_psrp_protocol={scheme}")
    refused = refused_port()
    lines.append(f"refused ansible_host=127.0.0.1 ansible_port={refused} transport=http")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("\n".join(lines) + "\n")
    results, junit = tmp_path / "results.jsonl", tmp_path / "junit.xml"

    t0 = time.monotonic()
    run = CliRunner().invoke(app, [
        "push", PLAN, "--inventory", str(inventory), "--mode", "fix", "--param", "StartType=manual",
        "--auth", "basic", "--user", USER, "--ca-file", winrm_tls.ca_file, "--timeout", "2",
        "--retries", "1", "--parallel", "16", "--results", str(results), "--junit", str(junit),
    ], env={"PSGEN_PASSWORD": PASSWORD})
    elapsed = time.monotonic() - t0
    assert run.exception is None or isinstance(run.exception, SystemExit), run.exception
    assert run.exit_code == 2, run.output
    assert elapsed < 8, f"one slow host must not hold the fleet: {elapsed:.1f}s"

    records = [json.loads(line) for line in results.read_text().splitlines()]
    names = [r["host"] for r in records]
    expected_names = sorted(n.replace("_", "-") for n in eps) + ["refused"]
    assert sorted(names) == sorted(expected_names), "every host exactly once"
    status = {r["host"]: r for r in records}
    assert status["compliant"]["status"] == "compliant"
    assert status["https-ok"]["status"] == "compliant"
    assert status["fixed"]["status"] == "fixed"
    ff = status["fix-failed"]
    assert ff["status"] == "fix_failed" and ff["exit_code"] == 2
    assert ff["warnings"] == ["the spooler did not start within 30 seconds"]
    assert any("cannot be started" in e for e in ff["errors"])
    assert [s["status"] for s in ff["result"]["steps"]] == ["rolled_back", "failed"]
    assert status["slow"]["status"] == "timeout" and status["slow"]["script_started"]
    assert hosts["slow"].stopped.wait(3), "the timed-out pipeline was stopped on the host"
    dr = status["dropped"]
    assert dr["status"] == "connection_lost" and dr["script_started"] and dr["attempts"] == 1
    assert len(hosts["dropped"].calls) == 1, "a fix in progress is never re-run"
    nj = status["not-json"]
    assert nj["status"] == "invalid_output" and "{ not json" in nj["raw_output"]
    assert nj["information"] == ["Fixing the spooler..."]
    th = status["throws"]
    assert th["status"] == "error" and "Cannot bind parameter" in th["message"]
    wp = status["wrong-password"]
    assert wp["status"] == "auth_failed" and wp["attempts"] == 1 and not wp["script_started"]
    assert eps["wrong-password"].auth_failures == 1 and not wrong_pw.calls
    un = status["untrusted"]
    assert un["status"] == "tls_error" and un["attempts"] == 1 and not untrusted.calls
    rf = status["refused"]
    assert rf["status"] == "unreachable" and "refused" in rf["message"] and not rf["script_started"]
    assert rf["attempts"] == 2, "retried once, before anything was sent"

    for b, h in hosts.items():
        assert not h.problems, (b, h.problems)
        if b in ("compliant", "fixed", "fix_failed", "slow", "dropped", "not_json", "throws"):
            assert len(h.calls) == 1, b

    suite = ET.parse(junit).getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == len(expected_names)
    by_name = {c.get("name").split(":")[0]: c for c in cases}
    assert by_name["compliant"].find("failure") is None and by_name["compliant"].find("error") is None
    assert by_name["fix-failed"].find("failure").get("type") == "fix_failed"
    assert by_name["refused"].find("error").get("type") == "unreachable"

    # the summary table and the plain progress lines
    assert "fix-failed" in run.stdout and "exit code 2" in run.stdout
    assert "WARNING: basic auth over http" in run.stderr

    everything = run.stdout + run.stderr + results.read_text() + junit.read_text() + caplog.text
    assert PASSWORD not in everything
    assert PASSWORD.encode() not in results.read_bytes()


def test_check_mode_exit_codes(winrm_endpoint, compiled):
    ok = winrm_endpoint(Host("compliant", compiled), users={USER: PASSWORD})
    drifted = winrm_endpoint(Host("drift", compiled), users={USER: PASSWORD})
    script = P.script_from_plan(PLAN)
    rep = P.push(script, [http_host("a", ok), http_host("b", ok)], mode="check", options=options())
    assert rep.exit_code == 0 and [r.status for r in rep.results] == ["compliant", "compliant"]
    rep = P.push(script, [http_host("a", ok), http_host("b", drifted)], mode="check", options=options())
    assert rep.exit_code == 1
    b = rep.results[1]
    assert b.status == P.Status.DRIFT and b.exit_code == 1 and "spooler-running" in b.message
    assert b.steps[0]["message"] == "the service is stopped"


def test_cli_exit_codes(winrm_endpoint, tmp_path):
    ps1 = tmp_path / "probe.ps1"
    ps1.write_bytes(b"param([string]$Mode, [switch]$Json)\r\n'probe'\r\n")
    ok = winrm_endpoint(Host("compliant", ps1.read_bytes()), users={USER: PASSWORD})
    drifted = winrm_endpoint(Host("drift", ps1.read_bytes()), users={USER: PASSWORD})
    base = ["push", str(ps1), "--transport", "http", "--auth", "basic", "--user", USER, "--timeout", "5"]
    env = {"PSGEN_PASSWORD": PASSWORD}
    r = CliRunner().invoke(app, base + ["--host", f"127.0.0.1:{ok.port}"], env=env)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, base + ["--host", f"127.0.0.1:{ok.port}", "--host",
                                        f"localhost:{drifted.port}"], env=env)
    assert r.exit_code == 1, r.output
    assert "1 compliant" in r.stdout and "1 drift" in r.stdout


# ------------------------------------------------------------------ what arrives on the host


def test_script_bytes_and_typed_parameters_arrive_intact(winrm_endpoint, tmp_path):
    text = (
        "<# help #>\r\n[CmdletBinding()]\r\nparam(\r\n"
        "    [ValidateSet('Check', 'Fix', 'Rollback')]\r\n    [string]$Mode = 'Fix',\r\n"
        "    [switch]$Json,\r\n    [int]$Retries = 3,\r\n    [bool]$Force = $false,\r\n"
        "    [string[]]$DnsServers = @('1.1.1.1'),\r\n    [ValidateSet('automatic', 'manual')]\r\n"
        "    [string]$StartType = 'automatic',\r\n    [Parameter(Mandatory = $true)]\r\n    [string]$Site\r\n)\r\n"
        "# quotes ' \" ` $ and tabs\t survive; so does CRLF\r\nWrite-Output 'done'\r\n"
    )
    ps1 = tmp_path / "typed.ps1"
    ps1.write_bytes(text.encode("ascii"))
    script = P.script_from_file(ps1)
    params = P.coerce_params(["Retries=5", "Force=true", "DnsServers=1.1.1.1,8.8.8.8",
                              "DnsServers=9.9.9.9", "StartType=manual", "Site=HQ 2"], script)
    expected = {"Mode": "Rollback", "Json": True, "Retries": 5, "Force": True,
                "DnsServers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"], "StartType": "manual", "Site": "HQ 2"}
    host = Host("compliant", ps1.read_bytes(), expected)
    ep = winrm_endpoint(host, users={USER: PASSWORD})
    r = P.run_host(script, http_host("h", ep), mode="rollback", params=params, options=options(), timeout=5)
    assert r.status == P.Status.ROLLED_BACK, r.message
    assert not host.problems, host.problems
    got = host.calls[0].parameters
    assert type(got["Retries"]) is int and type(got["Force"]) is bool and type(got["Json"]) is bool
    assert host.calls[0].commands[0].is_script


def test_as_file_copies_exact_bytes_and_runs_the_file(winrm_endpoint, winrm_tls, compiled, tmp_path):
    host = Host("fixed", compiled, {"Mode": "Fix", "Json": True, "StartType": "automatic"})
    ep = winrm_endpoint(host, users={USER: PASSWORD}, tls=winrm_tls)
    results = tmp_path / "r.jsonl"
    run = CliRunner().invoke(app, [
        "push", PLAN, "--host", f"127.0.0.1:{ep.port}", "--mode", "fix", "--as-file",
        "--param", "StartType=automatic", "--auth", "basic", "--user", USER,
        "--ca-file", winrm_tls.ca_file, "--timeout", "5", "--results", str(results)],
        env={"PSGEN_PASSWORD": PASSWORD})
    assert run.exit_code == 0, run.output
    assert not host.problems, host.problems
    call = host.calls[0]
    assert not call.commands[0].is_script
    assert call.command.startswith("C:\\Users\\admin\\AppData\\Local\\Temp\\psgen-print-spooler-")
    copy = [r for r in ep.requests if r.input]
    assert len(copy) == 1, "one pypsrp Client.copy pipeline"
    assert ep.files == {}, "the copied script was removed afterwards"
    assert "unsigned script" in run.stderr
    assert json.loads(results.read_text())["status"] == "fixed"


# ------------------------------------------------------------------ retries, resume, Ctrl-C


def test_retries_only_before_the_script_started(winrm_endpoint, compiled):
    port = refused_port()
    host = Host("compliant", compiled)
    timer = threading.Timer(0.3, lambda: winrm_endpoint(host, users={USER: PASSWORD}, port=port))
    timer.start()
    try:
        r = P.run_host(P.Script(compiled, "print-spooler", PLAN),
                       P.HostSpec("late", port=port, address="127.0.0.1", transport="http"),
                       options=options(retries=6, backoff=0.1), timeout=10)
    finally:
        timer.join()
    assert r.status == P.Status.COMPLIANT, r.message
    assert r.attempts >= 2 and len(host.calls) == 1


def test_refused_gives_up_after_retries_and_within_the_budget():
    port = refused_port()
    spec = P.HostSpec("127.0.0.1", port=port, transport="http")
    r = P.run_host(P.Script(b"x", "x", "x.ps1"), spec, options=options(retries=2), timeout=5)
    assert r.status == P.Status.UNREACHABLE and r.attempts == 3 and "after 3 attempts" in r.message
    t0 = time.monotonic()
    r = P.run_host(P.Script(b"x", "x", "x.ps1"), spec, options=options(retries=9, backoff=0.4), timeout=1)
    assert time.monotonic() - t0 < 1.5 and r.attempts < 10


def test_resume_skips_hosts_already_done(winrm_endpoint, compiled, tmp_path):
    script = P.script_from_plan(PLAN)
    a, b = Host("compliant", compiled), Host("fixed", compiled)
    ea, eb = winrm_endpoint(a, users={USER: PASSWORD}), winrm_endpoint(b, users={USER: PASSWORD})
    port_c = refused_port()
    hosts = [http_host("a", ea), http_host("b", eb),
             P.HostSpec("c", port=port_c, address="127.0.0.1", transport="http")]
    results = tmp_path / "r.jsonl"
    rep = P.push(script, hosts, mode="fix", options=options(retries=0), results_path=results)
    assert [r.status.value for r in rep.results] == ["compliant", "fixed", "unreachable"]
    assert rep.exit_code == 2
    # host c comes up; a torn line (a crash mid-write) must not break the resume
    with results.open("a") as fh:
        fh.write('{"schema": 1, "host": "x", "po')
    c = Host("compliant", compiled)
    winrm_endpoint(c, users={USER: PASSWORD}, port=port_c)
    notes = []
    rep = P.push(script, hosts, mode="fix", options=options(retries=0), resume_path=results,
                 results_path=results, on_notice=notes.append)
    assert rep.resumed == [f"a:{ea.port}", f"b:{eb.port}"]
    assert [r.status.value for r in rep.results] == ["compliant", "fixed", "compliant"]
    assert rep.exit_code == 0
    assert (len(a.calls), len(b.calls), len(c.calls)) == (1, 1, 1)
    assert any("unreadable line" in n for n in notes)
    latest, _ = P.read_results(results)
    assert sorted(r.status.value for r in latest.values()) == ["compliant", "compliant", "fixed"]
    # resuming with another mode or script is refused
    with pytest.raises(UserError, match="different script or mode"):
        P.push(script, hosts, mode="check", options=options(), resume_path=results)


def _slow_host(delay: float):
    calls = []

    def handler(req, io):
        calls.append(req)
        io.sleep(delay)
        return doc("Fix", 0, [])
    return handler, calls


def test_ctrl_c_once_finishes_in_flight_then_resume_completes(winrm_endpoint, tmp_path):
    handler, calls = _slow_host(0.5)
    ep = winrm_endpoint(handler, users={USER: PASSWORD})
    hosts = [http_host(f"h{i}", ep) for i in range(6)]
    script = P.Script(b"'x'\r\n", "x", "x.ps1")
    results = tmp_path / "r.jsonl"
    notes = []

    def first_result(r):
        if len(notes) == 0 and not getattr(first_result, "sent", False):
            first_result.sent = True
            os.kill(os.getpid(), signal.SIGINT)

    rep = P.push(script, hosts, mode="fix", options=options(), parallel=2, results_path=results,
                 on_result=first_result, on_notice=notes.append)
    assert rep.interrupted and rep.exit_code == 130
    assert notes and "waiting for" in notes[0]
    done = [json.loads(x)["host"] for x in results.read_text().splitlines()]
    assert 2 <= len(done) <= 5 and len(done) == len(set(done)) == len(rep.results)
    assert all(r.status == P.Status.COMPLIANT for r in rep.results), "in-flight hosts finished"
    rep2 = P.push(script, hosts, mode="fix", options=options(), parallel=2, resume_path=results)
    assert not rep2.interrupted and rep2.exit_code == 0
    assert sorted(r.host for r in rep2.results) == [f"h{i}" for i in range(6)]
    assert len(calls) == 6, "no host ran twice"


def test_ctrl_c_twice_records_in_flight_hosts_as_interrupted(winrm_endpoint, tmp_path):
    handler, calls = _slow_host(20)
    ep = winrm_endpoint(handler, users={USER: PASSWORD})
    hosts = [http_host(f"h{i}", ep) for i in range(5)]
    results = tmp_path / "r.jsonl"

    def on_start(h):
        if h.name == "h1":  # both workers are busy: interrupt twice
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)

    def on_notice(msg):
        os.kill(os.getpid(), signal.SIGINT)

    t0 = time.monotonic()
    rep = P.push(P.Script(b"'x'\r\n", "x", "x.ps1"), hosts, mode="fix", options=options(), parallel=2,
                 results_path=results, on_start=on_start, on_notice=on_notice, timeout=30)
    assert time.monotonic() - t0 < 5
    assert rep.interrupted and rep.exit_code == 130
    assert sorted(r.host for r in rep.results) == ["h0", "h1"]
    assert all(r.status == P.Status.INTERRUPTED and r.script_started for r in rep.results)
    assert len(results.read_text().splitlines()) == 2


# ------------------------------------------------------------------ output handling


@pytest.mark.parametrize("answer, status, text", [
    (lambda req, io: None, "invalid_output", "wrote nothing"),
    (lambda req, io: "[1, 2]", "invalid_output", "no integer exit_code"),
    (lambda req, io: '{"exit_code": "0"}', "invalid_output", "no integer exit_code"),
    (lambda req, io: doc("Fix", 3, [step("a", "failed", "restore failed")]), "rollback_incomplete", "attention"),
    (lambda req, io: doc("Fix", 4, [step("a", "skipped", "needs admin")]), "precondition_unmet", "needs admin"),
    (lambda req, io: doc("Fix", 9, []), "error", "unknown exit_code 9"),
])
def test_output_is_interpreted(winrm_endpoint, answer, status, text):
    ep = winrm_endpoint(answer)
    r = P.run_host(P.Script(b"'x'", "x", "x.ps1"), http_host("h", ep), mode="fix",
                   options=options(), timeout=5)
    assert r.status.value == status and text in r.message, r.message
    assert r.failed


def test_many_output_lines_are_joined_before_parsing(winrm_endpoint):
    def answer(req, io):
        for line in doc("Check", 0, []).splitlines():
            io.output(line)
    ep = winrm_endpoint(answer)
    r = P.run_host(P.Script(b"'x'", "x", "x.ps1"), http_host("h", ep), options=options(), timeout=5)
    assert r.status == P.Status.COMPLIANT, r.message


# ------------------------------------------------------------------ user mistakes


def test_missing_password_is_a_user_error_not_a_traceback(tmp_path):
    import subprocess

    ps1 = tmp_path / "x.ps1"
    ps1.write_bytes(b"'x'\r\n")
    env = {k: v for k, v in os.environ.items() if k != "PSGEN_PASSWORD"}
    proc = subprocess.run([sys.executable, "-m", "psgen", "push", str(ps1), "--host", "h1", "--auth", "basic",
                           "--user", "admin"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                          timeout=60)
    assert proc.returncode == 2
    assert "PSGEN_PASSWORD" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--host", "bad host"], "not a valid host name"),
    (["--host", "h:99999"], "bad port"),
    (["--host", "h", "--param", "Nope=1"], "has no parameter 'Nope'"),
    (["--host", "h", "--param", "StartType=sometimes"], "not one of automatic, manual"),
    (["--host", "h", "--param", "Mode=Fix"], "psgen sets -Mode itself"),
    (["--host", "h", "--auth", "basic"], "needs --user"),
    (["--host", "h", "--auth", "digest"], "unknown auth"),
    (["--host", "h", "--ca-file", "/nonexistent/ca.pem"], "CA file not found"),
    (["--host", "h", "--mode", "repair"], "unknown mode"),
    ([], "no hosts given"),
])
def test_cli_user_errors(args, message):
    r = CliRunner().invoke(app, ["push", PLAN] + args, env={"PSGEN_PASSWORD": PASSWORD})
    assert isinstance(r.exception, UserError), r.output
    assert message in str(r.exception)


def test_insecure_warns_loudly(winrm_endpoint, winrm_tls):
    ep = winrm_endpoint(Host("compliant", P.script_from_plan(PLAN).data), users={USER: PASSWORD}, tls=winrm_tls)
    r = CliRunner().invoke(app, ["push", PLAN, "--host", f"127.0.0.1:{ep.port}", "--insecure",
                                 "--auth", "basic", "--user", USER, "--timeout", "5"],
                           env={"PSGEN_PASSWORD": PASSWORD})
    assert r.exit_code == 0, r.output
    assert "WARNING: --insecure" in r.stderr


def test_coerce_params_types_and_rules(tmp_path):
    script = P.script_from_plan(PLAN)
    assert P.coerce_params([], script) == {}
    assert P.coerce_params(["starttype=manual"], script) == {"StartType": "manual"}
    ps1 = tmp_path / "t.ps1"
    ps1.write_text("param([int]$N, [bool]$B, [switch]$S, [string[]]$L, $Any, "
                   "[Parameter(Mandatory)][string]$Need)\n")
    s = P.script_from_file(ps1)
    got = P.coerce_params(["N=-4", "B=no", "S=$true", "L=", "Any=7", "Need=x"], s)
    assert got == {"N": -4, "B": False, "S": True, "L": [], "Any": "7", "Need": "x"}
    with pytest.raises(UserError) as e:
        P.coerce_params(["N=4.5", "B=maybe", "Need=a", "Need=b", "junk"], s)
    text = str(e.value)
    assert "whole number" in text and "true or false" in text and "given twice" in text
    assert "NAME=VALUE" in text
    with pytest.raises(UserError, match="missing --param Need"):
        P.coerce_params([], s)
    free = P.Script(b"Write-Output 1", "free", "free.ps1")  # no param block: pass through
    assert P.script_parameters(free.text) is None
    assert P.coerce_params(["X=1"], free) == {"X": "1"}


# ------------------------------------------------------------------ hosts and inventories


def test_parse_host_forms():
    assert P.parse_host("srv01") == P.HostSpec("srv01")
    assert P.parse_host("srv01.corp.example:5985").port == 5985
    h = P.parse_host("[fe80::1]:5986")
    assert (h.name, h.port) == ("fe80::1", 5986) and h.resolve("https").key == "[fe80::1]:5986"
    assert P.parse_host("2001:db8::5").port is None
    h = P.parse_host("http://srv02:8080")
    assert (h.transport, h.port) == ("http", 8080)
    assert P.parse_host("srv03").resolve("http").port == 5985
    for bad in ("", "a b", "h:0", "h:x", "[nothex]:1", "-lead"):
        with pytest.raises(UserError):
            P.parse_host(bad)


def test_plain_inventory(tmp_path):
    f = tmp_path / "hosts.txt"
    f.write_text("# office\nsrv01\nsrv02:5985 http   # old one\n\nsrv03 transport=http port=8000\n"
                 "srv01\n")
    hosts = P.load_inventory(f)
    assert [(h.name, h.port, h.transport) for h in hosts] == [
        ("srv01", None, None), ("srv02", 5985, "http"), ("srv03", 8000, "http")]
    assert hosts[1].source == f"{f}:3"
    assert len(P.dedupe_hosts(hosts + [P.HostSpec("SRV01")], "https")) == 3


def test_ansible_ini_inventory(tmp_path):
    f = tmp_path / "inventory.ini"
    f.write_text(
        "[web]\nweb[01:03].corp ansible_port=5986\n\n[db]\ndb-a ansible_host=10.0.0.5\n\n"
        "[windows:children]\nweb\ndb\n\n[windows:vars]\nansible_connection=psrp\n"
        "ansible_psrp_protocol=http\nansible_password=never-read\n\n[db:vars]\nansible_port=5999\n")
    hosts = P.load_inventory(f)
    got = [(h.name, h.port, h.transport, h.address) for h in hosts]
    assert got == [("web01.corp", 5986, "http", None), ("web02.corp", 5986, "http", None),
                   ("web03.corp", 5986, "http", None), ("db-a", 5999, "http", "10.0.0.5")]


def test_ansible_yaml_inventory(tmp_path):
    f = tmp_path / "inventory.yml"
    f.write_text(
        "all:\n  vars:\n    ansible_psrp_protocol: https\n  children:\n    windows:\n"
        "      vars:\n        ansible_port: 5986\n      hosts:\n        srv1:\n"
        "        srv2:\n          ansible_host: 192.0.2.7\n          ansible_port: 15986\n"
        "    labs:\n      hosts:\n        lab-[a:b]:\n")
    hosts = P.load_inventory(f)
    got = [(h.name, h.port, h.transport, h.address) for h in hosts]
    assert got == [("srv1", 5986, "https", None), ("srv2", 15986, "https", "192.0.2.7"),
                   ("lab-a", None, "https", None), ("lab-b", None, "https", None)]


@pytest.mark.parametrize("name, text, line, message", [
    ("a.txt", "srv01\nsrv 02 x\n", 2, "unexpected"),
    ("b.txt", "ok\nbad_port:70000\n", 2, "bad port"),
    ("c.ini", "[g]\nh1 ansible_port=abc\n", 2, "bad ansible_port"),
    ("d.ini", "[g:vars]\njunk\n", 2, "key=value"),
    ("e.yml", "all:\n  hosts:\n    h1:\n      ansible_psrp_protocol: ftp\n", 3, "https or http"),
    ("f.yml", "all: [\n", 2, "not valid YAML"),
    ("g.txt", "# nothing\n", None, "lists no hosts"),
])
def test_inventory_errors_carry_file_and_line(tmp_path, name, text, line, message):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(UserError) as e:
        P.load_inventory(f)
    problem = e.value.problems[0]
    assert message in problem.message and problem.file == str(f)
    if line is not None:
        assert problem.line == line, str(e.value)


def test_missing_inventory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        P.load_inventory(tmp_path / "nope.txt")


def test_exit_code_rules():
    def r(status):
        return P.HostResult(host="h", port=1, status=P.Status(status), message="", mode="check")
    assert P.exit_code([r("compliant"), r("fixed"), r("rolled_back")]) == 0
    assert P.exit_code([r("compliant"), r("drift")]) == 1
    for bad in ("fix_failed", "unreachable", "timeout", "auth_failed", "invalid_output",
                "precondition_unmet", "connection_lost", "tls_error", "error", "interrupted"):
        assert P.exit_code([r("drift"), r(bad)]) == 2, bad


def test_password_sources():
    assert P.get_password("basic", "u", env={"PSGEN_PASSWORD": "x"}, interactive=False) == "x"
    assert P.get_password("kerberos", "u", env={}, interactive=False) is None  # ticket cache
    assert P.get_password("negotiate", None, env={}, interactive=False) is None  # current user
    assert P.get_password("certificate", "u", env={"PSGEN_PASSWORD": "x"}, interactive=False) is None
    with pytest.raises(UserError, match="PSGEN_PASSWORD"):
        P.get_password("ntlm", "u", env={}, interactive=False)
    assert "hunter2" not in repr(P.ConnectOptions(password="hunter2"))


def test_live_progress_and_rich_summary_render():
    import io

    from rich.console import Console

    buf = io.StringIO()
    results = [P.HostResult(host=f"h{i}", port=5986, status=P.Status(s), message=s, mode="check")
               for i, s in enumerate(["compliant", "drift", "unreachable"])]
    with P.Progress(3, live=True, stream=buf) as progress:
        progress.begin(3, 1)
        for r in results:
            progress.result(r)
    assert "unreachable" in buf.getvalue() and "already done" in buf.getvalue()
    report = P.PushReport(results=results, resumed=[], interrupted=False, wall_seconds=1.0,
                          script=P.Script(b"x", "demo", "demo.ps1"), mode="check")
    out = io.StringIO()
    P.render_summary(report, rich_console=Console(file=out, width=150))
    text = out.getvalue()
    assert "h2:5986" in text and "exit code 2" in text
    lines = []
    P.render_summary(report, write=lines.append)
    assert lines[0].split()[:2] == ["HOST", "STATUS"] and lines[1].startswith("h2:5986")


def test_silent_host_is_unreachable_within_the_budget():
    """A host that accepts the connection and then says nothing (a black hole after SYN-ACK)."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        t0 = time.monotonic()
        r = P.run_host(P.Script(b"x", "x", "x.ps1"),
                       P.HostSpec("127.0.0.1", port=srv.getsockname()[1], transport="http"),
                       options=options(operation_timeout=20, retries=0), timeout=1.5)
        assert time.monotonic() - t0 < 4
        assert r.status == P.Status.UNREACHABLE and "did not answer" in r.message
        assert not r.script_started
    finally:
        srv.close()


def test_resume_into_a_new_results_file_lists_every_host_once(winrm_endpoint, compiled, tmp_path):
    script = P.script_from_plan(PLAN)
    host = Host("compliant", compiled)
    ep = winrm_endpoint(host, users={USER: PASSWORD})
    hosts = [http_host(f"n{i}", ep) for i in range(3)]
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    P.push(script, hosts[:2], mode="check", options=options(), results_path=first)
    rep = P.push(script, hosts, mode="check", options=options(), resume_path=first, results_path=second)
    assert len(host.calls) == 3
    assert sorted(json.loads(x)["host"] for x in second.read_text().splitlines()) == ["n0", "n1", "n2"]
    assert len(rep.results) == 3 and len(rep.resumed) == 2


def test_as_file_with_sign_cert_copies_the_signed_script(winrm_endpoint, winrm_tls, compiled,
                                                          tmp_path):
    from psgen import sign as signing

    key, cert = signing.new_self_signed("push test signer")
    signing.write_certificate_files(tmp_path / "s", key, cert)
    signer = signing.load_signer(tmp_path / "s.pem", tmp_path / "s.key")
    signed = signing.sign_bytes(compiled, signer)  # deterministic: no signingTime, RSA PKCS#1
    assert signing.verify_bytes(signed, trusted=[cert]).ok
    host = Host("fixed", signed, {"Mode": "Fix", "Json": True, "StartType": "automatic"})
    ep = winrm_endpoint(host, users={USER: PASSWORD}, tls=winrm_tls)
    run = CliRunner().invoke(app, [
        "push", PLAN, "--host", f"127.0.0.1:{ep.port}", "--mode", "fix", "--as-file",
        "--param", "StartType=automatic", "--auth", "basic", "--user", USER,
        "--ca-file", winrm_tls.ca_file, "--timeout", "5",
        "--sign-cert", str(tmp_path / "s.pem"), "--sign-key", str(tmp_path / "s.key")],
        env={"PSGEN_PASSWORD": PASSWORD})
    assert run.exit_code == 0, run.output
    assert not host.problems, host.problems  # the copied bytes are exactly the signed script
    assert "unsigned script" not in run.stderr
