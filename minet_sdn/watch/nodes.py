"""Run a command in a node of a running lab, on either backend (the lab's own exec machinery).

A node is a router `<asn>.<NAME>` or its host `<asn>.<NAME>.host`; `lab.places.node_place` says where
provisioning put it (named namespace or container) and `RouterPlace.exec_prefix()` how to get in.
"""
from __future__ import annotations

import subprocess
from typing import List, Optional, Sequence, Tuple

from ..topology import Topology


class NodeError(Exception):
    """A node that does not exist or cannot be reached; one line."""


def exec_argv(topo: Topology, node: str, argv: Sequence[str]) -> List[str]:
    """Full argv running `argv` inside `node` (raises NodeError when the lab has no such node)."""
    from ..lab.places import node_place
    place = node_place(topo, node)
    if place is None:
        raise NodeError(f"no node {node} in {topo.name}")
    return place.exec_prefix() + list(argv)


def vtysh_argv(topo: Topology, router: str, command: str) -> List[str]:
    """argv of `vtysh -c COMMAND` on `router`, on its own sockets (in its container on docker)."""
    from ..lab.places import node_place
    place = node_place(topo, router)
    if place is None or router.endswith(".host"):
        raise NodeError(f"no router {router} in {topo.name}")
    return place.vtysh_argv(command)


def run(argv: Sequence[str], timeout: float) -> Tuple[int, str, str]:
    """(exit code, stdout, stderr); exit code 124 on timeout, 127 when the program is missing."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, out, f"timed out after {timeout:g} s"
    except OSError as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


def lab_topology(topo_path: str) -> Topology:
    """The topology of the running lab of `topo_path` (raises NodeError when none is up)."""
    from ..lab import LabError, effective, state
    try:
        topo = effective.load(topo_path)
        state.require(topo, topo_path)
    except LabError as exc:
        raise NodeError(str(exc).splitlines()[0])
    return topo


def lab_is_up(topo: Topology) -> Optional[bool]:
    """True/False when the lab machinery is installed, None when it is not."""
    try:
        from ..lab import LabError
        from ..lab.state import LabState
    except ImportError:
        return None
    try:
        return LabState.load(topo) is not None
    except LabError:
        return False
