"""Asking the lab's routers how far they are, and waiting until every configured router has
converged (`lab up` does, so its return means "up"). The polling itself is provision/converge.py,
shared with `minet-provision --wait`; what the lab adds is where each router is (places.py), so any
router of any emulated server can be asked from this one machine."""
from __future__ import annotations

from typing import AbstractSet, Any, Dict, FrozenSet, List, Optional, Tuple

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


def bgp_sessions(topo: Topology, router: str, places: Optional[Places] = None,
                 down_peers: AbstractSet[str] = frozenset()) -> Dict[str, Any]:
    """{"router", "reachable", "sessions": [{"peer", "remote_as", "state", "expected"}], "missing"}."""
    return converge.bgp_sessions(topo, router, vtysh(_place(topo, router, places), "show bgp summary json"),
                                 down_peers)


def routes_missing(topo: Topology, router: str, places: Optional[Places] = None) -> Optional[List[int]]:
    """The configured ASes (other than its own) whose prefix `router` has no route to, in IPv4 or
    (when fabric.ipv6) in IPv6; None if it did not answer."""
    place = _place(topo, router, places)
    return converge.routes_missing(topo, router, lambda command: vtysh(place, command, timeout=20))


def wait_bgp(topo: Topology, timeout: float = BGP_TIMEOUT, progress: Progress = quiet,
             interval: float = 1.0, routes: bool = False,
             places: Optional[Places] = None, down_peers: AbstractSet[str] = frozenset()
             ) -> Tuple[bool, List[Dict[str, Any]]]:
    """Poll configured routers until all their expected sessions are Established (and, with
    `routes`, each has a route to every configured AS); (converged, one report per router).
    `down_peers`: far ends of links an operator failed (failed_peers): not waited for, and then
    routes are not either (a failure may cut an AS off on purpose)."""
    return converge.wait_converged(
        topo, configured_routers(topo), lambda router, command, t: vtysh(_place(topo, router, places), command, t),
        timeout=timeout, progress=progress, interval=interval, routes=routes and not down_peers,
        down_peers=down_peers)


def failed_peers(topo: Topology, controller_state: str) -> FrozenSet[str]:
    """Both ends' addresses of every link the controller's state file says an operator failed
    (links named by their endpoints: core/fabric.py link_keys)."""
    import json
    from ..core.fabric import ids_for_keys
    try:
        with open(controller_state, encoding="utf-8") as fh:
            data = json.load(fh)
        keys = [(min(e["a"], e["b"]), max(e["a"], e["b"]), int(e.get("n", 0))) for e in data.get("failed", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return frozenset()
    out = set()
    for lid in ids_for_keys(topo, keys):
        link = topo.link_by_id.get(lid)
        for end in (getattr(link, "a", None), getattr(link, "b", None)):
            out.update(ip for ip in (getattr(end, "ip", None), getattr(end, "ip6", None)) if ip)
    return frozenset(out)
