"""IXP peering LANs: make the bridge inside the route server's node match the plan (`plan.IxpLan`).

The LAN is a Linux bridge `lan` in the route server's network namespace, holding the route
server's address; every member's veth ends there as port `m<i>`. Nothing floods and nothing is
learned: each port has learning, unicast/multicast/broadcast flooding off and one static
forwarding entry (its member's MAC), and every member and the route server get permanent ARP
entries for everyone else on the LAN from the topology. A member therefore reaches exactly the
addresses of the peering LAN, and only through it; a frame to any other MAC goes nowhere, and no
ARP ever leaves a router (the same guarantee the controller gives on remote links).

A member on another server reaches its port `m<i>` through an IXP segment: `m<i>` is then one end
of a veth whose other end is a port of the remote bridge towards the member's server, isolated by
the controller like any remote link (tunnel key or DSCP). Its port gets the same flags and static
forwarding entry, the route server and the local members the same ARP entries for it; the member
itself gets its answers from the controller's proxy ARP on its own server (every LAN address).

Idempotent: a second run that finds the bridge, its ports and a matching signature (state dir,
`ixp<N>.json`) changes nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
from typing import Callable, List, Optional, Tuple

BRIDGE = "lan"
PORT_FLAGS = ("learning", "off", "flood", "off", "mcast_flood", "off", "bcast_flood", "off")

Runner = Callable[[Optional[str], List[str]], Tuple[int, str]]


def run_ip(nspath: Optional[str], args: List[str]) -> Tuple[int, str]:
    """`ip ...` or `bridge ...` (args[0]) in namespace `nspath`; (exit code, stdout or stderr)."""
    argv = (["nsenter", f"--net={nspath}"] if nspath else []) + args
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return res.returncode, (res.stdout if res.returncode == 0 else res.stderr.strip())


def _must(run: Runner, nspath: Optional[str], args: List[str]) -> str:
    code, out = run(nspath, args)
    if code != 0:
        raise RuntimeError(f"{' '.join(args)}: {out}")
    return out


def signature(lan) -> str:
    return json.dumps({"ip": lan.ip, "plen": lan.prefixlen, "mac": lan.mac, "ip6": lan.ip6, "plen6": lan.prefixlen6,
                       "ports": [[p.ifname, p.member, p.member_ifname, p.mac, p.ip, p.remote, p.ip6]
                                 for p in lan.ports]},
                      sort_keys=True)


def _ports_on_bridge(run: Runner, nspath: Optional[str]) -> Optional[List[str]]:
    code, out = run(nspath, ["ip", "-j", "link", "show", "dev", BRIDGE])
    if code != 0:
        return None
    code, out = run(nspath, ["ip", "-j", "link", "show", "master", BRIDGE])
    try:
        return sorted(l["ifname"] for l in json.loads(out or "[]")) if code == 0 else []
    except (ValueError, KeyError, TypeError):
        return []


def ensure(lan, nspath_of: Callable[[str], Optional[str]], state_dir: str, run: Runner = run_ip) -> List[str]:
    """Build or converge one peering LAN; returns the changes made."""
    rs = nspath_of(lan.node)
    sig_path = os.path.join(state_dir, f"ixp{lan.number}.json")
    wanted_ports = sorted(p.ifname for p in lan.ports)
    try:
        with open(sig_path) as fh:
            same = fh.read() == signature(lan)
    except OSError:
        same = False
    if same and _ports_on_bridge(run, rs) == wanted_ports:
        return []
    if run(rs, ["ip", "link", "show", "dev", BRIDGE])[0] != 0:
        _must(run, rs, ["ip", "link", "add", BRIDGE, "address", lan.mac, "type", "bridge",
                        "stp_state", "0", "mcast_snooping", "0"])
    _must(run, rs, ["ip", "link", "set", BRIDGE, "address", lan.mac, "up"])
    _must(run, rs, ["ip", "addr", "replace", f"{lan.ip}/{lan.prefixlen}", "dev", BRIDGE])
    if lan.ip6:
        _must(run, rs, ["ip", "-6", "addr", "replace", f"{lan.ip6}/{lan.prefixlen6}", "dev", BRIDGE, "nodad"])
    everyone = [(lan.ip, lan.mac)] + [(p.ip, p.mac) for p in lan.ports]
    everyone += [(lan.ip6, lan.mac)] + [(p.ip6, p.mac) for p in lan.ports if p.ip6] if lan.ip6 else []
    for p in lan.ports:
        _must(run, rs, ["ip", "link", "set", p.ifname, "master", BRIDGE, "up"])
        _must(run, rs, ["bridge", "link", "set", "dev", p.ifname, *PORT_FLAGS])
        _must(run, rs, ["bridge", "fdb", "replace", p.mac, "dev", p.ifname, "master", "static"])
        for ip in (p.ip, p.ip6) if lan.ip6 and p.ip6 else (p.ip,):
            _must(run, rs, ["ip", "neigh", "replace", ip, "lladdr", p.mac, "dev", BRIDGE, "nud", "permanent"])
        if p.remote:
            continue      # a member on another server: proxy ARP there (IPv6: neighbours() there)
        member = nspath_of(p.member)
        for ip, mac in everyone:
            if ip not in (p.ip, p.ip6):
                _must(run, member, ["ip", "neigh", "replace", ip, "lladdr", mac, "dev", p.member_ifname,
                                    "nud", "permanent"])
    with open(sig_path, "w") as fh:
        fh.write(signature(lan))
    return [f"IXP {lan.number}: peering LAN with {len(lan.ports)} members"]


def neighbours(item, nspath_of: Callable[[str], Optional[str]], run: Runner = run_ip) -> List[str]:
    """Permanent IPv6 neighbours of a member whose IXP is on another server (plan.IxpNeighbours);
    only missing or different entries are written."""
    ns = nspath_of(item.node)
    code, out = run(ns, ["ip", "-j", "-6", "neigh", "show", "dev", item.ifname, "nud", "permanent"])
    try:
        have = {n.get("dst"): n.get("lladdr") for n in json.loads(out or "[]")} if code == 0 else {}
    except (ValueError, AttributeError, TypeError):
        have = {}
    missing = [(ip, mac) for ip, mac in item.entries if have.get(ip) != mac]
    for ip, mac in missing:
        _must(run, ns, ["ip", "-6", "neigh", "replace", ip, "lladdr", mac, "dev", item.ifname, "nud", "permanent"])
    return [f"IXP {item.number}: {len(missing)} IPv6 neighbours of {item.node}"] if missing else []


def apply_plan(plan, nspath_of: Callable[[str], Optional[str]], run: Runner = run_ip) -> List[str]:
    changes: List[str] = []
    for lan in plan.ixps:
        changes += ensure(lan, nspath_of, plan.state_dir, run)
    for item in getattr(plan, "ixp_neighbours", ()):
        changes += neighbours(item, nspath_of, run)
    return changes
