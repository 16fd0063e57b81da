"""Push a compiled script to one host or a fleet over PSRP/WinRM (pypsrp) and collect results.

The script runs on each host through ``RunspacePool`` + ``PowerShell.add_script().add_parameters()``
(or, with ``as_file``, is copied with ``Client.copy`` and run as a file so the host's execution
policy checks its signature). It is called with ``-Mode <mode> -Json`` plus the plan parameters;
its one JSON document becomes the host's :class:`HostResult`. Over PSRP there is no process exit
code: the outcome comes from the document's ``exit_code``.

Fan-out: ``parallel`` worker threads, a per-host time budget (``timeout``, all attempts included),
retries with exponential backoff only for failures before the script was sent (connection
refused, DNS, TLS handshake, no answer). Once the command is sent nothing is retried: a dropped
connection or a timeout is reported, never re-run. One host's failure never stops the others.

Nothing is lost: each result is appended to a JSON Lines file and fsync'd as soon as it is known;
``resume`` skips hosts whose script already ran (or may have run). Ctrl-C once: no new host is
started and the ones in flight finish; twice: the ones in flight are recorded as ``interrupted``.

Public API::

    HostSpec, parse_host(spec), load_inventory(path), dedupe_hosts(hosts, transport)
    Script, load_script(ref), script_from_file(path), script_from_plan(ref),
        script_parameters(text), coerce_params(pairs, script)
    ConnectOptions, build_options(...), get_password(auth, user), connection_warnings(...)
    Status, HostResult, PushReport, exit_code(results)
    push(script, hosts, ...) -> PushReport        run_host(script, host, ...) -> HostResult
    read_results(path), ResultsFile, write_junit(report, path), render_summary(...), Progress
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import json
import logging
import math
import os
import queue
import random
import re
import shlex
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .errors import Problem, UserError

log = logging.getLogger(__name__)

MODES = {"check": "Check", "fix": "Fix", "rollback": "Rollback"}
TRANSPORTS = ("https", "http")
AUTHS = ("negotiate", "kerberos", "ntlm", "basic", "certificate", "credssp")
DEFAULT_PORTS = {"https": 5986, "http": 5985}
RAW_OUTPUT_LIMIT = 64 * 1024
RECORD_SCHEMA = 1


# ====================================================================== hosts and inventories


@dataclass(frozen=True)
class HostSpec:
    """One target. ``address`` is where to connect when it differs from ``name`` (ansible_host)."""

    name: str
    port: Optional[int] = None
    transport: Optional[str] = None  # "https" | "http" | None: the run's default
    address: Optional[str] = None
    source: Optional[str] = None  # "file:line" it came from, for messages

    def resolve(self, default_transport: str) -> "HostSpec":
        transport = self.transport or default_transport
        return replace(self, transport=transport, port=self.port or DEFAULT_PORTS[transport],
                       address=self.address or self.name)

    @property
    def key(self) -> str:
        """Identity in results files: ``name:port`` (call on a resolved spec)."""
        name = f"[{self.name}]" if ":" in self.name else self.name
        return f"{name}:{self.port}" if self.port else name


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def _check_hostname(name: str) -> Optional[str]:
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if not _HOSTNAME.match(name) or ".." in name:
        return f"{name!r} is not a valid host name or IP address"
    return None


def _port(text: str) -> Optional[int]:
    if not text.isdigit():
        return None
    n = int(text)
    return n if 1 <= n <= 65535 else None


def parse_host(spec: str, *, file: Optional[str] = None, line: Optional[int] = None) -> HostSpec:
    """``HOST``, ``HOST:PORT``, ``[IPv6]:PORT`` or ``http(s)://HOST[:PORT]`` to a HostSpec."""
    text = spec.strip()
    hint = "write HOST or HOST:PORT, e.g. srv01.corp.example:5986 or [fe80::1]:5985"

    def bad(msg: str) -> UserError:
        return UserError.single(msg, hint=hint, file=file, line=line)

    transport = None
    m = re.match(r"^(https?)://(.*?)/?$", text, re.I)
    if m:
        transport, text = m.group(1).lower(), m.group(2)
    if not text:
        raise bad("empty host name")
    port: Optional[int] = None
    if text.startswith("["):
        m = re.fullmatch(r"\[([0-9A-Fa-f:.%a-zA-Z]+)\](?::(.*))?", text)
        if not m:
            raise bad(f"bad host {spec!r}: unclosed [")
        name, port_text = m.group(1), m.group(2)
        try:
            ipaddress.IPv6Address(name.split("%")[0])
        except ValueError:
            raise bad(f"{name!r} in brackets is not an IPv6 address") from None
    elif text.count(":") > 1:  # bare IPv6 address, no port
        name, port_text = text, None
        try:
            ipaddress.IPv6Address(name.split("%")[0])
        except ValueError:
            raise bad(f"{spec!r} is not a host name or IPv6 address (put IPv6 addresses in [])") from None
    else:
        name, _, port_text = text.partition(":")
        if not _:
            port_text = None
        problem = _check_hostname(name)
        if problem:
            raise bad(problem)
    if port_text is not None:
        port = _port(port_text)
        if port is None:
            raise bad(f"bad port {port_text!r} in {spec!r}: expected a number from 1 to 65535")
    src = f"{file}:{line}" if file and line else file
    return HostSpec(name=name, port=port, transport=transport, source=src)


_RANGE = re.compile(r"\[([0-9]+|[a-zA-Z]):([0-9]+|[a-zA-Z])(?::([0-9]+))?\]")


def _expand_ranges(pattern: str) -> list[str]:
    """Ansible host ranges: ``web[01:03].corp`` -> web01, web02, web03; ``db-[a:c]``."""
    m = _RANGE.search(pattern)
    if not m:
        return [pattern]
    lo, hi, step = m.group(1), m.group(2), int(m.group(3) or 1)
    head, tail = pattern[: m.start()], pattern[m.end():]
    if lo.isdigit() != hi.isdigit() or step < 1:
        raise ValueError(f"bad host range [{m.group(0)[1:-1]}]")
    if lo.isdigit():
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        values = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1, step)]
    else:
        values = [chr(c) for c in range(ord(lo), ord(hi) + 1, step)]
    if not values:
        raise ValueError(f"empty host range {m.group(0)}")
    if len(values) > 100000:
        raise ValueError(f"host range {m.group(0)} is too large")
    return [x for v in values for x in _expand_ranges(head + v + tail)]


_PORT_VARS = ("port", "ansible_port", "ansible_psrp_port", "ansible_winrm_port")
_TRANSPORT_VARS = ("transport", "ansible_psrp_protocol", "ansible_winrm_scheme")


def _host_from_vars(name: str, hvars: Mapping[str, Any], file: str, line: Optional[int]) -> HostSpec:
    base = parse_host(name, file=file, line=line)
    port, transport, address = base.port, base.transport, None
    for k in _PORT_VARS:
        if k in hvars and hvars[k] not in (None, ""):
            p = _port(str(hvars[k]))
            if p is None:
                raise UserError.single(f"bad {k} {hvars[k]!r} for host {name}: expected 1 to 65535",
                                       file=file, line=line)
            port = p
    for k in _TRANSPORT_VARS:
        if k in hvars and hvars[k] not in (None, ""):
            t = str(hvars[k]).lower()
            if t not in TRANSPORTS:
                raise UserError.single(f"bad {k} {hvars[k]!r} for host {name}: expected https or http",
                                       file=file, line=line)
            transport = t
    if hvars.get("ansible_host"):
        address = str(hvars["ansible_host"])
        problem = _check_hostname(address)
        if problem:
            raise UserError.single(f"ansible_host: {problem}", file=file, line=line)
    return HostSpec(name=base.name, port=port, transport=transport, address=address,
                    source=f"{file}:{line}" if line else file)


