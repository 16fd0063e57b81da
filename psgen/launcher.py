"""NAME.cmd next to NAME.ps1: a double-click launcher for the person at the keyboard.

It starts Windows PowerShell with ``-NoProfile -ExecutionPolicy Bypass -File NAME.ps1``, asks
Windows for elevation when the plan needs admin (``Start-Process -Verb RunAs`` on itself, the
path handed over in an environment variable so that no path is ever quoted into code), and
pauses at the end so the window does not vanish before the summary is read. The script itself
prints the summary and where its log is.

A .cmd file is parsed by cmd.exe in the OEM code page, so it is ASCII with CRLF line endings,
and every text placed in it is escaped for the spot it lands in.
"""

from __future__ import annotations

from .errors import UserError

# Characters cmd.exe treats specially outside double quotes (escaped with ^); % is doubled.
_CMD_SPECIAL = "^&|<>()"


def cmd_text(text: str) -> str:
    """``text`` for an unquoted spot of a batch line (echo, title): shown as written.

    Double quotes become single quotes: inside a quoted stretch cmd.exe takes ^ literally, so
    an odd quote would undo the escaping of everything after it.
    """
    out = []
    for ch in text.replace('"', "'"):
        if ch == "%":
            out.append("%%")
        elif ch in _CMD_SPECIAL:
            out.append("^" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def cmd_quoted(text: str) -> str:
    """``text`` inside a double-quoted batch string: only % needs doubling (delayed expansion
    is off, so ! is plain)."""
    return text.replace("%", "%%")


def _check_file_name(name: str) -> None:
    bad = [ch for ch in name if not (" " <= ch <= "~") or ch in '"*?<>|']
    if bad:
        raise UserError.single(
            f"the launcher cannot name the script {name!r}: it holds {bad[0]!r}",
            hint="use an output file name of plain ASCII letters, digits, dashes and dots")


def launcher_bytes(plan, script_name: str) -> bytes:
    """The .cmd launcher for ``script_name`` (a file in the same folder), as bytes."""
    from .compile import environment, to_script_bytes

    _check_file_name(script_name)
    text = environment().get_template("launcher.cmd.j2").render(
        plan_name=plan.name,
        script_rem=cmd_text(script_name),
        script_cmd=cmd_quoted(script_name),
        script_echo=cmd_text(script_name),
        title=cmd_text(plan.title),
        admin=bool(plan.requires.admin),
    )
    return to_script_bytes(text)
