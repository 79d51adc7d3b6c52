"""Where every node of a topology runs and how to reach it: the one owner of node places.

A node is a router `<asn>.<NAME>`, its host `<asn>.<NAME>.host`, or an IXP's route server
(`ixp<N>`). Its place is derived from the topology plus two things the caller passes in (this module
reads no file): the provisioning state root (MINET_STATE_DIR: /var/lib/minet-sdn on a real server,
`<lab state>/<server>/provision` for each emulated server of the lab) and the backend ("netns":
named network namespaces, "docker": containers). Provisioning (`provision/plan.py`), the
convergence wait of `minet-provision --wait`, the lab, `minet exec`, the watch tools and the
controller's status page all ask here, so they cannot disagree.

Adding a node kind (a layer-2 switch, an L2 host, a student's door) is one entry in `_SOURCES`: a
function yielding the kind's nodes of one server, in the order provisioning makes them.
Pure: no I/O.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from ..errors import UserError
from . import names
from .model import Topology

# node kinds
ROUTER = "router"                  # an AS's FRR router: <asn>.<NAME>
ROUTER_HOST = "router-host"        # the host behind a router: <asn>.<NAME>.host
ROUTE_SERVER = "route-server"      # an IXP's route server (FRR; its peering LAN is a bridge inside it)
SWITCH = "switch"                  # a students' switch <asn>.<SWITCH>: an empty namespace (layer2.py)
L2_HOST = "l2-host"                # a host in a VLAN of a data centre: <asn>.<HOST>
L2_OVS = "l2-ovs"                  # an AS's layer-2 Open vSwitch instance: l2-<asn>
FRR_KINDS = frozenset({ROUTER, ROUTE_SERVER})      # kinds running FRR (they have a vty directory)

HOST_SUFFIX = ".host"
BACKENDS = names.BACKENDS

_NODE_ID = re.compile(r"([0-9]+)\.([A-Za-z0-9_-]+)(\.host)?")


# ---- the node-id rule: ASN.NAME[.host] ------------------------------------------------------

class NodeRef(NamedTuple):
    """A node id taken apart: `<asn>.<name>` (+ `.host` when `host`)."""
    asn: int
    name: str
    host: bool = False

    @property
    def router(self) -> str:
        """The router's id (itself for a router, its router for a host)."""
        return node_id(self.asn, self.name)

    def __str__(self) -> str:
        return node_id(self.asn, self.name, self.host)


def node_id(asn: int, name: str, host: bool = False) -> str:
    """The node id of router `name` of AS `asn` (`<asn>.<NAME>`), or of its host (`<asn>.<NAME>.host`)."""
    return f"{asn}.{name}{HOST_SUFFIX if host else ''}"


def parse_node_id(node: str) -> NodeRef:
    """`<asn>.<NAME>[.host]` taken apart; ValueError when `node` is not of that shape."""
    m = _NODE_ID.fullmatch(node)
    if m is None:
        raise ValueError(f"{node!r} is not a node id <asn>.<NAME>[.host]")
    return NodeRef(int(m.group(1)), m.group(2), m.group(3) is not None)


def host_id(router: str) -> str:
    """The id of the host behind router `router` (`<asn>.<NAME>.host`)."""
    ref = parse_node_id(router)
    return node_id(ref.asn, ref.name, host=True)


def router_of(node: str) -> str:
    """The router a node id belongs to (itself for a router, its router for a host); an id that is
    not `<asn>.<NAME>[.host]` (a route server) is returned as it is."""
    try:
        return parse_node_id(node).router
    except ValueError:
        return node


# ---- places ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodePlace:
    """Where one node runs and how to reach it."""
    id: str                      # node id: "1.ZURI", "1.ZURI.host", "ixp100"
    kind: str                    # ROUTER | ROUTER_HOST | ROUTE_SERVER (later: switch, l2 host, door)
    asn: int                     # its AS (a route server: its own ASN)
    server: str                  # the server it runs on
    ns: str                      # "<tag>-<id>": network namespace (netns) or container name (docker)
    frr_dir: Optional[str] = None  # FRR's directory (frr.conf, vty sockets, pid files); FRR kinds only
    backend: str = "netns"       # "netns" | "docker"
    router: Optional[str] = None  # the router it belongs to (a router: itself; a router's host: the router)
    l2_map: Optional[str] = None  # a switch: the server's layer-2 switch map (provision/l2ctl.py reads it)

    @property
    def container(self) -> str:
        """The docker container name of the node (docker backend)."""
        return names.container_name(self.ns)

    @property
    def runs_frr(self) -> bool:
        return self.frr_dir is not None

    def exec_prefix(self, *, env: Optional[Mapping[str, str]] = None, interactive: bool = False,
                    tty: bool = False) -> List[str]:
        """argv prefix running a command in the node: `ip netns exec NS` or `docker exec [-i] [-t] NAME`."""
        return names.exec_prefix(self.backend, self.ns, env=env, interactive=interactive, tty=tty)

    def vtysh_argv(self, *commands: str) -> List[str]:
        """vtysh -c COMMAND... on this node's FRR: the host's vtysh on its sockets (netns), the
        container's on docker (the FRR directory is at the same path inside it)."""
        if self.frr_dir is None:
            raise ValueError(f"{self.id} runs no FRR")
        prefix = self.exec_prefix() if self.backend == "docker" else []
        return prefix + names.vtysh_argv(self.frr_dir, *commands)

    def user_argv(self, argv: Sequence[str]) -> List[str]:
        """A user's command for this node (`minet exec`): `vtysh` gets the node's FRR directories."""
        if self.kind == SWITCH and self.l2_map and argv and argv[0].rsplit("/", 1)[-1] == "ovs-vsctl":
            # a switch's ovs-vsctl is the students' one: this switch only (provision/l2ctl.py)
            return [sys.executable, "-m", "minet_sdn.provision.l2ctl", "--map", self.l2_map, "--switch", self.id,
                    "--", *argv[1:]]
        return names.with_vtysh_dirs(argv, self.frr_dir) if self.frr_dir else list(argv)


