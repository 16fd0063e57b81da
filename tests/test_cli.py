"""The CLI is thin and honest: versions, schema, list, build --check, atomic writes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from psgen import __version__
from psgen.cli import app
from psgen.load import catalog
from tests.helpers import MINIMAL_PLAN, REPO

runner = CliRunner()


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "psgen", *args], capture_output=True,
                          text=True, cwd=cwd or REPO)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"psgen {__version__}"


def test_committed_schema_is_current():
    from psgen.plan import schema_text

    committed = (REPO / "plans" / "plan.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run: psgen schema -o plans/plan.schema.json"


def test_schema_validates_every_catalog_plan_and_rejects_a_bad_one():
    import jsonschema
    from ruamel.yaml import YAML

    schema = json.loads((REPO / "plans" / "plan.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    yaml = YAML(typ="safe", pure=True)
    assert catalog()
    for _, path in catalog():
        validator.validate(yaml.load(path.read_text(encoding="utf-8")))
    bad = yaml.load(MINIMAL_PLAN)
    bad["steps"][0]["resource"] = "service"
    bad["steps"][0]["with"] = {"service": "x", "state": "sideways"}
    del bad["steps"][0]["check"]
    assert list(validator.iter_errors(bad)), "resource properties are checked by the schema"


def test_list_shows_catalog_with_titles():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert "windows/print-spooler" in result.output
    assert "Repair the Print Spooler service" in result.output


def test_build_then_check_then_stale(tmp_path):
    plan = tmp_path / "minimal.yaml"
    plan.write_text(MINIMAL_PLAN)
    out = tmp_path / "minimal.ps1"
    assert run("build", str(plan), "-o", str(out)).returncode == 0
    assert run("build", str(plan), "-o", str(out), "--check").returncode == 0
    plan.write_text(MINIMAL_PLAN.replace("Step one", "Step uno"))
    proc = run("build", str(plan), "-o", str(out), "--check")
    assert proc.returncode == 1
    assert f"stale: {out}" in proc.stdout
    assert b"Step one" in out.read_bytes(), "--check never writes"


def test_invalid_plan_writes_nothing(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL_PLAN)
    bad = REPO / "tests" / "invalid_plans" / "unknown-resource.yaml"
    out = tmp_path / "out"
    proc = run("build", str(good), str(bad), "--out-dir", str(out))
    assert proc.returncode == 2
    assert "unknown resource" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_output_is_a_clear_error(tmp_path):
    plan = tmp_path / "minimal.yaml"
    plan.write_text(MINIMAL_PLAN)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run("build", str(plan), "-o", str(blocker / "x.ps1"))
    assert proc.returncode == 2
    assert "cannot create the output folder" in proc.stderr and "Traceback" not in proc.stderr
    # A missing folder is simply created.
    assert run("build", str(plan), "-o", str(tmp_path / "new" / "x.ps1")).returncode == 0


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    from psgen import util

    target = tmp_path / "x.ps1"
    target.write_bytes(b"old")

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(util.os, "replace", boom)
    with pytest.raises(OSError):
        util.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.ps1"], "no temporary file left behind"


def test_explain_command():
    result = runner.invoke(app, ["explain", "windows/print-spooler"])
    assert result.exit_code == 0
    assert result.output.startswith("# Repair the Print Spooler service")


def test_cli_import_stays_light():
    code = ("import sys, psgen.cli; heavy = [m for m in ('pydantic', 'jinja2', 'tree_sitter', "
            "'cryptography', 'pypsrp', 'ruamel') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]"


def test_demo_compiles_catalog(tmp_path):
    from psgen.demo import main

    assert main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "windows" / "print-spooler.ps1").is_file()
    assert (tmp_path / "out" / "windows" / "print-spooler.md").is_file()


def test_build_sign_is_verified_by_osslsigncode_and_check_ignores_the_block(tmp_path):
    import shutil

    plan = tmp_path / "minimal.yaml"
    plan.write_text(MINIMAL_PLAN)
    assert run("cert", "new", str(tmp_path / "c"), cwd=tmp_path).returncode == 0
    out = tmp_path / "minimal.ps1"
    proc = run("build", str(plan), "-o", str(out), "--sign", "--cert", str(tmp_path / "c.pem"),
               "--key", str(tmp_path / "c.key"))
    assert proc.returncode == 0, proc.stderr
    assert b"\r\n# SIG # Begin signature block\r\n" in out.read_bytes()
    assert run("verify", str(out), "--ca", str(tmp_path / "c.pem")).returncode == 0
    ossl = shutil.which("osslsigncode")
    assert ossl, "osslsigncode is installed by make test (scripts/install-sysdeps)"
    check = subprocess.run([ossl, "verify", "-in", str(out), "-CAfile", str(tmp_path / "c.pem")],
                           capture_output=True, text=True)
    assert check.returncode == 0 and "Succeeded" in check.stdout
    assert run("build", str(plan), "-o", str(out), "--check").returncode == 0
    assert run("build", str(plan), "-o", str(out), "--sign").returncode == 2  # no --cert


def test_demo_signs_what_it_builds(tmp_path):
    from psgen.demo import main
    from psgen.sign import load_certificates, verify_file

    assert main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "windows" / "print-spooler.cmd").is_file()
    intune = tmp_path / "out" / "intune" / "windows" / "print-spooler"
    assert (intune / "print-spooler.intune.json").is_file()
    assert verify_file(intune / "print-spooler.detect.ps1",
                       trusted=load_certificates([tmp_path / "out" / "demo-signing.pem"])).ok
    assert (tmp_path / "out" / "ansible" / "windows" / "print-spooler" / "print-spooler.yml").is_file()
    script = tmp_path / "out" / "windows" / "print-spooler.ps1"
    report = verify_file(script, trusted=load_certificates([tmp_path / "out" / "demo-signing.pem"]))
    assert report.ok


def test_build_cache_hit_gives_the_same_bytes_and_code_changes_miss(tmp_path, monkeypatch):
    from psgen import cache

    plan = tmp_path / "minimal.yaml"
    plan.write_text(MINIMAL_PLAN)
    monkeypatch.setenv("PSGEN_CACHE_DIR", str(tmp_path / "cache"))
    cold = tmp_path / "cold.ps1"
    warm = tmp_path / "warm.ps1"
    assert run("build", str(plan), "-o", str(cold), cwd=tmp_path).returncode == 0
    entries = list((tmp_path / "cache" / "builds").glob("*.json"))
    assert len(entries) == 1
    assert run("build", str(plan), "-o", str(warm), cwd=tmp_path).returncode == 0
    assert warm.read_bytes() == cold.read_bytes()
    # The key covers the plan bytes and psgen's own code: any change is a different entry.
    k1 = cache.key(plan.read_bytes(), target="script", stem="cold")
    assert k1 != cache.key(plan.read_bytes() + b"\n", target="script", stem="cold")
    monkeypatch.setattr(cache, "fingerprint", lambda: "other psgen")
    assert k1 != cache.key(plan.read_bytes(), target="script", stem="cold")
    monkeypatch.setenv("PSGEN_NO_CACHE", "1")
    assert cache.directory() is None
