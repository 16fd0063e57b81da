"""psgen.sign against osslsigncode, the independent implementation, in both directions.

Every signature psgen makes passes `osslsigncode verify`; every osslsigncode signature passes
psgen's verify; both compute the same file digest. Matrix: ASCII CRLF, UTF-8 with BOM,
UTF-16LE; with and without a final newline; RSA and ECDSA.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from psgen import sign as S
from tests.sign_support import (ENCODINGS, body_of, key_pem, osslsigncode, pem, pki,
                                sample_script)


@pytest.fixture(scope="module")
def P():
    return pki()


@pytest.fixture(scope="module")
def files(P, tmp_path_factory):
    """PEM files for both tools: per key kind, the certificate (+ chain) and the key."""
    d = tmp_path_factory.mktemp("osslsigncode-pki")
    out = {}
    for kind in ("rsa", "ecdsa", "self-rsa", "self-p256", "self-p384"):
        signer = P.signer(kind)
        (d / f"{kind}.crt").write_bytes(pem(signer.certificate, *signer.chain))
        (d / f"{kind}.key").write_bytes(key_pem(signer.key))
        (d / f"{kind}-ca.pem").write_bytes(pem(P.ca_for(kind)))
        out[kind] = (d / f"{kind}.crt", d / f"{kind}.key", d / f"{kind}-ca.pem")
    (d / "other-ca.pem").write_bytes(pem(P.other_root))
    out["other-ca"] = d / "other-ca.pem"
    return out


def ossl_verify(path: Path, ca: Path, *extra: str):
    return osslsigncode("verify", "-CAfile", ca, "-ignore-crl", *extra, "-in", path)


def ossl_sign(src: Path, dst: Path, cert: Path, key: Path, *extra: str):
    result = osslsigncode("sign", "-certs", cert, "-key", key, *extra, "-in", src, "-out", dst)
    assert result.returncode == 0, result.output
    return dst


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
@pytest.mark.parametrize("trailing", [True, False], ids=["final-newline", "no-final-newline"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_both_directions(P, files, tmp_path, kind, encoding, trailing):
    cert, key, ca = files[kind]
    data = sample_script(encoding, trailing)
    (tmp_path / "plain.ps1").write_bytes(data)

    # psgen signs, osslsigncode verifies
    ours = tmp_path / "psgen.ps1"
    ours.write_bytes(S.sign_bytes(data, P.signer(kind)))
    theirs_verdict = ossl_verify(ours, ca)
    assert theirs_verdict.ok, theirs_verdict.output
    our_digest = S.file_digest(data).hex().upper()
    assert theirs_verdict.digest("Current") == our_digest
    assert theirs_verdict.digest("Calculated") == our_digest

    # osslsigncode signs, psgen verifies
    theirs = ossl_sign(tmp_path / "plain.ps1", tmp_path / "ossl.ps1", cert, key)
    signed = theirs.read_bytes()
    assert body_of(signed) == data            # both tools put the block in the same place
    result = S.verify_file(theirs, trusted=[P.ca_for(kind)])
    assert result.ok and result.trusted, result.format()
    assert result.file_digest == result.signed_digest == our_digest
    assert ossl_verify(theirs, ca).digest("Calculated") == result.file_digest

    # both blocks have the same shape (header, 64-character lines, footer, CRLF)
    ours_block = ours.read_bytes()[len(data):]
    theirs_block = signed[len(data):]
    enc = "utf-16-le" if encoding == "utf16le" else "ascii"
    shape = [(len(line), line[:2]) for line in ours_block.decode(enc).split("\r\n")]
    their_shape = [(len(line), line[:2]) for line in theirs_block.decode(enc).split("\r\n")]
    assert shape[:3] == their_shape[:3] and shape[-2:] == their_shape[-2:]


@pytest.mark.parametrize("kind,digest", [("self-rsa", "sha384"), ("self-p384", "sha384"),
                                         ("self-p256", "sha512"), ("self-rsa", "sha512")])
def test_other_digests_and_self_signed(P, files, tmp_path, kind, digest):
    cert, key, ca = files[kind]
    data = sample_script("utf8-bom")
    ours = tmp_path / "psgen.ps1"
    ours.write_bytes(S.sign_bytes(data, P.signer(kind), digest=digest))
    verdict = ossl_verify(ours, ca)
    assert verdict.ok, verdict.output
    assert verdict.digest("Calculated") == S.file_digest(data, digest).hex().upper()
    (tmp_path / "plain.ps1").write_bytes(data)
    theirs = ossl_sign(tmp_path / "plain.ps1", tmp_path / "ossl.ps1", cert, key, "-h", digest)
    result = S.verify_file(theirs, trusted=[P.ca_for(kind)])
    assert result.ok and result.digest_algorithm == digest, result.format()


def test_resigning_each_others_files(P, files, tmp_path):
    cert, key, ca = files["ecdsa"]
    data = sample_script("ascii")
    (tmp_path / "plain.ps1").write_bytes(data)
    theirs = ossl_sign(tmp_path / "plain.ps1", tmp_path / "ossl.ps1", cert, key)
    # psgen replaces osslsigncode's block
    resigned = S.sign_bytes(theirs.read_bytes(), P.signer("self-p256"))
    assert resigned == S.sign_bytes(data, P.signer("self-p256"))
    # osslsigncode replaces psgen's block
    (tmp_path / "ours.ps1").write_bytes(resigned)
    again = ossl_sign(tmp_path / "ours.ps1", tmp_path / "again.ps1", cert, key)
    assert again.read_bytes().count(b"# SIG # Begin signature block") == 1
    assert S.verify_file(again, trusted=[P.root]).signer == P.ec_leaf.subject.rfc4514_string()


def test_both_reject_the_same_tampering(P, files, tmp_path):
    cert, key, ca = files["rsa"]
    data = sample_script("utf16le")
    signed = bytearray(S.sign_bytes(data, P.signer("rsa")))
    signed[len(data) // 2] ^= 0x20
    bad = tmp_path / "bad.ps1"
    bad.write_bytes(bytes(signed))
    verdict = ossl_verify(bad, ca)
    assert not verdict.ok
    assert verdict.digest("Current") != verdict.digest("Calculated")
    result = S.verify_file(bad, trusted=[P.root])
    assert result.failures == [S.FILE_DIGEST]
    assert result.file_digest == verdict.digest("Calculated")
    assert result.signed_digest == verdict.digest("Current")


def test_both_reject_the_wrong_ca(P, files, tmp_path):
    ours = tmp_path / "psgen.ps1"
    ours.write_bytes(S.sign_bytes(sample_script("ascii"), P.signer("ecdsa")))
    assert not ossl_verify(ours, files["other-ca"]).ok
    assert S.verify_file(ours, trusted=[P.other_root]).failures == [S.CHAIN]


def test_both_reject_an_expired_signature_without_timestamp(P, files, tmp_path):
    ours = tmp_path / "psgen.ps1"
    ours.write_bytes(S.sign_bytes(sample_script("ascii"), P.signer("ecdsa")))
    later = P.ec_leaf.not_valid_after_utc + dt.timedelta(days=2)
    verdict = ossl_verify(ours, files["ecdsa"][2], "-time", str(int(later.timestamp())))
    assert not verdict.ok and "certificate has expired" in verdict.output
    assert S.verify_file(ours, trusted=[P.root], at=later).failures == [S.CHAIN]


def test_foreign_signatures_on_text_windows_rejects_get_a_note(P, files, tmp_path):
    """osslsigncode signs LF text; psgen verifies it but says Windows may reject it."""
    cert, key, ca = files["ecdsa"]
    (tmp_path / "lf.ps1").write_bytes(b'Write-Output "a"\nWrite-Output "b"\n')
    signed = ossl_sign(tmp_path / "lf.ps1", tmp_path / "lf-signed.ps1", cert, key)
    result = S.verify_file(signed, trusted=[P.root])
    assert result.ok
    assert "LF line endings" in result.check(S.FILE_DIGEST).detail
    assert "Windows may still reject it" in result.check(S.FILE_DIGEST).detail


def test_nested_signature_is_reported(P, files, tmp_path):
    cert, key, ca = files["ecdsa"]
    (tmp_path / "a.ps1").write_bytes(sample_script("ascii"))
    one = ossl_sign(tmp_path / "a.ps1", tmp_path / "one.ps1", cert, key)
    two = ossl_sign(one, tmp_path / "two.ps1", cert, key, "-nest", "-h", "sha512")
    result = S.verify_file(two, trusted=[P.root])
    assert result.ok and "1 nested signature(s) not checked" in result.check(S.BLOCK).detail
