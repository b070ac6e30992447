"""Reading a magic's options as a shell would: quotes group words and are then removed.

``%track_runs -e taxi -f "metrics.rmse < 60" -o "metrics.rmse ASC"`` gives the filter and the
order without their quotes. A filter (or order, or requirement) may also be written without
quotes, as several words: they are joined up to the next option, and quotes inside them stay
(``-f params.model = 'lasso'``). Any mistake is a ``UsageError``: IPython shows its message,
not a traceback into the parser.
"""

from __future__ import annotations

import re
import shlex
import sys

from IPython.core.error import UsageError

from nbtrack.exceptions import NbtrackError


class MagicError(UsageError, NbtrackError):
    """A magic's error: its message alone is shown, yet code catching NbtrackError catches it."""


def show_briefly(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """Show a ``MagicError`` as IPython shows a ``UsageError``: the message alone.

    IPython shortens only the exact ``UsageError`` class, not its subclasses.
    """
    print(f"UsageError: {value}", file=sys.stderr)
    return []


def install_handler(shell) -> None:
    """Show ``MagicError`` briefly in ``shell``, unless the shell has custom handlers already."""
    if not shell.custom_exceptions:
        shell.set_custom_exc((MagicError,), show_briefly)

# a run of characters up to unquoted white space; an unclosed quote runs to the end
_TOKEN = re.compile(r"""(?:[^\s"']|"(?:\\.|[^"\\])*(?:"|$)|'[^']*(?:'|$))+""")
_FLAG = re.compile(r"^--?[A-Za-z]")
JOINED = ("-f", "--filter", "-o", "--order-by", "-r", "--require")


def _cook(token: str) -> str:
    try:
        parts = shlex.split(token)
    except ValueError as exc:
        raise MagicError(f"Cannot read {token!r}: {exc} (close every quote).") from None
    return " ".join(parts)


def _fully_quoted(token: str) -> bool:
    return (len(token) >= 2 and token[0] in "'\"" and token[-1] == token[0]
            and len(_TOKEN.findall(token)) == 1 and token[0] not in token[1:-1])


def split_line(line: str, joined: tuple[str, ...] = JOINED) -> list[str]:
    """The argument list for ``line``, quotes removed as a shell would (see the module)."""
    raw = _TOKEN.findall(line)
    argv: list[str] = []
    index = 0
    while index < len(raw):
        token = raw[index]
        flag, eq, rest = token.partition("=")
        if token in joined or (eq and flag in joined and flag.startswith("--")):
            parts = [rest] if eq else []
            index += 1
            while index < len(raw) and not _FLAG.match(raw[index]):
                parts.append(raw[index])
                index += 1
            argv.append(flag if eq else token)
            _cook(" ".join(parts))  # an unclosed quote is an error here too
            if len(parts) == 1 and _fully_quoted(parts[0]):
                argv.append(_cook(parts[0]))
            elif parts:
                argv.append(" ".join(parts))
            continue
        argv.append(_cook(token))
        index += 1
    return argv


def parse(magic, line: str, joined: tuple[str, ...] = JOINED):
    """Parse ``line`` with the argument parser of ``magic`` (a ``@magic_arguments`` function)."""
    return magic.parser.parse_args(split_line(line, joined))
