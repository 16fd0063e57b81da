"""YAML plan file -> validated Plan. Every error names file, line, column and what to do."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from .errors import Problem, UserError
from .paths import plans_dir

PLAN_SUFFIXES = (".yaml", ".yml")


# --------------------------------------------------------------------------- finding plans

def catalog() -> List[Tuple[str, Path]]:
    """(catalog name, path) of every plan under plans/, sorted; name = relative path sans suffix."""
    root = plans_dir()
    out = []
    for path in sorted(root.rglob("*")):
        if path.suffix in PLAN_SUFFIXES and path.is_file():
            out.append((path.relative_to(root).with_suffix("").as_posix(), path))
    return out


def resolve(ref: str) -> Path:
    """A plan given by path, or by catalog name (``cowork/doctor``, or ``doctor`` if unique)."""
    path = Path(ref)
    if path.is_file():
        return path
    if path.suffix in PLAN_SUFFIXES or "\\" in ref:
        raise UserError.single(f"plan file not found: {ref}",
                               hint="check the path, or run 'psgen list' for the catalog")
    entries = catalog()
    exact = [p for name, p in entries if name == ref]
    if exact:
        return exact[0]
    tail = [(name, p) for name, p in entries if name.rsplit("/", 1)[-1] == ref]
    if len(tail) == 1:
        return tail[0][1]
    if len(tail) > 1:
        raise UserError.single(
            f"{ref!r} names several catalog plans: {', '.join(n for n, _ in tail)}",
            hint="give the full catalog name")
    names = [n for n, _ in entries]
    close = difflib.get_close_matches(ref, names, n=3)
    hint = f"did you mean {' or '.join(close)}?" if close else "run 'psgen list' for the catalog"
    raise UserError.single(f"no plan file or catalog plan named {ref!r}", hint=hint)


# --------------------------------------------------------------------------- YAML with marks

def _yaml():
    from ruamel.yaml import YAML

    y = YAML(typ="rt", pure=True)
    y.allow_duplicate_keys = False
    return y


def _read_yaml(text: str, file: str) -> Any:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        hint = "fix the YAML syntax at this position"
        if exc.context and exc.context_mark and exc.problem and mark is exc.problem_mark:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        if "duplicate key" in str(exc):
            import re

            found = re.search(r'duplicate key "(.*?)"', str(exc))
            problem = f"duplicate key {found.group(1)!r}" if found else "duplicate key"
            hint = "each key may appear once per mapping; remove or merge one of them"
        elif "tab" in problem.lower():
            hint = "YAML indentation must use spaces, not tabs"
        elif "mapping values are not allowed" in problem:
            hint = "a value containing ': ' must be quoted"
        raise UserError([Problem(f"YAML: {problem}", file=file,
                                 line=mark.line + 1 if mark else None,
                                 column=mark.column + 1 if mark else None, hint=hint)]) from None
    except YAMLError as exc:
        raise UserError.single(f"YAML: {exc}", file=file, hint="fix the YAML syntax") from None


def _position(root: Any, loc: Sequence[Any], at_key: bool = False) -> Tuple[int, int]:
    """(line, col), 1-based, of the YAML node at ``loc`` (as far as the path resolves)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node = root
    line, col = (getattr(getattr(root, "lc", None), "line", 0) or 0,
                 getattr(getattr(root, "lc", None), "col", 0) or 0)
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            kl, kc = node.lc.key(part)
            vl, vc = node.lc.value(part)
            line, col = (kl, kc) if (last and at_key) else (vl, vc)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        elif isinstance(node, (CommentedMap, CommentedSeq)):
            continue  # pydantic union tags and the like: not in the YAML
        else:
            break
    return line + 1, col + 1


# --------------------------------------------------------------------------- pydantic errors

def _keys_of(model_cls) -> List[str]:
    return [info.alias or name for name, info in model_cls.model_fields.items()]


