"""The one validation of a topology, as `minet validate`, `minet-provision` and `minet lab up`
all run it: the loader's checks (syntax, keys, references, explicit prefixes), then what only the
derived numbering shows (addressing.addressing_problems: default prefixes that clash, an AS too
small for its routers, IPv6 prefixes missing)."""
from __future__ import annotations

from typing import List

from .addressing import addressing_problems
from .loader import TopologyError, load_topology
from .model import Topology


def problems(topo: Topology) -> List[str]:
    """What is wrong with a topology the loader accepted (`FILE: KEY: problem` lines; empty: fine)."""
    return addressing_problems(topo)


def load_valid(path: str) -> Topology:
    """load_topology, then `problems`: raises TopologyError listing every problem."""
    topo = load_topology(path)
    found = problems(topo)
    if found:
        raise TopologyError(found)
    return topo
