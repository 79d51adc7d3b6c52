"""The lab's topology: the user's file loaded (a problem is a LabError), and the EFFECTIVE copy in
the state directory that every process of the lab reads: the same topology with the controller and
every server's ssh on the lab's management network, and the servers' underlay interface named."""
from __future__ import annotations

import dataclasses
import os
from typing import Dict

import yaml

from ..topology import Topology, TopologyError, load_topology, names, validate
from . import LabError, paths
from .sshd import SSH_PORT
from .state import LabState

LAB_UNDERLAY_MTU = 9000


def load(topo_path: str) -> Topology:
    """The topology as the lab runs it: the file, with the lab's defaults (lab_defaults)."""
    try:
        topo = load_topology(topo_path)
    except TopologyError as exc:
        raise LabError(exc.problems[0] + (f" (and {len(exc.problems) - 1} more problems)"
                                          if len(exc.problems) > 1 else ""))
    return lab_defaults(topo_path, topo)


def lab_defaults(topo_path: str, topo: Topology) -> Topology:
    """The lab's underlay is veths on one machine: jumbo frames cost nothing there, and with them a
    remote link carries full 1500-byte frames like a local one. Only a default: a written MTU stays."""
    if "underlay_mtu" in validate.written_keys(topo_path, "fabric"):
        return topo
    return dataclasses.replace(topo, fabric=dataclasses.replace(topo.fabric, underlay_mtu=LAB_UNDERLAY_MTU))


def effective(state: LabState) -> Topology:
    """What the lab was built from, even if the user's file changed since."""
    return load(state.effective_topology)


def effective_topology_text(topo_path: str, topo: Topology, addresses: Dict[str, str]) -> str:
    """The user's topology with the controller and every server's ssh on the lab's mgmt network."""
    with open(topo_path, "r", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    mgmt_ip = addresses["mgmt"]
    data["controller"] = {"ofp": f"{mgmt_ip}:{topo.controller.ofp_port}",
                          "rest": f"{mgmt_ip}:{topo.controller.rest_port}"}
    fabric = data.get("fabric") if isinstance(data.get("fabric"), dict) else {}
    if "underlay_mtu" not in fabric:        # the lab's default, written down (lab_defaults)
        data["fabric"] = {**fabric, "underlay_mtu": topo.fabric.underlay_mtu}
    if isinstance(data["servers"], list):     # `servers: [VM1, VM2]`: the addresses the loader numbered
        data["servers"] = {name: {"underlay_ip": topo.servers[name].underlay_ip} for name in data["servers"]}
    for name in data["servers"]:
        spec = dict(data["servers"][name] or {})
        spec["ssh"] = f"root@{addresses[name]}:{SSH_PORT}"
        spec["interface"] = names.underlay_ifname(topo)
        data["servers"][name] = spec
    header = (f"# Effective topology of the lab '{topo.name}', derived from {os.path.abspath(topo_path)}\n"
              f"# (controller and ssh on the lab's management network). Generated; do not edit.\n")
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def write_effective_topology(topo_path: str, topo: Topology, addresses: Dict[str, str]) -> str:
    path = paths.effective_topology_path(topo)
    paths.write_atomic(path, effective_topology_text(topo_path, topo, addresses))
    try:
        load_topology(path)
    except TopologyError as exc:        # a bug of ours, not the user's
        raise LabError(f"the effective topology {path} does not load: {exc.problems[0]}")
    return path
