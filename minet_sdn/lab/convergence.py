"""Asking the lab's routers how far they are: the polled commands straight from FRR's vty sockets,
BGP sessions (expected from the topology, in each family), routes to every configured AS, and
waiting until every configured router has converged (`lab up` does, so its return means "up")."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..topology import Topology
from ..topology.addressing import topology_addressing, topology_addressing6
from . import Progress, quiet
from .places import RouterPlace, router_place

BGP_TIMEOUT = 180.0


def default_bgp_timeout(topo: Topology) -> float:
    """How long `lab up` waits for convergence by default: 180 s plus 0.5 s per router."""
    return BGP_TIMEOUT + 0.5 * len(topo.routers)


def configured_routers(topo: Topology) -> List[str]:
    return [r for r, as_ in topo.routers.items() if as_.configure]



# The commands the lab polls, each answered by one daemon: asked over that daemon's own vty socket
# (<vty_dir>/<daemon>.vty, the protocol vtysh itself speaks: the command and a NUL; the output, then
# three NULs and the command's status), the answer is the same text without starting vtysh, which
# loads every daemon's command tree: 0.6 ms instead of about 30 ms (25 ms of CPU) per call. At 60 x 8
# a second `lab up` is one such call per configured router (464).
VTY_DAEMON = {"show bgp summary json": "bgpd", "show ip route json": "zebra", "show ipv6 route json": "zebra"}


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


def vtysh(place: RouterPlace, command: str, timeout: float = 10) -> Optional[str]:
    daemon = VTY_DAEMON.get(command) if place.backend != "docker" else None
    if daemon is not None:
        text = vty_direct(os.path.join(place.vty_dir, f"{daemon}.vty"), command, timeout)
        if text is not None:
            return text
    try:
        proc = subprocess.run(place.vtysh_argv(command),
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def bgp_sessions(topo: Topology, router: str) -> Dict[str, Any]:
    """{"router", "reachable", "sessions": [{"peer", "remote_as", "state", "expected"}], "missing"}."""
    place = router_place(topo, router)
    text = vtysh(place, "show bgp summary json")
    unconfigured = {asn for asn, a in topo.ases.items() if not a.configure}
    result: Dict[str, Any] = {"router": router, "server": place.server, "reachable": text is not None,
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
                          "expected": remote_as not in unconfigured,
                          "afi": "ipv6" if ":" in peer else "ipv4", "family": family}
    result["sessions"] = sorted(seen.values(), key=lambda s: s["peer"])
    # every link towards a configured AS needs a session in each family (fabric.ipv6: dual stack)
    for link in topo.links:
        for me, far in ((link.a, link.b), (link.b, link.a)):
            if me.router == router and far.asn not in unconfigured:
                wanted = (far.ip, far.ip6) if topo.fabric.ipv6 else (far.ip,)
                result["missing"].extend(ip for ip in wanted if ip not in seen)
    return result


def bgp_converged(report: Dict[str, Any]) -> bool:
    return (report["reachable"] and not report["missing"]
            and all(s["state"] == "Established" for s in report["sessions"] if s["expected"]))


def routes_missing(topo: Topology, router: str) -> Optional[List[int]]:
    """The configured ASes (other than its own) whose prefix `router` has no route to, in IPv4 or
    (when fabric.ipv6) in IPv6; None if vtysh did not answer. The IPv6 table is read only once
    the IPv4 one is complete (one vtysh call per poll while routes are still spreading)."""
    place = router_place(topo, router)

    def table(command: str) -> Optional[Dict[str, Any]]:
        text = vtysh(place, command, timeout=20)
        try:
            got = json.loads(text) if text else None
        except ValueError:
            got = None
        return got if isinstance(got, dict) else None

    own = topo.routers[router].asn
    others = [asn for asn, as_ in topo.ases.items()          # (announce_to: a route may be withheld)
              if as_.configure and asn != own and asn not in topo.restricted_exporters]
    v4 = table("show ip route json")
    if v4 is None:
        return None
    addressing = _addressing(topo, topology_addressing)
    missing = [asn for asn in others if addressing[asn].prefix not in v4]
    if missing or not topo.fabric.ipv6 or not others:
        return missing
    v6 = table("show ipv6 route json")
    if v6 is None:
        return None
    addressing6 = _addressing(topo, lambda t: topology_addressing6(t, topology_addressing(t)), family=6)
    return [asn for asn in others if addressing6[asn].prefix not in v6]


_ADDRESSING: Dict[Tuple[int, int], Any] = {}


def _addressing(topo: Topology, compute, family: int = 4) -> Dict[int, Any]:
    key = (id(topo), family)
    if key not in _ADDRESSING:
        if not any(k[0] == id(topo) for k in _ADDRESSING):
            _ADDRESSING.clear()
        _ADDRESSING[key] = compute(topo)
    return _ADDRESSING[key]


def poll_workers() -> int:
    """vtysh calls in flight while waiting (each costs ~45 ms of CPU): twice the CPUs, at most 8."""
    return min(8, 2 * (os.cpu_count() or 1))


def wait_bgp(topo: Topology, timeout: float = BGP_TIMEOUT, progress: Progress = quiet,
             interval: float = 1.0, routes: bool = False) -> Tuple[bool, List[Dict[str, Any]]]:
    """Poll configured routers until all their expected sessions are Established (and, with
    `routes`, each has a route to every configured AS). A router found converged is not asked
    again, so a sweep costs less as the lab converges; progress with an ETA every 10 s."""
    routers = configured_routers(topo)
    deadline = time.monotonic() + timeout
    t0 = last_note = time.monotonic()
    reports: Dict[str, Dict[str, Any]] = {}
    done: set = set()
    sessions_noted = not routes

    def poll(router: str) -> Tuple[str, Dict[str, Any], bool]:
        rep = bgp_sessions(topo, router)
        ok = bgp_converged(rep)
        if ok and routes:
            missing = routes_missing(topo, router)
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
            if now - last_note >= 10:
                up, total = count_sessions(list(reports.values()))
                rate = len(done) / (now - t0)
                eta = f", ETA {(len(routers) - len(done)) / rate:.0f} s" if rate > 0 and done else ""
                what = "converged (sessions and routes)" if routes else "with every session up"
                progress(f"waiting for BGP: {up}/{total} sessions established, "
                         f"{len(done)}/{len(routers)} routers {what}{eta}")
                last_note = now
            time.sleep(interval)


def count_sessions(reports: Sequence[Dict[str, Any]]) -> Tuple[int, int]:
    up = total = 0
    for r in reports:
        expected = [s for s in r["sessions"] if s["expected"]]
        total += len(expected) + len(r["missing"])
        up += sum(1 for s in expected if s["state"] == "Established")
    return up, total