class NodeSpec(NamedTuple):
    """What a node source says of one node; the builder adds the names and directories."""
    id: str
    kind: str
    asn: int
    router: Optional[str] = None


def _as_nodes(topo: Topology, server: str) -> Iterator[NodeSpec]:
    """Each router of the server's ASes, then its host, AS by AS (plan order)."""
    for as_ in topo.ases.values():
        if as_.server != server:
            continue
        for name in as_.routers:
            rid = node_id(as_.asn, name)
            yield NodeSpec(rid, ROUTER, as_.asn, rid)
            yield NodeSpec(node_id(as_.asn, name, host=True), ROUTER_HOST, as_.asn, rid)


def _route_servers(topo: Topology, server: str) -> Iterator[NodeSpec]:
    for x in topo.ixps.values():
        if x.server == server:
            yield NodeSpec(x.node_id, ROUTE_SERVER, x.route_server_asn)


# Every kind of node, in the order provisioning makes them on a server. A new kind: one function here.
def _layer2_nodes(topo: Topology, server: str) -> Iterator[NodeSpec]:
    """Per AS with layer 2 (topology/layer2.py): its OvS instance's node, its switches, its hosts
    (VPN clients are not emulated)."""
    for as_ in topo.ases.values():
        l2 = getattr(as_, "layer2", None)
        if as_.server != server or l2 is None:
            continue
        yield NodeSpec(f"l2-{as_.asn}", L2_OVS, as_.asn)
        for sw in l2.switches:
            yield NodeSpec(node_id(as_.asn, sw.name), SWITCH, as_.asn)
        for h in l2.hosts:
            if not h.vpn:
                yield NodeSpec(node_id(as_.asn, h.name), L2_HOST, as_.asn)


_SOURCES: Tuple[Callable[[Topology, str], Iterator[NodeSpec]], ...] = (_as_nodes, _route_servers, _layer2_nodes)

Root = Union[str, Callable[[str], str]]      # the state root, or the state root of each server


def server_nodes(topo: Topology, server: str) -> Iterator[NodeSpec]:
    """Every node of `server`, in plan order (no names or directories)."""
    for source in _SOURCES:
        yield from source(topo, server)


def place_of(topo: Topology, spec: NodeSpec, server: str, server_state_dir: str, backend: str) -> NodePlace:
    """The place of one node spec on `server` whose provisioning state directory is `server_state_dir`."""
    return NodePlace(id=spec.id, kind=spec.kind, asn=spec.asn, server=server, ns=names.node_ns(topo, spec.id),
                     frr_dir=names.frr_dir(server_state_dir, spec.id) if spec.kind in FRR_KINDS else None,
                     backend=backend, router=spec.router,
                     l2_map=os.path.join(server_state_dir, "l2ovs", "switches.json") if spec.kind == SWITCH else None)


class AmbiguousNode(UserError, ValueError):
    """A bare router name that several ASes use; str() is the one-line reason."""


class Places(Mapping[str, NodePlace]):
    """Every node's place, by node id, in plan order (server by server)."""

    def __init__(self, topo: Topology, root: Root, backend: str = "netns",
                 servers: Optional[Sequence[str]] = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        self.topo, self.backend = topo, backend
        self._root = root
        self._by_id: Dict[str, NodePlace] = {}
        for server in (topo.servers if servers is None else servers):
            sdir = self.server_state_dir(server)
            for spec in server_nodes(topo, server):
                self._by_id[spec.id] = place_of(topo, spec, server, sdir, backend)

    def root(self, server: str) -> str:
        """The provisioning state root (MINET_STATE_DIR) of `server`."""
        return self._root(server) if callable(self._root) else self._root

    def server_state_dir(self, server: str) -> str:
        """Where provisioning keeps `server`'s state: `<root>/<instance>/<server>`."""
        return names.provision_state_dir(self.root(server), self.topo, server)

    def __getitem__(self, node: str) -> NodePlace:
        return self._by_id[node]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def on(self, server: str) -> List[NodePlace]:
        """The nodes of `server`, in plan order."""
        return [p for p in self._by_id.values() if p.server == server]

    def of_kind(self, *kinds: str) -> List[NodePlace]:
        return [p for p in self._by_id.values() if p.kind in kinds]

    def router(self, router: str) -> NodePlace:
        """The place of an FRR node (router or route server); KeyError when there is none."""
        place = self._by_id.get(router)
        if place is None or not place.runs_frr:
            raise KeyError(router)
        return place

    def find(self, name: str) -> Optional[NodePlace]:
        """A node by id, or by its bare name (`NAME`, `NAME.host`: the id without `<asn>.`) when only
        one AS has a node of that name; None when there is no such node, AmbiguousNode when several."""
        place = self._by_id.get(name)
        if place is not None:
            return place
        matches = [p.id for p in self._by_id.values() if p.id.partition(".")[2] == name
                   and p.id.partition(".")[0].isdigit()]
        if len(matches) > 1:
            raise AmbiguousNode(f"node name {name} is ambiguous: {', '.join(matches)}")
        return self._by_id[matches[0]] if matches else None


def build_places(topo: Topology, root: Root, backend: str = "netns",
                 servers: Optional[Sequence[str]] = None) -> Places:
    """Every node's place (of `servers`, default all): `root` is the provisioning state root, or a
    function giving each server's (the lab: one per emulated server); `backend` how nodes are made."""
    return Places(topo, root, backend, servers)
