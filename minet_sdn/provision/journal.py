"""The journal of one provisioning run (a part of provision/apply.py's Provisioner): what changed,
what this run created and how to undo it (rolled back in reverse order when `up` fails), progress
lines, and errors bounded to one line (the full text kept in a file beside the state root).

`Journal` is a mixin: the Provisioner holds `plan`, `changes`, `_undo`, `_progress` and `_t0`.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

from ..messages import ERROR_LINE_LIMIT, clip_line
from . import ovs
from .image import ImageProblem
from .netlink import NetlinkProblem

Progress = Callable[[str], None]


class ProvisionError(Exception):
    def __init__(self, server: str, what: str):
        super().__init__(f"{server}: {what}")
        self.server = server
        self.what = what


@dataclass
class Report:
    server: str
    instance: str
    action: str                      # "up" | "down"
    ok: bool = True
    changes: List[str] = field(default_factory=list)
    error: Optional[str] = None
    seconds: float = 0.0
    rolled_back: List[str] = field(default_factory=list)
    summary: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["n_changes"] = len(self.changes)
        return d


class interrupts_ignored:
    """SIGINT and SIGTERM do nothing inside (in the main thread; elsewhere signals cannot be set,
    and only the main thread receives them)."""

    def __enter__(self):
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, signal.SIG_IGN)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        return False


class Journal:
    def progress(self, msg: str) -> None:
        self._progress(f"[{self.plan.server}] {time.monotonic() - self._t0:5.1f}s {msg}")

    def _changed(self, items: List[str]) -> None:
        self.changes.extend(items)

    def _created(self, what: str, undo: Callable[[], None]) -> None:
        self.changes.append(f"created {what}")
        self._undo.append((what, undo))

    def _rollback(self) -> List[str]:
        done = []
        # A second interrupt (the master forwarding the one this rollback answers, Ctrl-C pressed
        # again) must not cut it short: a half-undone server is worse than a slow one.
        with interrupts_ignored():
            for what, undo in reversed(self._undo):
                self.progress(f"rolling back: {what}")
                try:
                    undo()
                    done.append(what)
                except Exception as exc:        # keep undoing the rest
                    self.progress(f"rollback of {what} failed: {_describe(exc)}")
        self._undo.clear()
        return done

    def _report(self, action: str, t0: float) -> Report:
        return Report(server=self.plan.server, instance=self.plan.instance, action=action, changes=self.changes,
                      seconds=round(time.monotonic() - t0, 3), summary=self.plan.summary())

    def error_log_path(self) -> str:
        """Where the full text of an error too long for one line goes (it survives the rollback)."""
        root = os.path.dirname(os.path.dirname(self.plan.state_dir))
        return os.path.join(root, f"{self.plan.instance}.{self.plan.server}.error.log")

    def _bounded(self, what: str) -> str:
        """`what` as one line of at most ERROR_LINE_LIMIT characters; a longer or multi-line
        text is written whole to error_log_path() and the line names that file."""
        line = " ".join(what.split())
        if len(line) <= ERROR_LINE_LIMIT and "\n" not in what:
            return line
        path = self.error_log_path()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(what + "\n")
            where = f"full text in {path}"
        except OSError as exc:
            where = f"full text not saved: {exc.strerror or exc}"
        return clip_line(line, ERROR_LINE_LIMIT - len(where) - 3) + f" ({where})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProvisionError):
        return exc.what
    if isinstance(exc, (NetlinkProblem, ovs.OvsProblem, ImageProblem)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
