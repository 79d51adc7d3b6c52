"""The `netns` backend: every node is a named network namespace, processes run under `ip netns exec`.

A backend answers four questions for the backend-neutral `apply`: how to create and delete a node,
which network namespace (path) it is, what identifies it (so a marker file can prove a node is
ours even if something else later takes its name), and how to run a command inside it; plus
whose FRR runs there (`uses_host_frr`, `frr_ids`) and how a pid from a node's pid file reads on
this machine (`host_pid`). The other backend is docker.py.
"""
from __future__ import annotations

import os
import pwd
import shutil
from typing import Dict, Iterable, List, Optional, Tuple

from pyroute2 import netns as pyr_netns

from .. import host
from ..topology import names
from .plan import Node

NETNS_DIR = "/var/run/netns"


def ns_identity(path: str) -> Optional[str]:
    """'<dev>:<inode>' of a network namespace file (same for /proc/PID/ns/net of its processes)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def processes_in(identities: Iterable[str]) -> Dict[str, List[int]]:
    """Pids of every process whose network namespace is one of `identities`."""
    wanted = {i: [] for i in identities}
    if not wanted:
        return {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        ident = ns_identity(f"/proc/{entry}/ns/net")
        if ident in wanted:
            wanted[ident].append(int(entry))
    return wanted


def stop_processes(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still there after `timeout` seconds (host.stop_processes)."""
    host.stop_processes(pids, timeout)


_alive = host.pid_alive


class NetnsBackend:
    name = "netns"
    uses_host_frr = True       # this machine's FRR daemons run in the namespaces
    merges_pages = True        # they are our children: they inherit our KSM opt-in (host.page_merging)

    def preflight(self) -> List[str]:
        problems = [] if shutil.which("ip") else ["the ip command is missing (package iproute2)"]
        mine, init = ns_identity("/proc/self/ns/mnt"), ns_identity("/proc/1/ns/mnt")
        if mine and init and mine != init:
            problems.append("running in a private mount namespace (as under `ip netns exec`): the network "
                            "namespaces made here would vanish from view when it exits; enter only the "
                            "network namespace (nsenter --net=/var/run/netns/NAME)")
        return problems

    def nspath(self, node: Node) -> str:
        return os.path.join(NETNS_DIR, node.ns)

    def identity(self, node: Node) -> Optional[str]:
        """What the node is now (None: it does not exist)."""
        if not os.path.exists(self.nspath(node)):
            return None
        return ns_identity(self.nspath(node))

    def create(self, node: Node) -> str:
        pyr_netns.create(node.ns)
        ident = self.identity(node)
        assert ident is not None
        return ident

    def delete(self, node: Node, identity: str) -> None:
        """Stop every process in the node, then remove it (only if it still is `identity`)."""
        if self.identity(node) != identity:
            return
        stop_processes(processes_in([identity]).get(identity, []))
        pyr_netns.remove(node.ns)

    def exec_args(self, node: Node, argv: List[str]) -> List[str]:
        return names.exec_prefix("netns", node.ns) + list(argv)

    def process_in(self, pid: int, identity: str) -> bool:
        return ns_identity(f"/proc/{pid}/ns/net") == identity and _alive(pid)

    def host_pid(self, pid: int, identity: str) -> Optional[int]:
        """A pid from a node's pid file as this machine sees it (the same here), None if not in the node."""
        return pid if self.process_in(pid, identity) else None

    def frr_ids(self) -> Tuple[int, int]:
        """(uid, gid) the FRR daemons run as: this machine's user frr."""
        pw = pwd.getpwnam("frr")
        return pw.pw_uid, pw.pw_gid
