"""Waiting for something to happen in a test: poll its condition, never sleep a fixed time.

A fixed sleep is either too short on a loaded machine (the test fails for nothing) or longer than
needed everywhere else; `wait_until` returns as soon as the condition holds. (A sleep that watches
that something does *not* happen during a window is another matter: it stays, with a comment.)
"""
from __future__ import annotations

import time
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05,
               what: Optional[str] = None) -> T:
    """Call `predicate` every `interval` s until it returns something true, for at most `timeout` s
    (it is called at least once, and once more at the deadline). Returns that value; on timeout the
    last (false) value, or, when `what` says what was awaited, raises AssertionError naming it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    if not value and what is not None:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value
