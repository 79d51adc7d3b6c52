"""Where provisioning put each node of the lab (its namespace or container, its FRR directory),
and running a command in a node (`minet exec`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..provision.converge import FrrSockets
from ..topology import Topology, names
from . import LabError, paths
from .effective import load
from .state import LabState, require
from .system import netns_exists


@dataclass(frozen=True)
class RouterPlace:
    router: str          # node id: "<asn>.<NAME>" (a router) or "<asn>.<NAME>.host" (its host)
    server: str
    netns: str           # the node's network namespace (netns backend) or container name (docker)
    vty_dir: str         # FRR's --vty_socket directory (routers only)
    backend: str = "netns"

    def exec_prefix(self) -> List[str]:
        """argv prefix running a command in the node (vtysh of a container is the container's)."""
        return names.exec_prefix(self.backend, self.netns)

    def sockets(self) -> FrrSockets:
        """How to ask this router's FRR (provision/converge.py)."""
        return FrrSockets(self.vty_dir, self.netns, self.backend)

    def vtysh_argv(self, *commands: str) -> List[str]:
        """vtysh -c COMMAND... on this router (the host's on its sockets; the container's on docker)."""
        return self.sockets().vtysh_argv(*commands)


# A server's nodes walk every AS of the topology, and pollers ask for a router's place on every
# call (at class size, hundreds a second): keep the answer per (topology object, server).
_PLAN_CACHE: Dict[Tuple[int, str], Tuple[Topology, Dict[str, Tuple[str, Optional[str]]]]] = {}


def plan_nodes(topo: Topology, server: str) -> Dict[str, Tuple[str, Optional[str]]]:
    """{node id: (namespace, FRR confdir or None)} of `server`, as provisioning plans them."""
    cached = _PLAN_CACHE.get((id(topo), server))
    if cached is not None and cached[0] is topo:
        return cached[1]
    if len(_PLAN_CACHE) > 64:
        _PLAN_CACHE.clear()
    sdir = names.provision_state_dir(paths.provision_state_dir(topo, server), topo, server)
    result = names.server_nodes(topo, server, sdir)
    _PLAN_CACHE[(id(topo), server)] = (topo, result)
    return result


def lab_backend(topo: Topology) -> str:
    """How the lab's nodes are made ("netns" or "docker"), as `lab up` recorded it."""
    try:
        state = LabState.load(topo)
    except LabError:
        state = None
    return state.backend if state is not None else "netns"


def node_place(topo: Topology, node: str) -> Optional[RouterPlace]:
    """Where provisioning puts node `node` (router or host) of the lab, or None if no such node."""
    router = node[:-len(".host")] if node.endswith(".host") else node
    if router not in topo.routers:
        return None
    server = topo.server_of(router)
    ns, confdir = plan_nodes(topo, server).get(node, (None, None))
    if ns is None:
        return None
    return RouterPlace(router=node, server=server, netns=ns, vty_dir=confdir or "", backend=lab_backend(topo))


def router_place(topo: Topology, router: str) -> RouterPlace:
    """Where provisioning puts `router` on a lab server: its namespace and vtysh socket directory."""
    place = node_place(topo, router)
    if place is None:
        raise LabError(f"no router {router} in {topo.name}")
    return place


def resolve_node(topo: Topology, node: str) -> Tuple[str, Dict[str, str], Optional[RouterPlace]]:
    """(namespace, extra environment, router place or None) of a node name.

    Nodes: `mgmt`, `underlay` (or `ul`), a server name (its OvS is reachable there: OVS_RUNDIR is
    set), a router `<asn>.<NAME>` or its host `<asn>.<NAME>.host`, or `NAME`/`NAME.host` when
    only one router has that name.
    """
    if node == "mgmt":
        return names.mgmt_ns(topo), {}, None
    if node in ("underlay", "ul"):
        return names.underlay_ns(topo), {}, None
    if node in topo.servers:
        return names.server_ns(topo, node), paths.server_env(topo, node), None
    place = node_place(topo, node)
    if place is None:          # a bare router name (NAME or NAME.host) when it is unique
        base, host = (node[:-5], ".host") if node.endswith(".host") else (node, "")
        matches = [r for r in topo.routers if r.split(".", 1)[1] == base]
        if len(matches) > 1:
            raise LabError(f"node name {node} is ambiguous: {', '.join(m + host for m in matches)}")
        if matches:
            place = node_place(topo, matches[0] + host)
    if place is None:
        example = next(iter(topo.routers), "1.R")
        raise LabError(f"no node {node!r} in {topo.name} (nodes: mgmt, underlay, servers "
                       f"{', '.join(topo.servers)}, routers like {example}, hosts like {example}.host)")
    return place.netns, {}, place


def exec_in_node(topo_path: str, node: str, argv: Sequence[str]) -> int:
    """Run `argv` in a lab node with the caller's stdin/stdout; its exit code.

    For vtysh in a router, `--vty_socket` and `--config_dir <router dir>` are added automatically.
    """
    topo = load(topo_path)
    require(topo, topo_path)
    if not argv:
        raise LabError("no command given (minet exec FILE NODE -- CMD ...)")
    ns, env, place = resolve_node(topo, node)
    argv = list(argv)
    if place is not None and place.vty_dir:
        argv = names.with_vtysh_dirs(argv, place.vty_dir)
    if place is not None and place.backend == "docker":        # the command runs in the container
        tty = sys.stdin.isatty() and sys.stdout.isatty()
        return subprocess.call(names.exec_prefix("docker", ns, interactive=True, tty=tty) + argv)
    if not netns_exists(ns):
        raise LabError(f"node {node}: namespace {ns} does not exist (is the lab provisioned?)")
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        raise LabError(f"{argv[0]}: command not found")
    return subprocess.call(names.exec_prefix("netns", ns, env=env) + argv)
