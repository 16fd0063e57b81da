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
