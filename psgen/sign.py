"""Authenticode signatures for PowerShell scripts, in pure Python (cryptography + asn1crypto).

What a signed script looks like (cross-checked with osslsigncode's script.c and relic's
powershell.go; the tests run osslsigncode both ways):

* The signature is a block appended to the text: CRLF, ``# SIG # Begin signature block`` CRLF,
  lines of ``# `` plus at most 64 base64 characters, ``# SIG # End signature block`` CRLF, written
  in the file's own encoding (UTF-16LE when the file starts with FF FE, otherwise UTF-8/ASCII).
* The base64 is a DER PKCS#7 SignedData (version 1) whose content is an SpcIndirectDataContent:
  SpcSipInfo with the PowerShell SIP GUID, and a DigestInfo with the *file digest*.
* The file digest is H(UTF-16LE(text before the block)); a UTF-8 BOM is part of the text (U+FEFF)
  and a UTF-16LE file is hashed raw, BOM included. Nothing is normalised.
* The block is found at the first line that is exactly the begin marker (as the independent
  implementations do); it must run to the end of the file.

Signing choices (justified):

* No ``signingTime`` attribute by default. Windows never uses it for trust (it is the signer's own
  claim; only an RFC 3161 timestamp counts), signtool does not add it, and without it a
  signature is a pure function of (script, key, certificates): RSA PKCS#1 v1.5 is deterministic
  and ECDSA uses RFC 6979 deterministic nonces where the installed cryptography supports them.
  So re-signing an unchanged psgen build gives the same bytes, like the rest of psgen's output.
* Signed attributes are those signtool writes: contentType, messageDigest, SpcStatementType
  (individual code signing) and an empty SpcSpOpusInfo.
* The chain is included: the signer, then its issuers found among the certificates supplied
  (PFX extras, PEM bundle, ``chain=``), up to but not including a self-signed root.

Public API (what ``psgen build --sign`` calls)::

    signer = load_signer(cert_path, key_path=None, password=password_source("PSGEN_CERT_PASSWORD"))
    signed: bytes = sign_bytes(script_bytes, signer, digest="sha256", timestamp_url=None)
    sign_file(path, signer, output=None, ...)            # in place unless output is given
    result = verify_bytes(data, trusted=load_certificates([ca])) / verify_file(path, ...)
    key, cert = new_self_signed("CN text", key_type="rsa2048", days=365)

Every user mistake (bad password, expired certificate, missing EKU, LF line endings, ...) is a
:class:`psgen.errors.UserError`. A signature that does not verify is *not* an error: it is a
:class:`Verification` whose checks say, in words, what failed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import getpass
import hashlib
import os
import re
import secrets
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import UserError

__all__ = [
    "Check", "Signer", "Verification", "DIGESTS", "KEY_TYPES", "PASSWORD_ENV",
    "check_file", "check_signable", "file_digest", "load_certificates", "load_signer",
    "new_self_signed", "password_source", "sign_bytes", "sign_file", "thumbprint",
    "verify_bytes", "verify_file", "write_certificate_files",
]

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

PS_SIP_GUID = bytes.fromhex("1FCC3B60594B084EB724D2C6297EF351")
PS_SIP_GUID_TEXT = "{603BCC1F-4B59-4E08-B724-D2C6297EF351}"
OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_SIPINFO = "1.3.6.1.4.1.311.2.1.30"
OID_SPC_STATEMENT_TYPE = "1.3.6.1.4.1.311.2.1.11"
OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE = "1.3.6.1.4.1.311.2.1.21"
OID_SPC_SP_OPUS_INFO = "1.3.6.1.4.1.311.2.1.12"
OID_RFC3161_COUNTERSIGN = "1.3.6.1.4.1.311.3.3.1"
OID_NESTED_SIGNATURE = "1.3.6.1.4.1.311.2.4.1"
OID_PKCS9_COUNTERSIGNATURE = "1.2.840.113549.1.9.6"
OID_ANY_EKU = "2.5.29.37.0"

HEADER = "# SIG # Begin signature block"
FOOTER = "# SIG # End signature block"
LINE_CHARS = 64

#: Digests psgen signs with (verification also accepts sha1 signatures made by other tools).
DIGESTS = ("sha256", "sha384", "sha512")
_VERIFY_DIGESTS = ("sha1",) + DIGESTS
_CRYPTO_HASH = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
                "sha512": hashes.SHA512}
#: Key types ``new_self_signed`` and ``psgen cert new`` can make.
KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "p256", "p384")
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}
#: Environment variable the CLI reads PFX / private-key passwords from (never from argv).
PASSWORD_ENV = "PSGEN_CERT_PASSWORD"

TIMESTAMP_TIMEOUT = 30.0

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]
Password = Union[bytes, str, Callable[[str], Union[bytes, str]], None]


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _fmt_time(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


# --------------------------------------------------------------------------------------------
# ASN.1 structures Microsoft added (not in asn1crypto)
# --------------------------------------------------------------------------------------------

class SpcSipInfo(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("uuid", core.OctetString),
        ("reserved1", core.Integer),
        ("reserved2", core.Integer),
        ("reserved3", core.Integer),
        ("reserved4", core.Integer),
        ("reserved5", core.Integer),
    ]


class SpcAttributeTypeAndOptionalValue(core.Sequence):
    _fields = [
        ("type", core.ObjectIdentifier),
        ("value", core.Any, {"optional": True}),
    ]


class DigestInfo(core.Sequence):
    _fields = [
        ("digest_algorithm", algos.DigestAlgorithm),
        ("digest", core.OctetString),
    ]


class SpcIndirectDataContent(core.Sequence):
    _fields = [
        ("data", SpcAttributeTypeAndOptionalValue),
        ("message_digest", DigestInfo),
    ]


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp; asn1crypto's marks the token required, but a refusal has none."""
    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _der_header(tag: int, length: int) -> bytes:
    if length < 0x80:
        return bytes((tag, length))
    n = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | n)) + length.to_bytes(n, "big")


def _der_contents(der: bytes) -> bytes:
    """The content octets of one DER value with a one-byte tag."""
    n = der[1]
    if n < 0x80:
        return der[2:2 + n]
    k = n & 0x7F
    length = int.from_bytes(der[2:2 + k], "big")
    return der[2 + k:2 + k + length]


def _digest_algorithm(name: str) -> algos.DigestAlgorithm:
    # Windows and osslsigncode write explicit NULL parameters.
    return algos.DigestAlgorithm({"algorithm": name, "parameters": core.Null()})


# --------------------------------------------------------------------------------------------
# The script text: encoding, where the block is, what is hashed
# --------------------------------------------------------------------------------------------

def _encoding(data: bytes) -> str:
    return "utf-16-le" if data[:2] == b"\xff\xfe" else "utf-8"


@dataclass(frozen=True)
class _Layout:
    encoding: str
    body: bytes                 # bytes before the block: what the file digest covers
    block_at: int | None        # offset of the CRLF that precedes the begin marker
    header_line: int | None     # 1-based line of the begin marker


class _BlockError(Exception):
    pass


def _find_block(data: bytes) -> _Layout:
    enc = _encoding(data)
    unit = 2 if enc == "utf-16-le" else 1
    marker = ("\r\n" + HEADER + "\r\n").encode(enc)
    i = data.find(marker)
    while i != -1 and i % unit:
        i = data.find(marker, i + 1)
    if i == -1:
        return _Layout(enc, data, None, None)
    body = data[:i]
    newline = "\n".encode(enc)
    line = body.count(newline) + 2 if unit == 1 else _count_utf16(body, "\n") + 2
    return _Layout(enc, body, i, line)


def _count_utf16(data: bytes, ch: str) -> int:
    code = ch.encode("utf-16-le")
    return sum(1 for k in range(0, len(data) - 1, 2) if data[k:k + 2] == code)


