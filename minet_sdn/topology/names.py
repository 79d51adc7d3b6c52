"""Every name derived from a topology, in one place: namespaces, containers, bridges, ports,
interfaces, FRR directories, and the argv that runs a command in a node or vtysh on a router.

Provisioning (`provision/plan.py`, the backends), the lab (`lab/`), the watch tools and the
benches all ask here; none spells a name itself. Node ids (`<asn>.<NAME>[.host]`) and where each
node runs are `places.py`'s, built on these names. Pure: no I/O, no imports beyond the model.
Numbers (dpids, cookies, OpenFlow ports, MACs) stay in `model.py`; the bridge and port names the
controller needs are `Topology.bridge_name` / `Topology.link_port_name` there, re-exported here.
"""
from __future__ import annotations

import os
import re
from typing import List, Mapping, Optional, Sequence

from . import model
from .model import Topology

router_ifname = model.router_ifname     # an inter-AS link's router interface, `ext<L>`: the model's, listed here

BACKENDS = ("netns", "docker")

_CONTAINER_OK = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_CONTAINER_BAD = re.compile(r"[^a-zA-Z0-9_.-]")


# ---- nodes (ids and places: places.py) -------------------------------------------------------

def node_ns(topo: Topology, node_id: str) -> str:
    """`<tag>-<node id>`: the node's network namespace (netns backend) or container (docker)."""
    return f"{topo.tag}-{node_id}"


def container_name(ns: str) -> str:
    """Docker names are [a-zA-Z0-9][a-zA-Z0-9_.-]*: a node's `<tag>-<asn>.<NAME>[.host]` always is
    one (tags are [a-z0-9-], router names [A-Za-z0-9_-]); anything else would become '_'."""
    if _CONTAINER_OK.fullmatch(ns):
        return ns
    name = _CONTAINER_BAD.sub("_", ns)
    return name if name[:1].isalnum() else f"m{name}"


def frr_pathspace(ns: str) -> str:
    """FRR's -N (it refuses dots): the namespace name with '.' as '_' (unique: ASNs have no '_')."""
    return ns.replace(".", "_")


def intra_ifname(peer: str, peer_index: int) -> str:
    """A ring interface towards router `peer` of the same AS (kernel names: at most 15 chars)."""
    return f"to_{peer}" if len(peer) <= 12 else f"to_{peer_index}"


def provision_state_dir(root: str, topo: Topology, server: str) -> str:
    """Where provisioning keeps `server`'s state under the state root."""
    return os.path.join(root, topo.name, server)


def frr_dir(server_state_dir: str, node_id: str) -> str:
    """A router's FRR directory (frr.conf, pid files, vty sockets, zserv.api, logs)."""
    return os.path.join(server_state_dir, "frr", node_id)


# ---- argv -----------------------------------------------------------------------------------

def exec_prefix(backend: str, ns: str, *, env: Optional[Mapping[str, str]] = None,
                docker: str = "docker", interactive: bool = False, tty: bool = False) -> List[str]:
    """argv prefix running a command in node `ns`: `ip netns exec NS [env K=V ...]` on the netns
    backend, `docker exec [-i] [-t] NAME` on docker."""
    if backend == "docker":
        flags = (["-i"] if interactive else []) + (["-t"] if tty else [])
        return [docker, "exec", *flags, container_name(ns)]
    if backend != "netns":
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    prefix = ["ip", "netns", "exec", ns]
    if env:
        prefix += ["env", *(f"{k}={v}" for k, v in env.items())]
    return prefix


def nsenter_prefix(nspath: str) -> List[str]:
    """argv prefix running a command in a network namespace only (`nspath`: a file such as
    /run/netns/NAME or /proc/PID/ns/net), in this mount namespace (unlike `ip netns exec`, which
    hides namespaces created under it from everyone else)."""
    return ["nsenter", f"--net={nspath}", "--"]


def vtysh_argv(vty_dir: str, *commands: str) -> List[str]:
    """vtysh on the router whose FRR directory is `vty_dir`: its sockets, and its directory as
    --config_dir too, so that `write memory` saves the router's own frr.conf (provisioning puts an
    empty vtysh.conf there)."""
    argv = ["vtysh", "--vty_socket", vty_dir, "--config_dir", vty_dir]
    for c in commands:
        argv += ["-c", c]
    return argv


def with_vtysh_dirs(argv: Sequence[str], vty_dir: str) -> List[str]:
    """A user's `vtysh ...` argv with the router's directories added unless it names its own."""
    argv = list(argv)
    if argv and os.path.basename(argv[0]) == "vtysh" and "--vty_socket" not in argv:
        argv[1:1] = vtysh_argv(vty_dir)[1:]
    return argv


# ---- the embedded lab's servers (lab/) ------------------------------------------------------

def mgmt_ns(topo: Topology) -> str:
    return f"{topo.tag}-mgmt"


def underlay_ns(topo: Topology) -> str:
    return f"{topo.tag}-ul"


def server_ns(topo: Topology, server: str) -> str:
    return f"{topo.tag}-{server}"


def mgmt_bridge(topo: Topology) -> str:
    return f"{topo.tag}-mbr"


def underlay_bridge(topo: Topology) -> str:
    return f"{topo.tag}-ubr"


def phy_bridge(topo: Topology) -> str:
    """The OvS netdev bridge of a server whose internal port holds its underlay IP (made by
    provisioning when the server's underlay interface is not a port of one already)."""
    return phy_bridge_of_tag(topo.tag)


def phy_bridge_of_tag(tag: str) -> str:
    return f"{tag}-phy"


def ownership_alias(instance: str, server: str) -> str:
    """Ownership mark (IFLA_IFALIAS) of interfaces provisioning makes in the server's namespace."""
    return f"minet:{instance}:{server}"


def underlay_ifname(topo: Topology) -> str:
    """The server's underlay veth (in its namespace; a port of the phy bridge)."""
    return f"{topo.tag}-ul"


def mgmt_ifname(topo: Topology) -> str:
    """The server's management veth (in its namespace)."""
    return f"{topo.tag}-mg"


def _peer_ifname(topo: Topology, server: str, network: str) -> str:
    """The far end of a server's veth, in the namespace of `network` ("u": underlay, "m":
    management): `<tag>-<network><server index>`."""
    return f"{topo.tag}-{network}{topo.servers[server].index}"


def underlay_peer_ifname(topo: Topology, server: str) -> str:
    return _peer_ifname(topo, server, "u")


def mgmt_peer_ifname(topo: Topology, server: str) -> str:
    return _peer_ifname(topo, server, "m")


# ---- remote bridges and their ports (computed by the model) ---------------------------------

def bridge_name(topo: Topology, server: str, peer: str) -> str:
    return topo.bridge_name(server, peer)


def link_port_name(topo: Topology, link_id: int) -> str:
    return topo.link_port_name(link_id)
