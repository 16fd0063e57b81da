"""Resources for repairing Claude Cowork on Windows (see plans/cowork/).

Every fact behind them comes from user reports (github.com/anthropics/claude-code issues), so
each resource reads what the machine can tell it instead of trusting a constant: the subnet
comes from the HNS network, the VM bundle from the service's own log, the DNS servers from the
connection Windows uses for the internet. Where a default names a Cowork path or service, it is
a starting point the machine confirms (a path that does not exist is skipped, never created).

Changing resources: ``dns_servers``, ``winnat_rule``, ``hns_network_absent``,
``service_running``, ``app_closed`` (a gate: it never changes anything, it refuses) and
``session_disk_reset``. Read-only findings: ``log_contains``, ``virtualization``,
``tunnel_adapters``, ``proxy_configured``, ``free_disk_space``, ``vhdx_attributes``, plus
``*_check`` variants of the changing resources that only diagnose (used by the doctor plan).
"""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar, List, Literal

from pydantic import Field, field_validator

from ..plan import ParamRef
from . import Bool, Int, Resource, Str, StrList, register
from . import generic as _generic  # noqa: F401  (registers first, whoever imports this module)

HELPERS = "resources/cowork_helpers.ps1.j2"

COWORK_SERVICE = "CoworkVMService"
VM_ADAPTER = "vEthernet (cowork-vm*)"
HNS_NETWORK = "cowork-vm*"
SERVICE_LOG = r"%ProgramData%\Claude\Logs\cowork-service.log"
# Where Claude keeps its VM bundle: the Store (MSIX) install redirects %APPDATA% into its
# package folder, whose name is matched with a wildcard rather than spelled out [cc#66778].
BUNDLES = [
    r"%LOCALAPPDATA%\Packages\Claude_*\LocalCache\Roaming\Claude\vm_bundles\claudevm.bundle",
    r"%APPDATA%\Claude\vm_bundles\claudevm.bundle",
]
NODE_LOGS = [
    r"%LOCALAPPDATA%\Packages\Claude_*\LocalCache\Roaming\Claude\logs\cowork_vm_node.log",
    r"%APPDATA%\Claude\logs\cowork_vm_node.log",
]
# Claude Code (the command-line tool) is also claude.exe; it holds none of the VM's files.
IGNORED_APP_PATHS = [r"*\.local\bin\claude.exe"]

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_PROCESS_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_FEATURE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_PATH_START = re.compile(r"^([A-Za-z]:\\|\\\\|%[A-Za-z_]+%)")


def _absolute(value, what: str = "path"):
    items = value if isinstance(value, list) else [value]
    for v in items:
        if isinstance(v, str) and not _PATH_START.match(v):
            raise ValueError(f"{what} {v!r} must be absolute (C:\\..., \\\\server\\... or start "
                             "with an %ENVIRONMENT% variable)")
        if isinstance(v, str) and v.count("*") + v.count("?") and len(
                [part for part in v.split("\\") if "*" in part or "?" in part]) > 1:
            raise ValueError(f"{what} {v!r}: only one folder level may hold a wildcard")
    return value


def _names(value, pattern: re.Pattern, what: str):
    items = value if isinstance(value, list) else [value]
    for v in items:
        if isinstance(v, str) and not pattern.match(v):
            raise ValueError(f"{v!r} is not a valid {what}")
    return value


def _regex(value: str) -> str:
    # .NET and Python regular expressions differ at the edges; this catches the plain mistakes.
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


class SplitTemplate:
    """A changing resource whose template comes in two files: ``<name>.ps1.j2`` (Get, Test and
    their helpers) and ``<name>.fix.ps1.j2`` (Set and Restore). Its check-only twin emits only
    the first, so a check-only script holds no code that could change anything."""

    @classmethod
    def check_template(cls) -> str:
        return f"resources/{cls.name}.ps1.j2"

    @classmethod
    def template(cls) -> str:
        return f"resources/{cls.name}.fix.ps1.j2"


