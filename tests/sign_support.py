"""Test support for psgen.sign: a throwaway PKI, sample scripts, osslsigncode, a loopback TSA.

Keys are made once per test session (``functools.cache``) and shared by the test modules.
Nothing here touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from psgen import sign as S

NOW = dt.datetime.now(dt.timezone.utc)
OSSLSIGNCODE = shutil.which("osslsigncode")


# ---------------------------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------------------------

def make_cert(cn: str, key, issuer: tuple | None = None, *, ca: bool = False,
              eku: tuple | None = (ExtendedKeyUsageOID.CODE_SIGNING,), critical_eku=False,
              not_before: dt.datetime | None = None, days: float = 30,
              digital_signature: bool = True) -> x509.Certificate:
    """A certificate for ``key``; ``issuer`` is (cert, key), or None for self-signed."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = (name, key) if issuer is None else (issuer[0].subject, issuer[1])
    nb = not_before or (NOW - dt.timedelta(hours=1))
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(nb + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=digital_signature,
                                      content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False,
                                      key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                                      decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False))
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=critical_eku)
    return b.sign(issuer_key, hashes.SHA256())


def ec_key(curve=ec.SECP256R1):
    return ec.generate_private_key(curve())


@cache
def rsa_key(bits: int = 2048, n: int = 0):
    """RSA keys are slow to make: one per (bits, n) per session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key, password: bytes | None = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


@dataclass
class Pki:
    root: x509.Certificate
    root_key: object
    inter: x509.Certificate
    inter_key: object
    other_root: x509.Certificate          # an unrelated CA: "the wrong CA"
    rsa_leaf: x509.Certificate            # RSA 2048, issued by inter
    rsa_key: object
    ec_leaf: x509.Certificate             # P-256, issued by inter
    ec_key: object
    self_rsa: S.Signer                    # self-signed (psgen cert new) RSA 2048
    self_p256: S.Signer
    self_p384: S.Signer
    tsa_root: x509.Certificate
    tsa_cert: x509.Certificate
    tsa_key: object

    def signer(self, kind: str) -> S.Signer:
        return {"rsa": S.Signer(self.rsa_key, self.rsa_leaf, [self.inter, self.root]),
                "ecdsa": S.Signer(self.ec_key, self.ec_leaf, [self.inter, self.root]),
                "self-rsa": self.self_rsa, "self-p256": self.self_p256,
                "self-p384": self.self_p384}[kind]

    def ca_for(self, kind: str) -> x509.Certificate:
        return self.root if kind in ("rsa", "ecdsa") else self.signer(kind).certificate


@cache
def pki() -> Pki:
    root_key, inter_key, other_key = ec_key(ec.SECP384R1), ec_key(), ec_key()
    root = make_cert("psgen test root CA", root_key, ca=True, eku=None, days=3650)
    inter = make_cert("psgen test code signing CA", inter_key, (root, root_key), ca=True,
                      eku=None, days=1800)
    other_root = make_cert("some other root CA", other_key, ca=True, eku=None, days=3650)
    rk = rsa_key(2048, 0)
    rsa_leaf = make_cert("psgen test signer RSA", rk, (inter, inter_key))
    ek = ec_key()
    ec_leaf = make_cert("psgen test signer ECDSA", ek, (inter, inter_key))
    self_rsa = S.Signer(*_self_signed_with(rsa_key(2048, 1)))
    self_p256 = S.Signer(*S.new_self_signed("psgen self-signed P-256", key_type="p256"))
    self_p384 = S.Signer(*S.new_self_signed("psgen self-signed P-384", key_type="p384"))
    tsa_root_key, tsa_key = ec_key(), ec_key()
    tsa_root = make_cert("psgen test TSA root", tsa_root_key, ca=True, eku=None, days=3650)
    tsa_cert = make_cert("psgen test TSA", tsa_key, (tsa_root, tsa_root_key),
                         eku=(ExtendedKeyUsageOID.TIME_STAMPING,), critical_eku=True,
                         days=3000)
    return Pki(root, root_key, inter, inter_key, other_root, rsa_leaf, rk, ec_leaf, ek,
               self_rsa, self_p256, self_p384, tsa_root, tsa_cert, tsa_key)


def _self_signed_with(key) -> tuple:
    """Like S.new_self_signed (same extensions) but with a cached RSA key."""
    cert = make_cert("psgen self-signed RSA", key, days=365)
    return key, cert


# ---------------------------------------------------------------------------------------------
# Scripts
# ---------------------------------------------------------------------------------------------

ENCODINGS = ("ascii", "utf8-bom", "utf16le")


def script_text(lines: int = 12, *, non_ascii: bool = False) -> str:
    body = [f'Write-Output "line {i}: ok"' for i in range(lines)]
    if non_ascii:
        body.insert(1, 'Write-Output "caf\u00e9 \u2713 \U0001F600"')
    return "\r\n".join(body)


def encode_script(text: str, encoding: str, *, trailing_newline: bool = True) -> bytes:
    if trailing_newline:
        text += "\r\n"
    if encoding == "ascii":
        return text.encode("ascii")
    if encoding == "utf8-bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if encoding == "utf16le":
        return b"\xff\xfe" + text.encode("utf-16-le")
    raise ValueError(encoding)


def sample_script(encoding: str, trailing_newline: bool = True, lines: int = 12) -> bytes:
    return encode_script(script_text(lines, non_ascii=encoding != "ascii"), encoding,
                         trailing_newline=trailing_newline)


def body_of(signed: bytes) -> bytes:
    layout = S._find_block(signed)
    assert layout.block_at is not None
    return layout.body


def der_of(signed: bytes) -> bytes:
    import base64
    layout = S._find_block(signed)
    return base64.b64decode(S._block_base64(signed, layout))


def replace_der(signed: bytes, der: bytes) -> bytes:
    layout = S._find_block(signed)
    return layout.body + S._format_block(der, layout.encoding)


# ---------------------------------------------------------------------------------------------
# osslsigncode
# ---------------------------------------------------------------------------------------------

@dataclass
class OsslResult:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return (self.returncode == 0 and "Signature verification: ok" in self.output
                and "Succeeded" in self.output)

    def digest(self, which: str) -> str:
        m = re.search(rf"{which} message digest\s*:\s*([0-9A-F]+)", self.output)
        assert m, f"no {which} message digest in osslsigncode output:\n{self.output}"
        return m.group(1)


def osslsigncode(*args: str | Path, env: dict | None = None) -> OsslResult:
    if OSSLSIGNCODE is None:
        pytest.fail("osslsigncode is not installed: run `make sysdeps` (scripts/install-sysdeps)")
    proc = subprocess.run([OSSLSIGNCODE, *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=env)
    return OsslResult(proc.returncode, proc.stdout + proc.stderr)


# ---------------------------------------------------------------------------------------------
# A loopback RFC 3161 timestamp authority
# ---------------------------------------------------------------------------------------------

class LoopbackTSA:
    """RFC 3161 over HTTP on 127.0.0.1, signing with the test TSA certificate.

    ``mode`` selects misbehaviour: "ok", "reject", "wrong-imprint", "wrong-nonce", "garbage",
    "http500".
    """

    def __init__(self, cert: x509.Certificate, key, *, include_certs: bool = True) -> None:
        self.cert, self.key = cert, key
        self.asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
        self.mode = "ok"
        self.requests = 0
        self.serial = 1000
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                tsa.requests += 1
                if tsa.mode == "http500":
                    self.send_error(500, "TSA on fire")
                    return
                reply = b"this is not DER" if tsa.mode == "garbage" else tsa.respond(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def respond(self, request_der: bytes) -> bytes:
        req = tsp.TimeStampReq.load(request_der)
        if self.mode == "reject":
            return S.TimeStampResp({"status": {
                "status": "rejection", "status_string": ["policy says no"],
                "fail_info": {"bad_request"}}}).dump()
        imprint = req["message_imprint"]
        if self.mode == "wrong-imprint":
            imprint = tsp.MessageImprint({
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(b"something else").digest()})
        nonce = req["nonce"].native
        if self.mode == "wrong-nonce":
            nonce = (nonce or 0) + 1
        self.serial += 1
        tst = tsp.TSTInfo({
            "version": "v1", "policy": "1.3.6.1.4.1.99999.1",
            "message_imprint": imprint, "serial_number": self.serial,
            "gen_time": dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
            "accuracy": {"seconds": 1}, "nonce": nonce,
        })
        return tsp.TimeStampResp({"status": {"status": "granted"},
                                  "time_stamp_token": self.token(tst, req["cert_req"].native)
                                  }).dump()

    def token(self, tst: tsp.TSTInfo, include_cert: bool = True) -> cms.ContentInfo:
        tst_der = tst.dump()
        cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        attrs = [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "message_digest",
                              "values": [hashlib.sha256(tst_der).digest()]}),
            cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{
                "certs": [{"cert_hash": hashlib.sha256(cert_der).digest()}]}]}),
        ]
        attrs.sort(key=lambda a: a.dump())
        signed_attrs = cms.CMSAttributes(attrs)
        signature = self.key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        sd = cms.SignedData({
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info",
                                   "content": core.ParsableOctetString(tst_der)},
            "signer_infos": [{
                "version": "v1",
                "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
                    "issuer": self.asn1_cert.issuer,
                    "serial_number": self.asn1_cert.serial_number}}),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                "signature": signature,
            }],
        })
        if include_cert:
            sd["certificates"] = [self.asn1_cert]
        return cms.ContentInfo({"content_type": "signed_data", "content": sd})
