"""Is routing up? BGP sessions and routes of FRR routers, read from the machine they run on.

Used wherever the routers' sockets are local: by `minet-provision --server X --wait` on each server
(so `--master --wait` tells when a whole multi-server topology has converged, each server asking
only its own routers) and by the lab, whose servers all live on one machine.

A router is asked over its daemons' own vty sockets (<vty_dir>/<daemon>.vty), the protocol vtysh
itself speaks: the command and a NUL; the output, then three NULs and the command's status. That
is the same text as vtysh's without starting vtysh, which loads every daemon's command tree: 0.6 ms
instead of about 30 ms (25 ms of CPU) per call, which matters while hundreds of routers converge
on a few cores. Anything else, or a router in a container, goes through vtysh.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import AbstractSet, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..topology import Topology
from ..topology.places import NodePlace

Progress = Callable[[str], None]

# The commands polled while waiting, each answered by one daemon.
VTY_DAEMON = {"show bgp summary json": "bgpd", "show ip route json": "zebra", "show ipv6 route json": "zebra"}
PROGRESS_EVERY = 10.0


def vty_direct(path: str, command: str, timeout: float = 10) -> Optional[str]:
    """`command`'s output from the FRR daemon listening on the vty socket `path`; None if it cannot
    be asked or the command failed (status not 0)."""
    deadline = time.monotonic() + timeout
    chunks: List[bytes] = []
    tail = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(command.encode() + b"\0")
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    return None               # closed before the end marker
                chunks.append(data)
                tail = (tail + data)[-4:]
                if len(tail) == 4 and tail[:3] == b"\0\0\0":
                    break
    except OSError:                           # includes socket.timeout
        return None
    raw = b"".join(chunks)
    if raw[-1] != 0:
        return None
    return raw[:-4].decode(errors="replace")


def ask(router: NodePlace, command: str, timeout: float = 10) -> Optional[str]:
    """A `show` command's output on the FRR node at `router` (its daemon's socket when it can, else
    vtysh); None when it did not answer or the command failed."""
    daemon = VTY_DAEMON.get(command) if router.backend != "docker" else None
    if daemon is not None and router.frr_dir is not None:
        text = vty_direct(os.path.join(router.frr_dir, f"{daemon}.vty"), command, timeout)
        if text is not None:
            return text
    try:
        proc = subprocess.run(router.vtysh_argv(command), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


Ask = Callable[[str, str, float], Optional[str]]      # (router id, command, timeout) -> output


def bgp_sessions(topo: Topology, router: str, text: Optional[str],
                 down_peers: AbstractSet[str] = frozenset()) -> Dict[str, Any]:
    """`router`'s sessions from its `show bgp summary json` output (`text`, None when it did not
    answer): {"router", "reachable", "sessions": [{"peer", "remote_as", "state", "expected", "afi",
    "family"}], "missing": [peer addresses the topology wants a session with and bgpd lacks]}.
    `down_peers`: far ends of links an operator failed, whose sessions are not expected up."""
    unconfigured = {asn for asn, a in topo.ases.items() if not a.configure}
    result: Dict[str, Any] = {"router": router, "server": topo.server_of(router), "reachable": text is not None,
                              "sessions": [], "missing": []}
    data: Dict[str, Any] = {}
    if text is not None:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            result["reachable"] = False
    seen: Dict[str, Dict[str, Any]] = {}
    for family, afi in (data.items() if isinstance(data, dict) else ()):
        if not isinstance(afi, dict):
            continue
        for peer, info in (afi.get("peers") or {}).items():
            remote_as = info.get("remoteAs")
            seen[peer] = {"peer": peer, "remote_as": remote_as, "state": info.get("state", "?"),
                          "expected": remote_as not in unconfigured and peer not in down_peers,
                          "afi": "ipv6" if ":" in peer else "ipv4", "family": family}
    result["sessions"] = sorted(seen.values(), key=lambda s: s["peer"])
    # every link towards a configured AS needs a session in each family (fabric.ipv6: dual stack)
    for link in topo.links:
        for me, far in ((link.a, link.b), (link.b, link.a)):
            if me.router == router and far.asn not in unconfigured:
                wanted = (far.ip, far.ip6) if topo.fabric.ipv6 else (far.ip,)
                result["missing"].extend(ip for ip in wanted if ip not in seen and ip not in down_peers)
    return result


def bgp_converged(report: Dict[str, Any]) -> bool:
    return (report["reachable"] and not report["missing"]
            and all(s["state"] == "Established" for s in report["sessions"] if s["expected"]))


def count_sessions(reports: Sequence[Dict[str, Any]]) -> Tuple[int, int]:
    """(established, expected) over `reports`; a wanted session bgpd does not have counts as down."""
    up = total = 0
    for r in reports:
        expected = [s for s in r["sessions"] if s["expected"]]
        total += len(expected) + len(r["missing"])
        up += sum(1 for s in expected if s["state"] == "Established")
    return up, total


class Prefixes:
    """Each configured AS's IPv4 and IPv6 prefix, and which configured ASes hear each one's routes,
    computed once per topology."""

    def __init__(self, topo: Topology):
        from ..topology.addressing import topology_addressing, topology_addressing6
        v4 = topology_addressing(topo)
        self.v4 = {asn: a.prefix for asn, a in v4.items()}
        self.v6 = ({asn: a.prefix for asn, a in topology_addressing6(topo, v4).items()}
                   if topo.fabric.ipv6 else {})
        self.heard = expected_routes(topo)


def expected_routes(topo: Topology) -> Dict[int, List[int]]:
    """{configured AS: the other configured ASes whose prefix it should have a route to}, with the
    ASes left for the students silent: an announcement travels only through configured ASes, by
    the policies the generated configurations follow (topology/policy.py, IXP announce_to
    included). In the mini-Internet's own layout a stub's only way to the rest is often a
    students' AS: waiting for that route would never end."""
    from ..topology.policy import relations_of
    rel = relations_of(topo)
    configured = sorted(asn for asn, as_ in topo.ases.items() if as_.configure)
    heard = {d: rel.reached_by(d) for d in configured}
    return {s: [d for d in configured if d != s and s in heard[d]] for s in configured}


