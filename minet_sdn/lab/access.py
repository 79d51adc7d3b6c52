"""How other commands reach a running lab (used by `minet link ...` in minet_sdn/cli/main.py)."""
from __future__ import annotations

from typing import Optional

from ..topology import Topology
from . import emulation as em


def rest_base(topo_path: str, topo: Topology) -> Optional[str]:
    """Base URL of the lab's controller REST API reachable from this host, or None if no lab.

    The controller listens on the lab's mgmt network; `lab up` runs a relay on 127.0.0.1 that
    forwards into the mgmt namespace, and this is its URL.
    """
    state = em.LabState.load(topo)         # LabError if unreadable: the caller says so
    if state is None:
        return None
    relay = state.process("relay")
    url = state.data.get("rest_relay")
    if relay is None or not url or not em.proc_alive(relay):
        return None
    return str(url)