def check_variant(cls: type[Resource], name: str, summary: str) -> type[Resource]:
    """Register a read-only twin of ``cls``: its Get and Test, never a fix.

    The doctor plan runs only findings; a step-level ``check_only`` in the plan language would
    make these twins unnecessary.
    """
    check = cls.check_template()
    twin = type(cls.__name__ + "Check", (cls,), {
        "__doc__": f"Check only: {cls.__doc__}",
        "name": name,
        "summary": summary,
        "read_only": True,
        "modules": tuple(m for m in cls.modules if m != check),
        "template": classmethod(lambda c, path=check: path),
        "__module__": __name__,
    })
    return register(twin)


# --------------------------------------------------------------------------- changing resources

class CoworkFinding(Resource):
    """Base of the read-only Cowork findings: they report, never change anything."""

    changes: ClassVar[str] = ""
    undo: ClassVar[str] = ""
    read_only: ClassVar[bool] = True
    modules: ClassVar[tuple[str, ...]] = (HELPERS,)


@register
class DnsServers(SplitTemplate, Resource):
    """DNS servers of the network adapters whose alias matches a pattern."""

    name = "dns_servers"
    noun = "DnsServerList"
    summary = "DNS servers of the network adapters matching an alias pattern"
    changes = "sets the adapters' DNS servers and clears the DNS cache"
    undo = ("puts back each adapter's previous IPv4 and IPv6 DNS servers, or hands them back "
            "to DHCP when they came from there, and clears the DNS cache")
    modules: ClassVar[tuple[str, ...]] = (HELPERS, "resources/dns_servers.ps1.j2")

    interface: Str = Field(VM_ADAPTER, description="Adapter alias pattern (wildcards allowed).")
    servers: StrList = Field(
        default_factory=list,
        description="DNS servers to set. Empty: copy the IPv4 DNS servers of the connection "
                    "Windows uses for the internet (lowest-metric default route).")
    clear_cache: Bool = Field(True, description="Clear the DNS client cache after a change.")

    @field_validator("servers")
    @classmethod
    def _addresses(cls, v):
        if isinstance(v, list):
            for item in v:
                try:
                    ipaddress.ip_address(item)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address") from None
        return v

    def target(self) -> str:
        return (f"DNS servers of {self.interface}" if isinstance(self.interface, str)
                else "DNS servers")

    def fix_summary(self) -> str:
        if isinstance(self.servers, list) and self.servers:
            what = ", ".join(self.servers)
        elif isinstance(self.servers, ParamRef):
            what = f"the servers given by -{self.servers.param} (or, when empty, those of " \
                   "the main internet connection)"
        else:
            what = "the DNS servers of the main internet connection"
        where = self.interface if isinstance(self.interface, str) else "the adapters"
        return f"set the DNS servers of {where} to {what}" + (
            " and clear the DNS cache" if self.clear_cache is True else "")


@register
class WinNatRule(SplitTemplate, Resource):
    """A WinNAT rule covering the subnet of an HNS network (read from the machine)."""

    name = "winnat_rule"
    noun = "WinNatRule"
    summary = "WinNAT rule for the subnet of an HNS NAT network"
    changes = ("creates a NAT rule for the network's subnet (replacing a same-named rule that "
               "covers an old subnet)")
    undo = ("removes only a NAT rule this run created and re-creates a rule it replaced, with "
            "its previous name and subnet")
    modules: ClassVar[tuple[str, ...]] = (HELPERS, "resources/winnat_rule.ps1.j2")

    hns_network: Str = Field(HNS_NETWORK, description="HNS network name pattern.")
    interface: Str = Field(
        VM_ADAPTER, description="Adapter alias pattern: where the subnet is read when no HNS "
                                "tool is available.")
    nat_name: Str = Field("", description="NAT rule name. Empty: the HNS network's name.")

    def target(self) -> str:
        return (f"WinNAT rule for {self.hns_network}" if isinstance(self.hns_network, str)
                else "WinNAT rule")

    def fix_summary(self) -> str:
        return ("create the missing WinNAT rule (New-NetNat) for the subnet the HNS network "
                "reports")


