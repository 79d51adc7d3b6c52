"""What the lab's commands do: `lab up|down|status FILE` and `exec FILE NODE -- CMD ...`.

Their parsers are in cli/lab.py (every parser of the package lives in cli/); every handler here is
`func(args) -> exit code`. Errors are one line on stderr, exit 2.
"""
from __future__ import annotations

import json
import signal
import sys

from . import LabError


def _fail(prog: str, exc: BaseException) -> int:
    print(f"{prog}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
    return 2


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP to `lab up`: handled as Ctrl-C is (a half-built lab is rolled back)."""


def _as_interrupt(signum, frame) -> None:
    # once: a second signal must not cut the rollback the first one started
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signal.Signals(signum).name)


def cmd_up(args) -> int:
    previous = {sig: signal.signal(sig, _as_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _cmd_up(args)
    except Terminated as exc:
        print(f"minet lab up: stopped by {exc}", file=sys.stderr)
        return 128 + int(getattr(signal, str(exc), signal.SIGTERM))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cmd_up(args) -> int:
    from .lab import Lab, format_summary
    if getattr(args, "servers", None):         # place the ASes first (minet partition), then bring that up
        from ..topology.partition import placed_copy
        try:
            args.file = placed_copy(args.file, args.servers)
        except ValueError as exc:
            return _fail("minet lab up", exc)
    try:
        summary = Lab(args.file).up(mgmt_subnet=args.mgmt_subnet, bgp_timeout=args.bgp_timeout,
                                    keep_on_failure=args.keep_on_failure, backend=args.backend, image=args.image)
    except LabError as exc:
        return _fail("minet lab up", exc)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def cmd_down(args) -> int:
    from .lab import Lab
    try:
        problems = Lab(args.file).down()
    except LabError as exc:
        return _fail("minet lab down", exc)
    for p in problems:
        print(f"minet lab down: {p}", file=sys.stderr)
    return 1 if problems else 0


def cmd_status(args) -> int:
    from .lab import Lab
    try:
        out = Lab(args.file).status(json=args.json)
    except LabError as exc:
        return _fail("minet lab status", exc)
    print(json.dumps(out, indent=1) if args.json else out)
    return 0


def cmd_exec(args) -> int:
    from .lab import Lab
    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    try:
        return Lab(args.file).exec(args.node, argv)
    except LabError as exc:
        return _fail("minet exec", exc)