def _block_base64(data: bytes, layout: _Layout) -> str:
    """The base64 text of the block, or _BlockError saying in words what is wrong."""
    assert layout.block_at is not None and layout.header_line is not None
    raw = data[layout.block_at:]
    try:
        text = raw.decode(layout.encoding)
    except UnicodeDecodeError as exc:
        raise _BlockError(f"the signature block is not valid {layout.encoding.upper()} "
                          f"(byte {layout.block_at + exc.start} of the file)") from None
    lines = text.split("\r\n")
    # lines[0] == "" (the CRLF before the marker), lines[1] == HEADER
    chunks: list[str] = []
    for k, line in enumerate(lines[2:], start=2):
        lineno = layout.header_line + k - 1
        if line == FOOTER:
            rest = lines[k + 1:]
            if rest not in ([], [""]):
                raise _BlockError(f"text follows the end of the signature block (line "
                                  f"{lineno + 1}); it would not be covered by the signature")
            break
        if line == "" and k == len(lines) - 1:
            continue                       # the file's final CRLF; the footer never came
        if not line.startswith("# "):
            what = "a line ending that is not CRLF" if ("\n" in line or "\r" in line) \
                else f"{line[:40]!r}"
            raise _BlockError(f"line {lineno} of the signature block is not a '# ' base64 "
                              f"line ({what})")
        chunks.append(line[2:])
    else:
        raise _BlockError(f"the signature block that starts at line {layout.header_line} has "
                          f"no '{FOOTER}' line")
    if not chunks:
        raise _BlockError("the signature block is empty")
    return "".join(chunks)


def _hashed_text(layout: _Layout) -> bytes:
    """The bytes the file digest covers: UTF-16LE of the text before the block."""
    if layout.encoding == "utf-16-le":
        return layout.body
    return layout.body.decode("utf-8").encode("utf-16-le")


def file_digest(data: bytes, digest: str = "sha256") -> bytes:
    """Authenticode file digest of a script (signed or not): H(UTF-16LE(text before the block)).

    Raises ``ValueError`` if a UTF-8 script is not valid UTF-8 (it has no well-defined digest).
    """
    return hashlib.new(digest, _hashed_text(_find_block(data))).digest()


def _first_non_ascii(text: str) -> tuple[int, int, str]:
    for lineno, line in enumerate(text.split("\n"), start=1):
        for col, ch in enumerate(line, start=1):
            if ord(ch) > 0x7F:
                return lineno, col, ch
    raise AssertionError("no non-ASCII character")


_BAD_LINE_END = re.compile(r"\r(?!\n)|(?<!\r)\n")


def check_signable(data: bytes, name: str | None = None) -> _Layout:
    """Refuse, as a UserError, a script Windows would not accept a signature on.

    Returns the layout (encoding, text to hash, existing block) for the signer.
    """
    if not data:
        raise UserError.single("the script is empty; there is nothing to sign", file=name,
                               hint="sign the script psgen built, not an empty file")
    if data[:2] == b"\xfe\xff":
        raise UserError.single(
            "the script is UTF-16 big-endian; PowerShell's Authenticode format is defined for "
            "UTF-8 and UTF-16LE files only", file=name,
            hint="save it as UTF-16LE or UTF-8 with BOM (psgen's own output is ASCII)")
    layout = _find_block(data)
    if layout.block_at is not None:
        try:
            _block_base64(data, layout)
        except _BlockError as exc:
            raise UserError.single(
                f"the script has a '{HEADER}' line ({exc}); psgen will not guess where the "
                f"script ends", file=name, line=layout.header_line,
                hint="remove the damaged block (everything from that line to the end of the "
                     "file) and sign again") from None
    body = layout.body
    if layout.encoding == "utf-16-le":
        if len(body) % 2:
            raise UserError.single("the script starts with a UTF-16LE byte-order mark but has "
                                   "an odd number of bytes", file=name,
                                   hint="the file is truncated or not really UTF-16LE")
        try:
            text = body.decode("utf-16-le")
        except UnicodeDecodeError as exc:
            raise UserError.single(
                f"the script is not valid UTF-16LE (byte {exc.start})", file=name,
                hint="re-save it as UTF-16LE or UTF-8 with BOM") from None
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = body[:exc.start].count(b"\n") + 1
            raise UserError.single(
                f"the script is not valid UTF-8 (byte 0x{body[exc.start]:02X} at offset "
                f"{exc.start}); Windows PowerShell 5.1 would read it in the ANSI code page and "
                f"hash different text than was signed", file=name, line=line,
                hint="save it as UTF-8 with BOM (or UTF-16LE), or make it ASCII; psgen's own "
                     "output is ASCII and builds non-ASCII text with [char]0xNNNN") from None
        if not text.startswith("\ufeff") and not text.isascii():
            lineno, col, ch = _first_non_ascii(text)
            raise UserError.single(
                f"the script is UTF-8 without a byte-order mark and contains non-ASCII text "
                f"({ch!r}, U+{ord(ch):04X}); Windows PowerShell 5.1 reads BOM-less files in the "
                f"ANSI code page, hashes different text and reports HashMismatch "
                f"(PowerShell#3466)", file=name, line=lineno, column=col,
                hint="save it as UTF-8 with BOM or UTF-16LE, or keep it ASCII: psgen's own "
                     "output is ASCII and builds non-ASCII strings with [char]0xNNNN")
    crlf = text.count("\r\n")           # fast path: every CR and LF is part of a CRLF
    bad = None if text.count("\n") == crlf == text.count("\r") else \
        _BAD_LINE_END.search(text)
    if bad:
        k, ch = bad.start(), bad.group()
        lineno = text.count("\n", 0, k) + 1
        kind = "LF" if ch == "\n" else "bare CR"
        raise UserError.single(
            f"the script has {kind} line endings (first at line {lineno}); Authenticode hashes "
            f"the exact text and Windows has been reported to reject signatures on scripts "
            f"that are not CRLF (PowerShell#3361, #25246)", file=name, line=lineno,
            hint="convert it to CRLF (e.g. unix2dos) and mark '*.ps1 -text' in "
                 ".gitattributes so Git keeps the bytes; psgen build always writes ASCII "
                 "with CRLF line endings")
    return layout


def check_file(path: Path | str) -> None:
    """:func:`check_signable` for a file (unreadable files are UserErrors too)."""
    check_signable(_read(path, "script"), str(path))


def _format_block(der: bytes, encoding: str) -> bytes:
    b64 = base64.b64encode(der).decode("ascii")
    lines = ["", HEADER]
    lines += ["# " + b64[i:i + LINE_CHARS] for i in range(0, len(b64), LINE_CHARS)]
    lines += [FOOTER, ""]
    return "\r\n".join(lines).encode(encoding)


# --------------------------------------------------------------------------------------------
# Loading keys and certificates
# --------------------------------------------------------------------------------------------

def password_source(env_var: str = PASSWORD_ENV, *, interactive: bool | None = None,
                    new: bool = False) -> Callable[[str], bytes]:
    """A password callback for :func:`load_signer`: the environment variable, else a prompt.

    Passwords never come from argv. The prompt (``getpass``) is used only when stdin is a
    terminal (or ``interactive=True``); otherwise a UserError says which variable to set.
    ``new=True`` is for a file about to be written (``psgen cert new --pfx``): the prompt asks
    twice.
    """
    def get(what: str) -> bytes:
        value = os.environ.get(env_var)
        if value is not None:
            return value.encode("utf-8")
        tty = sys.stdin.isatty() if interactive is None else interactive
        if tty and not new:
            return getpass.getpass(f"Password for {what}: ").encode("utf-8")
        if tty:
            first = getpass.getpass(f"New password for {what}: ")
            if first != getpass.getpass(f"Repeat the password for {what}: "):
                raise UserError.single("the two passwords differ", file=what)
            return first.encode("utf-8")
        situation = "the new file needs a password" if new else "this file is password-protected"
        raise UserError.single(
            f"{situation} and ${env_var} is not set", file=what,
            hint=f"set the environment variable {env_var} (passwords are never taken from the "
                 f"command line), or run in a terminal to be prompted")
    return get


