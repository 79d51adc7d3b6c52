"""The one validation of a topology, as `minet validate`, `minet-provision` and `minet lab up`
all run it: the loader's checks (syntax, keys, references, explicit prefixes), then what only the
derived numbering shows (addressing.addressing_problems: default prefixes that clash, an AS too
small for its routers, IPv6 prefixes missing)."""
from __future__ import annotations

from typing import Any, Dict, List

import yaml

from .addressing import addressing_problems
from .loader import TopologyError, load_topology
from .model import Topology
from .services import not_emulated_warning


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


# ---- settings known to fail at a size (warnings, not errors: the file is valid) ------------------
# Measured on the project's machine kind (2 cores): BFD every 100 ms or less on the tunnels with
# ~240 routers per core (60 ASes x 8 on 2 cores) expired under start-up load, remote links flapped
# and BGP never converged. Below the default (100 ms, with core/damping.py holding a flapping
# tunnel's short downs) it can only be worse. The bound in routers per core is where the
# project's smaller labs (demo, up to ~25 routers per core) were seen to hold.
BFD_DEFAULT_MS = 100
BFD_ROUTERS_PER_CORE = 25


def written_keys(path: str, section: str) -> Dict[str, Any]:
    """The keys of `section` (e.g. "fabric") the file itself writes; {} if it writes none."""
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    part = data.get(section) if isinstance(data, dict) else None
    return part if isinstance(part, dict) else {}


def scale_warnings(topo: Topology, fabric_written: Dict[str, Any], cores: int) -> List[str]:
    """One line per setting the user wrote that is known to fail at this topology's size when all its
    servers share `cores` cores (a lab, or servers that small); and one naming the services the
    topology places that the lab does not emulate (RPKI)."""
    out = []
    per_core = len(topo.routers) / max(1, cores)
    bfd = fabric_written.get("bfd_interval_ms")
    if isinstance(bfd, int) and not isinstance(bfd, bool) and bfd < BFD_DEFAULT_MS \
            and per_core > BFD_ROUTERS_PER_CORE:
        out.append(f"{topo.source}: fabric.bfd_interval_ms: {bfd} ms with {per_core:.0f} routers per core "
                   f"({len(topo.routers)} routers, {cores} cores) is known to make BFD expire under start-up "
                   f"load and flap remote links; leave it out (the default, {BFD_DEFAULT_MS} ms with flap "
                   f"dampening, holds at class size)")
    rpki = not_emulated_warning(topo)
    return out + ([rpki] if rpki else [])