def load_inventory(path: str | Path) -> list[HostSpec]:
    """Hosts from a plain list, an Ansible INI inventory or an Ansible YAML inventory.

    Plain / INI lines: ``HOST[:PORT] [https|http] [key=value ...]`` with keys ``port``,
    ``transport``, ``ansible_host``, ``ansible_port``, ``ansible_psrp_port``,
    ``ansible_psrp_protocol``, ``ansible_winrm_scheme`` (other keys are ignored, and so are
    any credentials: passwords never come from inventories). ``#`` and ``;`` start comments;
    ``[group]``, ``[group:vars]`` and ``[group:children]`` sections work as in Ansible.
    """
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError.single("inventory file not found", file=file,
                               hint="check the path given to --inventory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError.single(f"cannot read inventory: {getattr(exc, 'strerror', None) or exc}",
                               file=file) from None
    first = next((ln.strip() for ln in text.splitlines()
                  if ln.strip() and not ln.lstrip().startswith(("#", ";"))), "")
    is_yaml = p.suffix.lower() in (".yml", ".yaml") or first in ("---", "all:") or first.startswith("- ")
    hosts = _yaml_inventory(text, file) if is_yaml else _ini_inventory(text, file)
    if not hosts:
        raise UserError.single("the inventory lists no hosts", file=file,
                               hint="put one host per line: HOST[:PORT] [https|http]")
    return hosts


def _ini_inventory(text: str, file: str) -> list[HostSpec]:
    group_hosts: dict[str, list[str]] = {"all": [], "ungrouped": []}
    group_vars: dict[str, dict[str, str]] = {}
    children: dict[str, list[str]] = {}
    host_vars: dict[str, dict[str, str]] = {}
    host_line: dict[str, int] = {}
    order: list[str] = []
    section, kind = "ungrouped", "hosts"
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"\s+[#;].*$", "", raw).strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"\[([^\]:\s]+)(?::(vars|children))?\]", line)
        if m:
            section, kind = m.group(1), m.group(2) or "hosts"
            group_hosts.setdefault(section, [])
            continue
        if line.startswith("["):
            raise UserError.single(f"bad section header {line!r}", file=file, line=n,
                                   hint="write [group], [group:vars] or [group:children]")
        if kind == "vars":
            k, eq, v = line.partition("=")
            if not eq:
                raise UserError.single(f"expected key=value in [{section}:vars], got {line!r}",
                                       file=file, line=n)
            group_vars.setdefault(section, {})[k.strip()] = v.strip().strip("'\"")
            continue
        if kind == "children":
            children.setdefault(section, []).append(line.split()[0])
            continue
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise UserError.single(f"cannot split the line: {exc}", file=file, line=n) from None
        pattern, hv = tokens[0], {}
        for tok in tokens[1:]:
            if tok.lower() in TRANSPORTS:
                hv["transport"] = tok.lower()
            elif "=" in tok:
                k, _, v = tok.partition("=")
                hv[k] = v
            else:
                raise UserError.single(f"unexpected {tok!r} after the host name", file=file, line=n,
                                       hint="write HOST[:PORT] [https|http] [port=N] [transport=http]")
        try:
            names = _expand_ranges(pattern)
        except ValueError as exc:
            raise UserError.single(str(exc), file=file, line=n) from None
        for name in names:
            parse_host(name, file=file, line=n)  # validate early, with the line
            if name not in host_vars:
                order.append(name)
                host_vars[name] = {}
                host_line[name] = n
            host_vars[name].update(hv)
            group_hosts.setdefault(section, []).append(name)

    parents: dict[str, list[str]] = {}
    for parent, kids in children.items():
        for kid in kids:
            parents.setdefault(kid, []).append(parent)

    def vars_of(group: str, seen: frozenset = frozenset()) -> dict[str, str]:
        merged: dict[str, str] = {}
        if group != "all":
            merged.update(group_vars.get("all", {}))
        for parent in parents.get(group, []):
            if parent not in seen:
                merged.update(vars_of(parent, seen | {group}))
        merged.update(group_vars.get(group, {}))
        return merged

    result = []
    for name in order:
        merged: dict[str, str] = {}
        for g, members in group_hosts.items():
            if name in members:
                merged.update(vars_of(g))
        merged.update(host_vars[name])
        result.append(_host_from_vars(name, merged, file, host_line[name]))
    return result


def _yaml_inventory(text: str, file: str) -> list[HostSpec]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError.single(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=file,
                               line=mark.line + 1 if mark else None) from None

    def line_of(node: Any, key: Any = None) -> Optional[int]:
        try:
            if key is not None:
                return node.lc.key(key)[0] + 1
            return node.lc.line + 1
        except Exception:
            return None

    found: dict[str, tuple[dict, Optional[int]]] = {}
    order: list[str] = []

    def add(name: Any, hvars: Any, inherited: dict, line: Optional[int]) -> None:
        if hvars is not None and not isinstance(hvars, dict):
            raise UserError.single(f"host {name}: expected a mapping of variables", file=file, line=line)
        try:
            names = _expand_ranges(str(name))
        except ValueError as exc:
            raise UserError.single(str(exc), file=file, line=line) from None
        for nm in names:
            if nm not in found:
                order.append(nm)
                found[nm] = ({}, line)
            found[nm][0].update(inherited)
            found[nm][0].update(dict(hvars or {}))

    def walk_group(name: str, group: Any, inherited: dict, depth: int) -> None:
        if depth > 50:
            raise UserError.single("groups nest too deeply (a cycle?)", file=file)
        if group is None:
            return
        if not isinstance(group, dict):
            raise UserError.single(f"group {name}: expected a mapping with hosts/vars/children",
                                   file=file, line=line_of(group))
        gvars = dict(inherited)
        gvars.update(dict(group.get("vars") or {}))
        hosts = group.get("hosts") or {}
        if isinstance(hosts, list):  # lenient: a list of names
            for item in hosts:
                add(item, None, gvars, line_of(group, "hosts"))
        elif isinstance(hosts, dict):
            for hname, hvars in hosts.items():
                add(hname, hvars, gvars, line_of(hosts, hname))
        else:
            raise UserError.single(f"group {name}: 'hosts' must be a mapping", file=file,
                                   line=line_of(group, "hosts"))
        for cname, child in (group.get("children") or {}).items():
            walk_group(str(cname), child, gvars, depth + 1)

    if data is None:
        return []
    if isinstance(data, list):  # lenient: a YAML list of HOST[:PORT] strings
        result = []
        for i, item in enumerate(data):
            ln = line_of(data) + i if line_of(data) else None
            if isinstance(item, str):
                result.append(parse_host(item, file=file, line=ln))
            else:
                raise UserError.single("expected a host name string", file=file, line=ln)
        return result
    if not isinstance(data, dict):
        raise UserError.single("expected an Ansible inventory (a mapping of groups)", file=file)
    for gname, group in data.items():
        walk_group(str(gname), group, {}, 0)
    return [_host_from_vars(n, found[n][0], file, found[n][1]) for n in order]


def dedupe_hosts(hosts: Iterable[HostSpec], default_transport: str) -> list[HostSpec]:
    """Resolve defaults and drop repeats (same name and port), keeping the first."""
    seen: set[str] = set()
    result = []
    for h in hosts:
        r = h.resolve(default_transport)
        k = r.key.lower()
        if k not in seen:
            seen.add(k)
            result.append(r)
    return result


# ====================================================================== the script and parameters


@dataclass
class ScriptParameter:
    """What a .ps1 param() block says about one parameter (best effort)."""

    name: str
    type: str = "string"  # string | int | bool | string[] | switch | any
    required: bool = False
    choices: Optional[list[str]] = None

    def check_value(self, value: Any) -> Optional[str]:
        if self.choices is not None:
            items = value if isinstance(value, list) else [value]
            lowered = [c.lower() for c in self.choices]
            for item in items:
                if str(item).lower() not in lowered:
                    return f"{item!r} is not one of {', '.join(self.choices)}"
        return None