def _read(path: Path | str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError.single(f"{what} not found", file=str(path)) from None
    except IsADirectoryError:
        raise UserError.single(f"{what} is a directory, not a file", file=str(path)) from None
    except OSError as exc:
        raise UserError.single(f"cannot read {what}: {exc.strerror}", file=str(path)) from None


def _parse_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    if b"-----BEGIN" in data:
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError:
            if b"CERTIFICATE-----" in data:
                raise UserError.single("the PEM certificate in this file is damaged",
                                       file=source) from None
            return []
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return []


def load_certificates(paths: Iterable[Path | str]) -> list[x509.Certificate]:
    """Certificates from PEM (one or many) or DER files, e.g. the trusted CAs for ``verify``."""
    out: list[x509.Certificate] = []
    for path in paths:
        certs = _parse_certificates(_read(path, "certificate file"), str(path))
        if not certs:
            raise UserError.single("no certificate in this file (expected PEM or DER)",
                                   file=str(path),
                                   hint="pass the CA certificate, e.g. the .pem or .cer from "
                                        "'psgen cert new'")
        out.extend(certs)
    return out


def _password_bytes(password: Password, what: str) -> bytes | None:
    if callable(password):
        password = password(what)
    if isinstance(password, str):
        password = password.encode("utf-8")
    return password


def _load_private_key(data: bytes, source: str, password: Password) -> PrivateKey:
    loaders = ((serialization.load_pem_private_key,) if b"-----BEGIN" in data
               else (serialization.load_der_private_key,))
    load = loaders[0]
    try:
        key = load(data, None)
    except TypeError:           # encrypted, needs a password
        pw = _password_bytes(password, source)
        if pw is None:
            raise UserError.single("the private key is encrypted and no password was given",
                                   file=source, hint=f"set ${PASSWORD_ENV}") from None
        try:
            key = load(data, pw)
        except (ValueError, TypeError):
            raise UserError.single("wrong password for the private key", file=source,
                                   hint=f"check ${PASSWORD_ENV} (or the password you typed)"
                                   ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise UserError.single("no private key could be read from this file (expected a PEM "
                               "or DER private key)", file=source) from None
    return key  # type: ignore[return-value]


def load_signer(cert: Path | str, key: Path | str | None = None, *, password: Password = None,
                chain: Sequence[Path | str] = ()) -> "Signer":
    """Load a code-signing certificate and its private key.

    ``cert`` is a PFX/PKCS#12 file (key, certificate and chain inside), or a PEM/DER certificate
    (a PEM may carry the chain after the leaf, and the private key too). ``key`` is the private
    key file when it is not in ``cert``. ``password`` is bytes/str, or a callable asked only when
    a password is actually needed (see :func:`password_source`). ``chain`` adds intermediate
    certificates to include in signatures.
    """
    source = str(cert)
    data = _read(cert, "certificate file")
    extra: list[x509.Certificate] = load_certificates(chain) if chain else []
    private_key: PrivateKey | None = None
    if b"-----BEGIN" not in data and key is None:
        certs = _parse_certificates(data, source)
        if not certs:  # not DER: try PKCS#12
            private_key, certs = _load_pfx(data, source, password)
    else:
        certs = _parse_certificates(data, source)
        if key is None and b"PRIVATE KEY-----" in data:
            private_key = _load_private_key(data, source, password)
    if key is not None:
        private_key = _load_private_key(_read(key, "private key file"), str(key), password)
    if not certs:
        raise UserError.single("no certificate in this file (expected a PFX/PKCS#12 file, or a "
                               "PEM or DER certificate)", file=source)
    if private_key is None:
        raise UserError.single("no private key: this file holds only a certificate",
                               file=source, hint="pass the key with --key KEY.pem, or use a PFX")
    pub = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf = next((c for c in certs if c.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == pub), None)
    if leaf is None:
        raise UserError.single("the private key does not belong to the certificate"
                               + (f" {_subject(certs[0])!r}" if len(certs) == 1 else
                                  " (nor to any certificate in the file)"),
                               file=source, hint="pass the key that was issued with this "
                                                 "certificate")
    others = [c for c in certs if c is not leaf] + extra
    return Signer(private_key, leaf, others, source=source)


def _load_pfx(data: bytes, source: str, password: Password
              ) -> tuple[PrivateKey | None, list[x509.Certificate]]:
    def attempt(pw: bytes | None):
        try:
            return pkcs12.load_key_and_certificates(data, pw)
        except ValueError:
            return None
    loaded = attempt(None) or attempt(b"")
    if loaded is None:
        # Either encrypted, or not a PKCS#12 file at all; a password tells the two apart only
        # when it is right, so say both.
        if not _looks_like_pkcs12(data):
            raise UserError.single("not a certificate file psgen can read (expected a PFX/"
                                   "PKCS#12 file, or a PEM or DER certificate)", file=source)
        pw = _password_bytes(password, source)
        if pw is None:
            raise UserError.single("the PFX file is password-protected and no password was "
                                   "given", file=source, hint=f"set ${PASSWORD_ENV}")
        loaded = attempt(pw)
        if loaded is None:
            raise UserError.single("wrong password for the PFX file (or the file is damaged)",
                                   file=source, hint=f"check ${PASSWORD_ENV} (or the password "
                                                     f"you typed)")
    key, cert, additional = loaded
    certs = ([cert] if cert is not None else []) + list(additional)
    if key is not None and not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise UserError.single(f"the PFX key is {type(key).__name__}; Authenticode signing "
                               f"here supports RSA and ECDSA (P-256, P-384)", file=source)
    return key, certs  # type: ignore[return-value]


def _looks_like_pkcs12(data: bytes) -> bool:
    # PFX = SEQUENCE { INTEGER 3, ContentInfo ... }
    try:
        seq = core.Sequence.load(data)
        return seq[0].native == 3
    except Exception:  # noqa: BLE001 - any parse failure means "no"
        return False


# --------------------------------------------------------------------------------------------
# The signer
# --------------------------------------------------------------------------------------------

def _eku(cert: x509.Certificate) -> list[str] | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    return [oid.dotted_string for oid in ext.value]


def _key_usage_allows_signing(cert: x509.Certificate) -> bool:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ku.digital_signature


def _key_description(key) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA {key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"ECDSA {_CURVES.get(key.curve.name, key.curve.name)}"
    return type(key).__name__


class Signer:
    """A private key, its code-signing certificate and the chain to include in signatures.

    Construction checks what does not change with time (key matches certificate, supported key,
    code-signing EKU); :meth:`check_validity` (called by every sign) checks the dates.
    """

    def __init__(self, key: PrivateKey, certificate: x509.Certificate,
                 chain: Sequence[x509.Certificate] = (), *, source: str | None = None) -> None:
        self.key = key
        self.certificate = certificate
        self.source = source
        where = source
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 2048:
                raise UserError.single(f"the RSA key has {key.key_size} bits; code signing needs "
                                       f"2048 or more", file=where)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name not in _CURVES:
                raise UserError.single(f"the ECDSA key is on curve {key.curve.name}; "
                                       f"Authenticode here supports P-256 and P-384", file=where)
        else:
            raise UserError.single(f"the key is {type(key).__name__}; Authenticode signing "
                                   f"supports RSA and ECDSA (P-256, P-384)", file=where)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, spki) != \
                certificate.public_key().public_bytes(serialization.Encoding.DER, spki):
            raise UserError.single(f"the private key does not belong to the certificate "
                                   f"{_subject(certificate)!r}", file=where)
        eku = _eku(certificate)
        if eku is None or ExtendedKeyUsageOID.CODE_SIGNING.dotted_string not in eku:
            have = "has no Extended Key Usage extension" if eku is None else \
                "has Extended Key Usage " + ", ".join(_eku_name(o) for o in eku)
            raise UserError.single(
                f"the certificate {_subject(certificate)!r} is not a code-signing certificate: "
                f"it {have}, and Windows requires Code Signing (1.3.6.1.5.5.7.3.3)", file=where,
                hint="use a code-signing certificate, or make a throwaway one with "
                     "'psgen cert new'")
        if not _key_usage_allows_signing(certificate):
            raise UserError.single(f"the certificate {_subject(certificate)!r} has a Key Usage "
                                   f"without digitalSignature; it cannot sign code", file=where)
        self.chain = _issuer_chain(certificate, chain)
        self.check_validity()
        # Cached ASN.1 forms (signing is hot in `psgen build --sign` over a catalog).
        # DER, not shared asn1crypto objects: asn1crypto values are mutable and get re-parented
        # when put into a structure, so each signature loads fresh (lazy, cheap) copies.
        self._cert_ders = [c.public_bytes(serialization.Encoding.DER)
                           for c in [certificate, *self.chain]]

    @property
    def subject(self) -> str:
        return _subject(self.certificate)

    def check_validity(self, now: _dt.datetime | None = None) -> None:
        now = now or _utcnow()
        cert = self.certificate
        if now > cert.not_valid_after_utc:
            raise UserError.single(
                f"the signing certificate {self.subject!r} expired on "
                f"{_fmt_time(cert.not_valid_after_utc)}; Windows does not trust new signatures "
                f"made with an expired certificate", file=self.source,
                hint="renew the certificate (for tests: 'psgen cert new' makes a fresh one)")
        if now < cert.not_valid_before_utc:
            raise UserError.single(
                f"the signing certificate {self.subject!r} is not valid until "
                f"{_fmt_time(cert.not_valid_before_utc)}", file=self.source,
                hint="check this machine's clock, or wait until the certificate is valid")

    def __repr__(self) -> str:
        return f"Signer({self.subject!r}, {_key_description(self.key)}, chain={len(self.chain)})"


def _eku_name(oid: str) -> str:
    names = {ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "Server Authentication",
             ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "Client Authentication",
             ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "Code Signing",
             ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "Email Protection",
             ExtendedKeyUsageOID.TIME_STAMPING.dotted_string: "Time Stamping",
             OID_ANY_EKU: "Any Purpose"}
    return names.get(oid, oid)


def _issuer_chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate]
                  ) -> list[x509.Certificate]:
    """Issuers of ``leaf`` found in ``pool``, nearest first, stopping before a self-signed root."""
    out: list[x509.Certificate] = []
    cur = leaf
    seen = {leaf.fingerprint(hashes.SHA256())}
    while cur.issuer != cur.subject and len(out) < 10:
        nxt = None
        for cand in pool:
            if cand.fingerprint(hashes.SHA256()) in seen or cand.subject != cur.issuer:
                continue
            try:
                cur.verify_directly_issued_by(cand)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            nxt = cand
            break
        if nxt is None or nxt.issuer == nxt.subject:
            break
        out.append(nxt)
        seen.add(nxt.fingerprint(hashes.SHA256()))
        cur = nxt
    return out


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------