@register
class HnsNetworkAbsent(Resource):
    """HNS networks matching a name pattern are removed (Cowork's service re-creates them)."""

    name = "hns_network_absent"
    noun = "HnsNetworkAbsent"
    summary = "HNS network absent (built-in HostNetworkingService module, else hnsdiag.exe)"
    changes = "removes the matching HNS networks"
    undo = ("restarts the service that owns the network (it creates the network again); psgen "
            "cannot re-create an HNS network itself")
    modules: ClassVar[tuple[str, ...]] = (HELPERS,)

    network: Str = Field(HNS_NETWORK, description="HNS network name pattern.")
    network_type: Str = Field(
        "NAT", description="Only networks of this HNS type ('' for any type). A network whose "
                           "type cannot be read is left alone.")
    service: Str = Field(COWORK_SERVICE, description="Service that re-creates the network.")
    wait_seconds: Int = Field(60, description="Undo: how long to wait for the network to return.")
    app: str = Field("Claude", min_length=1, max_length=60,
                     description="Undo: the app that must be closed before the service restarts.")
    apps_closed: StrList = Field(
        default_factory=lambda: ["claude"],
        description="Undo: process names that must not run when the service restarts.")
    ignore_paths: StrList = Field(
        default_factory=lambda: list(IGNORED_APP_PATHS),
        description="Executable path patterns of processes with those names to ignore.")

    @field_validator("service")
    @classmethod
    def _service(cls, v):
        return _names(v, _SERVICE_NAME, "service name")

    def target(self) -> str:
        return f"HNS network {self.network}" if isinstance(self.network, str) else "HNS network"

    def fix_summary(self) -> str:
        return "remove the matching HNS network"


@register
class ServiceRunning(SplitTemplate, Resource):
    """A service that runs, restarted after this run changed something it depends on."""

    name = "service_running"
    noun = "ServiceRunning"
    summary = "service running (and restarted after this run's changes)"
    changes = "starts the service, or restarts it when earlier steps of this run changed something"
    undo = "puts the service back to running or stopped, as it was before"
    modules: ClassVar[tuple[str, ...]] = (HELPERS, "resources/service_running.ps1.j2")

    service: Str = Field(COWORK_SERVICE, description="Service name (not the display name).")
    restart_after_changes: Bool = Field(
        True, description="Restart when an earlier step of this run changed something.")
    app: str = Field("Claude", min_length=1, max_length=60,
                     description="Name of the app that must be closed, as the user knows it.")
    apps_closed: StrList = Field(
        default_factory=lambda: ["claude"],
        description="Process names that must not run before a restart (they hold the VM).")
    ignore_paths: StrList = Field(
        default_factory=lambda: list(IGNORED_APP_PATHS),
        description="Executable path patterns of processes with those names to ignore.")
    timeout_seconds: Int = Field(60, description="How long to wait for the service to run.")

    @field_validator("service")
    @classmethod
    def _service(cls, v):
        return _names(v, _SERVICE_NAME, "service name")

    @field_validator("apps_closed")
    @classmethod
    def _apps(cls, v):
        return _names(v, _PROCESS_NAME, "process name")

    def target(self) -> str:
        return f"service {self.service}" if isinstance(self.service, str) else "service"

    def fix_summary(self) -> str:
        return "start the service, or restart it so it picks up this run's changes"


@register
class AppClosed(Resource):
    """A gate: the named app must be closed before the next steps change anything."""

    name = "app_closed"
    noun = "AppClosed"
    gate = True
    summary = "app closed (a gate: it stops the run and asks, never closes the app)"
    changes = "nothing: when the app is open, it stops the run and asks you to close the app"
    undo = "nothing to undo"
    modules: ClassVar[tuple[str, ...]] = (HELPERS,)

    app: str = Field("Claude", min_length=1, max_length=60, description="Name shown to the user.")
    processes: StrList = Field(default_factory=lambda: ["claude"],
                               description="Process names (without .exe).")
    ignore_paths: StrList = Field(
        default_factory=lambda: list(IGNORED_APP_PATHS),
        description="Executable path patterns of processes with those names to ignore.")

    @field_validator("processes")
    @classmethod
    def _processes(cls, v):
        return _names(v, _PROCESS_NAME, "process name")

    def target(self) -> str:
        return f"the {self.app} app"

    def fix_summary(self) -> str:
        return f"stop here and ask you to close {self.app} (it is never closed for you)"


