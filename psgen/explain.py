"""Plan -> Markdown page: what it checks, what it may change and how to undo it."""

from __future__ import annotations

from typing import Any, Dict, List

from .plan import ParamRef, Plan


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _needs(plan: Plan) -> str:
    r = plan.requires
    parts: List[str] = ["Administrator" if r.admin else "no elevation"]
    if r.windows:
        parts.append(f"Windows {r.windows}+")
    if r.powershell:
        parts.append(f"PowerShell {r.powershell}+")
    parts += [f"module {m}" for m in r.modules]
    parts += [f"command {c}" for c in r.commands]
    return ", ".join(parts)


def _default(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return ", ".join(f"`{v}`" for v in value) or "(empty)"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def explain_markdown(plan: Plan) -> str:
    from .compile import environment

    steps: List[Dict[str, Any]] = []
    for step in plan.steps:
        model = step.model
        if model is not None:
            cls = type(model)
            checks = f"{cls.summary} ({model.target()})"
            changes = "" if cls.read_only else model.fix_summary()
            undo = "" if cls.read_only else cls.undo
        else:
            checks = "the plan's own check (PowerShell shown in the script)"
            changes = "the plan's own fix" if step.fix else ""
            undo = ("" if step.fix is None else
                    "cannot be undone: the plan marks this fix irreversible" if step.irreversible
                    else "the plan's own rollback, from the state saved before the fix")
        steps.append({
            "title": step.title,
            "explain": " ".join(step.explain.split()),
            "checks": checks,
            "changes": changes,
            "undo": undo,
            "when": step.when.reason if step.when else "",
            "advice": " ".join(step.advice.split()),
            "next": " ".join(step.next.split()),
            "references": step.references,
        })
    parameters = [
        {"name": n, "type": p.type, "default": _default(p.default),
         "description": _cell(p.description or "")}
        for n, p in plan.parameters.items()
    ]
    text = environment().get_template("explain.md.j2").render(
        plan=plan, description=plan.description.strip() or plan.title, needs=_needs(plan),
        parameters=parameters, steps=steps)
    return text.rstrip("\n") + "\n"