# The signature is built as DER directly: its shape is fixed, and asn1crypto's object model
# costs more than the RSA/ECDSA signature itself. asn1crypto parses it back in the tests (and
# in verify), and osslsigncode verifies it; the constants below are encoded by asn1crypto.

def _tlv(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return _der_header(tag, len(body)) + body


def _der_int(n: int) -> bytes:
    return _tlv(0x02, n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True))


def _oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


_OID_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_OID_CONTENT_TYPE = _oid("1.2.840.113549.1.9.3")
_OID_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
_OID_SIGNING_TIME = _oid("1.2.840.113549.1.9.5")
_OID_SPC_INDIRECT_DATA = _oid(OID_SPC_INDIRECT_DATA)
_ALGORITHM_ID = {name: _digest_algorithm(name).dump() for name in DIGESTS}
_RSA_ENCRYPTION = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15",
                                               "parameters": core.Null()}).dump()
_ECDSA_WITH = {name: algos.SignedDigestAlgorithm({"algorithm": f"{name}_ecdsa"}).dump()
               for name in DIGESTS}
# contentType = SpcIndirectDataContent; SpcStatementType = individual code signing;
# SpcSpOpusInfo = {} (no program name, no URL: signtool without /d and /du).
_ATTR_CONTENT_TYPE = _tlv(0x30, _OID_CONTENT_TYPE, _tlv(0x31, _OID_SPC_INDIRECT_DATA))
_ATTR_STATEMENT_TYPE = _tlv(0x30, _oid(OID_SPC_STATEMENT_TYPE),
                            _tlv(0x31, _tlv(0x30, _oid(OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE))))
_ATTR_OPUS_INFO = _tlv(0x30, _oid(OID_SPC_SP_OPUS_INFO), _tlv(0x31, _tlv(0x30)))


def _sip_info(guid: bytes) -> bytes:
    """SpcAttributeTypeAndOptionalValue { SpcSipInfo OID, {65536, GUID, 0, 0, 0, 0, 0} }."""
    return _tlv(0x30, _oid(OID_SPC_SIPINFO),
                _tlv(0x30, _der_int(65536), _tlv(0x04, guid), *[_der_int(0)] * 5))


_PS_SIP_INFO = _sip_info(PS_SIP_GUID)


def _indirect_data(digest_name: str, digest: bytes, guid: bytes = PS_SIP_GUID) -> bytes:
    """SpcIndirectDataContent DER: the SIP info and the file digest."""
    sip = _PS_SIP_INFO if guid == PS_SIP_GUID else _sip_info(guid)
    return _tlv(0x30, sip, _tlv(0x30, _ALGORITHM_ID[digest_name], _tlv(0x04, digest)))


def _raw_sign(key: PrivateKey, data: bytes, digest_name: str) -> bytes:
    algorithm = _CRYPTO_HASH[digest_name]()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    try:
        return key.sign(data, ec.ECDSA(algorithm, deterministic_signing=True))
    except (TypeError, UnsupportedAlgorithm):  # cryptography < 44 or OpenSSL < 3.2
        return key.sign(data, ec.ECDSA(algorithm))


def _signing_time(t: _dt.datetime) -> bytes:
    t = t.astimezone(_dt.timezone.utc).replace(microsecond=0)
    value = core.UTCTime(t) if 1950 <= t.year < 2050 else core.GeneralizedTime(t)  # RFC 5652
    return _tlv(0x30, _OID_SIGNING_TIME, _tlv(0x31, value.dump()))


def _signed_data(file_hash: bytes, signer: Signer, digest_name: str, *,
                 timestamp_url: str | None = None, signing_time: _dt.datetime | None = None,
                 guid: bytes = PS_SIP_GUID) -> bytes:
    """The DER ContentInfo(SignedData) of an Authenticode signature over ``file_hash``."""
    idc = _indirect_data(digest_name, file_hash, guid)
    # messageDigest covers the SpcIndirectDataContent's content octets (no SEQUENCE header).
    message_digest = hashlib.new(digest_name, _der_contents(idc)).digest()
    attrs = [_ATTR_CONTENT_TYPE, _ATTR_STATEMENT_TYPE, _ATTR_OPUS_INFO,
             _tlv(0x30, _OID_MESSAGE_DIGEST, _tlv(0x31, _tlv(0x04, message_digest)))]
    if signing_time is not None:
        attrs.append(_signing_time(signing_time))
    attrs.sort()                                   # DER: SET OF sorted by encoding
    # The signature covers the attributes as a SET (0x31); the SignerInfo carries them [0].
    signature = _raw_sign(signer.key, _tlv(0x31, *attrs), digest_name)
    sig_alg = _RSA_ENCRYPTION if isinstance(signer.key, rsa.RSAPrivateKey) \
        else _ECDSA_WITH[digest_name]
    unsigned = b""
    if timestamp_url:
        token = _request_timestamp(timestamp_url, signature, digest_name)
        unsigned = _tlv(0xA1, _tlv(0x30, _oid(OID_RFC3161_COUNTERSIGN), _tlv(0x31, token)))
    signer_info = _tlv(
        0x30,
        _der_int(1),
        _tlv(0x30, signer.certificate.issuer.public_bytes(),
             _der_int(signer.certificate.serial_number)),
        _ALGORITHM_ID[digest_name],
        _tlv(0xA0, *attrs),
        sig_alg,
        _tlv(0x04, signature),
        unsigned,
    )
    signed_data = _tlv(
        0x30,
        _der_int(1),
        _tlv(0x31, _ALGORITHM_ID[digest_name]),
        # PKCS#7 v1 carries the content itself, [0] EXPLICIT, not in an OCTET STRING as CMS does
        _tlv(0x30, _OID_SPC_INDIRECT_DATA, _tlv(0xA0, idc)),
        _tlv(0xA0, *sorted(signer._cert_ders)),
        _tlv(0x31, signer_info),
    )
    return _tlv(0x30, _OID_SIGNED_DATA, _tlv(0xA0, signed_data))


