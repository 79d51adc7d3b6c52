"""The lab's node places: topology/places.py with the lab's state roots (one per emulated server)
and the backend `lab up` recorded, plus the lab's own nodes (mgmt, underlay, the servers) that
`minet exec` takes (Lab.exec, lab.py). Functions of a topology, for what has no Lab at hand
(convergence polling, benches, tests)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from ..topology import Topology, names
from ..topology.places import AmbiguousNode, NodePlace, Places, build_places
from . import LabError, paths
from .state import LabState

# Pollers ask for a router's place on every call (at class size, hundreds a second): keep one
# Places per (topology object, backend).
_CACHE: Dict[Tuple[int, str], Tuple[Topology, Places]] = {}


def lab_backend(topo: Topology) -> str:
    """How the lab's nodes are made ("netns" or "docker"), as `lab up` recorded it."""
    try:
        state = LabState.load(topo)
    except LabError:
        state = None
    return state.backend if state is not None else "netns"


def lab_places(topo: Topology, backend: Optional[str] = None) -> Places:
    """Every node's place in the lab of `topo` (each emulated server has its own state root)."""
    backend = backend or lab_backend(topo)
    cached = _CACHE.get((id(topo), backend))
    if cached is not None and cached[0] is topo:
        return cached[1]
    if len(_CACHE) > 64:
        _CACHE.clear()
    got = build_places(topo, lambda server: paths.provision_state_dir(topo, server), backend)
    _CACHE[(id(topo), backend)] = (topo, got)
    return got


def node_place(topo: Topology, node: str) -> Optional[NodePlace]:
    """Where provisioning puts node `node` (by id) of the lab, or None if there is no such node."""
    return lab_places(topo).get(node)


def router_place(topo: Topology, router: str) -> NodePlace:
    """Where provisioning puts FRR node `router` on a lab server: its namespace and FRR directory."""
    try:
        return lab_places(topo).router(router)
    except KeyError:
        raise LabError(f"no router {router} in {topo.name}") from None


def resolve_node(topo: Topology, node: str, places: Optional[Places] = None
                 ) -> Tuple[str, Dict[str, str], Optional[NodePlace]]:
    """(namespace, extra environment, node place or None) of a node name.

    Nodes: `mgmt`, `underlay` (or `ul`), a server name (its OvS is reachable there: OVS_RUNDIR is
    set), a node id (`<asn>.<NAME>`, `<asn>.<NAME>.host`, `ixp<N>`), or `NAME`/`NAME.host` when
    only one router has that name.
    """
    if node == "mgmt":
        return names.mgmt_ns(topo), {}, None
    if node in ("underlay", "ul"):
        return names.underlay_ns(topo), {}, None
    if node in topo.servers:
        return names.server_ns(topo, node), paths.server_env(topo, node), None
    try:
        place = (places if places is not None else lab_places(topo)).find(node)
    except AmbiguousNode as exc:
        raise LabError(str(exc)) from None
    if place is None:
        example = next(iter(topo.routers), "1.R")
        raise LabError(f"no node {node!r} in {topo.name} (nodes: mgmt, underlay, servers "
                       f"{', '.join(topo.servers)}, routers like {example}, hosts like {example}.host)")
    return place.ns, {}, place

