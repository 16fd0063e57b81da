"""The one place where Python values become PowerShell source.

Templates never build PowerShell literals by hand: they call the filters defined here
(registered in compile.py). Every value ends up as one of

* a single-quoted literal (the only PowerShell literal with no interpolation), with the
  ASCII quote doubled;
* a ``[char]0xNNNN`` term for every character outside printable ASCII, so that files stay ASCII
  (Windows PowerShell 5.1 reads BOM-less files in the ANSI code page) and no control character,
  newline, NUL, bidi mark or typographic quote ever appears inside a literal;
* ``$true`` / ``$false`` / ``$null`` / decimal integers;
* ``@(...)`` arrays and ``[ordered]@{...}`` hashtables built from the above;
* a variable reference whose name was checked to be a plain identifier.

PowerShell also treats U+2018, U+2019, U+201A and U+201B as single quotes. Those are never
placed inside a literal by :func:`quote` (they become ``[char]`` terms), but
:func:`quote_unicode` shows the doubling rule for text that must stay Unicode.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

# Characters PowerShell's tokenizer accepts as a single quote inside a verbatim string.
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BAREWORD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PwshValueError(ValueError):
    """A value that has no safe PowerShell form (e.g. a float NaN or an unsupported type)."""


def _is_plain(ch: str) -> bool:
    """Printable ASCII: the only characters we place inside a literal."""
    return " " <= ch <= "~"


def _char_terms(text: str) -> list[str]:
    """``[char]0xNNNN`` terms for ``text``; characters above the BMP become surrogate pairs."""
    units = text.encode("utf-16-le")
    return [
        f"[char]0x{int.from_bytes(units[i:i + 2], 'little'):04X}" for i in range(0, len(units), 2)
    ]


_PLAIN_RUN = re.compile(r"[ -~]+")
_ALL_PLAIN = re.compile(r"[ -~]*")


def quote(text: str) -> str:
    """Return a PowerShell expression whose value is exactly ``text``, in ASCII.

    ``quote("it's")`` -> ``'it''s'``; ``quote("a\\u2013b")`` -> ``('a' + [char]0x2013 + 'b')``.
    A string that starts with a ``[char]`` term is anchored with ``[string]`` so that ``+``
    concatenates instead of adding code points.
    """
    if not isinstance(text, str):
        raise PwshValueError(f"expected a string, got {type(text).__name__}")
    if _ALL_PLAIN.fullmatch(text):
        return "'" + text.replace("'", "''") + "'"
    parts: list[str] = []
    pos = 0
    for m in _PLAIN_RUN.finditer(text):
        parts.extend(_char_terms(text[pos:m.start()]))
        parts.append("'" + m.group().replace("'", "''") + "'")
        pos = m.end()
    parts.extend(_char_terms(text[pos:]))
    if len(parts) == 1:
        term = parts[0]
        return term if term.startswith("'") else f"[string]{term}"
    if not parts[0].startswith("'"):
        parts[0] = f"[string]{parts[0]}"
    return "(" + " + ".join(parts) + ")"


def quote_unicode(text: str) -> str:
    """Single-quoted literal that keeps Unicode text, doubling all five single-quote characters.

    Only for output that is allowed to be non-ASCII (never a generated script).
    """
    return "'" + "".join(ch + ch if ch in SINGLE_QUOTES else ch for ch in text) + "'"


def boolean(value: bool) -> str:
    return "$true" if value else "$false"


def integer(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PwshValueError(f"expected an integer, got {type(value).__name__}")
    # PowerShell parses integer literals up to Int64 (decimal); larger ones become doubles.
    if not -(2**63) <= value < 2**63:
        raise PwshValueError(f"integer {value} does not fit in a 64-bit PowerShell integer")
    if value == -(2**63):
        return "[long]::MinValue"
    return str(value) if value >= 0 else f"({value})"


def variable(name: str) -> str:
    """``$name`` for a plain identifier; anything else is refused (never braced or escaped)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise PwshValueError(f"{name!r} is not a valid PowerShell variable name")
    return f"${name}"


