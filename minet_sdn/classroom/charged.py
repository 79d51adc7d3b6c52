"""A students' switch command, run in the asking group's cgroups rather than in the broker.

The broker (root, one process for every group of the machine) would otherwise pay for every
group's `ovs-vsctl` itself: a group typing switch commands as fast as it can would load the
broker, outside that group's CPU share, memory and process bounds. So the broker starts this,
one short process per command:

    python -I -m minet_sdn.classroom.charged      spec (JSON) on stdin:
        {"procs": [cgroup.procs files of the group], "map": switches.json, "switch": "3.S1", "argv": [...]}
    -> stdout: {"code": N, "out": "...", "err": "..."}

It joins the group's cgroups first (so l2ctl's own ovs-vsctl processes are the group's too), then
runs the students' ovs-vsctl (provision/l2ctl.py: the allow-list) as the broker would have.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, List


def join(procs: List[str]) -> None:
    """This process into the group's cgroups; a missing one (no cgroups here) is the rlimits' case."""
    import os
    for path in procs:
        try:
            with open(path, "w") as fh:
                fh.write(str(os.getpid()))
        except FileNotFoundError:
            pass


def run(spec: Dict[str, Any]) -> Dict[str, Any]:
    from ..provision import l2ctl
    join(spec.get("procs") or [])
    code, out, err = l2ctl.execute(spec["map"], spec["switch"], spec["argv"])
    return {"code": code, "out": out, "err": err}


def main() -> int:
    try:
        spec = json.loads(sys.stdin.read(1 << 16))
        answer = run(spec)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        answer = {"error": f"the switch command could not run ({type(exc).__name__}: {exc})"[:300]}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
