"""Every mistake in a plan gets a located, plain message with a hint, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from psgen.errors import UserError
from psgen.load import load_plan, resolve
from tests.helpers import MINIMAL_PLAN, REPO, load

INVALID = sorted((REPO / "tests" / "invalid_plans").glob("*.yaml"))


def test_corpus_is_large_enough():
    assert len(INVALID) >= 25


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_plan_message(path, snapshot, monkeypatch):
    monkeypatch.chdir(REPO)
    rel = path.relative_to(REPO).as_posix()
    with pytest.raises(UserError) as info:
        load_plan(rel)
    text = str(info.value) + "\n"
    # Every problem is located (file:line[:col]) and every line of the report is plain text.
    for problem in info.value.problems:
        assert problem.file == rel
        assert problem.line is not None and problem.line >= 1
    assert "Traceback" not in text
    snapshot.snapshot_dir = REPO / "tests" / "snapshots" / "invalid_plans"
    snapshot.assert_match(text, f"{path.stem}.txt")


def test_cli_exit_code_and_no_traceback(tmp_path):
    bad = REPO / "tests" / "invalid_plans" / "unknown-resource.yaml"
    proc = subprocess.run([sys.executable, "-m", "psgen", "validate", str(bad)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert ":8:15: error: unknown resource 'servce'" in proc.stderr
    assert "hint: did you mean 'service'?" in proc.stderr


def test_validate_reports_every_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL_PLAN)
    bad1 = REPO / "tests" / "invalid_plans" / "missing-title.yaml"
    bad2 = REPO / "tests" / "invalid_plans" / "no-steps.yaml"
    proc = subprocess.run([sys.executable, "-m", "psgen", "validate", str(good), str(bad1),
                           str(bad2)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "good.yaml: ok (1 steps)" in proc.stdout
    assert "missing-title.yaml:1:1" in proc.stderr and "no-steps.yaml:4:8" in proc.stderr


def test_minimal_plan_loads_and_hash_ignores_comments():
    a = load(MINIMAL_PLAN)
    b = load("# a comment\n" + MINIMAL_PLAN.replace("title: Minimal plan", "title: Minimal plan  # c"))
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    c = load(MINIMAL_PLAN.replace("Step one", "Step 1"))
    assert c.sha256 != a.sha256


def test_parameter_references_become_models():
    plan = load("""
        psgen: 1
        name: p
        title: P
        parameters:
          Svc: {type: string, default: Spooler}
        steps:
          - id: s
            title: S
            explain: E.
            resource: service
            with: {service: {param: Svc}, state: running}
        """)
    assert plan.steps[0].model.service.param == "Svc"


def test_catalog_names_resolve(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve("windows/print-spooler").name == "print-spooler.yaml"
    assert resolve("print-spooler").name == "print-spooler.yaml"
    with pytest.raises(UserError) as info:
        resolve("print-spoler")
    assert "did you mean windows/print-spooler" in str(info.value)
    with pytest.raises(UserError):
        resolve("missing.yaml")


def test_every_catalog_plan_is_valid():
    from psgen.load import catalog

    plans = catalog()
    assert plans
    for name, path in plans:
        assert load_plan(path).name == Path(name).name
