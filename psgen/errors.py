"""Errors a person can act on.

Every mistake a user can make (in a plan, a flag, a certificate, an inventory) is raised as a
``UserError``: a plain sentence, where it is (file, line, column, all 1-based) and a hint saying
what to do. The CLI prints them as ``file:line:col: error: message`` plus ``  hint: ...`` and exits
with status 2; it never shows a Python traceback for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None

    def location(self) -> str:
        parts = [p for p in (self.file, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)

    def format(self) -> str:
        loc = self.location()
        head = f"{loc}: error: {self.message}" if loc else f"error: {self.message}"
        return head + (f"\n  hint: {self.hint}" if self.hint else "")

    def sort_key(self) -> tuple:
        return (self.file or "", self.line or 0, self.column or 0, self.message)


@dataclass
class UserError(Exception):
    """One or more problems caused by user input. Exit status 2."""

    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def single(cls, message: str, *, hint: str | None = None, file: str | None = None,
               line: int | None = None, column: int | None = None) -> "UserError":
        return cls([Problem(message, file=file, line=line, column=column, hint=hint)])

    def __str__(self) -> str:
        return "\n".join(p.format() for p in sorted(self.problems, key=Problem.sort_key))
