"""The embedded lab's doors: every emulated server is on this machine, so one broker serves every
group and every door's sshd listens on this machine's loopback (127.0.0.1:port_base+ASN), which is
"the address reachable from where the TA runs the command" for a lab. Called from `lab up` (after
provisioning) and `lab down` (before the servers go)."""
from __future__ import annotations

import os
from typing import List

from . import ClassError, configs, doors, page_server


def lab_doors_up(topo, places, progress, fresh: bool = False) -> None:
    """`places`: the lab's node places (topology/places.Places); `fresh`: the routers were just
    provisioned, so the door routers get back what was kept at the last `lab down`."""
    if topo.classroom is None:
        return
    from ..lab import LabError
    _page_up(topo, progress)
    if places.backend != "netns":
        progress(f"doors: not made: they enter nodes by their network namespace, and the "
                 f"{places.backend} backend's nodes are containers (docs/class.md)")
        return
    nodes = {node: (p.ns, p.frr_dir or p.l2_map) for node, p in places.items()}
    if fresh:
        kept = configs.kept_dir(topo.name)
        asns = set(doors.door_asns(topo, topo.servers))
        if os.path.isdir(kept):
            try:
                files = [f for f in configs.saved_files(topo, kept) if f[0] in asns]
            except ClassError as exc:
                files = []
                progress(f"doors: kept configurations not restored: {exc}")
            for asn, name, path in files:
                problem = configs.restore_one(places[f"{asn}.{name}"], path)
                progress(f"doors: {asn}.{name}: " + (problem or "the configuration kept at the last lab down is back"))
    try:
        doors.up(topo, list(topo.servers), nodes, listen="127.0.0.1", progress=progress)
    except ClassError as exc:
        raise LabError(f"doors: {exc}") from None


def lab_doors_down(topo, places=None) -> List[str]:
    """Keep the door routers' configurations (when the routers still run), then remove the doors."""
    problems: List[str] = [f"students' page: {p}" for p in page_server.down(topo.name)]
    if topo.classroom is None and not _has_run_dir(topo):
        return problems
    if topo.classroom is not None and places is not None and places.backend == "netns":
        asns = doors.door_asns(topo, topo.servers)
        running = [a for a in asns if all(os.path.exists(f"/run/netns/{places[f'{a}.{r}'].ns}")
                                           for r in topo.ases[a].routers)]
        try:
            configs.save(topo, places, configs.kept_dir(topo.name), running)
        except (ClassError, OSError) as exc:
            problems.append(f"doors: configurations not kept: {exc}")
    try:
        return problems + [f"doors: {p}" for p in doors.down(topo)]
    except ClassError as exc:
        return problems + [f"doors: {exc}"]


def _has_run_dir(topo) -> bool:
    return os.path.isdir(doors.run_dir(topo.name))


def _page_up(topo, progress) -> None:
    """The students' page (classroom/page_server.py), unless `class.page: off`."""
    from ..lab import LabError
    from ..lab.state import LabState
    state = LabState.load(topo)
    try:
        page_server.up(topo, state.effective_topology, progress)
    except ClassError as exc:
        raise LabError(f"students' page: {exc}") from None
