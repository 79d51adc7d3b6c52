"""The embedded lab's doors: every emulated server is on this machine, so one broker serves every
group and every door's sshd listens on this machine's loopback (127.0.0.1:port_base+ASN), which is
"the address reachable from where the TA runs the command" for a lab. Called from `lab up` (after
provisioning) and `lab down` (before the servers go)."""
from __future__ import annotations

from typing import List

from . import ClassError, doors


def lab_doors_up(topo, places, progress) -> None:
    """`places`: the lab's node places (topology/places.Places)."""
    if topo.classroom is None:
        return
    from ..lab import LabError
    if places.backend != "netns":
        progress(f"doors: not made: they enter nodes by their network namespace, and the "
                 f"{places.backend} backend's nodes are containers (docs/class.md)")
        return
    nodes = {node: (p.ns, p.frr_dir) for node, p in places.items()}
    try:
        doors.up(topo, list(topo.servers), nodes, listen="127.0.0.1", progress=progress)
    except ClassError as exc:
        raise LabError(f"doors: {exc}") from None


def lab_doors_down(topo) -> List[str]:
    if topo.classroom is None and not _has_run_dir(topo):
        return []
    try:
        return [f"doors: {p}" for p in doors.down(topo)]
    except ClassError as exc:
        return [f"doors: {exc}"]


def _has_run_dir(topo) -> bool:
    import os
    return os.path.isdir(doors.run_dir(topo.name))
