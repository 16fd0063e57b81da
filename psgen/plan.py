"""The plan language as pydantic models. The models are the specification.

Every model forbids unknown keys. Cross-references that need the resource registry or a
PowerShell parser (resource properties, parameter references, inline PowerShell syntax) are
checked by ``load.py``, which knows where each value sits in the YAML file.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

PLAN_FORMAT = 1

# Names the generated script itself uses for its parameters; plan parameters may not reuse them.
RESERVED_PARAMETERS = frozenset(
    name.lower()
    for name in (
        "Mode", "Json", "LogPath", "JournalPath", "Help", "WhatIf", "Confirm", "Verbose",
        "Debug", "ErrorAction", "WarningAction", "InformationAction", "ErrorVariable",
        "WarningVariable", "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable",
        "ProgressAction", "Args", "Input", "PSCmdlet", "PSBoundParameters", "Host", "True",
        "False", "Null", "Error", "Matches", "This", "Event",
    )
)

IDENTIFIER = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
SLUG = r"^[a-z][a-z0-9-]{0,62}$"
VERSION = r"^[0-9]+(\.[0-9]+){1,3}$"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


class ParamRef(Model):
    """``{param: Name}``: the value of a plan parameter, compiled to the script variable $Name."""

    param: str = Field(pattern=IDENTIFIER, description="Name of a parameter of this plan.")


ParamType = Literal["string", "int", "bool", "string[]"]

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "bool": (bool,),
    "string[]": (list,),
}


def value_matches_type(value: Any, ptype: str) -> bool:
    if ptype == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if ptype == "string[]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, _PY_TYPES[ptype])


class Parameter(Model):
    """A typed script parameter. Compiled to ``param()`` with validation attributes."""

    type: ParamType = Field("string", description="string, int, bool or string[].")
    description: str = Field("", description="Shown in the script's help (.PARAMETER).")
    default: Optional[Union[bool, int, str, List[str]]] = Field(
        None, description="Value used when the parameter is not given."
    )
    required: bool = Field(False, description="Mandatory parameter (needs no default).")
    choices: Optional[List[Union[int, str]]] = Field(
        None, min_length=1, description="Allowed values (ValidateSet / ValidateRange)."
    )
    pattern: Optional[str] = Field(
        None, description="Regular expression every value must match (ValidatePattern)."
    )
    min: Optional[int] = Field(None, description="Smallest allowed int value.")
    max: Optional[int] = Field(None, description="Largest allowed int value.")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Parameter":
        t = self.type
        if (self.min is not None or self.max is not None) and t != "int":
            raise ValueError("min and max apply only to int parameters")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.pattern is not None and t not in ("string", "string[]"):
            raise ValueError("pattern applies only to string and string[] parameters")
        if self.choices is not None:
            want = "int" if t == "int" else "string"
            if t == "bool":
                raise ValueError("choices do not apply to bool parameters")
            if not all(value_matches_type(c, want) for c in self.choices):
                raise ValueError(f"every choice of this {t} parameter must be {'an' if want == 'int' else 'a'} {want}")
        if t == "bool" and (self.default is True or self.required):
            raise ValueError(
                "a bool parameter becomes a PowerShell switch, which is off unless given "
                "(Windows PowerShell 5.1 cannot pass $true to a [bool] parameter with -File); "
                "name it for the non-default behaviour, e.g. SkipRestart, and drop the default"
            )
        if self.required and self.default is not None:
            raise ValueError("a required parameter cannot have a default; drop one of them")
        if self.default is not None:
            problem = self.check_value(self.default)
            if problem:
                raise ValueError(f"default {self.default!r}: {problem}")
        return self

    def check_value(self, value: Any) -> Optional[str]:
        """Why ``value`` is not acceptable for this parameter, or None when it is."""
        if not value_matches_type(value, self.type):
            return f"expected {'an' if self.type == 'int' else 'a'} {self.type} value"
        items = value if isinstance(value, list) else [value]
        for item in items:
            if self.choices is not None and item not in self.choices:
                return f"{item!r} is not one of {', '.join(map(str, self.choices))}"
            if self.pattern is not None and not re.search(self.pattern, item):
                return f"{item!r} does not match the pattern {self.pattern!r}"
            if self.min is not None and item < self.min:
                return f"{item} is smaller than the minimum {self.min}"
            if self.max is not None and item > self.max:
                return f"{item} is greater than the maximum {self.max}"
        return None


class Requirements(Model):
    """Preconditions checked before anything changes; unmet means exit code 4."""

    admin: bool = Field(False, description="Must run elevated (Administrator).")
    windows: Optional[str] = Field(
        None, pattern=VERSION, description="Minimum Windows version, e.g. 10.0.19041."
    )
    powershell: Optional[str] = Field(
        None, pattern=VERSION, description="Minimum PowerShell version, e.g. 5.1 or 7.2."
    )
    modules: List[str] = Field(
        default_factory=list, description="PowerShell modules that must be available."
    )
    commands: List[str] = Field(
        default_factory=list, description="Commands that must be available (cmdlets or .exe)."
    )


class StepRequirements(Model):
    """Capabilities a step needs; when missing, the step is skipped with a reason."""

    admin: bool = False
    modules: List[str] = Field(default_factory=list)
    commands: List[str] = Field(default_factory=list)


class InlinePs(Model):
    """Inline PowerShell. Parsed at load time; never pasted from a parameter value."""

    ps: str = Field(min_length=1, description="PowerShell code.")


class When(Model):
    """Run the step only when ``ps`` returns $true; otherwise it is skipped with ``reason``."""

    ps: str = Field(min_length=1)
    reason: str = Field(min_length=1, description="Plain sentence shown when skipped.")


class Step(Model):
    id: str = Field(pattern=SLUG, description="Unique id: lower-case letters, digits, dashes.")
    title: str = Field(min_length=1, max_length=100)
    explain: str = Field(
        min_length=1,
        description="Plain words for a non-technical person: what is wrong and why it matters.",
    )
    advice: str = Field(
        "", description="What the person should do when this cannot be fixed automatically."
    )
    next: str = Field(
        "", description="What the person should do after a successful fix (e.g. restart WSL)."
    )
    references: List[str] = Field(default_factory=list)
    when: Optional[When] = None
    requires: Optional[StepRequirements] = None
    resource: Optional[str] = Field(None, description="Typed resource name (see psgen schema).")
    with_: Dict[str, Any] = Field(
        default_factory=dict, alias="with", description="Properties of the resource."
    )
    check: Optional[InlinePs] = Field(
        None, description="Read-only; must return $true when compliant."
    )
    fix: Optional[InlinePs] = None
    verify: Optional[InlinePs] = Field(None, description="Defaults to check.")
    rollback: Optional[InlinePs] = None
    capture: Optional[InlinePs] = Field(
        None, description="Returns the state to journal before fix; rollback receives it as $State."
    )
    irreversible: bool = Field(
        False, description="Say so on purpose when an inline fix has no rollback."
    )
    # Set by load.py: the validated resource model for `resource:` + `with:`.
    _model: Any = PrivateAttr(None)

    @property
    def model(self) -> Any:
        """The resource model instance (None for inline steps)."""
        return self._model

    @model_validator(mode="after")
    def _shape(self) -> "Step":
        inline = {
            k: getattr(self, k) for k in ("check", "fix", "verify", "rollback", "capture")
            if getattr(self, k) is not None
        }
        if self.resource is not None:
            if inline:
                raise ValueError(
                    f"a resource step cannot also have inline {', '.join(sorted(inline))}: "
                    "the resource supplies every phase"
                )
            if self.irreversible:
                raise ValueError("irreversible applies only to inline steps")
            return self
        if self.with_:
            raise ValueError("'with' needs a 'resource'")
        if self.check is None:
            raise ValueError("a step needs either 'resource' or an inline 'check'")
        if self.fix is None:
            extra = [k for k in ("verify", "rollback", "capture") if k in inline]
            if extra or self.irreversible:
                raise ValueError("a check-only step (no 'fix') cannot have "
                                 + ", ".join(extra or ["irreversible"]))
            return self
        if self.rollback is None and not self.irreversible:
            raise ValueError(
                "an inline fix needs a 'rollback', or 'irreversible: true' stated on purpose"
            )
        if self.rollback is not None and self.irreversible:
            raise ValueError("a step cannot have a 'rollback' and be 'irreversible'")
        return self

    @property
    def changes_state(self) -> bool:
        return self.resource is not None or self.fix is not None


class Plan(Model):
    psgen: Literal[1] = Field(description="Plan format version; always 1.")
    name: str = Field(pattern=SLUG, description="Script name: lower-case letters, digits, dashes.")
    title: str = Field(min_length=1, max_length=100)
    description: str = ""
    references: List[str] = Field(default_factory=list)
    requires: Requirements = Field(default_factory=Requirements)
    parameters: Dict[str, Parameter] = Field(default_factory=dict)
    steps: List[Step] = Field(min_length=1)
    # Set by load.py: where the plan came from and a hash of its validated content.
    _source: str = PrivateAttr("<memory>")
    _sha256: str = PrivateAttr("")

    @property
    def source(self) -> str:
        return self._source

    @property
    def sha256(self) -> str:
        return self._sha256

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, v: Dict[str, Parameter]) -> Dict[str, Parameter]:
        seen: dict[str, str] = {}
        for name in v:
            if not re.match(IDENTIFIER, name):
                raise ValueError(
                    f"parameter name {name!r} must start with a letter and hold only letters, "
                    "digits and underscores"
                )
            if name.lower() in RESERVED_PARAMETERS:
                raise ValueError(f"parameter name {name!r} is reserved by the generated script")
            if name.lower() in seen:
                raise ValueError(
                    f"parameters {seen[name.lower()]!r} and {name!r} differ only in case; "
                    "PowerShell names are case-insensitive"
                )
            seen[name.lower()] = name
        return v


def json_schema() -> dict:
    """JSON Schema of the plan format, including every registered resource's properties."""
    from .resources import registry

    schema = Plan.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://psgen.dev/plan.schema.json"
    defs = schema.setdefault("$defs", {})
    step = defs["Step"]
    step["properties"]["resource"] = {
        "anyOf": [{"enum": sorted(registry())}, {"type": "null"}],
        "description": step["properties"]["resource"].get("description", ""),
        "default": None,
    }
    rules = []
    for name, cls in sorted(registry().items()):
        sub = cls.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        for k, v in sub.pop("$defs", {}).items():
            defs.setdefault(k, v)
        key = f"resource_{name}"
        defs[key] = sub
        rules.append(
            {
                "if": {"properties": {"resource": {"const": name}}, "required": ["resource"]},
                "then": {"properties": {"with": {"$ref": f"#/$defs/{key}"}}},
            }
        )
    step["allOf"] = rules
    return schema


def schema_text() -> str:
    """The JSON Schema as committed in plans/plan.schema.json (stable bytes)."""
    import json

    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
