"""Commands act only on the lab their file built (issue 21, item 9).

A lab records the file it was built from and that file's digest (lab.json). Another file with the
same `name:` must not act on it: refused in one line. The same file edited since `lab up`: the lab
still runs the version it was built from, so a command names what it acts on in that version; a
`minet link fail|restore FILE N` whose link N is another link in the edited file is refused (the
user means the new file's link N, the lab would fail the old one).
"""
from __future__ import annotations

import os
from typing import Optional

from ..core.fabric import link_keys
from ..topology import Topology
from . import LabError
from .state import LabState, topology_digest


def check_file(topo_path: str, state: LabState, name: str) -> Optional[str]:
    """None when `topo_path` is what the lab was built from; a note when that same file changed
    since; LabError when it is another file with the same `name:`."""
    if state.topology_sha256 == topology_digest(topo_path):
        return None
    effective = getattr(state, "effective_topology", None)
    if effective and os.path.realpath(topo_path) == os.path.realpath(effective):
        return None          # the lab's own copy of what it runs (the servers and tools are given it)
    if os.path.realpath(topo_path) != os.path.realpath(state.topology):
        raise LabError(f"{topo_path} is not the file the lab {name} was built from "
                       f"({state.topology}, other content): refusing to act on it; use that file")
    return (f"{topo_path} changed since `lab up`: this is the version that runs "
            f"(lab down, then up, to run the new one)")


def _link_name(topo: Topology, link_id: int) -> str:
    link, key = topo.link_by_id.get(link_id), link_keys(topo).get(link_id)
    if link is None or key is None:
        return "no link"
    parallel = sum(1 for k in link_keys(topo).values() if k[:2] == key[:2])
    return f"{link.a.router} - {link.b.router}" + (f" (#{key[2] + 1} of {parallel})" if parallel > 1 else "")


def check_link(topo_path: str, topo: Topology, running: Topology, link_id: int) -> None:
    """LabError when link `link_id` of the edited file `topo` is not link `link_id` of the version
    the lab runs (`running`): failing or restoring it would act on another link."""
    now, then = link_keys(topo).get(link_id), link_keys(running).get(link_id)
    if now == then:
        return
    mine, theirs = _link_name(topo, link_id), _link_name(running, link_id)
    raise LabError(f"{topo_path} changed since `lab up`: its link {link_id} is {mine}, the running lab's "
                   f"link {link_id} is {theirs}; refusing (lab down, then up, to run the new version)")


def for_command(topo_path: str, topo: Topology, link_id: Optional[int] = None) -> Optional[str]:
    """Before `minet link ...`, `minet ui`, `minet exec`: None when no lab of the instance exists or
    the file is the lab's; a note when it is the lab's file edited since (and link `link_id`, if
    given, is the same link in both versions); LabError otherwise."""
    state = LabState.load(topo)
    if state is None:
        return None
    note = check_file(topo_path, state, topo.name)
    if note is not None and link_id is not None:
        from .effective import load
        try:
            running = load(state.effective_topology)
        except LabError:
            running = None
        if running is not None:
            check_link(topo_path, topo, running, link_id)
    return note