def _model_at(loc: Sequence[Any], root_cls, resource_cls=None):
    """The pydantic model class that owns the last key in ``loc`` (for 'did you mean')."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    cls = root_cls
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        if part == "with" and resource_cls is not None:
            cls = resource_cls
            continue
        fields = {info.alias or n: info for n, info in cls.model_fields.items()}
        info = fields.get(part)
        if info is None:
            return None
        ann = info.annotation
        found = None
        stack = [ann]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                found = t
                break
            stack.extend(get_args(t))
            if get_origin(t) is dict:
                stack = list(get_args(t)[1:])
        cls = found
    return cls


def _where(root: Any, loc: Sequence[Any]) -> str:
    """A human name for the place at ``loc``: "step 'winnat' with.state", "parameter 'Dns'"."""
    parts: List[str] = []
    i = 0
    loc = list(loc)
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        try:
            sid = root["steps"][loc[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            sid = None
        parts.append(f"step {sid!r}" if isinstance(sid, str) else f"step {loc[1] + 1}")
        i = 2
    elif len(loc) >= 2 and loc[0] == "parameters":
        parts.append(f"parameter {loc[1]!r}")
        i = 2
    rest = ".".join(str(p) for p in loc[i:] if not isinstance(p, int))
    if rest:
        parts.append(rest)
    return " ".join(parts) or "plan"


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _describe(err: dict, full_loc: Sequence[Any], root: Any, root_cls,
              resource_cls=None) -> Tuple[str, Optional[str]]:
    loc = list(err["loc"])
    kind = err["type"]
    key = loc[-1] if loc else None
    where = _where(root, full_loc)
    if kind == "extra_forbidden":
        owner = _model_at(loc, root_cls or resource_cls, resource_cls)
        allowed = _keys_of(owner) if owner else []
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + (
            f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it")
        return f"unknown key {key!r}", hint
    if kind == "missing":
        return f"missing required key {key!r}", f"add '{key}:' here"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "literal_error" and key == "psgen":
        return "unsupported plan format version", "write 'psgen: 1' at the top of the plan"
    if kind == "string_pattern_mismatch" and key in ("id", "name"):
        return (f"{'step id' if key == 'id' else 'plan name'} {err['input']!r} is not a valid name",
                "use lower-case letters, digits and dashes, starting with a letter")
    if kind == "too_short" and key == "steps":
        return "a plan needs at least one step", "add a step under 'steps:'"
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        return (f"{where}: {msg[0].lower() + msg[1:]}",
                "check the value's type against the plan format (README.md or 'psgen schema')")
    return f"{where}: {msg}", "see the plan format in README.md, or 'psgen schema'"


_TAG_WORDS = {"str": "a string", "int": "an integer", "bool": "true or false",
              "ParamRef": "{param: Name}", "list[str]": "a list of strings",
              "list[int]": "a list of integers", "dict[str,any]": "a mapping"}


def _split_tags(root: Any, loc: Sequence[Any]) -> Tuple[List[Any], List[str]]:
    """Separate YAML path parts from pydantic's union member tags in an error location."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node, path, tags = root, [], []
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and (part in _TAG_WORDS or part[:1].isupper()
                                        or "[" in part or part.startswith("function-")):
            tags.append(part)
        elif last and not tags:
            path.append(part)
        else:
            tags.append(str(part))
            node = None
    return path, tags


def _pydantic_problems(exc, root, file: str, prefix: Sequence[Any] = (),
                       root_cls=None, resource_cls=None) -> List[Problem]:
    problems: List[Problem] = []
    seen = set()
    unions: dict = {}
    for err in exc.errors(include_url=False):
        loc = list(prefix) + list(err["loc"])
        path, tags = _split_tags(root, loc)
        if tags and err["type"] != "value_error":
            unions.setdefault(tuple(path), []).append(tags[0])
            continue
        err = dict(err, loc=tuple(path[len(prefix):]))
        msg, hint = _describe(err, path, root, root_cls, resource_cls)
        line, col = _position(root, path, at_key=err["type"] == "extra_forbidden")
        if (line, col, msg) not in seen:
            seen.add((line, col, msg))
            problems.append(Problem(msg, file=file, line=line, column=col, hint=hint))
    for path, tags in unions.items():
        words = []
        for t in tags:
            w = _TAG_WORDS.get(t, t)
            if w not in words:
                words.append(w)
        where = _where(root, path)
        line, col = _position(root, path)
        problems.append(Problem(f"{where}: expected {' or '.join(words)}", file=file,
                                line=line, column=col,
                                hint="check the value's type against 'psgen schema'"))
    return problems


