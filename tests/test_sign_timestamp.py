"""RFC 3161 timestamps, against a loopback timestamp authority on 127.0.0.1 (no other network).

A timestamped signature stays valid after the signing certificate expires; both psgen and
osslsigncode agree; osslsigncode's own -ts requests are served by the same TSA and verified
by psgen; a misbehaving TSA is a clear UserError.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

import pytest
from asn1crypto import cms
from typer.testing import CliRunner

from psgen import sign as S
from psgen.cli import app
from psgen.errors import UserError
from tests.sign_support import (LoopbackTSA, der_of, key_pem, osslsigncode, pem, pki,
                                replace_der, sample_script)


@pytest.fixture(scope="module")
def P():
    return pki()


@pytest.fixture(scope="module")
def tsa(P):
    server = LoopbackTSA(P.tsa_cert, P.tsa_key)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch, tsa):
    """A proxy from the environment must not see requests meant for the loopback TSA."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    tsa.mode = "ok"


@pytest.fixture(scope="module")
def pems(P, tmp_path_factory):
    d = tmp_path_factory.mktemp("ts-pki")
    (d / "root.pem").write_bytes(pem(P.root))
    (d / "tsa-root.pem").write_bytes(pem(P.tsa_root))
    (d / "leaf.crt").write_bytes(pem(P.rsa_leaf, P.inter))
    (d / "leaf.key").write_bytes(key_pem(P.rsa_key))
    return d


def trusted(P):
    return [P.root, P.tsa_root]


def after_expiry(P):
    return max(P.rsa_leaf.not_valid_after_utc, P.ec_leaf.not_valid_after_utc) + \
        dt.timedelta(days=30)


