"""Running the real ansible-playbook from the test venv (the "ansible" test extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def ansible_playbook() -> Path:
    """The venv's ansible-playbook; skips (with the reason) only where Ansible 12 cannot run."""
    if sys.version_info < (3, 11):
        pytest.skip("Ansible 12 (ansible-core 2.19) needs Python 3.11 or newer")
    exe = Path(sys.executable).with_name("ansible-playbook")
    if not exe.exists():
        pytest.fail("ansible-playbook is missing from the test venv: pip install -e '.[test]' "
                    "(the test extra declares the ansible package)")
    return exe


def ansible_env(home: Path, *, callback: str | None = "ansible.posix.json") -> dict:
    """A clean Ansible environment: no user config, no colours, temp folders under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "ansible.cfg"
    config.write_text("[defaults]\n", encoding="ascii")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        LC_ALL="C.UTF-8", LANG="C.UTF-8",
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_HOME=str(home / "home"),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_HOST_KEY_CHECKING="0",
    )
    if callback:
        env["ANSIBLE_STDOUT_CALLBACK"] = callback
    return env


def run_playbook(args: list, *, cwd: Path, home: Path, timeout: float = 180,
                 callback: str | None = "ansible.posix.json") -> subprocess.CompletedProcess:
    return subprocess.run([str(ansible_playbook()), *map(str, args)], cwd=cwd,
                          env=ansible_env(home, callback=callback), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def json_report(proc: subprocess.CompletedProcess) -> dict:
    """The ansible.posix.json callback's document (stdout), with stderr in the message."""
    start = proc.stdout.find("{")
    assert start >= 0, f"no JSON on stdout (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout[start:])