@register
class SessionDiskReset(SplitTemplate, Resource):
    """Cowork's session disk, moved aside to a backup when the logs show it broke."""

    name = "session_disk_reset"
    noun = "SessionDiskReset"
    summary = ("session disk that the logs do not report broken since it was created "
               "(bundle found from the service log, then the known install folders)")
    changes = ("stops the service, renames the disk to NAME.<yyyyMMdd-HHmmss>.bak (never "
               "deletes it), starts the service and waits for a new disk; puts the old disk "
               "back by itself when none appears")
    undo = ("stops the service, moves a newer disk aside to NAME.<stamp>.new, renames the "
            "backup back and starts the service again")
    modules: ClassVar[tuple[str, ...]] = (HELPERS, "resources/session_disk_reset.ps1.j2")

    service_log: Str = Field(SERVICE_LOG, description="The service log with '[Server] Bundle:'.")
    bundles: StrList = Field(default_factory=lambda: list(BUNDLES),
                             description="Bundle folders to try when the log names none.")
    disk: str = Field("sessiondata.vhdx", pattern=r"^[A-Za-z0-9_.-]+\.vhdx$",
                      description="File name of the session disk in the bundle.")
    symptoms: List[str] = Field(
        default_factory=lambda: [r"not a mount point", r"failed to unmount host share",
                                 r"host share not mounted"],
        min_length=1, description="Log patterns (regex) that mean the session disk is broken.")
    logs: StrList = Field(
        default_factory=lambda: list(NODE_LOGS) + [SERVICE_LOG],
        description="Logs searched for the symptoms.")
    tail_lines: Int = Field(5000, description="How many of the newest log lines to read.")
    service: Str = Field(COWORK_SERVICE, description="The service that owns the disk.")
    app: str = Field("Claude", min_length=1, max_length=60,
                     description="Name of the app that must be closed, as the user knows it.")
    apps_closed: StrList = Field(default_factory=lambda: ["claude"],
                                 description="Process names that must not run (EBUSY).")
    ignore_paths: StrList = Field(default_factory=lambda: list(IGNORED_APP_PATHS))
    wait_seconds: Int = Field(180, description="How long to wait for the new disk.")

    @field_validator("service_log", "bundles", "logs")
    @classmethod
    def _paths(cls, v):
        return _absolute(v)

    @field_validator("symptoms")
    @classmethod
    def _symptoms(cls, v):
        return [_regex(s) for s in v]

    @field_validator("service")
    @classmethod
    def _service(cls, v):
        return _names(v, _SERVICE_NAME, "service name")

    def target(self) -> str:
        return f"Cowork session disk ({self.disk})"

    def fix_summary(self) -> str:
        return (f"rename {self.disk} to a timestamped .bak, restart the service and check that "
                "a new disk appears (otherwise put the old one back)")


# --------------------------------------------------------------------------- read-only findings

@register
class LogContains(CoworkFinding):
    """A log pattern: a finding when the newest lines show it (and nothing cleared it since)."""

    name = "log_contains"
    noun = "LogPattern"
    summary = "log lines matching a pattern"

    paths: StrList = Field(description="Log files (%VARIABLES% and one wildcard folder allowed).")
    pattern: str = Field(min_length=1, description="Regular expression (.NET, case-insensitive).")
    cleared_by: str = Field(
        "", description="Regular expression: a later line matching it in the same log means "
                        "the problem went away.")
    expect: Literal["absent", "present"] = Field(
        "absent", description="absent: a match is the problem; present: a missing match is.")
    tail_lines: Int = Field(5000, description="How many of the newest lines to read per log.")

    @field_validator("paths")
    @classmethod
    def _paths(cls, v):
        return _absolute(v)

    @field_validator("pattern", "cleared_by")
    @classmethod
    def _pattern(cls, v):
        return _regex(v) if v else v

    def target(self) -> str:
        return f"logs matching /{self.pattern}/"