def sign_bytes(data: bytes, signer: Signer, *, digest: str = "sha256",
               timestamp_url: str | None = None, name: str | None = None,
               signing_time: _dt.datetime | None = None) -> bytes:
    """Return ``data`` with an Authenticode signature block (an existing block is replaced).

    ``data`` is the script file's bytes (ASCII/UTF-8 with CRLF, UTF-8 with BOM, or UTF-16LE);
    input Windows would reject raises UserError (``name`` labels the messages). ``digest`` is
    sha256, sha384 or sha512. ``timestamp_url`` asks that RFC 3161 server for a timestamp.
    ``signing_time`` adds the (self-asserted, untrusted) signingTime attribute; off by default
    so signing is deterministic.
    """
    if digest not in DIGESTS:
        raise UserError.single(f"unknown digest {digest!r}; use one of {', '.join(DIGESTS)}")
    layout = check_signable(data, name)
    signer.check_validity()
    der = _signed_data(hashlib.new(digest, _hashed_text(layout)).digest(), signer, digest,
                       timestamp_url=timestamp_url, signing_time=signing_time)
    return layout.body + _format_block(der, layout.encoding)


def signing_function(cert: Path | str, key: Path | str | None = None, *, chain=(),
                     password_env: str = PASSWORD_ENV, timestamp_url: str | None = None,
                     digest: str = "sha256"):
    """``sign(data, name) -> signed bytes`` for a certificate on disk: what `build --sign` and
    `push --sign-cert` hand to the code that produces scripts. Loads (and asks for the
    password) once."""
    signer = load_signer(cert, key, chain=chain, password=password_source(password_env))

    def sign(data: bytes, name: str) -> bytes:
        return sign_bytes(data, signer, digest=digest, timestamp_url=timestamp_url, name=name)

    return sign


def sign_file(path: Path | str, signer: Signer, *, output: Path | str | None = None,
              digest: str = "sha256", timestamp_url: str | None = None) -> Path:
    """Sign a script file in place (atomically, keeping its mode), or write to ``output``."""
    path = Path(path)
    data = _read(path, "script")
    signed = sign_bytes(data, signer, digest=digest, timestamp_url=timestamp_url,
                        name=str(path))
    target = Path(output) if output is not None else path
    _write_atomic(target, signed, mode_from=path)
    return target


