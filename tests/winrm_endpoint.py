"""A loopback WinRM endpoint for tests: WSMan over HTTP(S) on 127.0.0.1, PSRP by psrpcore.

Nothing here runs PowerShell. The endpoint speaks enough WSMan (Create, Command, Send, Receive,
Signal, Delete) for pypsrp's real client, hands the PSRP bytes to psrpcore's server classes, and
when a pipeline is invoked it calls a Python *handler* that plays the Windows host.

Usage::

    from tests.winrm_endpoint import WinRMEndpoint, Answer

    def handler(req, io):
        assert req.script == compiled_text          # the script text as it arrived
        assert req.parameters == {"Mode": "Check", "Json": True}
        io.warning("disk almost full")
        return json.dumps({"schema": 1, "exit_code": 0, "steps": []})   # written to output

    with WinRMEndpoint(handler, users={"admin": "pw"}) as ep:
        ... connect pypsrp to ("127.0.0.1", ep.port), ssl=False, auth="basic", encryption="never"

Handler API
-----------
``handler(req: HostRequest, io: HostIO) -> object | None`` runs in its own thread, one call per
pipeline. A non-None return value is written to the output stream; an exception becomes a
terminating error (the pipeline ends in the Failed state, pypsrp sets ``had_errors``).

``HostRequest`` (what arrived): ``endpoint`` (the endpoint's name), ``username``, ``shell_id``,
``pipeline_id``, ``commands`` (list of ``CommandCall(text, is_script, parameters, arguments)``,
values converted to plain Python: str, int, bool, float, list, dict, None), ``input`` (pipeline
input objects), ``files`` (the endpoint's file store, see below) and the shortcuts ``script``
(text of the first command when it is a script, else None), ``command`` (the first command's
text), ``parameters`` (its named parameters as a dict) and ``arguments`` (its positional ones).

``HostIO`` (how to answer): ``output(obj)``, ``error(message)``, ``warning(message)``,
``verbose(message)``, ``information(message)``, ``sleep(seconds) -> bool`` (returns False early
if the pipeline was stopped or the endpoint is shutting down; use it instead of time.sleep),
``drop_connection()`` (the next Receive for this pipeline gets its TCP connection closed with no
answer, like a network cut mid-receive), ``stopped`` (True once the client stopped the pipeline).

Built-ins: pypsrp's ``Client.copy`` (its copy.ps1 pipeline with base64 input) is answered by the
endpoint itself: the SHA-1 is checked, the bytes land in ``endpoint.files[path]`` and the path is
written to output (``%TEMP%`` expands to ``C:\\Users\\<user>\\AppData\\Local\\Temp``).
``Remove-Item -LiteralPath P`` on a stored file deletes it. Both are still recorded in
``endpoint.requests`` (every HostRequest, in arrival order), but the handler is not called.

Options: ``users`` ({name: password}, Basic auth; None accepts anyone), ``tls`` (a
``TLSMaterial`` from ``make_tls`` for HTTPS), ``name`` (shown in ``req.endpoint``), ``port``
(0 = any free port; ``endpoint.port`` tells which).
``refused_port()`` returns a loopback port with nothing listening. Everything binds 127.0.0.1
only; ``stop()`` (or leaving the ``with`` block) shuts the listener, wakes every long poll and
handler, and closes open connections.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import re
import socket
import socketserver
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from psrpcore import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    PipelineInputEvent,
    PSRPPayload,
    ServerPipeline,
    ServerRunspacePool,
    StreamType,
)
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSInvocationState,
)

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "pwsh": "http://schemas.microsoft.com/powershell",
}
A_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
A_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
A_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
TIMED_OUT = 2150858793
MAX_WAIT = 30.0  # upper bound on any long poll, whatever the client asks

Handler = Callable[["HostRequest", "HostIO"], Any]


# ------------------------------------------------------------------ request / answer objects


@dataclass
class CommandCall:
    text: str
    is_script: bool
    parameters: dict[str, Any]
    arguments: list[Any]


@dataclass
class HostRequest:
    endpoint: str
    username: str | None
    shell_id: str
    pipeline_id: str
    commands: list[CommandCall]
    input: list[Any] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def command(self) -> str:
        return self.commands[0].text if self.commands else ""

    @property
    def script(self) -> str | None:
        return self.commands[0].text if self.commands and self.commands[0].is_script else None

    @property
    def parameters(self) -> dict[str, Any]:
        return self.commands[0].parameters if self.commands else {}

    @property
    def arguments(self) -> list[Any]:
        return self.commands[0].arguments if self.commands else []


class HostIO:
    """The handler's side of one pipeline."""

    def __init__(self, shell: "_Shell", pipeline: ServerPipeline, endpoint: "WinRMEndpoint"):
        self._shell = shell
        self._pipeline = pipeline
        self._endpoint = endpoint
        self._stop = threading.Event()
        self.drop_next_receive = False

    @property
    def stopped(self) -> bool:
        return self._stop.is_set() or self._endpoint._closing.is_set()

    def sleep(self, seconds: float) -> bool:
        end = _now() + seconds
        while not self.stopped:
            left = end - _now()
            if left <= 0:
                return True
            self._stop.wait(min(left, 0.05))
        return False

    def drop_connection(self) -> None:
        with self._shell.cond:
            self.drop_next_receive = True
            self._shell.cond.notify_all()

    def _write(self, fn: Callable[[], None]) -> None:
        with self._shell.cond:
            if self._pipeline.state != PSInvocationState.Running:
                return  # stopped by the client: late writes are dropped, as on Windows
            fn()
            self._shell.drain()

    def output(self, value: Any) -> None:
        self._write(lambda: self._pipeline.write_output(value))

    def error(self, message: str) -> None:
        self._write(lambda: self._pipeline.write_error(
            NETException(Message=message),
            ErrorCategoryInfo(Category=ErrorCategory.NotSpecified),
            fully_qualified_error_id="PsgenTest",
        ))

    def warning(self, message: str) -> None:
        self._write(lambda: self._pipeline.write_warning(message))

    def verbose(self, message: str) -> None:
        self._write(lambda: self._pipeline.write_verbose(message))

    def information(self, message: str) -> None:
        self._write(lambda: self._pipeline.write_information(message, "psgen-test"))