@register
class Virtualization(CoworkFinding):
    """Windows features and the hypervisor that Cowork's VM needs."""

    name = "virtualization"
    noun = "VirtualizationState"
    summary = "Windows virtualization features enabled and the hypervisor running"

    features: List[str] = Field(
        default_factory=lambda: ["VirtualMachinePlatform", "HypervisorPlatform"],
        description="Optional features that must be enabled (Win32_OptionalFeature names).")
    hypervisor_present: bool = Field(True, description="The hypervisor must be running.")

    @field_validator("features")
    @classmethod
    def _features(cls, v):
        return _names(v, _FEATURE_NAME, "feature name")

    def target(self) -> str:
        return "Windows virtualization"


@register
class TunnelAdapters(CoworkFinding):
    """VPN and tunnel adapters that are up (they often capture the VM's traffic or DNS)."""

    name = "tunnel_adapters"
    noun = "TunnelAdapter"
    summary = "VPN or tunnel network adapters that are connected"

    patterns: List[str] = Field(
        default_factory=lambda: [
            "*WireGuard*", "*Wintun*", "*TAP-Windows*", "*AnyConnect*", "*Cisco*VPN*",
            "*GlobalProtect*", "*PANGP*", "*Fortinet*", "*FortiClient*", "*Zscaler*",
            "*Cloudflare*", "*WARP*", "*Tailscale*", "*ZeroTier*", "*OpenVPN*", "*NordLynx*",
        ],
        min_length=1, description="Wildcard patterns matched against adapter name and description.")

    def target(self) -> str:
        return "VPN and tunnel adapters"


@register
class ProxyConfigured(CoworkFinding):
    """Proxy settings that Claude's traffic may go through (WinHTTP, the user's, variables)."""

    name = "proxy_configured"
    noun = "ProxySetting"
    summary = "proxy configured (WinHTTP, the user's Internet settings, HTTP(S)_PROXY variables)"

    variables: List[str] = Field(
        default_factory=lambda: ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"],
        description="Environment variables that set a proxy.")

    @field_validator("variables")
    @classmethod
    def _variables(cls, v):
        return _names(v, _FEATURE_NAME, "environment variable name")

    def target(self) -> str:
        return "proxy settings"


@register
class FreeDiskSpace(CoworkFinding):
    """Free space on the drive that holds a folder."""

    name = "free_disk_space"
    noun = "FreeDiskSpace"
    summary = "free space on the drive that holds a folder"

    path: Str = Field(r"%LOCALAPPDATA%", description="A folder on the drive to check.")
    min_gb: Int = Field(10, description="Smallest acceptable free space, in GB.")

    @field_validator("path")
    @classmethod
    def _paths(cls, v):
        return _absolute(v)

    def target(self) -> str:
        return f"free space on the drive of {self.path}" if isinstance(self.path, str) else \
            "free disk space"


@register
class VhdxAttributes(CoworkFinding):
    """VHDX files of Cowork's bundle that are compressed or encrypted (HCS refuses them)."""

    name = "vhdx_attributes"
    noun = "VhdxAttribute"
    summary = "compressed or encrypted virtual disks in the VM bundle"

    service_log: Str = Field(SERVICE_LOG, description="The service log with '[Server] Bundle:'.")
    bundles: StrList = Field(default_factory=lambda: list(BUNDLES),
                             description="Bundle folders to try when the log names none.")

    @field_validator("service_log", "bundles")
    @classmethod
    def _paths(cls, v):
        return _absolute(v)

    def target(self) -> str:
        return "virtual disks of the Cowork VM bundle"


# --------------------------------------------------------------------------- check-only twins

DnsServersCheck = check_variant(
    DnsServers, "dns_servers_check",
    "DNS servers of the adapters matching a pattern, compared with the wanted servers")
WinNatRuleCheck = check_variant(
    WinNatRule, "winnat_rule_check", "WinNAT rule present for the HNS network's subnet")
ServiceRunningCheck = check_variant(
    ServiceRunning, "service_running_check", "service installed and running")
SessionDiskCheck = check_variant(
    SessionDiskReset, "session_disk_check",
    "session disk not reported broken by the logs since it was created")
