"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


# --- loopback WinRM endpoint (tests/winrm_endpoint.py) -------------------------------------------


@pytest.fixture
def winrm_endpoint():
    """Factory: ``winrm_endpoint(handler, users=..., tls=..., name=..., port=...)`` returns a
    started :class:`tests.winrm_endpoint.WinRMEndpoint` on 127.0.0.1. Every endpoint made in the
    test is stopped at teardown (listener closed, long polls and handlers woken)."""
    from tests.winrm_endpoint import WinRMEndpoint

    started: list[WinRMEndpoint] = []

    def make(handler, **kwargs) -> WinRMEndpoint:
        ep = WinRMEndpoint(handler, **kwargs).start()
        started.append(ep)
        return ep

    yield make
    for ep in started:
        ep.stop()


@pytest.fixture(scope="session")
def winrm_tls(tmp_path_factory):
    """A throwaway CA and a server certificate for 127.0.0.1 (``TLSMaterial``)."""
    from tests.winrm_endpoint import make_tls

    return make_tls(tmp_path_factory.mktemp("winrm-tls"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_build_cache(tmp_path_factory):
    """Tests never read or fill the user's build cache (~/.cache/psgen): a fresh one per run,
    so cold and warm paths are both exercised from a known state."""
    import os

    previous = os.environ.get("PSGEN_CACHE_DIR")
    os.environ["PSGEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("psgen-cache"))
    yield
    if previous is None:
        os.environ.pop("PSGEN_CACHE_DIR", None)
    else:
        os.environ["PSGEN_CACHE_DIR"] = previous
