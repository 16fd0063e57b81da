"""Generic Windows resources: service state, registry value, path moved aside."""

from __future__ import annotations

import re
from typing import List, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from ..plan import ParamRef
from . import Bool, Int, Resource, Str, register


@register
class Service(Resource):
    """A Windows service's state and start type."""

    name = "service"
    noun = "ServiceState"
    summary = "Windows service state and start type"
    changes = "starts or stops the service and sets its start type"
    undo = "puts back the state and start type captured before the change"

    service: Str = Field(description="Service name (not the display name), e.g. Spooler.")
    state: Optional[Literal["running", "stopped"]] = Field(None, description="Desired state.")
    start_type: Optional[Union[Literal["automatic", "manual", "disabled"], ParamRef]] = Field(
        None, description="Desired start type (a parameter may supply it)."
    )
    timeout_seconds: Int = Field(60, description="How long to wait for the state to settle.")

    @model_validator(mode="after")
    def _something(self) -> "Service":
        if self.state is None and self.start_type is None:
            raise ValueError("give 'state', 'start_type' or both")
        return self

    def target(self) -> str:
        return f"service {self.service}" if isinstance(self.service, str) else "service"

    def fix_summary(self) -> str:
        parts = []
        if self.state:
            parts.append("start the service" if self.state == "running" else "stop the service")
        if isinstance(self.start_type, str):
            parts.append(f"set its start type to {self.start_type}")
        elif self.start_type is not None:
            parts.append(f"set its start type to the value of -{self.start_type.param}")
        return " and ".join(parts)

    def properties(self):
        # PowerShell's own words for the wanted status and start type.
        return {
            "Service": self.service,
            "State": {"running": "Running", "stopped": "Stopped"}.get(self.state or "", ""),
            # PowerShell compares start types case-insensitively; a parameter passes through.
            "StartType": (self.start_type.capitalize() if isinstance(self.start_type, str)
                          else self.start_type or ""),
            "TimeoutSeconds": self.timeout_seconds,
        }


_HIVES = ("HKLM:\\", "HKCU:\\", "HKCR:\\", "HKU:\\", "HKCC:\\", "Registry::")


@register
class RegistryValue(Resource):
    """A registry value that must hold given data, or be absent."""

    name = "registry_value"
    noun = "RegistryValue"
    summary = "registry value present with data and kind, or absent"
    changes = "creates, changes or removes the registry value (and creates its key if missing)"
    undo = "puts back the previous data and kind, or removes a value that did not exist"

    path: Str = Field(description="Key path, e.g. HKLM:\\SOFTWARE\\Contoso.")
    value_name: Str = Field(description="Value name ('' for the key's default value).")
    ensure: Literal["present", "absent"] = "present"
    data: Optional[Union[int, str, List[str], ParamRef]] = Field(
        None, description="Desired data (ensure: present)."
    )
    kind: Literal["String", "ExpandString", "DWord", "QWord", "MultiString"] = Field(
        "String", description="Registry value kind."
    )

    @field_validator("path")
    @classmethod
    def _hive(cls, v):
        if isinstance(v, str) and not v.startswith(_HIVES):
            raise ValueError(
                "registry path must start with HKLM:\\, HKCU:\\, HKCR:\\, HKU:\\, HKCC:\\ "
                "or Registry::"
            )
        return v

    @model_validator(mode="after")
    def _data(self) -> "RegistryValue":
        if self.ensure == "present" and self.data is None:
            raise ValueError("ensure: present needs 'data'")
        if self.ensure == "absent" and self.data is not None:
            raise ValueError("ensure: absent takes no 'data'")
        d = self.data
        if isinstance(d, ParamRef) or d is None:
            return self
        want = {"String": str, "ExpandString": str, "DWord": int, "QWord": int,
                "MultiString": list}[self.kind]
        if not isinstance(d, want) or isinstance(d, bool):
            raise ValueError(f"kind {self.kind} needs {want.__name__} data")
        if self.kind == "DWord" and not 0 <= d <= 0xFFFFFFFF:
            raise ValueError("DWord data must be between 0 and 4294967295")
        if self.kind == "QWord" and not 0 <= d <= 0x7FFFFFFFFFFFFFFF:
            raise ValueError("QWord data must be between 0 and 9223372036854775807")
        return self

    def target(self) -> str:
        if isinstance(self.path, str) and isinstance(self.value_name, str):
            return f"registry value {self.path}\\{self.value_name}"
        return "registry value"


@register
class PathMovedAside(Resource):
    """A file or folder that must not be at its path; moved to a timestamped backup, never deleted."""

    name = "path_moved_aside"
    noun = "PathMovedAside"
    summary = "file or folder moved aside to a timestamped backup name"
    changes = "renames the file or folder to NAME.<yyyyMMdd-HHmmss>.bak in the same folder"
    undo = ("renames the backup back; anything created at the path since is itself moved aside, "
            "nothing is deleted")

    path: Str = Field(description="Full path of the file or folder (environment variables "
                                  "such as %LOCALAPPDATA% are expanded on the machine).")

    @field_validator("path")
    @classmethod
    def _absolute(cls, v):
        if isinstance(v, str) and not re.match(r"^([A-Za-z]:\\|\\\\|%[A-Za-z_]+%)", v):
            raise ValueError("path must be absolute (C:\\..., \\\\server\\... or start with "
                             "an %ENVIRONMENT% variable)")
        return v

    def target(self) -> str:
        return self.path if isinstance(self.path, str) else "path"
