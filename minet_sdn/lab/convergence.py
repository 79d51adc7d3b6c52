"""Asking the lab's routers how far they are, and waiting until every configured router has
converged (`lab up` does, so its return means "up"). The polling itself is provision/converge.py,
shared with `minet-provision --wait`; what the lab adds is where each router is (places.py), so any
router of any emulated server can be asked from this one machine."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..provision import converge
from ..topology import Topology
from . import Progress, quiet
from ..topology.places import NodePlace, Places
from .places import router_place

BGP_TIMEOUT = 180.0

bgp_converged, count_sessions, vty_direct = converge.bgp_converged, converge.count_sessions, converge.vty_direct


def default_bgp_timeout(topo: Topology) -> float:
    """How long `lab up` waits for convergence by default: 180 s plus 0.5 s per router."""
    return converge.default_timeout(len(topo.routers))


def configured_routers(topo: Topology) -> List[str]:
    return [r for r, as_ in topo.routers.items() if as_.configure]


def vtysh(place: NodePlace, command: str, timeout: float = 10) -> Optional[str]:
    """A `show` command's output on the router at `place`; None when it did not answer."""
    return converge.ask(place, command, timeout)


def _place(topo: Topology, router: str, places: Optional[Places]) -> NodePlace:
    """`router`'s place: from `places` when the caller has them (a Lab), else the lab's of `topo`."""
    return router_place(topo, router) if places is None else places.router(router)


def bgp_sessions(topo: Topology, router: str, places: Optional[Places] = None) -> Dict[str, Any]:
    """{"router", "reachable", "sessions": [{"peer", "remote_as", "state", "expected"}], "missing"}."""
    return converge.bgp_sessions(topo, router, vtysh(_place(topo, router, places), "show bgp summary json"))


def routes_missing(topo: Topology, router: str, places: Optional[Places] = None) -> Optional[List[int]]:
    """The configured ASes (other than its own) whose prefix `router` has no route to, in IPv4 or
    (when fabric.ipv6) in IPv6; None if it did not answer."""
    place = _place(topo, router, places)
    return converge.routes_missing(topo, router, lambda command: vtysh(place, command, timeout=20))


def wait_bgp(topo: Topology, timeout: float = BGP_TIMEOUT, progress: Progress = quiet,
             interval: float = 1.0, routes: bool = False,
             places: Optional[Places] = None) -> Tuple[bool, List[Dict[str, Any]]]:
    """Poll configured routers until all their expected sessions are Established (and, with
    `routes`, each has a route to every configured AS); (converged, one report per router)."""
    return converge.wait_converged(
        topo, configured_routers(topo), lambda router, command, t: vtysh(_place(topo, router, places), command, t),
        timeout=timeout, progress=progress, interval=interval, routes=routes)