def _write_atomic(target: Path, data: bytes, *, mode_from: Path | None = None) -> None:
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise UserError.single(f"cannot write here: {exc.strerror}", file=str(target)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode_from is not None and mode_from.exists():
            os.chmod(tmp, mode_from.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError.single(f"cannot write the signed script: {exc.strerror}",
                               file=str(target)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# RFC 3161 timestamps
# --------------------------------------------------------------------------------------------

def _request_timestamp(url: str, signature: bytes, digest_name: str) -> bytes:
    """Ask an RFC 3161 TSA to timestamp ``signature``; return the TimeStampToken (DER)."""
    import urllib.error     # only here: http.client and email cost ~20 ms of import time
    import urllib.request

    if not url.lower().startswith(("http://", "https://")):
        raise UserError.single(f"timestamp URL {url!r} is not http:// or https://",
                               hint="e.g. --timestamp-url http://timestamp.digicert.com")
    imprint = hashlib.new(digest_name, signature).digest()
    nonce = int.from_bytes(secrets.token_bytes(8), "big")
    req = tsp.TimeStampReq({
        "version": 1,
        "message_imprint": {"hash_algorithm": {"algorithm": digest_name},
                            "hashed_message": imprint},
        "nonce": nonce,
        "cert_req": True,
    })
    http_req = urllib.request.Request(url, data=req.dump(), method="POST", headers={
        "Content-Type": "application/timestamp-query",
        "Accept": "application/timestamp-reply"})
    hint = "check the URL and the network, or sign without --timestamp-url"
    try:
        with urllib.request.urlopen(http_req, timeout=TIMESTAMP_TIMEOUT) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise UserError.single(f"timestamp server {url} answered HTTP {exc.code} {exc.reason}",
                               hint=hint) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError.single(f"timestamp server {url} could not be reached: {reason}",
                               hint=hint) from None
    try:
        resp = TimeStampResp.load(body)
        status = resp["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = resp["status"]["status_string"].native or []
            fail = resp["status"]["fail_info"].native or set()
            detail = "; ".join(list(text) + sorted(fail))
            raise UserError.single(f"timestamp server {url} refused the request ({status}"
                                   + (f": {detail}" if detail else "") + ")", hint=hint)
        token = resp["time_stamp_token"]
        token_der = token.dump()
        tst = _tst_info(token)
        got = tst["message_imprint"]["hashed_message"].native
        if got != hashlib.new(tst["message_imprint"]["hash_algorithm"]["algorithm"].native,
                              signature).digest():
            raise UserError.single(f"timestamp server {url} timestamped something else (its "
                                   f"message imprint does not match the signature)", hint=hint)
        if tst["nonce"].native != nonce:
            raise UserError.single(f"timestamp server {url} answered with the wrong nonce",
                                   hint=hint)
    except UserError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError.single(f"timestamp server {url} sent a response that is not an RFC 3161 "
                               f"TimeStampResp ({exc})", hint=hint) from None
    return token_der


def _tst_info(token: cms.ContentInfo) -> tsp.TSTInfo:
    if token["content_type"].native != "signed_data":
        raise ValueError("timestamp token is not SignedData")
    eci = token["content"]["encap_content_info"]
    if eci["content_type"].native != "tst_info":
        raise ValueError("timestamp token does not contain a TSTInfo")
    parsed = eci["content"].parsed
    if not isinstance(parsed, tsp.TSTInfo):
        raise ValueError("timestamp token content is not a TSTInfo")
    return parsed


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------

BLOCK = "signature block"
SIP = "SIP GUID"
FILE_DIGEST = "file digest"
MESSAGE_DIGEST = "messageDigest"
SIGNATURE = "signer signature"
TIMESTAMP = "timestamp"
CHAIN = "certificate chain"
CHECKS = (BLOCK, SIP, FILE_DIGEST, MESSAGE_DIGEST, SIGNATURE, TIMESTAMP, CHAIN)

OK, FAILED, SKIPPED = "ok", "FAILED", "skipped"


@dataclass
class Check:
    name: str
    status: str         # "ok" | "FAILED" | "skipped"
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def failed(self) -> bool:
        return self.status == FAILED


@dataclass
class Verification:
    """The outcome of verifying one script: one :class:`Check` per step, in words."""

    name: str
    checks: list[Check] = field(default_factory=list)
    signer: str | None = None
    digest_algorithm: str | None = None
    file_digest: str | None = None        # computed now (hex, upper case)
    signed_digest: str | None = None      # recorded in the signature (hex, upper case)
    timestamp: _dt.datetime | None = None
    trusted: bool = False                 # the chain was checked against given CAs and passed

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not any(c.failed for c in self.checks) and \
            self.check(BLOCK).ok

    @property
    def failures(self) -> list[str]:
        return [c.name for c in self.checks if c.failed]

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def _add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def summary(self) -> str:
        if not self.ok:
            return f"{self.name}: FAILED ({', '.join(self.failures)})"
        if self.trusted:
            return f"{self.name}: OK, signed by {self.signer}"
        return (f"{self.name}: OK as far as checked: the signature is intact, but the signer "
                f"({self.signer}) was not checked against a trusted CA (pass --ca)")

    def format(self) -> str:
        width = max(len(c) for c in CHECKS)
        lines = [self.summary()]
        for c in self.checks:
            lines.append(f"  {c.status:<7} {c.name:<{width}}  {c.detail}")
        return "\n".join(lines)


def _skip_rest(result: Verification, reason: str) -> Verification:
    done = {c.name for c in result.checks}
    for name in CHECKS:
        if name not in done:
            result._add(name, SKIPPED, reason)
    return result


def verify_file(path: Path | str, *, trusted: Sequence[x509.Certificate] | None = None,
                at: _dt.datetime | None = None) -> Verification:
    """Verify a signed script file. An unreadable file is a UserError; a bad signature is not."""
    return verify_bytes(_read(path, "script"), trusted=trusted, at=at, name=str(path))


def verify_bytes(data: bytes, *, trusted: Sequence[x509.Certificate] | None = None,
                 at: _dt.datetime | None = None, name: str = "<script>") -> Verification:
    """Verify an Authenticode-signed script.

    Checks, each reported in words: the signature block parses; SIP GUID is PowerShell's; the
    file digest matches the text; messageDigest matches the signed content; the signer's
    signature verifies; the RFC 3161 timestamp (if any) verifies; and, when ``trusted`` CA
    certificates are given, the signer's chain leads to one of them (issuer walk, validity at
    the timestamp's time or ``at``/now, code-signing EKU). Without ``trusted`` the chain check
    is skipped and ``Verification.trusted`` stays False.
    """
    result = Verification(name)

    # 1. signature block --------------------------------------------------------------------
    if data[:2] == b"\xfe\xff":
        result._add(BLOCK, FAILED, "the file is UTF-16 big-endian, which this format does not "
                                   "use; no signature block can be found")
        return _skip_rest(result, "no signature block")
    layout = _find_block(data)
    if layout.block_at is None:
        result._add(BLOCK, FAILED, f"no '{HEADER}' line after a CRLF: the file is not signed "
                                   f"(or the block's first line was damaged)")
        return _skip_rest(result, "no signature block")
    try:
        b64 = _block_base64(data, layout)
    except _BlockError as exc:
        result._add(BLOCK, FAILED, str(exc))
        return _skip_rest(result, "no readable signature block")
    try:
        der = base64.b64decode(b64, validate=True)
    except ValueError:
        bad = next((ch for ch in b64 if not (ch.isascii() and (ch.isalnum() or ch in "+/="))),
                   None)
        why = f"character {bad!r} is not base64" if bad else "wrong length or padding"
        result._add(BLOCK, FAILED, f"the block's text is not valid base64 ({why})")
        return _skip_rest(result, "no readable signature block")
    try:
        parsed = _parse_signed_data(der)
    except _BlockError as exc:
        result._add(BLOCK, FAILED, str(exc))
        return _skip_rest(result, "no readable signature block")
    try:
        with warnings.catch_warnings():   # e.g. a damaged, negative serial number: the checks
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)  # judge it, in words
            _verify_parsed(result, layout, parsed, list(trusted or []), at)
    except _MALFORMED as exc:
        # asn1crypto parses lazily: damage deep inside the structure surfaces when a check
        # reads it. The check in progress fails with the reason; the rest are not checked.
        done = {c.name for c in result.checks}
        current = next(name for name in CHECKS if name not in done)
        result._add(current, FAILED, f"the signature's data is malformed here ({exc})")
        _skip_rest(result, f"not checked: the {current} check found malformed data")
    return result


_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
              x509.InvalidVersion, x509.DuplicateExtension, UnsupportedAlgorithm)


def _verify_parsed(result: Verification, layout: _Layout, parsed: tuple,
                   anchors: list[x509.Certificate], at: _dt.datetime | None) -> None:
    sd, si, idc_octets, idc = parsed
    now = at or _utcnow()
    certs = [c.chosen for c in sd["certificates"] if c.name == "certificate"] \
        if not isinstance(sd["certificates"], core.Void) else []
    nested = _unsigned_values(si, OID_NESTED_SIGNATURE)
    result._add(BLOCK, OK, f"PKCS#7 SignedData with one signer and {len(certs)} "
                           f"certificate{'s' if len(certs) != 1 else ''} (line "
                           f"{layout.header_line})"
                + (f"; {len(nested)} nested signature(s) not checked (only the primary)"
                   if nested else ""))

    # 2. SIP GUID ---------------------------------------------------------------------------
    data_type = idc["data"]["type"].dotted
    if data_type != OID_SPC_SIPINFO:
        result._add(SIP, FAILED, f"the signed content is of type {data_type}, not SpcSipInfo "
                                 f"({OID_SPC_SIPINFO}): this is not a script signature")
    else:
        try:
            sip = SpcSipInfo.load(idc["data"]["value"].dump())
            guid = sip["uuid"].native
        except (ValueError, TypeError):
            guid = None
        if guid == PS_SIP_GUID:
            result._add(SIP, OK, f"PowerShell SIP {PS_SIP_GUID_TEXT}")
        else:
            shown = guid.hex().upper() if isinstance(guid, bytes) else "unreadable"
            result._add(SIP, FAILED, f"the SIP GUID is {shown}, not PowerShell's "
                                     f"{PS_SIP_GUID_TEXT}: this signature is for another file "
                                     f"type")

    # 3. file digest ------------------------------------------------------------------------
    fd_alg = idc["message_digest"]["digest_algorithm"]["algorithm"].native
    signed_digest = idc["message_digest"]["digest"].native
    result.digest_algorithm = fd_alg
    result.signed_digest = signed_digest.hex().upper()
    if fd_alg not in _VERIFY_DIGESTS:
        result._add(FILE_DIGEST, FAILED, f"the signature uses digest {fd_alg}, which is not "
                                         f"accepted (use sha256 or stronger)")
    else:
        try:
            computed = hashlib.new(fd_alg, _hashed_text(layout)).digest()
        except UnicodeDecodeError as exc:
            result._add(FILE_DIGEST, FAILED,
                        f"the text before the block is not valid UTF-8 (byte {exc.start}), so it "
                        f"cannot be the text that was signed")
        else:
            result.file_digest = computed.hex().upper()
            if computed == signed_digest:
                caveat = _windows_caveat(layout)
                result._add(FILE_DIGEST, OK, f"{fd_alg} {result.file_digest} matches the text "
                                             f"before the block"
                            + (f" (note: {caveat}; Windows may still reject it)"
                               if caveat else ""))
            else:
                result._add(FILE_DIGEST, FAILED,
                            f"the script's {fd_alg} digest {result.file_digest} differs from the "
                            f"signed digest {result.signed_digest}: the text before the block was "
                            f"changed after signing")

    # 4. messageDigest ----------------------------------------------------------------------
    si_alg = si["digest_algorithm"]["algorithm"].native
    attrs = _signed_attributes(si)
    if si_alg not in _VERIFY_DIGESTS:
        result._add(MESSAGE_DIGEST, FAILED, f"the signer uses digest {si_alg}, which is not "
                                            f"accepted")
    elif attrs is None:
        result._add(MESSAGE_DIGEST, FAILED, "the signer has no signed attributes, so nothing "
                                            "binds the signature to the signed content")
    else:
        problem = _check_message_digest(attrs, idc_octets, si_alg)
        if problem:
            result._add(MESSAGE_DIGEST, FAILED, problem)
        else:
            result._add(MESSAGE_DIGEST, OK, f"{si_alg} of the signed SpcIndirectDataContent "
                                            f"matches the messageDigest attribute")

    # 5. signer signature -------------------------------------------------------------------
    signer_cert = _find_cert(si["sid"], certs)
    signer_x509 = _to_x509(signer_cert) if signer_cert is not None else None
    if signer_x509 is None:
        result._add(SIGNATURE, FAILED, "the signer's certificate is not in the signature block")
    else:
        result.signer = _subject(signer_x509)
        if si_alg not in _VERIFY_DIGESTS or attrs is None:
            result._add(SIGNATURE, FAILED, "cannot be checked: no usable signed attributes")
        else:
            problem = _verify_signer_info(si, signer_x509, si_alg)
            if problem:
                result._add(SIGNATURE, FAILED, problem)
            else:
                result._add(SIGNATURE, OK, f"{_key_description(signer_x509.public_key())} "
                                           f"signature by {result.signer} verifies")

    pool = [c for c in (_to_x509(c) for c in certs) if c is not None]

    # 6. timestamp --------------------------------------------------------------------------
    stamp_time = None
    tokens = _timestamp_tokens(si)
    if tokens is None and _unsigned_values(si, OID_PKCS9_COUNTERSIGNATURE):
        result._add(TIMESTAMP, SKIPPED, "a legacy Authenticode (PKCS#9 countersignature) "
                                        "timestamp is present; psgen checks RFC 3161 timestamps "
                                        "only, so validity is judged at the current time")
    elif tokens is None:
        result._add(TIMESTAMP, SKIPPED, "not timestamped: the signature is trusted only while "
                                        "the signing certificate is valid"
                    + (f" (until {_fmt_time(signer_x509.not_valid_after_utc)})"
                       if signer_x509 is not None else ""))
    else:
        ok, detail, stamp_time = _verify_timestamp(tokens, si["signature"].native, anchors)
        result._add(TIMESTAMP, OK if ok else FAILED, detail)
        if ok:
            result.timestamp = stamp_time
        else:
            stamp_time = None

    # 7. certificate chain ------------------------------------------------------------------
    if signer_x509 is None:
        result._add(CHAIN, SKIPPED, "no signer certificate")
    elif not anchors:
        result._add(CHAIN, SKIPPED, "no trusted CA given (--ca): the signer was not checked")
    else:
        when = stamp_time or now
        label = "the timestamp's time" if stamp_time else ("the given time" if at else "now")
        problem, path = _walk_chain(signer_x509, pool, anchors, when,
                                    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string,
                                    "Code Signing")
        if problem:
            result._add(CHAIN, FAILED, problem)
        else:
            result.trusted = True
            result._add(CHAIN, OK, " -> ".join(_subject(c) for c in path)
                        + f" (trusted CA); valid at {label} ({_fmt_time(when)}); Code Signing "
                          f"EKU")


def _parse_signed_data(der: bytes):
    try:
        ci = cms.ContentInfo.load(der, strict=True)
        if ci["content_type"].native != "signed_data":
            raise _BlockError(f"the block holds a {ci['content_type'].native}, not a PKCS#7 "
                              f"SignedData")
        sd = ci["content"]
        if sd["version"].native != "v1":
            raise _BlockError(f"SignedData version is {sd['version'].native}; Authenticode uses "
                              f"version 1")
        eci = sd["encap_content_info"]
        if eci["content_type"].dotted != OID_SPC_INDIRECT_DATA:
            raise _BlockError(f"the signed content is {eci['content_type'].dotted}, not "
                              f"SpcIndirectDataContent ({OID_SPC_INDIRECT_DATA})")
        idc_any = eci["content"]
        # What messageDigest covers: the content octets inside the [0] EXPLICIT wrapper and the
        # SEQUENCE header. Taken before .parse(), which rebinds .contents.
        idc_octets = bytes(idc_any.contents)
        idc = idc_any.parse(SpcIndirectDataContent)
        _ = idc["data"]["type"].dotted, idc["message_digest"]["digest"].native
        signer_infos = sd["signer_infos"]
        if len(signer_infos) != 1:
            raise _BlockError(f"the SignedData has {len(signer_infos)} signers; Authenticode "
                              f"requires exactly one")
        si = signer_infos[0]
        if si["version"].native != "v1":
            raise _BlockError(f"SignerInfo version is {si['version'].native}; Authenticode uses "
                              f"version 1")
        si_alg = si["digest_algorithm"]["algorithm"].native
        listed = [a["algorithm"].native for a in sd["digest_algorithms"]]
        if si_alg not in listed:
            raise _BlockError(f"the signer's digest {si_alg} is not among the SignedData's "
                              f"digest algorithms ({', '.join(listed) or 'none'})")
        _ = si["signature"].native
        _ = [c.name for c in sd["certificates"]]
    except _BlockError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise _BlockError(f"the block's data is not a well-formed PKCS#7 signature ({exc})"
                          ) from None
    return sd, si, idc_octets, idc


def _signed_attributes(si: cms.SignerInfo) -> cms.CMSAttributes | None:
    attrs = si["signed_attrs"]
    return None if isinstance(attrs, core.Void) else attrs


def _attr_values(attrs: cms.CMSAttributes, type_name: str) -> list:
    return [a["values"] for a in attrs if a["type"].native == type_name]


def _check_message_digest(attrs: cms.CMSAttributes, content: bytes, alg: str) -> str | None:
    ctypes = _attr_values(attrs, "content_type")
    if len(ctypes) != 1 or len(ctypes[0]) != 1:
        return "the signed attributes must have exactly one contentType"
    if ctypes[0][0].dotted != OID_SPC_INDIRECT_DATA:
        return (f"the contentType attribute is {ctypes[0][0].dotted}, not "
                f"SpcIndirectDataContent")
    digests = _attr_values(attrs, "message_digest")
    if len(digests) != 1 or len(digests[0]) != 1:
        return "the signed attributes must have exactly one messageDigest"
    expected = digests[0][0].native
    actual = hashlib.new(alg, content).digest()
    if actual != expected:
        return (f"{alg} of the signed content is {actual.hex().upper()[:16]}..., the "
                f"messageDigest attribute says {expected.hex().upper()[:16]}...: the signed "
                f"content (SpcIndirectDataContent) was altered")
    return None


def _find_cert(sid: cms.SignerIdentifier, certs: list[asn1_x509.Certificate]):
    if sid.name == "issuer_and_serial_number":
        want = sid.chosen
        for c in certs:
            if c.serial_number == want["serial_number"].native and c.issuer == want["issuer"]:
                return c
    else:
        want_ski = sid.chosen.native
        for c in certs:
            if c.key_identifier == want_ski:
                return c
    return None


def _to_x509(cert: asn1_x509.Certificate | None) -> x509.Certificate | None:
    if cert is None:
        return None
    try:
        return x509.load_der_x509_certificate(cert.dump())
    except (ValueError, x509.InvalidVersion):
        return None


def _verify_raw(public_key, signature: bytes, data: bytes, sig_alg: str, digest_name: str
                ) -> str | None:
    """Verify a CMS signer signature; return a reason in words, or None."""
    algorithm = _CRYPTO_HASH[digest_name]()
    try:
        if sig_alg in ("rsassa_pkcs1v15", f"{digest_name}_rsa"):
            if not isinstance(public_key, rsa.RSAPublicKey):
                return f"signature algorithm {sig_alg} does not match the certificate's key"
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif sig_alg in (f"{digest_name}_ecdsa", "ecdsa", "1.2.840.10045.2.1"):
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                return f"signature algorithm {sig_alg} does not match the certificate's key"
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return f"unsupported signature algorithm {sig_alg} with digest {digest_name}"
    except InvalidSignature:
        return "invalid"
    return None


def _verify_signer_info(si: cms.SignerInfo, cert: x509.Certificate, digest_name: str
                        ) -> str | None:
    contents = si["signed_attrs"].contents
    to_verify = _der_header(0x31, len(contents)) + contents
    sig_alg = si["signature_algorithm"]["algorithm"].native
    try:
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"the public key of {_subject(cert)} cannot be used ({exc})"
    problem = _verify_raw(public_key, si["signature"].native, to_verify, sig_alg, digest_name)
    if problem == "invalid":
        return (f"the signature over the signed attributes does not verify with the public key "
                f"of {_subject(cert)}: the signature or its attributes were altered, or another "
                f"key signed")
    return problem


def _unsigned_values(si: cms.SignerInfo, oid: str) -> list:
    unsigned = si["unsigned_attrs"]
    if isinstance(unsigned, core.Void):
        return []
    return [v for a in unsigned if a["type"].dotted == oid for v in a["values"]]


def _timestamp_tokens(si: cms.SignerInfo) -> list | None:
    return _unsigned_values(si, OID_RFC3161_COUNTERSIGN) or None


def _windows_caveat(layout: _Layout) -> str | None:
    """What check_signable would refuse, as a note for a signature made by another tool."""
    try:
        check_signable(layout.body)
    except UserError as exc:
        return exc.problems[0].message.split(";")[0].replace("the script ", "the text ")
    return None


def _verify_timestamp(tokens: list, signature: bytes, anchors: list[x509.Certificate]
                      ) -> tuple[bool, str, _dt.datetime | None]:
    if len(tokens) != 1:
        return False, f"{len(tokens)} RFC 3161 timestamps; expected one", None
    token = tokens[0]
    try:
        tst = _tst_info(token)
        sd = token["content"]
        gen_time = tst["gen_time"].native
        imprint_alg = tst["message_imprint"]["hash_algorithm"]["algorithm"].native
        imprint = tst["message_imprint"]["hashed_message"].native
        if imprint_alg not in _VERIFY_DIGESTS:
            return False, f"the timestamp uses digest {imprint_alg}, which is not accepted", None
        if hashlib.new(imprint_alg, signature).digest() != imprint:
            return False, ("the timestamp is for a different signature (its message imprint "
                           "does not match the signer's signature value)"), None
        if len(sd["signer_infos"]) != 1:
            return False, "the timestamp token must have exactly one signer", None
        tsi = sd["signer_infos"][0]
        certs = [c.chosen for c in sd["certificates"] if c.name == "certificate"] \
            if not isinstance(sd["certificates"], core.Void) else []
        tsa_cert = _to_x509(_find_cert(tsi["sid"], certs))
        if tsa_cert is None:
            tsa_cert = next((a for a in anchors if _find_cert(
                tsi["sid"], [asn1_x509.Certificate.load(a.public_bytes(
                    serialization.Encoding.DER))]) is not None), None)
        if tsa_cert is None:
            return False, "the timestamp authority's certificate is not in the token", None
        tsa_alg = tsi["digest_algorithm"]["algorithm"].native
        attrs = _signed_attributes(tsi)
        if tsa_alg not in _VERIFY_DIGESTS or attrs is None:
            return False, "the timestamp token has no usable signed attributes", None
        econtent = sd["encap_content_info"]["content"]
        tst_der = econtent.contents
        ctypes = _attr_values(attrs, "content_type")
        digests = _attr_values(attrs, "message_digest")
        if len(ctypes) != 1 or ctypes[0][0].native != "tst_info" or len(digests) != 1:
            return False, "the timestamp token's signed attributes are malformed", None
        if hashlib.new(tsa_alg, tst_der).digest() != digests[0][0].native:
            return False, ("the timestamp's TSTInfo does not match its messageDigest: the "
                           "timestamp was altered"), None
        problem = _verify_signer_info(tsi, tsa_cert, tsa_alg)
        if problem:
            return False, f"the timestamp authority's signature: {problem}", None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        return False, f"the RFC 3161 timestamp is malformed ({exc})", None
    tsa = _subject(tsa_cert)
    if not anchors:
        return True, (f"RFC 3161 timestamp {_fmt_time(gen_time)} by {tsa} (signature verifies; "
                      f"the timestamp authority was not checked: no --ca)"), gen_time
    pool = [c for c in (_to_x509(c) for c in certs) if c is not None]
    problem, path = _walk_chain(tsa_cert, pool, anchors, gen_time,
                                ExtendedKeyUsageOID.TIME_STAMPING.dotted_string, "Time Stamping",
                                "the timestamp")
    if problem:
        return False, f"timestamp authority: {problem}", None
    return True, (f"RFC 3161 timestamp {_fmt_time(gen_time)} by {tsa}, chain "
                  + " -> ".join(_subject(c) for c in path) + " (trusted CA)"), gen_time


def _same_cert(a: x509.Certificate, b: x509.Certificate) -> bool:
    if a == b:
        return True
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return a.subject == b.subject and a.public_key().public_bytes(
        serialization.Encoding.DER, spki) == b.public_key().public_bytes(
        serialization.Encoding.DER, spki)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not bc.ca:
        return False
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ku.key_cert_sign


def _walk_chain(leaf: x509.Certificate, pool: list[x509.Certificate],
                anchors: list[x509.Certificate], when: _dt.datetime, eku_oid: str,
                eku_label: str, container: str = "the signature"
                ) -> tuple[str | None, list[x509.Certificate]]:
    """Issuer walk from ``leaf`` to one of ``anchors``; a reason in words, or None, and the path."""
    path = [leaf]
    cur = leaf
    while not any(_same_cert(cur, a) for a in anchors):
        if len(path) > 10:
            return "the chain is longer than 10 certificates", path
        issuer = None
        mismatch = None
        for cand in anchors + pool:
            if cand.subject != cur.issuer or _same_cert(cand, cur):
                continue
            try:
                cur.verify_directly_issued_by(cand)
            except InvalidSignature:
                mismatch = cand
                continue
            except (ValueError, TypeError, UnsupportedAlgorithm):
                continue
            issuer = cand
            break
        if issuer is None:
            name = cur.issuer.rfc4514_string()
            if mismatch is not None:
                return (f"{_subject(cur)} names {name} as issuer, but that certificate's key did "
                        f"not sign it"), path
            if cur.issuer == cur.subject:
                return (f"the chain ends at the self-signed {_subject(cur)}, which is not among "
                        f"the trusted CAs (--ca)"), path
            return (f"the issuer of {_subject(cur)} ({name}) is not among the trusted CAs "
                    f"(--ca), and {container} does not include it"), path
        if not _is_ca(issuer) and not any(_same_cert(issuer, a) for a in anchors):
            return f"{_subject(issuer)} issued {_subject(cur)} but is not a CA", path
        path.append(issuer)
        cur = issuer
    for cert in path:
        if when > cert.not_valid_after_utc:
            return (f"{_subject(cert)} expired on {_fmt_time(cert.not_valid_after_utc)} "
                    f"(checked at {_fmt_time(when)})"), path
        if when < cert.not_valid_before_utc:
            return (f"{_subject(cert)} is not valid before "
                    f"{_fmt_time(cert.not_valid_before_utc)} (checked at {_fmt_time(when)})"), path
    for k, cert in enumerate(path):
        eku = _eku(cert)
        if k == 0 and (eku is None or eku_oid not in eku):
            return f"{_subject(cert)} lacks the {eku_label} extended key usage", path
        if k > 0 and eku is not None and eku_oid not in eku and OID_ANY_EKU not in eku:
            return (f"{_subject(cert)} restricts its extended key usage and does not allow "
                    f"{eku_label}"), path
    if not _key_usage_allows_signing(leaf):
        return f"{_subject(leaf)} has a Key Usage without digitalSignature", path
    return None, path


# --------------------------------------------------------------------------------------------
# Throwaway certificates (psgen cert new)
# --------------------------------------------------------------------------------------------

def thumbprint(cert: x509.Certificate) -> str:
    """The SHA-1 thumbprint Windows shows (Cert:\\ drive, certmgr), upper-case hex."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def _new_key(key_type: str) -> PrivateKey:
    if key_type.startswith("rsa") and key_type[3:].isdigit():
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    raise UserError.single(f"unknown key type {key_type!r}; use one of {', '.join(KEY_TYPES)}")


def new_self_signed(common_name: str = "psgen throwaway code signing", *,
                    key_type: str = "rsa2048", days: int = 365,
                    now: _dt.datetime | None = None) -> tuple[PrivateKey, x509.Certificate]:
    """A throwaway self-signed code-signing certificate and its key (demos and tests only)."""
    if key_type not in KEY_TYPES:
        raise UserError.single(f"unknown key type {key_type!r}; use one of {', '.join(KEY_TYPES)}")
    if days < 1:
        raise UserError.single("--days must be at least 1")
    key = _new_key(key_type)
    now = now or _utcnow()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, _CRYPTO_HASH["sha384" if key_type == "p384" else "sha256"]())
    )
    return key, cert


def write_certificate_files(prefix: Path | str, key: PrivateKey, cert: x509.Certificate, *,
                            pfx_password: bytes | None = None, force: bool = False
                            ) -> list[Path]:
    """Write PREFIX.pem (certificate), PREFIX.key (unencrypted key, mode 0600), PREFIX.cer (DER,
    for Windows' Import-Certificate) and, with ``pfx_password``, PREFIX.pfx."""
    prefix = Path(prefix)
    files = {".pem": cert.public_bytes(serialization.Encoding.PEM),
             ".key": key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()),
             ".cer": cert.public_bytes(serialization.Encoding.DER)}
    if pfx_password is not None:
        files[".pfx"] = pkcs12.serialize_key_and_certificates(
            b"psgen code signing", key, cert, None,
            serialization.BestAvailableEncryption(pfx_password) if pfx_password
            else serialization.NoEncryption())
    paths = [prefix.with_name(prefix.name + ext) for ext in files]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise UserError.single(f"{', '.join(existing)} already exist"
                               + ("s" if len(existing) == 1 else ""),
                               hint="choose another name, or pass --force to overwrite")
    for path, (ext, content) in zip(paths, files.items()):
        try:
            if ext in (".key", ".pfx"):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                os.chmod(path, 0o600)
            else:
                path.write_bytes(content)
        except OSError as exc:
            raise UserError.single(f"cannot write: {exc.strerror}", file=str(path)) from None
    return paths