class Raw(str):
    """PowerShell source that is already safe (e.g. a variable reference from :func:`variable`).

    Only code in psgen creates Raw values; plan text never becomes Raw.
    """


def array(items: Iterable[Any]) -> str:
    items = list(items)
    if not items:
        return "@()"
    return "@(" + ", ".join(value(i) for i in items) + ")"


def hashtable_key(key: str) -> str:
    return key if _BAREWORD_KEY.match(key) else quote(key)


def hashtable(mapping: Mapping[str, Any], indent: int = 0, ordered: bool = True) -> str:
    """``[ordered]@{ ... }`` over several lines, keys in the mapping's order (deterministic)."""
    prefix = "[ordered]@{" if ordered else "@{"
    if not mapping:
        return prefix + "}"
    pad = " " * (indent + 4)
    lines = [prefix]
    for k, v in mapping.items():
        if not isinstance(k, str):
            raise PwshValueError(f"hashtable keys must be strings, got {type(k).__name__}")
        head = f"{pad}{hashtable_key(k)} = "
        text = value(v, indent + 4)
        if len(head) + len(text) > MAX_LINE and not isinstance(v, Raw):
            if isinstance(v, str):
                text = quote_wrapped(v, indent + 4)
            elif isinstance(v, (list, tuple)) and v:
                inner = " " * (indent + 8)
                items = ",\n".join(inner + value(i, indent + 8) for i in v)
                text = "@(\n" + items + "\n" + " " * (indent + 4) + ")"
        lines.append(head + text)
    lines.append(" " * indent + "}")
    return "\n".join(lines)


MAX_LINE = 115  # the PoshCode style guide's line length; psgen lint checks it


def quote_wrapped(text: str, indent: int = 0, width: int = MAX_LINE) -> str:
    """A long string as a parenthesised concatenation, one piece a line, split after spaces.

    ``('first words ' +\n    'next words')``: the pieces concatenate back to exactly ``text``.
    """
    room = max(20, width - indent - 4 - 4)  # indent, the piece's own indent, quotes and ' +'
    pieces: list[str] = []
    current = ""
    for word in re.split(r"(?<= )", text):  # keep each space at the end of its word
        if current and len(quote(current + word)) > room:
            pieces.append(current)
            current = ""
        while len(quote(word)) > room:  # a single overlong word: cut it where it fits
            if current:
                pieces.append(current)
                current = ""
            cut = len(word) - 1
            while cut > 1 and len(quote(word[:cut])) > room:
                cut -= 1
            pieces.append(word[:cut])
            word = word[cut:]
        current += word
    if current or not pieces:
        pieces.append(current)
    if len(pieces) == 1:
        return quote(pieces[0])
    inner = " " * (indent + 4)
    body = " +\n".join(inner + quote(p) for p in pieces)
    return "(\n" + body + "\n" + " " * indent + ")"


def value(v: Any, indent: int = 0) -> str:
    """Any supported Python value as a PowerShell expression."""
    if isinstance(v, Raw):
        return str(v)
    if v is None:
        return "$null"
    if isinstance(v, bool):
        return boolean(v)
    if isinstance(v, int):
        return integer(v)
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, Mapping):
        return hashtable(v, indent)
    if isinstance(v, (list, tuple)):
        return array(v)
    raise PwshValueError(f"no PowerShell form for a value of type {type(v).__name__}")


_NOT_PLAIN = re.compile(r"[^ -~]")


def comment(text: str) -> str:
    """Text safe to place after ``#`` on one line: ASCII, no line breaks, no block terminators."""
    text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    text = _NOT_PLAIN.sub("?", text)
    return text.replace("#>", "# >").replace("<#", "< #")


def help_text(text: str) -> str:
    """Text for comment-based help: ASCII lines, no ``#>`` that would end the help block.

    Non-ASCII characters are transliterated to ``?`` because a comment cannot hold ``[char]``
    expressions; plans are told (by the loader) to keep help text ASCII.
    """
    lines = [comment(line).rstrip() for line in text.splitlines()]
    return "\n".join(lines)