@dataclass
class Script:
    """The exact bytes to run, and what is known about its parameters."""

    data: bytes
    name: str
    source: str
    parameters: Optional[dict[str, Any]] = None  # name -> plan Parameter or ScriptParameter
    local_path: Optional[str] = None  # the file holding exactly ``data`` (for Client.copy)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def signed(self) -> bool:
        return b"# SIG # Begin signature block" in self.data


def _strip_ps_comments(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("<#", i):
            j = text.find("#>", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "`" and c == '"' else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur, quote = [], 0, [], None
    for c in text:
        if quote:
            cur.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    parts.append("".join(cur))
    return parts


_PS_TYPES = {
    "string": "string", "system.string": "string", "int": "int", "int32": "int", "int64": "int",
    "long": "int", "system.int32": "int", "bool": "bool", "boolean": "bool", "system.boolean": "bool",
    "switch": "switch", "switchparameter": "switch", "string[]": "string[]",
    "system.string[]": "string[]",
}


def script_parameters(text: str) -> Optional[dict[str, ScriptParameter]]:
    """Read the script's ``param()`` block: names, simple types, Mandatory, ValidateSet.

    Best effort: returns None when there is no readable param block (values then pass through
    as strings and PowerShell converts them on the host).
    """
    body = _strip_ps_comments(text)
    m = re.search(r"(?i)(?<![\w$-])param\s*\(", body)
    if not m:
        return None
    depth, i, quote = 1, m.end(), None
    while i < len(body) and depth:
        c = body[i]
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        i += 1
    if depth:
        return None
    block = body[m.end(): i - 1]
    params: dict[str, ScriptParameter] = {}
    for decl in _split_top(block):
        decl = decl.strip()
        nm = re.search(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*(=|$)", decl)
        if not nm:
            continue
        attrs = decl[: nm.start()]
        sp = ScriptParameter(nm.group(1), "any")
        for attr in re.findall(r"\[\s*([A-Za-z_][\w.]*(?:\[\])?)\s*\]", attrs):
            sp.type = _PS_TYPES.get(attr.lower(), "any")
        if re.search(r"(?i)Mandatory\s*(=\s*\$true|[,)])", attrs) and nm.group(2) != "=":
            sp.required = True
        vs = re.search(r"(?i)ValidateSet\s*\(([^)]*)\)", attrs)
        if vs:
            sp.choices = [x.strip().strip("'\"") for x in _split_top(vs.group(1)) if x.strip()]
        params[sp.name] = sp
    return params


def script_from_file(path: str | Path) -> Script:
    """A .ps1 pushed as is (signed or not). Bytes are kept exactly; CRLF stays CRLF."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError.single(f"cannot read script: {exc.strerror}", file=str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError.single("the script is not UTF-8 (or ASCII) text", file=str(path), line=line,
                               hint="psgen writes ASCII scripts; re-save the file as UTF-8") from None
    return Script(data=data, name=p.stem, source=str(path), parameters=script_parameters(text),
                  local_path=str(p))


def script_from_plan(ref: str | Path) -> Script:
    """Load, validate and compile a plan (path or catalog name)."""
    from .load import load_plan

    from .compile import compile_plan

    plan = load_plan(ref)
    data = compile_plan(plan)
    params: dict[str, Any] = dict(plan.parameters)
    for extra in ("LogPath", "JournalPath"):  # the generated script's own optional parameters
        params.setdefault(extra, ScriptParameter(extra, "string"))
    return Script(data=data, name=plan.name, source=str(plan.source), parameters=params)


def load_script(ref: str | Path) -> Script:
    """A ``.ps1`` file as is, anything else as a plan (path or catalog name)."""
    return script_from_file(ref) if str(ref).lower().endswith(".ps1") else script_from_plan(ref)


_TRUE = {"true", "$true", "1", "yes", "on"}
_FALSE = {"false", "$false", "0", "no", "off"}
_RESERVED = {"mode", "json", "whatif", "confirm"}


def coerce_params(pairs: Sequence[str], script: Script) -> dict[str, Any]:
    """``NAME=VALUE`` strings to typed values, validated against the script's parameters.

    int -> int, bool -> True/False (true/false/1/0/yes/no/$true/$false), string[] -> list (split
    on commas, repeated flags add up). Plan parameters are checked with their own rules (choices,
    pattern, min, max); a required parameter that is missing is an error. Raises UserError.
    """
    declared = script.parameters
    lookup = {k.lower(): k for k in (declared or {})}
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    known = ", ".join(sorted(declared)) if declared else "(none)"
    for pair in pairs:
        name, eq, raw = pair.partition("=")
        name = name.strip()
        if not eq or not name:
            problems.append(Problem(f"--param {pair!r}: expected NAME=VALUE",
                                    hint="e.g. --param DnsServers=1.1.1.1,8.8.8.8"))
            continue
        if name.lower() in _RESERVED:
            problems.append(Problem(f"--param {name}: psgen sets -{name} itself",
                                    hint="use --mode check|fix|rollback"))
            continue
        if declared is not None and name.lower() not in lookup:
            problems.append(Problem(f"--param {name}: {script.name} has no parameter {name!r}",
                                    hint=f"its parameters are: {known}"))
            continue
        canon = lookup.get(name.lower(), name)
        ptype = getattr((declared or {}).get(canon), "type", "any")
        try:
            value: Any
            if ptype == "int":
                if not re.fullmatch(r"[+-]?[0-9]+", raw.strip()):
                    raise ValueError(f"expected a whole number, got {raw!r}")
                value = int(raw)
            elif ptype in ("bool", "switch"):
                if raw.strip().lower() in _TRUE:
                    value = True
                elif raw.strip().lower() in _FALSE:
                    value = False
                else:
                    raise ValueError(f"expected true or false, got {raw!r}")
            elif ptype == "string[]":
                items = [x.strip() for x in raw.split(",")] if raw != "" else []
                value = list(values.get(canon, [])) + items
            else:
                if canon in values:
                    raise ValueError("given twice")
                value = raw
        except ValueError as exc:
            problems.append(Problem(f"--param {canon}: {exc}"))
            continue
        values[canon] = value
    if declared:
        for canon, value in values.items():
            check = getattr(declared[canon], "check_value", None)
            problem = check(value) if check else None
            if problem:
                problems.append(Problem(f"--param {canon}: {problem}"))
        for canon, p in declared.items():
            if getattr(p, "required", False) and canon not in values:
                problems.append(Problem(f"missing --param {canon}: {script.name} requires it",
                                        hint=f"add --param {canon}=VALUE"))
    if problems:
        raise UserError(problems)
    return values


# ====================================================================== connection options and results


@dataclass
class ConnectOptions:
    """How to reach hosts. The password is never printed, logged or written to results."""

    transport: str = "https"
    auth: str = "negotiate"
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    ca_file: Optional[str] = None
    insecure: bool = False
    client_cert: Optional[str] = None  # certificate auth: PEM certificate and key
    client_key: Optional[str] = None
    operation_timeout: int = 20  # WSMan OperationTimeout (long poll), seconds
    connection_timeout: float = 30.0
    read_timeout: Optional[float] = None  # default: operation_timeout + 10
    cleanup_timeout: float = 5.0  # stopping / closing after the outcome is known
    retries: int = 2  # extra attempts, only before the script was sent
    backoff: float = 1.0  # first retry delay; doubles each time (with jitter)
    configuration_name: str = "Microsoft.PowerShell"
    no_proxy: bool = False
    remote_dir: str = r"%TEMP%"  # where --as-file copies the script

    def cert_validation(self) -> Any:
        if self.insecure:
            return False
        return self.ca_file or True


PASSWORD_ENV = "PSGEN_PASSWORD"


def get_password(auth: str, user: Optional[str], *, env: Optional[Mapping[str, str]] = None,
                 interactive: Optional[bool] = None) -> Optional[str]:
    """The password from $PSGEN_PASSWORD, else a prompt on a terminal; never from argv.

    Needed for basic, ntlm, credssp and negotiate with --user; optional for kerberos (the ticket
    cache is used without one); not used for certificate auth.
    """
    import sys

    env = os.environ if env is None else env
    if auth == "certificate":
        return None
    value = env.get(PASSWORD_ENV)
    if value is not None:
        return value
    needed = auth in ("basic", "ntlm", "credssp") or (auth == "negotiate" and user)
    if not needed:
        return None
    tty = sys.stdin.isatty() if interactive is None else interactive
    if tty:
        import getpass

        return getpass.getpass(f"Password for {user}: ")
    raise UserError.single(
        f"no password for {user}: ${PASSWORD_ENV} is not set and there is no terminal to ask",
        hint=f"set the environment variable {PASSWORD_ENV} (passwords are never taken from the "
             "command line), or use --auth kerberos with a ticket")


def build_options(*, transport: str = "https", auth: str = "negotiate", user: Optional[str] = None,
                  password: Optional[str] = None, ca_file: Optional[str] = None, insecure: bool = False,
                  client_cert: Optional[str] = None, client_key: Optional[str] = None,
                  retries: int = 2, **extra: Any) -> ConnectOptions:
    """Validated ConnectOptions; every inconsistent combination is a UserError."""
    import importlib.util

    transport, auth = transport.lower(), auth.lower()
    if transport not in TRANSPORTS:
        raise UserError.single(f"unknown transport {transport!r}", hint="use --transport https or http")
    if auth not in AUTHS:
        raise UserError.single(f"unknown auth {auth!r}", hint="use one of: " + ", ".join(AUTHS))
    if auth in ("basic", "ntlm", "credssp") and not user:
        raise UserError.single(f"--auth {auth} needs --user", hint="e.g. --user 'CORP\\admin'")
    if insecure and ca_file:
        raise UserError.single("--insecure and --ca-file contradict each other",
                               hint="keep --ca-file: it verifies the hosts' certificates")
    if ca_file and not Path(ca_file).is_file():
        raise UserError.single("CA file not found", file=str(ca_file),
                               hint="give the PEM file of the CA that signed the hosts' WinRM certificates")
    if auth == "certificate":
        if not client_cert or not client_key:
            raise UserError.single("--auth certificate needs --client-cert and --client-key (PEM files)")
        for f in (client_cert, client_key):
            if not Path(f).is_file():
                raise UserError.single("file not found", file=str(f))
    if auth == "credssp" and importlib.util.find_spec("requests_credssp") is None:
        raise UserError.single("--auth credssp needs the requests-credssp package",
                               hint="pip install requests-credssp")
    if retries < 0:
        raise UserError.single("--retries cannot be negative")
    return ConnectOptions(transport=transport, auth=auth, username=user, password=password,
                          ca_file=str(ca_file) if ca_file else None, insecure=insecure,
                          client_cert=client_cert, client_key=client_key, retries=retries, **extra)


def connection_warnings(hosts: Sequence[HostSpec], options: ConnectOptions, script: "Script",
                        as_file: bool) -> list[str]:
    """Loud warnings about risky but allowed choices (printed before anything is sent)."""
    warnings = []
    resolved = [h.resolve(options.transport) for h in hosts]
    if options.insecure and any(h.transport == "https" for h in resolved):
        warnings.append("WARNING: --insecure: TLS certificates are NOT verified. Anyone on the network "
                        "path can impersonate these hosts and capture the credentials. Use --ca-file.")
    plain = [h for h in resolved if h.transport == "http"]
    if plain and options.auth == "basic":
        warnings.append(f"WARNING: basic auth over http to {len(plain)} host(s): the password and the "
                        "script travel in clear text. Use --transport https.")
    if plain and options.auth == "certificate":
        warnings.append(f"WARNING: certificate auth needs https; {len(plain)} host(s) use http and "
                        "will fail.")
    if as_file and not script.signed:
        warnings.append("warning: --as-file with an unsigned script: hosts whose execution policy is "
                        "AllSigned will refuse it (add --sign-cert, or push a .ps1 signed with `psgen sign`).")
    return warnings


class Status(str, Enum):
    COMPLIANT = "compliant"
    FIXED = "fixed"
    ROLLED_BACK = "rolled_back"
    DRIFT = "drift"
    FIX_FAILED = "fix_failed"  # exit 2: fix failed and was rolled back
    ROLLBACK_INCOMPLETE = "rollback_incomplete"  # exit 3
    PRECONDITION_UNMET = "precondition_unmet"  # exit 4
    UNREACHABLE = "unreachable"  # connection refused, DNS, TLS handshake, no answer
    TLS_ERROR = "tls_error"  # certificate not trusted
    AUTH_FAILED = "auth_failed"
    TIMEOUT = "timeout"  # per-host budget used up after the script was sent
    CONNECTION_LOST = "connection_lost"  # after the script was sent
    INVALID_OUTPUT = "invalid_output"  # output is not the one JSON document
    ERROR = "error"  # terminating error, WSMan fault, anything else
    INTERRUPTED = "interrupted"  # abandoned on Ctrl-C while running

    def __str__(self) -> str:
        return self.value


OK_STATUSES = frozenset({Status.COMPLIANT, Status.FIXED, Status.ROLLED_BACK})
DRIFT_STATUSES = frozenset({Status.DRIFT})
SCRIPT_STATUSES = frozenset({Status.COMPLIANT, Status.FIXED, Status.ROLLED_BACK, Status.DRIFT,
                             Status.FIX_FAILED, Status.ROLLBACK_INCOMPLETE,
                             Status.PRECONDITION_UNMET})


def _utcnow() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass
class HostResult:
    """One host's outcome. ``result`` is the script's JSON document when it was valid."""

    host: str
    port: int
    status: Status
    message: str
    mode: str
    address: Optional[str] = None
    transport: Optional[str] = None
    exit_code: Optional[int] = None
    plan: Optional[str] = None
    result: Optional[dict] = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    information: list[str] = field(default_factory=list)
    raw_output: Optional[str] = None
    attempts: int = 0
    script_started: bool = False
    duration_ms: int = 0
    finished_at: str = field(default_factory=_utcnow)
    script_sha256: Optional[str] = None
    run_id: Optional[str] = None

    @property
    def key(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return f"{name}:{self.port}"

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def failed(self) -> bool:
        return self.status not in OK_STATUSES and self.status not in DRIFT_STATUSES

    @property
    def steps(self) -> list[dict]:
        steps = (self.result or {}).get("steps")
        return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []

    def to_json(self) -> dict:
        d = {"schema": RECORD_SCHEMA, "host": self.host, "port": self.port, "status": self.status.value}
        for k in ("address", "transport", "mode", "exit_code", "plan", "message", "errors", "warnings",
                  "information", "raw_output", "result", "attempts", "script_started", "duration_ms",
                  "finished_at", "script_sha256", "run_id"):
            d[k] = getattr(self, k)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "HostResult":
        kwargs = {k: d.get(k) for k in ("address", "transport", "exit_code", "plan", "result",
                                         "raw_output", "script_sha256", "run_id")}
        return cls(
            host=str(d["host"]), port=int(d["port"]), status=Status(d["status"]),
            message=str(d.get("message") or ""), mode=str(d.get("mode") or ""),
            errors=list(d.get("errors") or []), warnings=list(d.get("warnings") or []),
            information=list(d.get("information") or []), attempts=int(d.get("attempts") or 0),
            script_started=bool(d.get("script_started")), duration_ms=int(d.get("duration_ms") or 0),
            finished_at=str(d.get("finished_at") or ""), **kwargs,
        )


def exit_code(results: Iterable[HostResult]) -> int:
    """0 all compliant or fixed (or rolled back), 1 drift found and nothing failed, 2 any failure."""
    results = list(results)
    if any(r.failed for r in results):
        return 2
    if any(r.status in DRIFT_STATUSES for r in results):
        return 1
    return 0


class _Redactor:
    def __init__(self, secrets: Iterable[Optional[str]]):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 1}, key=len, reverse=True)

    def __call__(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            for s in self.secrets:
                value = value.replace(s, "***")
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        return value

    def result(self, r: HostResult) -> HostResult:
        if not self.secrets:
            return r
        return HostResult.from_json(self(r.to_json()))


# ====================================================================== one host


class _PreStart(Exception):
    """A failure before the script was sent: safe to retry when ``retryable``."""

    def __init__(self, status: Status, message: str, retryable: bool):
        super().__init__(message)
        self.status, self.message, self.retryable = status, message, retryable


def _describe_exc(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # requests nests urllib3 errors; keep the innermost readable reason
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return m.group(1).strip()
    m = re.search(r"(Failed to establish a new connection: [^'\")]+)", text)
    if m:
        return m.group(1)
    return text if len(text) < 300 else text[:300] + "..."


def _classify(exc: BaseException, started: bool, host: HostSpec, options: ConnectOptions) -> tuple[Status, str, bool]:
    """(status, message, retryable) for an exception raised while talking to a host."""
    import requests
    from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

    where = f"{host.address}:{host.port} ({host.transport})"
    if isinstance(exc, AuthenticationError):
        return (Status.AUTH_FAILED, f"authentication failed at {where} for user "
                f"{options.username or '(current)'} with {options.auth}", False)
    if isinstance(exc, requests.exceptions.SSLError):
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            reason = re.search(r"certificate verify failed: ([^(')\"]+)", text)
            return (Status.TLS_ERROR, f"the TLS certificate of {where} is not trusted"
                    f"{': ' + reason.group(1).strip() if reason else ''}; pass --ca-file with the CA "
                    "that signed it", False)
        if started:
            return Status.CONNECTION_LOST, f"TLS error after the script was sent: {_describe_exc(exc)}", False
        return Status.UNREACHABLE, f"TLS handshake with {where} failed: {_describe_exc(exc)}", True
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Status.UNREACHABLE, f"no connection to {where} within the connect timeout", not started
    if isinstance(exc, requests.exceptions.ReadTimeout):
        if started:
            return (Status.CONNECTION_LOST, f"{where} stopped answering after the script was sent; "
                    "it may still be running there (not re-run)", False)
        return Status.UNREACHABLE, f"{where} accepted the connection but did not answer", True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = _describe_exc(exc)
        if started:
            return (Status.CONNECTION_LOST, f"connection to {where} lost after the script was sent "
                    f"({reason}); it may have run or still be running there (not re-run)", False)
        if re.search(r"Name or service not known|nodename nor servname|getaddrinfo|"
                     r"Temporary failure in name resolution|No address associated", reason):
            return Status.UNREACHABLE, f"cannot resolve host name {host.address} (DNS)", True
        if "refused" in reason.lower():
            return (Status.UNREACHABLE, f"connection refused by {where}: is WinRM listening on port "
                    f"{host.port}?", True)
        return Status.UNREACHABLE, f"cannot connect to {where}: {reason}", True
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        if started:
            return (Status.CONNECTION_LOST, f"the answer from {where} was cut off after the script was "
                    f"sent ({_describe_exc(exc)}); it may have run (not re-run)", False)
        return Status.UNREACHABLE, f"the answer from {where} was cut off: {_describe_exc(exc)}", True
    if isinstance(exc, WSManFaultError):
        code = getattr(exc, "code", None)
        reason = getattr(exc, "reason", None) or str(exc)
        if code == 5:
            return Status.AUTH_FAILED, f"access denied by {where}: {reason}", False
        return Status.ERROR, f"WSMan fault from {where} (code {code}): {reason}", False
    if isinstance(exc, WinRMTransportError):
        code = getattr(exc, "code", None)
        retry = (not started) and isinstance(code, int) and code >= 500
        status = Status.UNREACHABLE if retry else Status.ERROR
        return status, f"HTTP {code} from {where}: {_describe_exc(exc)}", retry
    return Status.ERROR, f"{type(exc).__name__}: {_describe_exc(exc)}", False


def _wsman(host: HostSpec, options: ConnectOptions, remaining: float):
    from pypsrp.wsman import WSMan

    ssl = host.transport == "https"
    op = max(1, min(int(options.operation_timeout), int(remaining)))
    # above the long-poll time, but a host that accepts and then says nothing must not outlive the
    # per-host budget by much
    read = min(options.read_timeout or (op + 10), max(op + 1, remaining + 1))
    kwargs: dict[str, Any] = dict(
        port=host.port, ssl=ssl, auth=options.auth, username=options.username,
        password=options.password, cert_validation=options.cert_validation(),
        operation_timeout=op, connection_timeout=max(0.1, min(options.connection_timeout, remaining)),
        read_timeout=read, no_proxy=options.no_proxy, reconnection_retries=0,
    )
    if not ssl and options.auth in ("basic", "certificate"):
        kwargs["encryption"] = "never"
    if options.auth == "certificate":
        kwargs["certificate_pem"] = options.client_cert
        kwargs["certificate_key_pem"] = options.client_key
    return host.address, kwargs


@functools.lru_cache(maxsize=1)
def _environment_has_proxies() -> bool:
    import urllib.request

    return bool(urllib.request.getproxies())


def _tune_session(wsman: Any, options: ConnectOptions) -> None:
    """Build pypsrp's requests session up front. Without proxy settings in the environment (or
    with no_proxy) it stops requests from re-reading the environment for proxies on every request:
    the same behaviour, less CPU per host at fan-out scale."""
    transport = getattr(wsman, "transport", None)
    if transport is None or getattr(transport, "session", False) is not None:
        return
    try:
        transport.session = transport._build_session()
    except AttributeError:  # another pypsrp layout: leave it to pypsrp
        return
    if options.no_proxy or not _environment_has_proxies():
        transport.session.trust_env = False


def _text_of(obj: Any) -> str:
    return obj if isinstance(obj, str) else str(obj)


def _interpret(ps: Any, mode: str, host: HostSpec) -> tuple[Status, str, dict]:
    """Turn the pipeline's output into (status, message, fields)."""
    from pypsrp.powershell import PSInvocationState

    errors = [_text_of(e) for e in ps.streams.error]
    warnings = [_text_of(getattr(w, "message", w)) for w in ps.streams.warning]
    information = [_text_of(getattr(i, "message_data", i)) for i in ps.streams.information]
    fields: dict[str, Any] = {"errors": errors, "warnings": warnings, "information": information}
    outputs = list(ps.output)
    failed = ps.state == PSInvocationState.FAILED or ps.had_errors
    if not outputs:
        if failed:
            first = errors[-1] if errors else "no error text"
            return Status.ERROR, f"the script stopped with a terminating error: {first}", fields
        return (Status.INVALID_OUTPUT, "the script wrote nothing to the output stream "
                "(expected one JSON document from -Json)", fields)
    if all(isinstance(o, str) for o in outputs):
        text = "\n".join(outputs)
    else:
        text = "\n".join(_text_of(o) for o in outputs)
        fields["raw_output"] = text[:RAW_OUTPUT_LIMIT]
        return (Status.INVALID_OUTPUT, f"the output holds {len(outputs)} object(s) that are not JSON "
                "text (expected one JSON document from -Json)", fields)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        fields["raw_output"] = text[:RAW_OUTPUT_LIMIT]
        return Status.INVALID_OUTPUT, f"the output is not valid JSON ({exc.msg} at line {exc.lineno})", fields
    code = doc.get("exit_code") if isinstance(doc, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        fields["raw_output"] = text[:RAW_OUTPUT_LIMIT]
        return (Status.INVALID_OUTPUT, "the JSON output has no integer exit_code "
                "(is this a psgen script run with -Json?)", fields)
    fields["result"] = doc
    fields["exit_code"] = code
    fields["plan"] = doc.get("plan") if isinstance(doc.get("plan"), str) else None
    steps = [s for s in doc.get("steps") or [] if isinstance(s, dict)] if isinstance(doc.get("steps"), list) else []
    by = {}
    for s in steps:
        by.setdefault(str(s.get("status")), []).append(str(s.get("id")))

    def ids(status: str) -> str:
        names = by.get(status, [])
        return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    def first_message(status: str) -> str:
        """'id: message' of the first step with this status (and how many more there are)."""
        hits = [s for s in steps if s.get("status") == status]
        if not hits:
            return ""
        text = f"{hits[0].get('id')}" + (f": {hits[0].get('message')}" if hits[0].get("message") else "")
        return text + (f" (and {len(hits) - 1} more)" if len(hits) > 1 else "")

    n = len(steps)
    if code == 0:
        if mode == "rollback":
            return Status.ROLLED_BACK, f"rolled back {len(by.get('rolled_back', []))} of {n} steps", fields
        if by.get("fixed"):
            return Status.FIXED, f"fixed {len(by['fixed'])} of {n} steps: {ids('fixed')}", fields
        return Status.COMPLIANT, f"compliant ({n} steps)", fields
    if code == 1:
        return Status.DRIFT, f"drift in {len(by.get('drift', []))} of {n} steps: {ids('drift')}", fields
    if code == 2:
        return (Status.FIX_FAILED, "fix failed and was rolled back: "
                f"{first_message('failed') or 'see the steps'}", fields)
    if code == 3:
        detail = first_message("failed")
        return (Status.ROLLBACK_INCOMPLETE, "rollback incomplete, the host needs attention"
                + (f": {detail}" if detail else ""), fields)
    if code == 4:
        detail = first_message("skipped")
        return (Status.PRECONDITION_UNMET, "a precondition is unmet, nothing changed"
                + (f": {detail}" if detail else ""), fields)
    return Status.ERROR, f"the script reported an unknown exit_code {code}", fields


def _cleanup(ps: Any, pool: Any, wsman: Any, options: ConnectOptions, *, stop: bool, close: bool,
             remote_file: Optional[str]) -> None:
    """Best effort, short timeouts: stop a running pipeline, remove the copied file, close the shell."""
    from pypsrp.powershell import PowerShell, PSInvocationState

    if wsman is None:
        return
    try:
        t = wsman.transport
        t.connection_timeout = min(t.connection_timeout, options.cleanup_timeout)
        t.read_timeout = min(t.read_timeout, options.cleanup_timeout + 2)
        if stop and ps is not None and ps.state == PSInvocationState.RUNNING:
            try:
                ps.stop()
            except Exception as exc:  # noqa: BLE001 - cleanup never masks the outcome
                log.debug("stop failed: %s", type(exc).__name__)
        if close and pool is not None:
            if remote_file:
                try:
                    rm = PowerShell(pool)
                    rm.add_cmdlet("Remove-Item").add_parameter("LiteralPath", remote_file)
                    rm.add_parameter("Force", True)
                    rm.begin_invoke()
                    end = time.monotonic() + options.cleanup_timeout
                    while rm.state == PSInvocationState.RUNNING and time.monotonic() < end:
                        rm.poll_invoke(timeout=max(1, int(options.cleanup_timeout)))
                except Exception as exc:  # noqa: BLE001
                    log.debug("removing the copied script failed: %s", type(exc).__name__)
            try:
                pool.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("closing the shell failed: %s", type(exc).__name__)
    finally:
        try:
            wsman.close()
        except Exception:  # noqa: BLE001
            pass


def _attempt(script: Script, host: HostSpec, params: Mapping[str, Any], mode: str,
             options: ConnectOptions, deadline: float, as_file: bool,
             started: threading.Event) -> tuple[Status, str, dict]:
    """One try. Raises _PreStart before the script was sent; returns the outcome after."""
    from pypsrp.client import Client
    from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool

    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _PreStart(Status.UNREACHABLE, "no time left in the per-host budget to connect", False)
    address, kwargs = _wsman(host, options, remaining)
    wsman = pool = ps = None
    remote_file = None
    sent = False
    stop = close = False
    try:
        try:
            if as_file:
                local = script.local_path
                assert local is not None
                dest = options.remote_dir.rstrip("\\") + f"\\psgen-{script.name}-{script.sha256[:12]}.ps1"
                with Client(address, **kwargs) as client:
                    remote_file = client.copy(local, dest, configuration_name=options.configuration_name,
                                              expand_variables=True)
            from pypsrp.wsman import WSMan

            wsman = WSMan(address, **kwargs)
            _tune_session(wsman, options)
            pool = RunspacePool(wsman, configuration_name=options.configuration_name)
            pool.open()
            ps = PowerShell(pool)
            call = {"Mode": MODES[mode], "Json": True, **params}
            if as_file:
                ps.add_cmdlet(remote_file).add_parameters(call)
            else:
                ps.add_script(script.text).add_parameters(call)
            sent = True
            started.set()
            ps.begin_invoke()
        except Exception as exc:  # noqa: BLE001 - classified below
            status, message, retry = _classify(exc, sent, host, options)
            close = not isinstance(exc, OSError) and status in (Status.ERROR, Status.AUTH_FAILED)
            if not sent:
                raise _PreStart(status, message, retry) from None
            return status, message, {}
        # the script is running: from here on nothing is retried
        while ps.state == PSInvocationState.RUNNING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop = close = True
                return (Status.TIMEOUT, "the per-host timeout ran out while the script was running; "
                        "it was stopped (check the host with --mode check, not re-run)", _partial(ps))
            try:
                ps.poll_invoke(timeout=max(1, min(int(options.operation_timeout), math.ceil(remaining))))
            except Exception as exc:  # noqa: BLE001
                status, message, _ = _classify(exc, True, host, options)
                return status, message, _partial(ps)
        close = True
        return _interpret(ps, mode, host)
    finally:
        _cleanup(ps, pool, wsman, options, stop=stop, close=close,
                 remote_file=remote_file if close else None)


def _partial(ps: Any) -> dict:
    """Streams received so far (for timeouts and lost connections)."""
    try:
        return {"errors": [_text_of(e) for e in ps.streams.error],
                "warnings": [_text_of(getattr(w, "message", w)) for w in ps.streams.warning],
                "information": [_text_of(getattr(i, "message_data", i)) for i in ps.streams.information]}
    except Exception:  # noqa: BLE001
        return {}


def run_host(script: Script, host: HostSpec, *, mode: str = "check", params: Optional[Mapping[str, Any]] = None,
             options: Optional[ConnectOptions] = None, timeout: float = 600.0, as_file: bool = False,
             cancel: Optional[threading.Event] = None, started: Optional[threading.Event] = None,
             run_id: Optional[str] = None) -> Optional[HostResult]:
    """Run the script on one host (resolved HostSpec). Never raises for host problems.

    Returns None only when ``cancel`` was set before the first attempt.
    """
    options = options or ConnectOptions()
    host = host.resolve(options.transport)
    params = dict(params or {})
    cancel = cancel or threading.Event()
    started = started or threading.Event()
    t0 = time.monotonic()
    deadline = t0 + timeout
    attempts = 0
    while True:
        if cancel.is_set() and attempts == 0:
            return None
        attempts += 1
        try:
            status, message, fields = _attempt(script, host, params, mode, options, deadline, as_file, started)
            break
        except _PreStart as pre:
            status, message, fields = pre.status, pre.message, {}
            if not pre.retryable or attempts > options.retries or cancel.is_set():
                if attempts > 1:
                    message += f" (after {attempts} attempts)"
                break
            delay = options.backoff * (2 ** (attempts - 1)) * (1 + 0.25 * random.random())
            if time.monotonic() + delay >= deadline:
                message += f" (after {attempts} attempts; no time left for another)"
                break
            log.debug("retrying %s in %.2fs after: %s", host.key, delay, message)
            if cancel.wait(delay):
                message += f" (after {attempts} attempts; interrupted)"
                break
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the fleet
            log.debug("internal error on %s", host.key, exc_info=True)
            status, message, fields = Status.ERROR, f"internal error: {type(exc).__name__}: {exc}", {}
            break
    return HostResult(
        host=host.name, port=int(host.port or 0), address=host.address if host.address != host.name else None,
        transport=host.transport, status=status, message=message, mode=mode,
        attempts=attempts, script_started=started.is_set(),
        duration_ms=int((time.monotonic() - t0) * 1000), script_sha256=script.sha256, run_id=run_id,
        **fields,
    )


# ====================================================================== results files


def read_results(path: str | Path) -> tuple[dict[str, HostResult], list[str]]:
    """Results by host key (the last record of a host wins) and warnings about unreadable lines.

    A missing file reads as empty. A torn last line (crash while writing) is skipped.
    """
    p = Path(path)
    found: dict[str, HostResult] = {}
    notes: list[str] = []
    try:
        fh = p.open("r", encoding="utf-8")
    except FileNotFoundError:
        return {}, []
    except OSError as exc:
        raise UserError.single(f"cannot read results: {exc.strerror}", file=str(path)) from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = HostResult.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                notes.append(f"{path}:{n}: skipped an unreadable line")
                continue
            found[r.key.lower()] = r
    return found, notes


class ResultsFile:
    """Append-only JSON Lines; every record is flushed and fsync'd before the next host counts."""

    def __init__(self, path: str | Path, redact: _Redactor):
        self.path = Path(path)
        self.redact = redact
        try:
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open("rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    torn = fh.read(1) != b"\n"
            else:
                torn = False
            self.fh = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UserError.single(f"cannot write results: {exc.strerror}", file=str(path)) from None
        if torn:
            self.fh.write("\n")
        self.lock = threading.Lock()

    def write(self, result: HostResult) -> None:
        line = json.dumps(self.redact(result.to_json()), ensure_ascii=False) + "\n"
        with self.lock:
            self.fh.write(line)
            self.fh.flush()
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


# ====================================================================== the fan-out


@dataclass
class PushReport:
    results: list[HostResult]  # one per host, in inventory order (resumed ones included)
    resumed: list[str]  # keys of hosts taken from the resume file, not run again
    interrupted: bool
    wall_seconds: float
    script: Script
    mode: str

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else exit_code(self.results)

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for r in self.results:
            c[r.status.value] = c.get(r.status.value, 0) + 1
        return c


def push(script: Script, hosts: Sequence[HostSpec], *, mode: str = "check",
         params: Optional[Mapping[str, Any]] = None, options: Optional[ConnectOptions] = None,
         parallel: int = 10, timeout: float = 600.0, as_file: bool = False,
         results_path: Optional[str | Path] = None, resume_path: Optional[str | Path] = None,
         junit_path: Optional[str | Path] = None,
         on_begin: Optional[Callable[[int, int], None]] = None,
         on_start: Optional[Callable[[HostSpec], None]] = None,
         on_result: Optional[Callable[[HostResult], None]] = None,
         on_notice: Optional[Callable[[str], None]] = None,
         cancel: Optional[threading.Event] = None) -> PushReport:
    """Run ``script`` on every host with at most ``parallel`` at a time. See the module docstring."""
    if mode not in MODES:
        raise UserError.single(f"unknown mode {mode!r}", hint="use check, fix or rollback")
    if parallel < 1:
        raise UserError.single("--parallel must be at least 1")
    if timeout <= 0:
        raise UserError.single("--timeout must be more than 0 seconds")
    options = options or ConnectOptions()
    notice = on_notice or (lambda msg: None)
    redact = _Redactor([options.password])
    targets = dedupe_hosts(hosts, options.transport)
    if not targets:
        raise UserError.single("no hosts to push to", hint="give --host HOST or --inventory FILE")
    run_id = str(uuid.uuid4())
    cancel = cancel or threading.Event()
    t0 = time.monotonic()

    previous: dict[str, HostResult] = {}
    if resume_path is not None:
        previous, notes = read_results(resume_path)
        for note in notes:
            notice(note)
        keys = {t.key.lower() for t in targets}
        other = {(r.script_sha256, r.mode) for k, r in previous.items() if k in keys}
        other.discard((script.sha256, mode))
        if other:
            raise UserError.single(
                "the resume file holds results of a different script or mode",
                file=str(resume_path),
                hint="resume with the same script and --mode, or start a new --results file")
    done = {t.key.lower(): previous[t.key.lower()] for t in targets
            if t.key.lower() in previous and previous[t.key.lower()].script_started}
    todo = [t for t in targets if t.key.lower() not in done]
    if on_begin:
        on_begin(len(todo), len(done))

    tmp_path = None
    if as_file and script.local_path is None:
        fd, tmp_path = tempfile.mkstemp(prefix=f"psgen-{script.name}-", suffix=".ps1")
        with os.fdopen(fd, "wb") as fh:
            fh.write(script.data)
        script = replace(script, local_path=tmp_path)

    writer = ResultsFile(results_path, redact) if results_path is not None else None
    same_file = (results_path is not None and resume_path is not None
                 and Path(results_path).resolve() == Path(resume_path).resolve())
    if writer is not None and not same_file:
        for r in done.values():  # the new file must list every host too
            writer.write(r)

    collected: dict[str, HostResult] = {}
    work: "queue.Queue[HostSpec]" = queue.Queue()
    for t in todo:
        work.put(t)
    out: "queue.Queue[tuple[str, Optional[HostResult]]]" = queue.Queue()
    in_flight: dict[str, tuple[HostSpec, threading.Event]] = {}
    lock = threading.Lock()

    def worker() -> None:
        while not cancel.is_set():
            try:
                h = work.get_nowait()
            except queue.Empty:
                return
            started = threading.Event()
            with lock:
                in_flight[h.key.lower()] = (h, started)
            if on_start:
                try:
                    on_start(h)
                except Exception:  # noqa: BLE001
                    pass
            try:
                r = run_host(script, h, mode=mode, params=params, options=options, timeout=timeout,
                             as_file=as_file, cancel=cancel, started=started, run_id=run_id)
            except BaseException as exc:  # noqa: BLE001 - never lose a host
                r = HostResult(host=h.name, port=int(h.port or 0), status=Status.ERROR, mode=mode,
                               message=f"internal error: {type(exc).__name__}: {exc}",
                               script_started=started.is_set(), script_sha256=script.sha256, run_id=run_id)
            out.put((h.key.lower(), r))

    threads = [threading.Thread(target=worker, name=f"psgen-push-{i}", daemon=True)
               for i in range(min(parallel, len(todo)))]
    for th in threads:
        th.start()

    def record(key: str, r: Optional[HostResult]) -> None:
        with lock:
            in_flight.pop(key, None)
        if r is None:
            return
        r = redact.result(r)
        collected[key] = r
        if writer is not None:
            writer.write(r)
        if on_result:
            on_result(r)

    # Ctrl-C: a SIGINT handler (main thread only) counts presses instead of raising in the middle
    # of writing a result. Once: start no new host, let the ones in flight finish. Twice: leave.
    interrupts = [0]

    def on_sigint(signum: int, frame: Any) -> None:
        interrupts[0] += 1
        cancel.set()

    old_handler = None
    if threading.current_thread() is threading.main_thread():
        import signal

        old_handler = signal.signal(signal.SIGINT, on_sigint)
    notified = False
    try:
        while True:
            try:
                if interrupts[0] >= 2:
                    break
                if interrupts[0] == 1 and not notified:
                    notified = True
                    with lock:
                        n = len(in_flight)
                    notice(f"interrupted: no new hosts are started; waiting for {n} host(s) in flight "
                           "(bounded by --timeout). Press Ctrl-C again to stop waiting.")
                if not any(th.is_alive() for th in threads) and out.empty():
                    break
                try:
                    key, r = out.get(timeout=0.1)
                except queue.Empty:
                    continue
                record(key, r)
            except KeyboardInterrupt:  # raised where no handler could be installed
                interrupts[0] += 1
                cancel.set()
        if interrupts[0] >= 2:  # record what is in flight, then leave
            while not out.empty():
                record(*out.get_nowait())
            with lock:
                pending = list(in_flight.items())
            for key, (h, started) in pending:
                if started.is_set():
                    record(key, HostResult(
                        host=h.name, port=int(h.port or 0), status=Status.INTERRUPTED, mode=mode,
                        address=h.address if h.address != h.name else None, transport=h.transport,
                        message="interrupted by the user while the script was running on the host; "
                                "it may have finished or still be running (not re-run)",
                        script_started=True, script_sha256=script.sha256, run_id=run_id))
    finally:
        if old_handler is not None:
            import signal

            signal.signal(signal.SIGINT, old_handler)
        if writer is not None:
            writer.close()
        if tmp_path:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass

    results = []
    for t in targets:
        k = t.key.lower()
        if k in collected:
            results.append(collected[k])
        elif k in done:
            results.append(done[k])
    report = PushReport(results=results, resumed=[done[k].key for k in done], interrupted=interrupts[0] > 0,
                        wall_seconds=time.monotonic() - t0, script=script, mode=mode)
    if junit_path is not None:
        write_junit(report, junit_path)
    return report


# ====================================================================== reports


def write_junit(report: PushReport, path: str | Path) -> None:
    """JUnit XML: one test case per host; drift and script failures are failures, transport
    problems are errors."""
    import xml.etree.ElementTree as ET

    from .util import write_atomic

    results = report.results
    failures = sum(1 for r in results if r.status in DRIFT_STATUSES or
                   (r.failed and r.status in SCRIPT_STATUSES | {Status.INVALID_OUTPUT}))
    errors = sum(1 for r in results if r.failed and r.status not in SCRIPT_STATUSES | {Status.INVALID_OUTPUT})
    total_time = f"{sum(r.duration_ms for r in results) / 1000:.3f}"
    suites = ET.Element("testsuites", name="psgen push", tests=str(len(results)), failures=str(failures),
                        errors=str(errors), time=f"{report.wall_seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=f"psgen push {report.script.name} ({report.mode})",
                          tests=str(len(results)), failures=str(failures), errors=str(errors),
                          skipped="0", time=total_time, timestamp=_utcnow())
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="script_sha256", value=report.script.sha256)
    ET.SubElement(props, "property", name="mode", value=report.mode)
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"psgen.{report.script.name}", name=r.key,
                             time=f"{r.duration_ms / 1000:.3f}")
        if r.ok:
            pass
        elif r.status in DRIFT_STATUSES or r.status in SCRIPT_STATUSES or r.status == Status.INVALID_OUTPUT:
            el = ET.SubElement(case, "failure", type=r.status.value, message=r.message)
            el.text = "\n".join(f"{s.get('id')}: {s.get('status')} {s.get('message') or ''}".rstrip()
                                for s in r.steps) or (r.raw_output or "")
        else:
            el = ET.SubElement(case, "error", type=r.status.value, message=r.message)
            el.text = r.message
        out_lines = [f"{s.get('id')}: {s.get('status')}" for s in r.steps] + r.information
        if out_lines:
            ET.SubElement(case, "system-out").text = "\n".join(out_lines)
        err_lines = [f"error: {e}" for e in r.errors] + [f"warning: {w}" for w in r.warnings]
        if err_lines:
            ET.SubElement(case, "system-err").text = "\n".join(err_lines)
    ET.indent(suites)
    data = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="utf-8") + b"\n"
    write_atomic(path, data)


_ORDER = [Status.INTERRUPTED, Status.ROLLBACK_INCOMPLETE, Status.FIX_FAILED, Status.ERROR,
          Status.CONNECTION_LOST, Status.TIMEOUT, Status.INVALID_OUTPUT, Status.AUTH_FAILED,
          Status.TLS_ERROR, Status.UNREACHABLE, Status.PRECONDITION_UNMET, Status.DRIFT,
          Status.FIXED, Status.ROLLED_BACK, Status.COMPLIANT]


def summary_line(report: PushReport) -> str:
    counts = report.counts()
    parts = [f"{counts[s.value]} {s.value}" for s in _ORDER if s.value in counts]
    extra = f", {len(report.resumed)} from the resume file" if report.resumed else ""
    return (f"{len(report.results)} host(s) in {report.wall_seconds:.1f}s: {', '.join(parts) or 'none'}"
            f"{extra}; exit code {report.exit_code}")


def render_summary(report: PushReport, *, rich_console: Any = None, write: Callable[[str], None] = print,
                   max_ok_rows: int = 50) -> None:
    """A table of hosts (problems first) and a totals line. With ``rich_console`` a rich Table."""
    rows = sorted(report.results, key=lambda r: (_ORDER.index(r.status), r.key))
    ok_rows = [r for r in rows if r.ok]
    shown = rows if len(ok_rows) <= max_ok_rows else [r for r in rows if not r.ok]
    hidden = len(rows) - len(shown)

    def changed(r: HostResult) -> str:
        fixed = sum(1 for s in r.steps if s.get("status") == "fixed")
        drift = sum(1 for s in r.steps if s.get("status") == "drift")
        return f"{fixed}/{drift}" if r.steps else "-"

    headers = ("HOST", "STATUS", "EXIT", "FIXED/DRIFT", "TIME", "MESSAGE")
    table = [(r.key, r.status.value, "-" if r.exit_code is None else str(r.exit_code), changed(r),
              f"{r.duration_ms / 1000:.1f}s", r.message) for r in shown]
    if rich_console is not None:
        from rich.table import Table

        styles = {"compliant": "green", "fixed": "green", "rolled_back": "green", "drift": "yellow"}
        t = Table(title=f"psgen push {report.script.name} --mode {report.mode}", show_lines=False)
        for h in headers:
            t.add_column(h, overflow="fold", no_wrap=h != "MESSAGE")
        for row in table:
            t.add_row(*row, style=styles.get(row[1], "red"))
        rich_console.print(t)
        if hidden:
            rich_console.print(f"({hidden} compliant/fixed hosts not listed; see the results file)")
        rich_console.print(summary_line(report))
        return
    widths = [max([len(h)] + [len(row[i]) for row in table]) for i, h in enumerate(headers[:-1])]
    for row in [headers] + table:
        write("  ".join(c.ljust(widths[i]) for i, c in enumerate(row[:-1])) + "  " + row[-1])
    if hidden:
        write(f"({hidden} compliant/fixed hosts not listed; see the results file)")
    write(summary_line(report))


class Progress:
    """Live progress: a rich bar on a terminal, one plain line per finished host otherwise."""

    def __init__(self, total: int, *, live: bool, stream: Any = None):
        import sys

        self.total = total
        self.live = live
        self.stream = stream or sys.stderr
        self.done = 0
        self.counts: dict[str, int] = {}
        self._bar = None
        self._task = None
        self.console = None
        if live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            self.console = Console(file=self.stream)
            self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                     transient=False)
            self._task = self._bar.add_task("pushing", total=total)

    def begin(self, to_run: int, resumed: int) -> None:
        """Called by push() once it knows how many hosts it will run."""
        self.total = to_run
        if resumed:
            self.notice(f"{resumed} host(s) already done in the resume file: skipped")
        if self._bar is not None:
            self._bar.update(self._task, total=to_run)

    def __enter__(self) -> "Progress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def notice(self, message: str) -> None:
        if self.console is not None:
            self.console.print(message, style="yellow", markup=False, highlight=False)
        else:
            print(message, file=self.stream, flush=True)

    def result(self, r: HostResult) -> None:
        self.done += 1
        self.counts[r.status.value] = self.counts.get(r.status.value, 0) + 1
        line = f"[{self.done:>{len(str(self.total))}}/{self.total}] {r.key} {r.status.value}: {r.message}"
        if self._bar is not None:
            desc = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            self._bar.update(self._task, advance=1, description=desc)
            if not r.ok:
                self.console.print(line, style="red" if r.failed else "yellow", markup=False, highlight=False)
        else:
            print(line + f" ({r.duration_ms / 1000:.1f}s)", file=self.stream, flush=True)
