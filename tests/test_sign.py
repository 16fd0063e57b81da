"""psgen.sign in pure Python: format, round trips, refusals, tampering, chains, loading, CLI.

The cross-checks with osslsigncode are in test_sign_osslsigncode.py; RFC 3161 timestamps in
test_sign_timestamp.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import random
import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from psgen import sign as S
from psgen.cli import app
from psgen.errors import UserError
from tests.sign_support import (ENCODINGS, body_of, der_of, encode_script, ec_key, key_pem,
                                make_cert, pem, pki, replace_der, rsa_key, sample_script,
                                script_text)

KINDS = ("rsa", "ecdsa", "self-rsa", "self-p256", "self-p384")
CRLF_HEADER = b"\r\n# SIG # Begin signature block\r\n"


@pytest.fixture(scope="module")
def P():
    return pki()


def checks(result: S.Verification) -> dict[str, str]:
    return {c.name: c.status for c in result.checks}


# --- format and round trips -------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("trailing", [True, False], ids=["final-newline", "no-final-newline"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_sign_then_verify_round_trip(P, kind, encoding, trailing):
    data = sample_script(encoding, trailing)
    signed = S.sign_bytes(data, P.signer(kind))
    assert signed.startswith(data)               # the text is kept byte for byte
    result = S.verify_bytes(signed, trusted=[P.ca_for(kind)])
    assert result.ok and result.trusted, result.format()
    assert set(checks(result).values()) == {"ok", "skipped"}
    assert checks(result)[S.TIMESTAMP] == "skipped"
    assert result.file_digest == result.signed_digest


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_block_layout_in_the_files_own_encoding(P, encoding):
    data = sample_script(encoding)
    signed = S.sign_bytes(data, P.signer("self-p256"))
    enc = "utf-16-le" if encoding == "utf16le" else "utf-8"
    block = signed[len(data):].decode(enc)
    lines = block.split("\r\n")
    assert lines[0] == "" and lines[1] == S.HEADER and lines[-2] == S.FOOTER and lines[-1] == ""
    body = lines[2:-2]
    assert all(line.startswith("# ") and 0 < len(line) - 2 <= 64 for line in body)
    assert all(len(line) == 66 for line in body[:-1])
    assert "\n" not in block.replace("\r\n", "")
    der = base64.b64decode("".join(line[2:] for line in body))
    assert der[:1] == b"\x30"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_file_digest_is_utf16le_of_the_text_before_the_block(P, encoding):
    text = script_text(non_ascii=encoding != "ascii") + "\r\n"
    data = encode_script(script_text(non_ascii=encoding != "ascii"), encoding)
    expected_text = text if encoding == "ascii" else "\ufeff" + text  # the BOM is U+FEFF
    expected = hashlib.sha256(expected_text.encode("utf-16-le")).hexdigest().upper()
    assert S.file_digest(data).hex().upper() == expected
    signed = S.sign_bytes(data, P.signer("self-p256"))
    assert S.file_digest(signed).hex().upper() == expected
    assert S.verify_bytes(signed).signed_digest == expected


def test_utf8_bom_and_utf16_of_the_same_text_have_the_same_digest():
    text = script_text(non_ascii=True)
    assert S.file_digest(encode_script(text, "utf8-bom")) == \
        S.file_digest(encode_script(text, "utf16le"))


@pytest.mark.parametrize("digest", S.DIGESTS)
def test_digest_algorithms(P, digest):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("ecdsa"), digest=digest)
    result = S.verify_bytes(signed, trusted=[P.root])
    assert result.ok and result.digest_algorithm == digest
    assert len(result.file_digest) == hashlib.new(digest).digest_size * 2


def test_unknown_digest_is_a_user_error(P):
    with pytest.raises(UserError, match="unknown digest"):
        S.sign_bytes(sample_script("ascii"), P.signer("ecdsa"), digest="md5")


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_signing_is_deterministic(P, kind):
    data = sample_script("ascii")
    assert S.sign_bytes(data, P.signer(kind)) == S.sign_bytes(data, P.signer(kind))


def test_signing_time_is_opt_in(P):
    data = sample_script("ascii")
    plain = der_of(S.sign_bytes(data, P.signer("ecdsa")))
    timed = der_of(S.sign_bytes(data, P.signer("ecdsa"),
                                signing_time=dt.datetime(2030, 1, 2, tzinfo=dt.timezone.utc)))
    signing_time_oid = bytes.fromhex("06092A864886F70D010905")
    assert signing_time_oid not in plain and signing_time_oid in timed
    assert S.verify_bytes(replace_der(S.sign_bytes(data, P.signer("ecdsa")), timed),
                          trusted=[P.root]).ok


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_signature_is_canonical_der(P, kind):
    """The DER is built by hand; asn1crypto must parse it strictly and re-encode it unchanged."""
    from asn1crypto import cms
    when = dt.datetime(2061, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)   # GeneralizedTime
    for signing_time in (None, when):
        der = der_of(S.sign_bytes(sample_script("ascii"), P.signer(kind),
                                  signing_time=signing_time))
        parsed = cms.ContentInfo.load(der, strict=True)
        assert parsed.dump(force=True) == der
        si = parsed["content"]["signer_infos"][0]
        types = [a["type"].dotted for a in si["signed_attrs"]]
        assert ("1.2.840.113549.1.9.5" in types) == (signing_time is not None)
        if signing_time:
            assert [a["values"][0].native for a in si["signed_attrs"]
                    if a["type"].native == "signing_time"] == [when]


def test_resigning_replaces_the_block(P):
    data = sample_script("utf8-bom")
    once = S.sign_bytes(data, P.signer("rsa"))
    twice = S.sign_bytes(once, P.signer("self-p384"), digest="sha384")
    assert twice.count(CRLF_HEADER) == 1 and twice.startswith(data)
    result = S.verify_bytes(twice, trusted=[P.self_p384.certificate])
    assert result.ok and result.signer == P.self_p384.subject
    assert S.sign_bytes(twice, P.signer("rsa")) == once


def test_signature_includes_the_chain_but_not_the_root(P):
    from asn1crypto import cms
    sd = cms.ContentInfo.load(der_of(S.sign_bytes(sample_script("ascii"), P.signer("rsa"))))
    subjects = [c.chosen.subject.human_friendly for c in sd["content"]["certificates"]]
    assert sorted(subjects) == ["Common Name: psgen test code signing CA",
                                "Common Name: psgen test signer RSA"]


# --- verification: chain ----------------------------------------------------------------------

def test_wrong_ca_fails_the_chain_check_in_words(P):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"))
    result = S.verify_bytes(signed, trusted=[P.other_root])
    assert not result.ok and result.failures == [S.CHAIN]
    assert "psgen test root CA" in result.check(S.CHAIN).detail
    assert "not among the trusted CAs" in result.check(S.CHAIN).detail
    # a self-signed signer checked against an unrelated CA
    signed = S.sign_bytes(sample_script("ascii"), P.signer("self-p256"))
    result = S.verify_bytes(signed, trusted=[P.root])
    assert result.failures == [S.CHAIN]
    assert "self-signed" in result.check(S.CHAIN).detail


def test_intermediate_as_trust_anchor_and_missing_intermediate(P):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"))
    assert S.verify_bytes(signed, trusted=[P.inter]).ok
    # a signature without the intermediate cannot reach the root
    bare = S.Signer(P.rsa_key, P.rsa_leaf)        # no chain given
    signed = S.sign_bytes(sample_script("ascii"), bare)
    result = S.verify_bytes(signed, trusted=[P.root])
    assert result.failures == [S.CHAIN]
    assert "the signature does not include it" in result.check(S.CHAIN).detail
    assert S.verify_bytes(signed, trusted=[P.root, P.inter]).ok


def test_without_ca_only_integrity_is_checked(P):
    result = S.verify_bytes(S.sign_bytes(sample_script("ascii"), P.signer("rsa")))
    assert result.ok and not result.trusted
    assert result.check(S.CHAIN).status == "skipped"
    assert "not checked against a trusted CA" in result.summary()


def test_expired_certificate_fails_without_timestamp(P):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("ecdsa"))
    later = P.ec_leaf.not_valid_after_utc + dt.timedelta(days=1)
    result = S.verify_bytes(signed, trusted=[P.root], at=later)
    assert result.failures == [S.CHAIN]
    assert "expired on" in result.check(S.CHAIN).detail


def test_chain_eku_and_ca_rules(P):
    # an intermediate whose EKU excludes code signing
    ik = ec_key()
    inter = make_cert("server-only CA", ik, (P.root, P.root_key), ca=True,
                      eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    lk = ec_key()
    leaf = make_cert("leaf under server-only CA", lk, (inter, ik))
    signed = S.sign_bytes(sample_script("ascii"), S.Signer(lk, leaf, [inter]))
    result = S.verify_bytes(signed, trusted=[P.root])
    assert result.failures == [S.CHAIN] and "does not allow Code Signing" in \
        result.check(S.CHAIN).detail
    # an issuer that is not a CA
    nk = ec_key()
    not_ca = make_cert("not a CA", nk, (P.root, P.root_key), ca=False)
    lk2 = ec_key()
    leaf2 = make_cert("leaf under non-CA", lk2, (not_ca, nk))
    signed = S.sign_bytes(sample_script("ascii"), S.Signer(lk2, leaf2, [not_ca]))
    result = S.verify_bytes(signed, trusted=[P.root])
    assert result.failures == [S.CHAIN] and "is not a CA" in result.check(S.CHAIN).detail


# --- verification: tampering ------------------------------------------------------------------

def _flip(data: bytes, pos: int, rng: random.Random) -> bytes:
    out = bytearray(data)
    out[pos] ^= rng.randrange(1, 256)
    return bytes(out)


@pytest.mark.parametrize("encoding,kind", [("ascii", "rsa"), ("utf8-bom", "ecdsa"),
                                           ("utf16le", "self-p256")])
def test_flipping_any_byte_before_the_block_fails(P, encoding, kind):
    data = sample_script(encoding, lines=40)
    signed = S.sign_bytes(data, P.signer(kind))
    rng = random.Random(f"{encoding}-{kind}")
    n = len(body_of(signed))
    positions = sorted({0, 1, 2, 3, n - 2, n - 1, *rng.sample(range(n), 40)})
    for pos in positions:
        result = S.verify_bytes(_flip(signed, pos, rng), trusted=[P.ca_for(kind)])
        assert not result.ok, f"flip at {pos} went unnoticed"
        if encoding == "utf16le" and pos < 2:
            # the UTF-16LE byte-order mark decides the encoding: without it there is no block
            assert result.failures == [S.BLOCK], (pos, result.format())
        else:
            assert result.failures == [S.FILE_DIGEST], (pos, result.format())
            assert "changed after signing" in result.check(S.FILE_DIGEST).detail or \
                "not valid UTF-8" in result.check(S.FILE_DIGEST).detail


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
                      min_size=1, max_size=8),
       trailing=st.booleans(), where=st.floats(0, 1, exclude_max=True), delta=st.integers(1, 255))
def test_property_any_single_byte_change_is_detected(lines, trailing, where, delta):
    signer = pki().self_p256
    data = "\r\n".join(lines).encode("ascii") + (b"\r\n" if trailing else b"")
    if not data:
        return
    signed = S.sign_bytes(data, signer)
    assert S.verify_bytes(signed, trusted=[signer.certificate]).ok
    pos = int(where * len(data))
    tampered = bytearray(signed)
    tampered[pos] ^= delta
    result = S.verify_bytes(bytes(tampered), trusted=[signer.certificate])
    assert not result.ok
    assert result.failures in ([S.FILE_DIGEST], [S.BLOCK])


def _b64_lines(signed: bytes) -> tuple[bytes, list[str]]:
    layout = S._find_block(signed)
    block = signed[layout.block_at:].decode("ascii").split("\r\n")
    return layout.body, block


def test_corrupt_base64_character(P):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"))
    body, block = _b64_lines(signed)
    block[5] = block[5][:10] + "*" + block[5][11:]
    result = S.verify_bytes(body + "\r\n".join(block).encode(), trusted=[P.root])
    assert result.failures == [S.BLOCK]
    assert "not valid base64" in result.check(S.BLOCK).detail and "'*'" in \
        result.check(S.BLOCK).detail
    assert all(c.status == "skipped" for c in result.checks[1:])


def test_truncated_base64_and_missing_footer(P):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"))
    body, block = _b64_lines(signed)
    short = block[:4] + block[5:]                  # a whole line lost
    result = S.verify_bytes(body + "\r\n".join(short).encode(), trusted=[P.root])
    assert result.failures == [S.BLOCK]
    no_footer = block[:-2] + [""]
    result = S.verify_bytes(body + "\r\n".join(no_footer).encode(), trusted=[P.root])
    assert result.failures == [S.BLOCK] and "no '# SIG # End" in result.check(S.BLOCK).detail


def test_text_after_the_block_is_rejected(P):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"))
    result = S.verify_bytes(signed + b"Remove-Item C:\\ -Recurse\r\n", trusted=[P.root])
    assert result.failures == [S.BLOCK]
    assert "follows the end of the signature block" in result.check(S.BLOCK).detail


def test_unsigned_file(P):
    result = S.verify_bytes(sample_script("ascii"))
    assert result.failures == [S.BLOCK] and "not signed" in result.check(S.BLOCK).detail


def _mutate_inside(der: bytes, needle: bytes, offset: int = None) -> bytes:
    at = der.index(needle) + (len(needle) // 2 if offset is None else offset)
    out = bytearray(der)
    out[at] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_changed_signature_value_fails_the_signer_signature(P, kind):
    from asn1crypto import cms
    signed = S.sign_bytes(sample_script("ascii"), P.signer(kind))
    der = der_of(signed)
    sig = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signature"].native
    result = S.verify_bytes(replace_der(signed, _mutate_inside(der, sig)), trusted=[P.root])
    if kind == "ecdsa" and result.failures == [S.BLOCK]:
        pytest.fail("ECDSA signature bytes are DER integers; a flip must stay parseable")
    assert result.failures == [S.SIGNATURE], result.format()
    assert "does not verify" in result.check(S.SIGNATURE).detail


def test_changed_digest_in_the_signed_content(P):
    data = sample_script("ascii")
    signed = S.sign_bytes(data, P.signer("rsa"))
    der = der_of(signed)
    result = S.verify_bytes(replace_der(signed, _mutate_inside(der, S.file_digest(data))),
                            trusted=[P.root])
    assert result.failures == [S.FILE_DIGEST, S.MESSAGE_DIGEST], result.format()
    assert "was altered" in result.check(S.MESSAGE_DIGEST).detail


def test_changed_message_digest_attribute(P):
    from asn1crypto import cms
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"))
    der = der_of(signed)
    attrs = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signed_attrs"]
    md = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"][0]
    result = S.verify_bytes(replace_der(signed, _mutate_inside(der, md)), trusted=[P.root])
    assert result.failures == [S.MESSAGE_DIGEST, S.SIGNATURE], result.format()


def test_wrong_sip_guid(P):
    data = sample_script("ascii")
    signer = P.signer("ecdsa")
    other = bytes.fromhex("C689AAB8_8E78_11D0_8C47_00C04FC295EE".replace("_", ""))  # PE SIP
    der = S._signed_data(S.file_digest(data), signer, "sha256", guid=other)
    result = S.verify_bytes(data + S._format_block(der, "utf-8"), trusted=[P.root])
    assert result.failures == [S.SIP]
    assert "not PowerShell's" in result.check(S.SIP).detail


def test_signer_certificate_missing(P):
    from asn1crypto import cms
    signed = S.sign_bytes(sample_script("ascii"), P.signer("ecdsa"))
    ci = cms.ContentInfo.load(der_of(signed))
    ci["content"]["certificates"] = [ci["content"]["certificates"][1]]   # only the CA
    result = S.verify_bytes(replace_der(signed, ci.dump(force=True)), trusted=[P.root])
    assert S.SIGNATURE in result.failures
    assert "not in the signature block" in result.check(S.SIGNATURE).detail


def test_verification_report_is_in_words(P):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("rsa"))
    text = S.verify_bytes(signed, trusted=[P.root], name="x.ps1").format()
    assert text.splitlines()[0] == "x.ps1: OK, signed by CN=psgen test signer RSA"
    for name in S.CHECKS:
        assert name in text
    bad = S.verify_bytes(_flip(signed, 3, random.Random(1)), trusted=[P.other_root],
                         name="x.ps1")
    assert bad.summary() == "x.ps1: FAILED (file digest, certificate chain)"


# --- refusals (input Windows would reject) ----------------------------------------------------

@pytest.mark.parametrize("data,words,line", [
    (b'Write-Output "a"\nWrite-Output "b"\n', "LF line endings", 1),
    (b'Write-Output "a"\r\nWrite-Output "b"\n', "LF line endings", 2),
    (b'Write-Output "a"\rWrite-Output "b"\r\n', "bare CR line endings", 1),
    (b'Write-Output "a"\r\nWrite-Output "caf\xc3\xa9"\r\n', "without a byte-order mark", 2),
    (b'Write-Output "caf\xe9"\r\n', "not valid UTF-8", 1),
    (b"\xef\xbb\xbfWrite-Output 1\n", "LF line endings", 1),
    (b"\xff\xfe" + "a\nb".encode("utf-16-le"), "LF line endings", 1),
    (b"\xfe\xff" + "a\r\n".encode("utf-16-be"), "big-endian", None),
    (b"\xff\xfe" + b"a\x00b", "odd number of bytes", None),
    (b"", "empty", None),
])
def test_refuses_input_windows_would_reject(P, data, words, line):
    with pytest.raises(UserError) as info:
        S.sign_bytes(data, P.signer("self-p256"), name="bad.ps1")
    problem = info.value.problems[0]
    assert words in problem.message and problem.file == "bad.ps1"
    assert problem.line == line
    assert problem.hint


def test_refusal_messages_say_why_and_how_psgen_avoids_it(P):
    with pytest.raises(UserError) as info:
        S.sign_bytes(b"a\nb\n", P.signer("self-p256"))
    text = str(info.value)
    assert "PowerShell#3361" in text and "CRLF" in text and "psgen build" in text
    with pytest.raises(UserError) as info:
        S.sign_bytes('x = "\u00e9"\r\n'.encode(), P.signer("self-p256"))
    text = str(info.value)
    assert "HashMismatch" in text and "[char]0xNNNN" in text and "BOM" in text


def test_refuses_a_damaged_existing_block(P):
    signed = S.sign_bytes(sample_script("ascii"), P.signer("self-p256"))
    with pytest.raises(UserError, match="damaged block"):
        S.sign_bytes(signed + b"more\r\n", P.signer("self-p256"))


# --- the signer: certificate rules ------------------------------------------------------------

def test_refuses_expired_and_not_yet_valid_certificates():
    k = ec_key()
    old = make_cert("old signer", k, not_before=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
                    days=30)
    with pytest.raises(UserError) as info:
        S.Signer(k, old, source="old.pfx")
    assert "expired on 2020-01-31" in str(info.value) and info.value.problems[0].file == "old.pfx"
    future = make_cert("future signer", k, not_before=dt.datetime.now(dt.timezone.utc)
                       + dt.timedelta(days=10))
    with pytest.raises(UserError, match="not valid until"):
        S.Signer(k, future)


def test_sign_rechecks_expiry(P, monkeypatch):
    signer = P.signer("self-p256")
    later = signer.certificate.not_valid_after_utc + dt.timedelta(seconds=1)
    monkeypatch.setattr(S, "_utcnow", lambda: later)
    with pytest.raises(UserError, match="expired"):
        S.sign_bytes(sample_script("ascii"), signer)


@pytest.mark.parametrize("eku,words", [
    (None, "has no Extended Key Usage"),
    ((ExtendedKeyUsageOID.SERVER_AUTH,), "Server Authentication"),
])
def test_requires_the_code_signing_eku(eku, words):
    k = ec_key()
    with pytest.raises(UserError) as info:
        S.Signer(k, make_cert("not for code", k, eku=eku))
    assert "not a code-signing certificate" in str(info.value) and words in str(info.value)
    assert "psgen cert new" in str(info.value)


def test_refuses_key_usage_without_digital_signature():
    k = ec_key()
    with pytest.raises(UserError, match="digitalSignature"):
        S.Signer(k, make_cert("no ds", k, digital_signature=False))


def test_refuses_mismatched_and_unsupported_keys(P):
    with pytest.raises(UserError, match="does not belong"):
        S.Signer(ec_key(), P.ec_leaf)
    p521 = ec_key(ec.SECP521R1)
    with pytest.raises(UserError, match="P-256 and P-384"):
        S.Signer(p521, make_cert("p521", p521))
    small = rsa_key(1024)
    with pytest.raises(UserError, match="1024 bits"):
        S.Signer(small, make_cert("small", small))
    ed = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(UserError, match="RSA and ECDSA"):
        S.Signer(ed, P.ec_leaf)


# --- loading keys and certificates ------------------------------------------------------------

@pytest.fixture()
def pfx_files(P, tmp_path):
    enc = serialization.BestAvailableEncryption(b"s3cret!")
    locked = tmp_path / "locked.pfx"
    locked.write_bytes(pkcs12.serialize_key_and_certificates(
        b"signer", P.ec_key, P.ec_leaf, [P.inter, P.root], enc))
    open_ = tmp_path / "open.pfx"
    open_.write_bytes(pkcs12.serialize_key_and_certificates(
        b"signer", P.rsa_key, P.rsa_leaf, [P.inter], serialization.NoEncryption()))
    return locked, open_


def test_load_pfx_with_password_from_the_environment(P, pfx_files, monkeypatch):
    locked, _ = pfx_files
    monkeypatch.setenv("MY_PFX_PW", "s3cret!")
    signer = S.load_signer(locked, password=S.password_source("MY_PFX_PW"))
    assert signer.certificate == P.ec_leaf and signer.chain == [P.inter]
    assert S.verify_bytes(S.sign_bytes(sample_script("ascii"), signer), trusted=[P.root]).ok


def test_load_pfx_wrong_or_missing_password(pfx_files, monkeypatch):
    locked, _ = pfx_files
    monkeypatch.setenv("MY_PFX_PW", "wrong")
    with pytest.raises(UserError, match="wrong password for the PFX"):
        S.load_signer(locked, password=S.password_source("MY_PFX_PW"))
    monkeypatch.delenv("MY_PFX_PW")
    with pytest.raises(UserError) as info:
        S.load_signer(locked, password=S.password_source("MY_PFX_PW", interactive=False))
    assert "this file is password-protected and $MY_PFX_PW is not set" in str(info.value)
    assert "never taken from the command line" in str(info.value)
    assert info.value.problems[0].file == str(locked)


def test_password_prompt_is_used_only_when_needed(pfx_files, monkeypatch):
    locked, unlocked = pfx_files
    asked = []
    monkeypatch.delenv("MY_PFX_PW", raising=False)
    monkeypatch.setattr(S.getpass, "getpass", lambda prompt: asked.append(prompt) or "s3cret!")
    S.load_signer(unlocked, password=S.password_source("MY_PFX_PW", interactive=True))
    assert asked == []
    S.load_signer(locked, password=S.password_source("MY_PFX_PW", interactive=True))
    assert len(asked) == 1 and "locked.pfx" in asked[0]


def test_load_pem_files(P, tmp_path, monkeypatch):
    (tmp_path / "leaf.pem").write_bytes(pem(P.rsa_leaf))
    (tmp_path / "inter.pem").write_bytes(pem(P.inter))
    (tmp_path / "leaf.key").write_bytes(key_pem(P.rsa_key))
    signer = S.load_signer(tmp_path / "leaf.pem", tmp_path / "leaf.key",
                           chain=[tmp_path / "inter.pem"])
    assert signer.chain == [P.inter]
    # one PEM with key, leaf and chain, in any order
    (tmp_path / "all.pem").write_bytes(pem(P.inter) + key_pem(P.ec_key) + pem(P.ec_leaf, P.root))
    signer = S.load_signer(tmp_path / "all.pem")
    assert signer.certificate == P.ec_leaf and signer.chain == [P.inter]
    # an encrypted key
    (tmp_path / "enc.key").write_bytes(key_pem(P.rsa_key, b"pw"))
    monkeypatch.setenv("K", "pw")
    assert S.load_signer(tmp_path / "leaf.pem", tmp_path / "enc.key",
                         password=S.password_source("K")).certificate == P.rsa_leaf
    monkeypatch.setenv("K", "nope")
    with pytest.raises(UserError, match="wrong password for the private key"):
        S.load_signer(tmp_path / "leaf.pem", tmp_path / "enc.key", password=S.password_source("K"))


def test_load_errors_are_user_errors(P, tmp_path):
    (tmp_path / "leaf.pem").write_bytes(pem(P.rsa_leaf))
    (tmp_path / "other.key").write_bytes(key_pem(P.ec_key))
    (tmp_path / "junk.pfx").write_bytes(b"\x00junk" * 10)
    cases = [
        ((tmp_path / "missing.pfx",), "not found"),
        ((tmp_path,), "is a directory"),
        ((tmp_path / "junk.pfx",), "not a certificate file"),
        ((tmp_path / "leaf.pem",), "no private key"),
        ((tmp_path / "leaf.pem", tmp_path / "other.key"), "does not belong"),
        ((tmp_path / "leaf.pem", tmp_path / "leaf.pem"), "no private key could be read"),
    ]
    for args, words in cases:
        with pytest.raises(UserError, match=words):
            S.load_signer(*args)


def test_load_certificates(P, tmp_path):
    (tmp_path / "two.pem").write_bytes(pem(P.root, P.inter))
    (tmp_path / "one.cer").write_bytes(P.other_root.public_bytes(serialization.Encoding.DER))
    (tmp_path / "none.txt").write_text("hello")
    assert S.load_certificates([tmp_path / "two.pem", tmp_path / "one.cer"]) == \
        [P.root, P.inter, P.other_root]
    with pytest.raises(UserError, match="no certificate in this file"):
        S.load_certificates([tmp_path / "none.txt"])


# --- files -------------------------------------------------------------------------------------

def test_sign_file_in_place_keeps_mode_and_output(P, tmp_path):
    script = tmp_path / "fix.ps1"
    script.write_bytes(sample_script("ascii"))
    script.chmod(0o640)
    S.sign_file(script, P.signer("self-p256"))
    assert stat.S_IMODE(script.stat().st_mode) == 0o640
    assert S.verify_file(script).ok
    out = tmp_path / "copy.ps1"
    S.sign_file(script, P.signer("self-p384"), output=out)
    assert S.verify_file(out).signer == P.self_p384.subject
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(UserError, match="not found"):
        S.verify_file(tmp_path / "nope.ps1")


def test_new_self_signed_and_files(tmp_path):
    key, cert = S.new_self_signed("demo", key_type="p256", days=10)
    signer = S.Signer(key, cert)
    assert signer.subject == "CN=demo"
    paths = S.write_certificate_files(tmp_path / "demo", key, cert, pfx_password=b"pw")
    assert [p.name for p in paths] == ["demo.pem", "demo.key", "demo.cer", "demo.pfx"]
    assert stat.S_IMODE((tmp_path / "demo.key").stat().st_mode) == 0o600
    assert S.load_certificates([tmp_path / "demo.cer"]) == [cert]
    assert S.load_signer(tmp_path / "demo.pfx", password=b"pw").certificate == cert
    with pytest.raises(UserError, match="already exist"):
        S.write_certificate_files(tmp_path / "demo", key, cert)
    with pytest.raises(UserError, match="unknown key type"):
        S.new_self_signed(key_type="dsa")


# --- command line -----------------------------------------------------------------------------

def _psgen(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "psgen", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_cert_new_sign_verify(tmp_path, monkeypatch):
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["cert", "new", "demo", "--key-type", "p256", "--subject", "Demo"])
    assert r.exit_code == 0, r.output
    assert "Cert:\\LocalMachine\\Root" in r.output and "TrustedPublisher" in r.output
    for name in ("a.ps1", "b.ps1"):
        (tmp_path / name).write_bytes(sample_script("ascii"))
    r = runner.invoke(app, ["sign", "a.ps1", "b.ps1", "--cert", "demo.pem", "--key", "demo.key"])
    assert r.exit_code == 0, r.output
    assert r.output.count("signed by CN=Demo") == 2
    r = runner.invoke(app, ["sign", "a.ps1", "--cert", "demo.pem", "--key", "demo.key",
                            "-o", "c.ps1", "--hash", "sha512"])
    assert r.exit_code == 0 and (tmp_path / "c.ps1").exists()
    r = runner.invoke(app, ["verify", "a.ps1", "b.ps1", "c.ps1", "--ca", "demo.cer"])
    assert r.exit_code == 0, r.output
    assert r.output.count(": OK, signed by CN=Demo") == 3


def test_cli_exit_codes(tmp_path):
    """Run the real entry point: user mistakes exit 2 without a traceback; bad signatures 1."""
    env = {**os.environ, "PSGEN_CERT_PASSWORD": "pw"}
    r = _psgen("cert", "new", "t", "--key-type", "p256", "--pfx", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    (tmp_path / "lf.ps1").write_bytes(b"Write-Output 1\nWrite-Output 2\n")
    (tmp_path / "ok.ps1").write_bytes(sample_script("ascii"))
    r = _psgen("sign", "ok.ps1", "lf.ps1", "--cert", "t.pfx", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "lf.ps1:1: error:" in r.stderr and "LF line endings" in r.stderr
    assert (tmp_path / "ok.ps1").read_bytes() == sample_script("ascii")  # nothing was signed
    r = _psgen("sign", "ok.ps1", "--cert", "t.pfx", cwd=tmp_path,
               env={**env, "PSGEN_CERT_PASSWORD": "wrong"})
    assert r.returncode == 2 and "wrong password" in r.stderr and "Traceback" not in r.stderr
    r = _psgen("sign", "ok.ps1", "--cert", "t.pfx", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    data = bytearray((tmp_path / "ok.ps1").read_bytes())
    data[5] ^= 1
    (tmp_path / "bad.ps1").write_bytes(bytes(data))
    r = _psgen("verify", "ok.ps1", "bad.ps1", "--ca", "t.pem", cwd=tmp_path)
    assert r.returncode == 1
    assert "ok.ps1: OK" in r.stdout and "bad.ps1: FAILED (file digest)" in r.stdout
    assert "changed after signing" in r.stdout
    r = _psgen("sign", "ok.ps1", "bad.ps1", "-o", "x.ps1", "--cert", "t.pfx", cwd=tmp_path,
               env=env)
    assert r.returncode == 2 and "exactly one FILE" in r.stderr


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_damaged_der_never_crashes_verify(P, kind):
    """Flip sampled bytes all over the DER: verify reports, it never raises."""
    signed = S.sign_bytes(sample_script("ascii"), P.signer(kind))
    der = der_of(signed)
    rng = random.Random(kind)
    outcomes = set()
    for pos in rng.sample(range(len(der)), 150):
        damaged = bytearray(der)
        damaged[pos] ^= rng.randrange(1, 256)
        result = S.verify_bytes(replace_der(signed, bytes(damaged)), trusted=[P.root])
        assert [c.name for c in result.checks] == list(S.CHECKS)
        outcomes.add(tuple(result.failures))
    assert len(outcomes) > 3          # many different, named reasons