_PREFIXES: Dict[int, Tuple[Topology, Prefixes]] = {}


def prefixes(topo: Topology) -> Prefixes:
    got = _PREFIXES.get(id(topo))
    if got is None or got[0] is not topo:
        _PREFIXES.clear()                     # one topology at a time in practice
        got = _PREFIXES[id(topo)] = (topo, Prefixes(topo))
    return got[1]


def routes_missing(topo: Topology, router: str, table: Callable[[str], Optional[str]]) -> Optional[List[int]]:
    """The configured ASes (other than its own) whose prefix `router` has no route to, in IPv4 or
    (when fabric.ipv6) in IPv6; None if the router did not answer. `table(command)` returns the
    router's `show ip route json` / `show ipv6 route json`. The IPv6 table is read only once the
    IPv4 one is complete (one call per poll while routes are still spreading)."""
    def read(command: str) -> Optional[Dict[str, Any]]:
        text = table(command)
        try:
            got = json.loads(text) if text else None
        except ValueError:
            got = None
        return got if isinstance(got, dict) else None

    own = topo.routers[router].asn
    known = prefixes(topo)
    others = known.heard.get(own, [])
    v4 = read("show ip route json")
    if v4 is None:
        return None
    missing = [asn for asn in others if known.v4[asn] not in v4]
    if missing or not topo.fabric.ipv6 or not others:
        return missing
    v6 = read("show ipv6 route json")
    if v6 is None:
        return None
    return [asn for asn in others if known.v6[asn] not in v6]