@pytest.mark.parametrize("kind,digest", [("rsa", "sha256"), ("ecdsa", "sha384")])
def test_timestamped_signature_verifies(P, tsa, kind, digest):
    before = tsa.requests
    signed = S.sign_bytes(sample_script("ascii"), P.signer(kind), digest=digest,
                          timestamp_url=tsa.url)
    assert tsa.requests == before + 1
    result = S.verify_bytes(signed, trusted=trusted(P))
    assert result.ok and result.trusted, result.format()
    assert result.check(S.TIMESTAMP).ok
    assert abs(result.timestamp - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert "timestamp's time" in result.check(S.CHAIN).detail


def test_timestamp_keeps_the_signature_valid_after_expiry(P, tsa):
    data = sample_script("utf16le")
    stamped = S.sign_bytes(data, P.signer("ecdsa"), timestamp_url=tsa.url)
    plain = S.sign_bytes(data, P.signer("ecdsa"))
    later = after_expiry(P)
    assert S.verify_bytes(stamped, trusted=trusted(P), at=later).ok
    result = S.verify_bytes(plain, trusted=trusted(P), at=later)
    assert result.failures == [S.CHAIN] and "expired on" in result.check(S.CHAIN).detail


def test_osslsigncode_accepts_our_timestamps(P, tsa, pems, tmp_path):
    signed = tmp_path / "stamped.ps1"
    signed.write_bytes(S.sign_bytes(sample_script("utf8-bom"), P.signer("rsa"),
                                    timestamp_url=tsa.url))
    args = ["verify", "-CAfile", pems / "root.pem", "-TSA-CAfile", pems / "tsa-root.pem",
            "-ignore-crl"]
    verdict = osslsigncode(*args, "-in", signed)
    assert verdict.ok and "Timestamp Server Signature verification: ok" in verdict.output, \
        verdict.output
    later = str(int(after_expiry(P).timestamp()))
    verdict = osslsigncode(*args, "-time", later, "-in", signed)
    assert verdict.ok, verdict.output


def test_we_accept_osslsigncode_timestamps(P, tsa, pems, tmp_path):
    (tmp_path / "plain.ps1").write_bytes(sample_script("ascii"))
    env = {**os.environ, "no_proxy": "127.0.0.1"}
    for var in ("http_proxy", "HTTP_PROXY"):
        env.pop(var, None)
    before = tsa.requests
    made = osslsigncode("sign", "-certs", pems / "leaf.crt", "-key", pems / "leaf.key",
                        "-ts", tsa.url, "-in", tmp_path / "plain.ps1",
                        "-out", tmp_path / "stamped.ps1", env=env)
    assert made.returncode == 0, made.output
    assert tsa.requests == before + 1
    result = S.verify_file(tmp_path / "stamped.ps1", trusted=trusted(P), at=after_expiry(P))
    assert result.ok and result.check(S.TIMESTAMP).ok, result.format()


def test_untrusted_tsa_fails_the_timestamp_check(P, tsa):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"), timestamp_url=tsa.url)
    result = S.verify_bytes(signed, trusted=[P.root])
    assert result.failures == [S.TIMESTAMP]
    assert "timestamp authority" in result.check(S.TIMESTAMP).detail
    assert "(CN=psgen test TSA root) is not among the trusted CAs" in \
        result.check(S.TIMESTAMP).detail
    # without any CA only the timestamp's integrity is checked
    result = S.verify_bytes(signed)
    assert result.ok and "not checked" in result.check(S.TIMESTAMP).detail


def test_altered_timestamp_fails(P, tsa):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"), timestamp_url=tsa.url)
    der = der_of(signed)
    ci = cms.ContentInfo.load(der)
    token = ci["content"]["signer_infos"][0]["unsigned_attrs"][0]["values"][0]
    tst_der = token["content"]["encap_content_info"]["content"].contents
    at = der.index(tst_der) + len(tst_der) - 3          # inside the nonce
    tampered = bytearray(der)
    tampered[at] ^= 0x01
    result = S.verify_bytes(replace_der(signed, bytes(tampered)), trusted=trusted(P))
    assert result.failures == [S.TIMESTAMP], result.format()
    assert "timestamp was altered" in result.check(S.TIMESTAMP).detail
    # with a broken timestamp, validity falls back to "now": after expiry the chain fails too
    result = S.verify_bytes(replace_der(signed, bytes(tampered)), trusted=trusted(P),
                            at=after_expiry(P))
    assert result.failures == [S.TIMESTAMP, S.CHAIN]


def test_timestamp_for_another_signature_fails(P, tsa, monkeypatch):
    data = sample_script("ascii")
    a = der_of(S.sign_bytes(data, P.signer("rsa"), timestamp_url=tsa.url))
    token = cms.ContentInfo.load(a)["content"]["signer_infos"][0]["unsigned_attrs"][0][
        "values"][0].dump()
    # graft a's timestamp onto a signature by another key (unsigned attributes are not
    # covered by the signature, so only the message imprint ties a timestamp to it)
    monkeypatch.setattr(S, "_request_timestamp", lambda url, signature, digest: token)
    grafted = S.sign_bytes(data, P.signer("ecdsa"), timestamp_url="http://unused.invalid/")
    result = S.verify_bytes(grafted, trusted=trusted(P))
    assert result.failures == [S.TIMESTAMP]
    assert "different signature" in result.check(S.TIMESTAMP).detail


@pytest.mark.parametrize("mode,words", [
    ("reject", "refused the request (rejection: policy says no; bad_request)"),
    ("wrong-imprint", "timestamped something else"),
    ("wrong-nonce", "wrong nonce"),
    ("garbage", "not an RFC 3161 TimeStampResp"),
    ("http500", "answered HTTP 500"),
])
def test_misbehaving_tsa_is_a_user_error(P, tsa, mode, words):
    tsa.mode = mode
    with pytest.raises(UserError) as info:
        S.sign_bytes(sample_script("ascii"), P.signer("ecdsa"), timestamp_url=tsa.url)
    assert words in str(info.value) and tsa.url in str(info.value)


def test_unreachable_tsa_and_bad_url(P):
    with socket.socket() as s:                  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match="could not be reached"):
        S.sign_bytes(sample_script("ascii"), P.signer("ecdsa"),
                     timestamp_url=f"http://127.0.0.1:{port}/")
    with pytest.raises(UserError, match="not http"):
        S.sign_bytes(sample_script("ascii"), P.signer("ecdsa"), timestamp_url="ftp://x/")


def test_cli_timestamp_url(P, tsa, pems, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.ps1").write_bytes(sample_script("ascii"))
    runner = CliRunner()
    r = runner.invoke(app, ["sign", "a.ps1", "--cert", str(pems / "leaf.crt"), "--key",
                            str(pems / "leaf.key"), "--timestamp-url", tsa.url])
    assert r.exit_code == 0 and "(timestamped)" in r.output, r.output
    r = runner.invoke(app, ["verify", "a.ps1", "--ca", str(pems / "root.pem"), "--ca",
                            str(pems / "tsa-root.pem")])
    assert r.exit_code == 0 and "ok      timestamp" in r.output, r.output
