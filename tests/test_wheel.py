"""The wheel ships templates/ and plans/ and works from any directory."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile

import pytest

from tests.helpers import MINIMAL_PLAN, REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend (hatchling) comes from the test extras, no download.
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                           "--outdir", str(dist), str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = dist.glob("psgen-*.whl")
    return whl


def test_wheel_contains_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "psgen/templates/runtime.ps1.j2" in names
    assert "psgen/templates/resources/service.ps1.j2" in names
    assert "psgen/plans/windows/print-spooler.yaml" in names
    assert "psgen/plans/plan.schema.json" in names
    assert not any(n.startswith(("templates/", "plans/", "tests/")) for n in names)


def test_installed_wheel_builds_from_another_directory(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # The wheel itself is unpacked into the fresh environment (what pip does for a pure
    # wheel); its dependencies come from the test environment through a .pth file, so no
    # package index is needed.
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(purelib)
    deps = [p for p in site.getsitepackages() if os.path.isdir(p)]
    with open(os.path.join(purelib, "_deps.pth"), "w") as fh:
        fh.write("\n".join(deps) + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "minimal.yaml").write_text(MINIMAL_PLAN)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    code = ("import psgen, psgen.paths as p; assert 'site-packages' in psgen.__file__, psgen.__file__;"
            "print(p.templates_dir())")
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=work, env=env)
    assert proc.returncode == 0, proc.stderr
    assert str(REPO) not in proc.stdout, "templates must come from the installed package"
    for args in (["build", "minimal.yaml", "-o", "minimal.ps1"], ["build", "windows/print-spooler"]):
        proc = subprocess.run([str(py), "-m", "psgen", *args], capture_output=True, text=True,
                              cwd=work, env=env)
        assert proc.returncode == 0, proc.stderr
    assert (work / "minimal.ps1").read_bytes().startswith(b"<#\r\n.SYNOPSIS")
    assert (work / "print-spooler.ps1").is_file()