def poll_workers() -> int:
    """Routers asked at once while waiting: twice the CPUs, at most 8."""
    return min(8, 2 * (os.cpu_count() or 1))


def wait_converged(topo: Topology, routers: Sequence[str], ask_router: Ask, *, timeout: float,
                   progress: Progress = lambda _m: None, interval: float = 1.0,
                   routes: bool = False, down_peers: AbstractSet[str] = frozenset()
                   ) -> Tuple[bool, List[Dict[str, Any]]]:
    """Poll `routers` until all their expected sessions are Established (and, with `routes`, each
    has a route to every configured AS); (converged, one report per router). A router found
    converged is not asked again, so a sweep costs less as routing converges; progress with an ETA
    every 10 s. `ask_router(router, command, timeout)` runs a show command on a router. Sessions with
    `down_peers` (links an operator failed) are not waited for."""
    deadline = time.monotonic() + timeout
    t0 = last_note = time.monotonic()
    reports: Dict[str, Dict[str, Any]] = {}
    done: set = set()
    sessions_noted = not routes

    def poll(router: str) -> Tuple[str, Dict[str, Any], bool]:
        rep = bgp_sessions(topo, router, ask_router(router, "show bgp summary json", 10), down_peers)
        ok = bgp_converged(rep)
        if ok and routes:
            missing = routes_missing(topo, router, lambda cmd: ask_router(router, cmd, 20))
            rep["routes_missing"] = missing
            ok = missing == []
        return router, rep, ok

    with ThreadPoolExecutor(max_workers=poll_workers(), thread_name_prefix="bgp-poll") as pool:
        while True:
            todo = [r for r in routers if r not in done]
            for router, rep, ok in pool.map(poll, todo):
                reports[router] = rep
                if ok:
                    done.add(router)
            if not sessions_noted:
                up, total = count_sessions(list(reports.values()))
                if up == total and all(bgp_converged(r) for r in reports.values()):
                    sessions_noted = True
                    progress(f"BGP: all {total} sessions established on {len(routers)} routers "
                             f"({time.monotonic() - t0:.1f} s)")
            if len(done) == len(routers):
                return True, [reports[r] for r in routers]
            now = time.monotonic()
            if now > deadline:
                return False, [reports[r] for r in routers]
            if now - last_note >= PROGRESS_EVERY:
                up, total = count_sessions(list(reports.values()))
                rate = len(done) / (now - t0)
                eta = f", ETA {(len(routers) - len(done)) / rate:.0f} s" if rate > 0 and done else ""
                what = "converged (sessions and routes)" if routes else "with every session up"
                progress(f"waiting for BGP: {up}/{total} sessions established, "
                         f"{len(done)}/{len(routers)} routers {what}{eta}")
                last_note = now
            time.sleep(interval)


def default_timeout(n_routers: int) -> float:
    """How long to wait for convergence by default: 180 s plus 0.5 s per router."""
    return 180.0 + 0.5 * n_routers


def not_converged(reports: Sequence[Dict[str, Any]], most: int = 3) -> str:
    """One line on what is missing: how many routers, and why for the first few."""
    bad = [r for r in reports if not bgp_converged(r) or r.get("routes_missing")]
    parts = []
    for r in bad[:most]:
        if not r["reachable"]:
            why = "does not answer"
        else:
            down = [s["peer"] for s in r["sessions"] if s["expected"] and s["state"] != "Established"]
            lacking = down + list(r["missing"])
            why = (f"sessions not established: {', '.join(lacking[:4])}{' ...' if len(lacking) > 4 else ''}"
                   if lacking else f"no route to AS {', '.join(map(str, (r.get('routes_missing') or [])[:6]))}")
        parts.append(f"{r['router']} {why}")
    more = f"; {len(bad) - most} more" if len(bad) > most else ""
    return f"{len(bad)} of {len(reports)} routers not converged: {'; '.join(parts)}{more}"
