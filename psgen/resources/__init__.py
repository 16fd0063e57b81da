"""The resource library: typed building blocks with get / test / set / restore.

A resource is a pydantic model of its properties plus a template
(``templates/resources/<name>.ps1.j2``) that defines four PowerShell functions:

* ``Get-Psgen<Noun>``     read-only; returns the current state as a hashtable of plain values
                          (a non-empty ``PsgenSkip`` entry skips the step with that reason);
* ``Test-Psgen<Noun>``    read-only; ``$true`` when the state is compliant;
* ``Set-Psgen<Noun>``     changes the machine; every change inside ``$PSCmdlet.ShouldProcess``;
* ``Restore-Psgen<Noun>`` puts back the state that Get captured (read from the journal).

Each function takes ``-Property`` (the step's properties, compiled by pwsh.py into a
hashtable) and, except Get, ``-State`` (what Get returned before the fix). Templates are
emitted once per script however many steps use them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Union

from pydantic import ConfigDict

from ..plan import Model, ParamRef

Str = Union[str, ParamRef]
Int = Union[int, ParamRef]
Bool = Union[bool, ParamRef]
StrList = Union[List[str], ParamRef]


class Resource(Model):
    """Base of every resource model. Subclasses set the class variables below."""

    # A plan uses a few of the registered resources: build each validator on first use only.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    name: ClassVar[str]          # the `resource:` name in plans
    noun: ClassVar[str]          # PowerShell noun: Get-Psgen<noun>, Set-Psgen<noun>, ...
    summary: ClassVar[str]       # one line: what it checks
    changes: ClassVar[str]       # what Fix may change (for `psgen explain`)
    undo: ClassVar[str]          # how rollback undoes it
    read_only: ClassVar[bool] = False   # a finding: never changes anything
    gate: ClassVar[bool] = False        # a condition to meet: never changes anything; when
                                        # unmet, Fix stops before any later step (exit 4)
    modules: ClassVar[tuple[str, ...]] = ()  # helper templates it needs besides its own

    @classmethod
    def template(cls) -> str:
        return f"resources/{cls.name}.ps1.j2"

    def properties(self) -> Dict[str, Any]:
        """Properties by their PowerShell names (PascalCase), in declaration order."""
        out: Dict[str, Any] = {}
        for field, info in type(self).model_fields.items():
            value = getattr(self, field)
            key = "".join(part.capitalize() for part in (info.alias or field).split("_"))
            out[key] = value
        return out

    def fix_summary(self) -> str:
        """What Fix will do for this step, in words (ShouldProcess action, findings)."""
        return type(self).changes

    def target(self) -> str:
        """What the step acts on, in words (ShouldProcess target, explain pages)."""
        return self.name


_REGISTRY: Dict[str, type[Resource]] = {}


def register(cls: type[Resource]) -> type[Resource]:
    if cls.name in _REGISTRY:
        raise RuntimeError(f"resource {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> Dict[str, type[Resource]]:
    """All resources by name (imports the resource modules on first use)."""
    if not _REGISTRY:
        from . import generic  # noqa: F401  (registers on import)
        from . import cowork  # noqa: F401
    return _REGISTRY