# ------------------------------------------------------------------ TLS helpers


@dataclass(frozen=True)
class TLSMaterial:
    ca_file: str  # PEM of the self-signed CA a client must trust
    cert_file: str  # server certificate (127.0.0.1 and localhost) signed by that CA
    key_file: str

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def make_tls(directory: str | Path) -> TLSMaterial:
    """Create a throwaway CA and a server certificate for 127.0.0.1 in ``directory``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "psgen test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(cert.public_bytes(pem))
    (directory / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return TLSMaterial(str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server.key"))


def refused_port() -> int:
    """A loopback TCP port with nothing listening on it (connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ PSRP state per shell


def _now() -> float:
    import time

    return time.monotonic()


def _plain(value: Any) -> Any:
    """psrpcore values (PSString, PSInt, PSList, ...) to plain Python values."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Pipe:
    def __init__(self, pipeline: ServerPipeline):
        self.pipeline = pipeline
        self.commands: list[CommandCall] | None = None
        self.no_input = True
        self.input: list[Any] = []
        self.io: HostIO | None = None
        self.started = False


class _Shell:
    def __init__(self, shell_id: str, username: str | None):
        self.id = shell_id
        self.username = username
        self.pool = ServerRunspacePool()
        self.cond = threading.Condition()
        self.outbox: dict[uuid.UUID | None, list[bytes]] = {}
        self.pipes: dict[uuid.UUID, _Pipe] = {}

    def drain(self) -> None:  # caller holds cond
        while True:
            payload = self.pool.data_to_send()
            if payload is None:
                break
            self.outbox.setdefault(payload.pipeline_id, []).append(payload.data)
        self.cond.notify_all()


# ------------------------------------------------------------------ the HTTP side


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, endpoint: "WinRMEndpoint", ctx: ssl.SSLContext | None, port: int = 0):
        self.endpoint = endpoint
        self.ctx = ctx
        super().__init__(("127.0.0.1", port), _Handler)

    def finish_request(self, request, client_address):  # runs in the connection's thread
        conn = request
        try:
            if self.ctx is not None:
                conn.settimeout(10)
                conn = self.ctx.wrap_socket(request, server_side=True)
            self.endpoint._track(conn, True)
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ssl.SSLError):
            pass  # handshake refused by the client, connection cut: nothing to answer
        finally:
            self.endpoint._track(conn, False)
            try:
                conn.close()
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - keep test output clean
        pass

    def do_POST(self):  # noqa: N802
        ep = self.server.endpoint
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        user = ep._authenticate(self.headers.get("Authorization"))
        if user is False:
            self._reply(401, b"", extra={"WWW-Authenticate": 'Basic realm="WSMAN"'})
            return
        if not body:
            self._reply(200, b"")
            return
        status, data = ep._dispatch(body, user if isinstance(user, str) else None, self)
        if status is None:  # drop the connection, answer nothing
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._reply(status, data)

    def _reply(self, status: int, data: bytes, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
    return (
        f'<s:Envelope {ns}><s:Header><wsa:Action>{action}</wsa:Action>'
        f'<wsa:MessageID>uuid:{str(uuid.uuid4()).upper()}</wsa:MessageID>'
        f'<wsa:RelatesTo>{relates_to}</wsa:RelatesTo>'
        f'<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>'
        f'</s:Header><s:Body>{body}</s:Body></s:Envelope>'
    ).encode()


def _fault(relates_to: str, code: int, message: str) -> bytes:
    body = (
        '<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>wsman:TimedOut</s:Value>'
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{message}</s:Text></s:Reason>'
        '<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
        f'Code="{code}" Machine="127.0.0.1"><f:Message>{message}</f:Message></f:WSManFault>'
        '</s:Detail></s:Fault>'
    )
    return _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


class WinRMEndpoint:
    """One simulated Windows host listening on 127.0.0.1 (see the module docstring)."""

    def __init__(self, handler: Handler, *, users: dict[str, str] | None = None,
                 tls: TLSMaterial | None = None, name: str = "host", port: int = 0):
        self.handler = handler
        self._port = port
        self.users = users
        self.tls = tls
        self.name = name
        self.files: dict[str, bytes] = {}
        self.requests: list[HostRequest] = []
        self.actions: list[str] = []  # WSMan actions in arrival order (short names)
        self.auth_failures = 0
        self._shells: dict[str, _Shell] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._conns: set = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._handler_threads: list[threading.Thread] = []

    # lifecycle -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "endpoint not started"
        return self._server.server_address[1]

    @property
    def ssl(self) -> bool:
        return self.tls is not None

    def start(self) -> "WinRMEndpoint":
        self._server = _Server(self, self.tls.server_context() if self.tls else None, self._port)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"winrm-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        for shell in list(self._shells.values()):
            with shell.cond:
                shell.cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        for t in list(self._handler_threads):
            t.join(5)

    def __enter__(self) -> "WinRMEndpoint":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _track(self, conn, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # auth ----------------------------------------------------------------------------------
    def _authenticate(self, header: str | None):
        """The user name, None when no auth is configured, or False when refused."""
        if self.users is None:
            return None
        if not header or not header.startswith("Basic "):
            self.auth_failures += 1
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except Exception:
            self.auth_failures += 1
            return False
        if self.users.get(user) != password:
            self.auth_failures += 1
            return False
        return user

    # WSMan dispatch ------------------------------------------------------------------------
    def _dispatch(self, body: bytes, user: str | None, http: _Handler) -> tuple[int | None, bytes]:
        root = ET.fromstring(body)
        header = root.find("s:Header", NS)
        action = header.findtext("wsa:Action", "", NS)
        msg_id = header.findtext("wsa:MessageID", "", NS)
        timeout_text = header.findtext("wsman:OperationTimeout", "", NS)
        m = re.fullmatch(r"PT([0-9.]+)S", timeout_text or "")
        op_timeout = min(float(m.group(1)), MAX_WAIT) if m else 20.0
        shell_id = None
        for sel in header.iterfind("wsman:SelectorSet/wsman:Selector", NS):
            if sel.get("Name") == "ShellId":
                shell_id = sel.text
        resource_uri = header.findtext("wsman:ResourceURI", "", NS)
        rbody = root.find("s:Body", NS)
        short = action.rsplit("/", 1)[-1]
        self.actions.append(short)

        if action == A_CREATE:
            return self._create(msg_id, rbody, user, resource_uri)
        shell = self._shells.get(shell_id or "")
        if shell is None:
            return 500, _fault(msg_id, 2150858843, "The request for the Windows Remote Shell with ShellId "
                               f"{shell_id} failed because the shell was not found on the server.")
        if action == A_DELETE:
            return self._delete(msg_id, shell)
        if action == A_SHELL + "Command":
            return self._command(msg_id, shell, rbody)
        if action == A_SHELL + "Send":
            return self._send(msg_id, shell, rbody)
        if action == A_SHELL + "Receive":
            return self._receive(msg_id, shell, rbody, op_timeout)
        if action == A_SHELL + "Signal":
            return self._signal(msg_id, shell, rbody)
        return 500, _fault(msg_id, 2150858817, f"The action {action} is not supported here.")

    def _create(self, msg_id, rbody, user, resource_uri):
        shell_el = rbody.find("rsp:Shell", NS)
        shell_id = (shell_el.get("ShellId") if shell_el is not None else None) or str(uuid.uuid4()).upper()
        shell = _Shell(shell_id, user)
        creation = shell_el.findtext("pwsh:creationXml", None, NS) if shell_el is not None else None
        with shell.cond:
            if creation:
                self._feed(shell, base64.b64decode(creation), StreamType.default)
            self._shells[shell_id] = shell
        body = (
            '<wst:ResourceCreated><wsa:Address>http://127.0.0.1/wsman</wsa:Address><wsa:ReferenceParameters>'
            f'<wsman:ResourceURI>{resource_uri}</wsman:ResourceURI><wsman:SelectorSet>'
            f'<wsman:Selector Name="ShellId">{shell_id}</wsman:Selector></wsman:SelectorSet>'
            '</wsa:ReferenceParameters></wst:ResourceCreated>'
            f'<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{resource_uri}</rsp:ResourceUri>'
            f'<rsp:Owner>{user or "anonymous"}</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP>'
            '<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin pr</rsp:InputStreams>'
            '<rsp:OutputStreams>stdout</rsp:OutputStreams></rsp:Shell>'
        )
        return 200, _envelope(A_CREATE + "Response", msg_id, body)

    def _delete(self, msg_id, shell):
        with shell.cond:
            for pipe in shell.pipes.values():
                if pipe.io is not None:
                    pipe.io._stop.set()
            self._shells.pop(shell.id, None)
            shell.cond.notify_all()
        return 200, _envelope(A_DELETE + "Response", msg_id, "")

    def _command(self, msg_id, shell, rbody):
        cmd = rbody.find("rsp:CommandLine", NS)
        command_id = cmd.get("CommandId") or str(uuid.uuid4()).upper()
        args = cmd.findtext("rsp:Arguments", "", NS)
        with shell.cond:
            pid = uuid.UUID(command_id)
            shell.pipes[pid] = _Pipe(ServerPipeline(shell.pool, pid))
            self._feed(shell, base64.b64decode(args), StreamType.default)
        body = f"<rsp:CommandResponse><rsp:CommandId>{command_id.upper()}</rsp:CommandId></rsp:CommandResponse>"
        return 200, _envelope(A_SHELL + "CommandResponse", msg_id, body)

    def _send(self, msg_id, shell, rbody):
        with shell.cond:
            for stream in rbody.iterfind("rsp:Send/rsp:Stream", NS):
                stype = StreamType.prompt_response if stream.get("Name") == "pr" else StreamType.default
                self._feed(shell, base64.b64decode(stream.text or ""), stype)
        return 200, _envelope(A_SHELL + "SendResponse", msg_id, "<rsp:SendResponse/>")

    def _signal(self, msg_id, shell, rbody):
        sig = rbody.find("rsp:Signal", NS)
        code = sig.findtext("rsp:Code", "", NS)
        cid = sig.get("CommandId")
        with shell.cond:
            pipe = shell.pipes.get(uuid.UUID(cid)) if cid else None
            if pipe is not None:
                if pipe.io is not None:
                    pipe.io._stop.set()
                if code.endswith("ctrl_c") and pipe.pipeline.state == PSInvocationState.Running:
                    pipe.pipeline.stop()
                    shell.drain()
                elif code.endswith("Terminate"):
                    shell.pipes.pop(pipe.pipeline.pipeline_id, None)
                    shell.pool.pipeline_table.pop(pipe.pipeline.pipeline_id, None)
            shell.cond.notify_all()
        return 200, _envelope(A_SHELL + "SignalResponse", msg_id, "<rsp:SignalResponse/>")

    def _receive(self, msg_id, shell, rbody, op_timeout):
        desired = rbody.find("rsp:Receive/rsp:DesiredStream", NS)
        cid = desired.get("CommandId") if desired is not None else None
        target = uuid.UUID(cid) if cid else None
        deadline = _now() + op_timeout
        with shell.cond:
            pipe = shell.pipes.get(target) if target else None
            while True:
                if pipe is not None and pipe.io is not None and pipe.io.drop_next_receive:
                    pipe.io.drop_next_receive = False
                    return None, b""
                if shell.outbox.get(target) or self._closing.is_set():
                    break
                left = deadline - _now()
                if left <= 0:
                    break
                shell.cond.wait(min(left, 0.5))
            chunks = shell.outbox.pop(target, [])
            done = pipe is not None and pipe.pipeline.state in (
                PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)
        if not chunks:
            return 500, _fault(msg_id, TIMED_OUT, "The WS-Management service cannot complete the operation "
                               "within the time specified in OperationTimeout.")
        cattr = f' CommandId="{cid}"' if cid else ""
        data = base64.b64encode(b"".join(chunks)).decode()
        state = ""
        if cid:
            st = "Done" if done else "Running"
            state = (f'<rsp:CommandState{cattr} State="http://schemas.microsoft.com/wbem/wsman/1/windows/'
                     f'shell/CommandState/{st}"/>')
        body = f'<rsp:ReceiveResponse><rsp:Stream Name="stdout"{cattr}>{data}</rsp:Stream>{state}</rsp:ReceiveResponse>'
        return 200, _envelope(A_SHELL + "ReceiveResponse", msg_id, body)

    # PSRP ----------------------------------------------------------------------------------
    def _feed(self, shell: _Shell, data: bytes, stype: StreamType) -> None:  # caller holds cond
        shell.pool.receive_data(PSRPPayload(data, stype, None))
        while True:
            event = shell.pool.next_event()
            if event is None:
                break
            if isinstance(event, CreatePipelineEvent):
                pipe = shell.pipes[event.pipeline_id]
                meta = pipe.pipeline.metadata or event.pipeline  # psrpcore already converted it
                pipe.no_input = bool(meta.no_input)
                pipe.commands = [self._command_call(c) for c in meta.commands]
                if pipe.no_input:
                    self._start(shell, pipe)
            elif isinstance(event, PipelineInputEvent):
                shell.pipes[event.pipeline_id].input.append(_plain(event.data))
            elif isinstance(event, EndOfPipelineInputEvent):
                self._start(shell, shell.pipes[event.pipeline_id])
        shell.drain()

    @staticmethod
    def _command_call(c) -> CommandCall:
        params: dict[str, Any] = {}
        args: list[Any] = []
        for name, value in c.parameters:
            if name is None:
                args.append(_plain(value))
            else:
                params[str(name)] = _plain(value)
        return CommandCall(str(c.command_text), bool(c.is_script), params, args)

    def _start(self, shell: _Shell, pipe: _Pipe) -> None:  # caller holds cond
        if pipe.started:
            return
        pipe.started = True
        pipe.pipeline.start()
        pipe.io = HostIO(shell, pipe.pipeline, self)
        req = HostRequest(self.name, shell.username, shell.id, str(pipe.pipeline.pipeline_id).upper(),
                          pipe.commands or [], pipe.input, self.files)
        self.requests.append(req)
        t = threading.Thread(target=self._run, args=(shell, pipe, req), daemon=True,
                             name=f"winrm-{self.name}-pipeline")
        with self._lock:
            self._handler_threads = [x for x in self._handler_threads if x.is_alive()] + [t]
        t.start()

    def _run(self, shell: _Shell, pipe: _Pipe, req: HostRequest) -> None:
        io = pipe.io
        assert io is not None
        error: BaseException | None = None
        result = None
        try:
            builtin = self._builtin(req, io)
            result = builtin if builtin is not _NOT_BUILTIN else self.handler(req, io)
        except BaseException as exc:  # the handler's exception is the script's terminating error
            error = exc
        with shell.cond:  # the last output and the final state go out together, in one Receive
            if pipe.pipeline.state == PSInvocationState.Running:
                if error is None:
                    if result is not None:
                        pipe.pipeline.write_output(result)
                    pipe.pipeline.complete()
                else:
                    record = ErrorRecord(
                        Exception=NETException(Message=str(error) or type(error).__name__),
                        CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.NotSpecified),
                        FullyQualifiedErrorId="PsgenTestHandlerError",
                    )
                    pipe.pipeline._change_state(PSInvocationState.Failed, error=record)
                shell.drain()

    def _builtin(self, req: HostRequest, io: HostIO) -> Any:
        from pypsrp._utils import get_pwsh_script

        if req.script is not None and req.script == get_pwsh_script("copy.ps1"):
            chunks = [base64.b64decode(x or "") for x in req.input]
            if not chunks:
                raise RuntimeError("copy: no input")
            data, expected = b"".join(chunks[:-1]), chunks[-1].decode()
            if hashlib.sha1(data).hexdigest() != expected:
                raise RuntimeError(f"Transport failure, hash mismatch: {expected}")
            dest = str(req.arguments[0])
            if len(req.arguments) > 1 and req.arguments[1] is True:
                dest = re.sub(r"%TEMP%|%TMP%", lambda _: rf"C:\Users\{req.username or 'user'}\AppData\Local\Temp",
                              dest, flags=re.I)
            self.files[dest] = data
            return dest
        if req.command.lower() == "remove-item" and req.parameters.get("LiteralPath") in self.files:
            del self.files[req.parameters["LiteralPath"]]
            return None
        return _NOT_BUILTIN


_NOT_BUILTIN = object()
