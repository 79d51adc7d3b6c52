"""What the user did wrong: one base for every error that is the input's fault, not the machine's.

A bad topology or import file, a wrong command-line argument, a refused lab operation, an ambiguous
node name... each package keeps its own error class (its name says where it came from) and derives
it from UserError. The command line's top level catches UserError alone: it prints the message
(one line per problem, naming the file and the line or key) and exits with `exit_code` (2), never a
traceback. Failures of the machine (OvS, netlink, SSH, a controller that does not answer) are not
UserErrors: they have their own exit codes.

This module imports nothing: the controller, the pure core and the shells may all use it.
"""
from __future__ import annotations

from typing import Optional


class UserError(Exception):
    """Bad input. `str(exc)` is what the user is told; `file`, `line`, `key` say where, when known."""

    exit_code = 2

    def __init__(self, *args, file: Optional[str] = None, line: Optional[int] = None,
                 key: Optional[str] = None):
        super().__init__(*args)
        self.file, self.line, self.key = file, line, key

    def one_line(self) -> str:
        """The first line of the message (a multi-problem error lists one problem per line)."""
        text = str(self)
        return text.splitlines()[0] if text else type(self).__name__