# --------------------------------------------------------------------------- semantic checks

def _to_plain(node: Any) -> Any:
    """ruamel's round-trip containers -> plain dict/list/str/int/bool (for pydantic)."""
    if isinstance(node, dict):
        return {(str(k) if not isinstance(k, (int, bool)) else k): _to_plain(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _param_refs(value: Any, path: Tuple[Any, ...] = ()) -> Iterable[Tuple[Tuple[Any, ...], str]]:
    from .plan import ParamRef

    if isinstance(value, ParamRef):
        yield path, value.param
    elif hasattr(type(value), "model_fields"):
        for name, info in type(value).model_fields.items():
            yield from _param_refs(getattr(value, name), path + (info.alias or name,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _param_refs(v, path + (i,))


def _expected_param_types(model_cls, field: str) -> set:
    """Plan parameter types a ParamRef in ``field`` may point at."""
    from typing import get_args

    info = model_cls.model_fields.get(field)
    if info is None:
        return set()
    out = set()
    stack = [info.annotation]
    while stack:
        t = stack.pop()
        if t is str:
            out.add("string")
        elif t is bool:
            out.add("bool")
        elif t is int:
            out.add("int")
        elif getattr(t, "__origin__", None) is list:
            out.add("string[]")
        stack.extend(get_args(t))
    # Literal fields hold fixed words: a parameter may feed them only as a string.
    return out


def _check_resources(plan, root, file: str) -> List[Problem]:
    from pydantic import ValidationError

    from .resources import registry

    problems: List[Problem] = []
    known = registry()
    for i, step in enumerate(plan.steps):
        if step.resource is None:
            continue
        cls = known.get(step.resource)
        if cls is None:
            close = difflib.get_close_matches(step.resource, list(known), n=1)
            line, col = _position(root, ("steps", i, "resource"))
            problems.append(Problem(
                f"unknown resource {step.resource!r}", file=file, line=line, column=col,
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + "'psgen resources' lists every resource with its properties"))
            continue
        try:
            model = cls.model_validate(step.with_)
        except ValidationError as exc:
            problems += _pydantic_problems(exc, root, file, prefix=("steps", i, "with"),
                                           root_cls=None, resource_cls=cls)
            continue
        for path, name in _param_refs(model):
            line, col = _position(root, ("steps", i, "with") + path + ("param",))
            param = plan.parameters.get(name)
            if param is None:
                close = difflib.get_close_matches(name, list(plan.parameters), n=1)
                problems.append(Problem(
                    f"unknown parameter {name!r}", file=file, line=line, column=col,
                    hint=(f"did you mean {close[0]!r}? " if close else "")
                    + "declare it under 'parameters:' at the top of the plan"))
                continue
            allowed = _expected_param_types(cls, path[0]) if path else set()
            if allowed and param.type not in allowed:
                problems.append(Problem(
                    f"parameter {name!r} is {_article(param.type)}, but {path[0]!r} takes "
                    f"{' or '.join(sorted(allowed))}", file=file, line=line, column=col,
                    hint=f"change the parameter's type or use another parameter"))
        step._model = model
    return problems


def _check_inline(plan, root, text_lines: List[str], file: str) -> List[Problem]:
    from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

    from .lint import syntax_errors

    problems: List[Problem] = []
    for i, step in enumerate(plan.steps):
        for phase in ("check", "fix", "verify", "rollback", "capture", "when"):
            block = getattr(step, phase)
            if block is None:
                continue
            errors = syntax_errors(block.ps)
            if not errors:
                continue
            first = errors[0]
            raw = root["steps"][i][phase]["ps"]
            vline, vcol = _position(root, ("steps", i, phase, "ps"))
            if isinstance(raw, (LiteralScalarString, FoldedScalarString)):
                line = vline + first.line  # content starts on the line after '|'
                src = text_lines[line - 1] if line - 1 < len(text_lines) else ""
                indent = len(src) - len(src.lstrip(" "))
                col = indent + first.column
            else:
                line = vline + first.line - 1
                quoted = text_lines[vline - 1][vcol - 1:vcol] in ("'", '"')
                col = (vcol + (1 if quoted else 0) + first.column - 1) if first.line == 1 \
                    else first.column
            problems.append(Problem(
                f"{phase} PowerShell does not parse: {first.message}", file=file,
                line=line, column=col,
                hint="fix the PowerShell syntax; inline code must parse in Windows "
                     "PowerShell 5.1 and PowerShell 7"))
    return problems


def _check_unique_ids(plan, root, file: str) -> List[Problem]:
    problems = []
    first: dict[str, int] = {}
    for i, step in enumerate(plan.steps):
        if step.id in first:
            line, col = _position(root, ("steps", i, "id"))
            fl, _ = _position(root, ("steps", first[step.id], "id"))
            problems.append(Problem(f"duplicate step id {step.id!r} (first used on line {fl})",
                                    file=file, line=line, column=col,
                                    hint="give every step its own id"))
        else:
            first[step.id] = i
    return problems


def _check_ascii_text(plan, root, file: str) -> List[Problem]:
    """Help text lives in comments, which cannot hold [char] terms: keep it ASCII."""
    problems = []
    fields = [("title",), ("description",)]
    for i, _ in enumerate(plan.steps):
        fields += [("steps", i, "title")]
    for name in plan.parameters:
        fields.append(("parameters", name, "description"))
    for path in fields:
        node: Any = root
        for p in path:
            node = node.get(p) if isinstance(node, dict) else (
                node[p] if isinstance(node, list) and isinstance(p, int) else None)
            if node is None:
                break
        if isinstance(node, str) and not node.isascii():
            bad = next(ch for ch in node if not ch.isascii())
            line, col = _position(root, path)
            problems.append(Problem(
                f"{'.'.join(str(p) for p in path)} contains the non-ASCII character "
                f"{bad!r} (U+{ord(bad):04X})", file=file, line=line, column=col,
                hint="this text goes into the script's comment-based help, which must be "
                     "ASCII; use plain quotes and dashes"))
    return problems


# --------------------------------------------------------------------------- entry points

def load_text(text: str, file: str = "<plan>"):
    from pydantic import ValidationError

    from .plan import Plan

    root = _read_yaml(text, file)
    if root is None:
        raise UserError.single("the plan is empty", file=file, line=1, column=1,
                               hint="start with 'psgen: 1', a name, a title and steps")
    if not isinstance(root, dict):
        raise UserError.single("a plan must be a YAML mapping (key: value lines)", file=file,
                               line=1, column=1, hint="start with 'psgen: 1'")
    try:
        plan = Plan.model_validate(_to_plain(root))
    except ValidationError as exc:
        raise UserError(_pydantic_problems(exc, root, file, root_cls=Plan)) from None
    problems = _check_unique_ids(plan, root, file)
    problems += _check_resources(plan, root, file)
    problems += _check_inline(plan, root, text.splitlines(), file)
    problems += _check_ascii_text(plan, root, file)
    if problems:
        raise UserError(problems)
    plan._source = file
    # Defaults are left out so that a new optional field in a later psgen does not change the
    # hash (and so the header) of every existing plan's script.
    canonical = json.dumps(plan.model_dump(mode="json", by_alias=True, exclude_defaults=True),
                           sort_keys=True, separators=(",", ":"))
    plan._sha256 = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return plan


def display_path(path: Path) -> str:
    """Relative to the current directory when inside it (stable messages and snapshots)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def read_plan_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError.single(f"cannot read plan: {exc.strerror}",
                               file=display_path(path)) from None


def load_plan(ref: str | Path):
    """Load and validate a plan by path or catalog name. Raises UserError."""
    path = resolve(str(ref))
    file = display_path(path)
    raw = read_plan_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError.single("the plan is not valid UTF-8", file=file, line=line,
                               hint="save the file as UTF-8") from None
    return load_text(text, file)
