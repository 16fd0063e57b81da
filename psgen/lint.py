"""Parse PowerShell with tree-sitter-powershell and check rules on the parse tree.

Used at load time (inline PowerShell in plans must parse) and on every generated script in the
tests and in ``psgen lint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, List


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int      # 1-based
    column: int    # 1-based
    message: str

    def format(self, file: str = "<script>") -> str:
        return f"{file}:{self.line}:{self.column}: {self.rule}: {self.message}"


@lru_cache(maxsize=1)
def _parser():
    import tree_sitter as ts
    import tree_sitter_powershell as tsp

    return ts.Parser(ts.Language(tsp.language()))


def parse(text: str):
    """Parse PowerShell source text; returns a tree-sitter Tree."""
    return _parser().parse(text.encode("utf-8"))


def walk(node) -> Iterator:
    cursor = [node]
    while cursor:
        n = cursor.pop()
        yield n
        cursor.extend(reversed(n.children))


def _col(text_line: bytes, byte_col: int) -> int:
    return len(text_line[:byte_col].decode("utf-8", "replace")) + 1


def syntax_errors(text: str) -> List[Finding]:
    """ERROR and MISSING nodes, innermost first per position, as findings (1-based)."""
    tree = parse(text)
    if not tree.root_node.has_error:
        return []
    lines = text.encode("utf-8").split(b"\n")
    out: List[Finding] = []
    for n in walk(tree.root_node):
        if n.is_missing:
            row, col = n.start_point
            out.append(Finding("syntax", row + 1, _col(lines[row], col),
                               f"missing {n.type!r}"))
        elif n.type == "ERROR":
            row, col = n.start_point
            snippet = n.text.decode("utf-8", "replace").splitlines()[0][:40] if n.text else ""
            out.append(Finding("syntax", row + 1, _col(lines[row], col),
                               f"cannot parse PowerShell near {snippet!r}"))
    # The deepest ERROR is the most precise; report the last-starting one first.
    out.sort(key=lambda f: (-f.line, -f.column))
    return out


def has_here_string(text: str) -> bool:
    """True when the code holds a here-string (whose lines must not be re-indented)."""
    if "@'" not in text and '@"' not in text:
        return False
    return any("here_string" in n.type for n in walk(parse(text).root_node))
