"""Shared test helpers: decode PowerShell literals, compile plans from text."""

from __future__ import annotations

import textwrap
from pathlib import Path

from psgen.lint import parse, walk

REPO = Path(__file__).resolve().parent.parent

# Node types a literal emitted by pwsh.quote may contain: strings, [char]/[string] casts,
# hexadecimal integers, '+' and parentheses. Anything else (variables, sub-expressions,
# expandable strings, commands) would mean the value escaped its literal.
LITERAL_NODE_TYPES = frozenset("""
program statement_list pipeline pipeline_chain logical_expression bitwise_expression
comparison_expression additive_expression multiplicative_expression format_expression
range_expression array_literal_expression unary_expression string_literal
verbatim_string_characters expression_with_unary_operator cast_expression type_literal
type_spec type_name type_identifier integer_literal hexadecimal_integer_literal
parenthesized_expression [ ] ( ) +
""".split())


def decode_literal(source: str) -> str:
    """Evaluate a PowerShell expression made only of literals, the way PowerShell would.

    Asserts it parses as one expression with no ERROR node and no other node types.
    """
    tree = parse(source)
    root = tree.root_node
    assert not root.has_error, f"parse error in {source!r}"
    statements = [c for c in root.children if c.type == "statement_list"]
    assert len(statements) == 1 and len(statements[0].named_children) == 1, source
    units: list[int] = []
    for node in walk(root):
        assert node.type in LITERAL_NODE_TYPES, f"unexpected {node.type} in {source!r}"
        if node.type == "verbatim_string_characters":
            body = node.text.decode("ascii")
            assert body[0] == "'" and body[-1] == "'"
            text = body[1:-1].replace("''", "'")
            units.extend(int.from_bytes(text.encode("utf-16-le")[i:i + 2], "little")
                         for i in range(0, len(text.encode("utf-16-le")), 2))
        elif node.type == "hexadecimal_integer_literal":
            units.append(int(node.text, 16))
        elif node.type == "type_identifier":
            assert node.text in (b"char", b"string"), node.text
    raw = b"".join(u.to_bytes(2, "little") for u in units)
    return raw.decode("utf-16-le", "surrogatepass")


def load(text: str, name: str = "<test>"):
    from psgen.load import load_text

    return load_text(textwrap.dedent(text), name)


MINIMAL_PLAN = """\
psgen: 1
name: minimal
title: Minimal plan
steps:
  - id: one
    title: Step one
    explain: It checks one thing.
    check: {ps: "Test-Path -LiteralPath 'C:\\\\x'"}
"""
