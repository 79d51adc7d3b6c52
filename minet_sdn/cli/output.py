"""Standard output of every command (`minet`, `minet-provision`, `python -m minet_sdn.lab`): a
closed pipe (`minet link list FILE | head -3`) ends the command quietly with 141, as a shell tool
would, and any other write failure is one line on stderr, never a traceback."""
from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Callable


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage block), exit code 2."""

    def error(self, message: str) -> None:
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


class OutputError(Exception):
    """Writing our own output failed (closed pipe, full disk)."""


class _Output:
    """sys.stdout, with write errors told apart from every other OSError a command may meet."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise OutputError(exc) from None

    def flush(self):
        try:
            return self._stream.flush()
        except OSError as exc:
            raise OutputError(exc) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _silence(stream) -> None:
    """Point fd 1 at /dev/null, so that flushing at exit cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def guarded(body: Callable[[], int], prog: str = "minet") -> int:
    """body()'s exit code, its standard output guarded as described above."""
    real = sys.stdout
    sys.stdout = _Output(real)
    try:
        code = body() or 0
        sys.stdout.flush()
        return code
    except OutputError as exc:
        cause = exc.args[0]
        _silence(real)
        if getattr(cause, "errno", None) == errno.EPIPE:      # the reader has what it wanted
            return 141
        print(f"{prog}: cannot write the output: {getattr(cause, 'strerror', None) or cause}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = real
