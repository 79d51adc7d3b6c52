"""What provisioning built that is gone from a running lab (issue 21, item 6): a router whose FRR
daemons died (`kill -9` of its zebra and bgpd), a remote bridge deleted by hand (`ovs-vsctl
del-br`). `lab status` reports each as a problem; `lab up` repairs them in place by running
provisioning again, which is idempotent: it recreates what is missing (a bridge with its ports,
tunnel and controller: the controller then puts its flows back) and restarts a router's daemons,
as a set when zebra was among the dead (provision/apply.py).

Pure where it can be: `dead_daemons` and `missing_bridges` take what was read as arguments; the
readers (`read_daemons`, `read_bridges`) are the thin shell.
"""
from __future__ import annotations

import subprocess
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import host
from ..topology import Topology, names
from . import paths

# (router node id, its daemons, the directory holding their pid files)
RouterDaemons = Tuple[str, Tuple[str, ...], str]


def planned_routers(topo: Topology, server: str, root: str, backend: str) -> List[RouterDaemons]:
    """Every FRR router provisioning runs on `server` (routers and route servers) with its daemons."""
    from ..provision.plan import build_plan
    plan = build_plan(topo, server, backend=backend, root=root, with_services=False)
    return [(r.node, tuple(r.daemons), r.confdir) for r in plan.routers]


def daemon_running(pid_path: str, daemon: str) -> bool:
    """The pid file names a live process (not a zombie) called `daemon`."""
    try:
        with open(pid_path) as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/comm") as fh:
            if fh.read().strip() != daemon:
                return False
    except (OSError, ValueError):
        return False
    return host.pid_alive(pid)


def dead_daemons(routers: Iterable[RouterDaemons],
                 running: Callable[[str, str], bool]) -> Dict[str, List[str]]:
    """{router: [daemons not running]} for the routers with any; `running(pid_path, daemon)`."""
    out: Dict[str, List[str]] = {}
    for node, daemons, confdir in routers:
        dead = [d for d in daemons if not running(f"{confdir}/{d}.pid", d)]
        if dead:
            out[node] = dead
    return out


def missing_bridges(wanted: Mapping[str, Sequence[str]], present: Mapping[str, Optional[Sequence[str]]]
                    ) -> List[Tuple[str, str]]:
    """(server, bridge) planned and absent. A server whose OvS could not be read (None) is left
    out: its dead ovs-vswitchd or ovsdb-server is a problem of its own."""
    return [(server, b) for server, bridges in wanted.items() for b in bridges
            if present.get(server) is not None and b not in present[server]]


def read_bridges(topo: Topology, server: str) -> Optional[List[str]]:
    """The bridges of `server`'s OvS (None when it does not answer)."""
    d = paths.server_dir(topo, server)
    argv = [*names.exec_prefix("netns", names.server_ns(topo, server)), "env",
            *(f"{k}={v}" for k, v in host.ovs_env(d).items()),
            "ovs-vsctl", f"--db=unix:{host.OvsFiles(d).db_sock}", "--timeout=5", "list-br"]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.split() if res.returncode == 0 else None


def problems(topo: Topology, servers: Iterable[str], roots: Callable[[str], str], backend: str,
             daemons_alive: Callable[[str], bool]) -> List[str]:
    """One line per router with dead daemons and per missing remote bridge, for `lab status`.
    `daemons_alive(server)`: that server's OvS runs (bridges are only looked for then). The
    docker backend's daemons are the containers' (pids of another namespace): not looked at."""
    out: List[str] = []
    servers = list(servers)
    if backend == "netns":
        for server in servers:
            dead = dead_daemons(planned_routers(topo, server, roots(server), backend), daemon_running)
            out += [f"router {node}: FRR {', '.join(ds)} not running" for node, ds in dead.items()]
    wanted = {s: [b.name for b in topo.bridges.values() if b.server == s] for s in servers}
    present = {s: read_bridges(topo, s) if wanted[s] and daemons_alive(s) else None for s in servers}
    out += [f"remote bridge {b} of {s} is gone" for s, b in missing_bridges(wanted, present)]
    return out
