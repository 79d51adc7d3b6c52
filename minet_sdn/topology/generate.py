"""Class-shaped topologies: the teaching mini-Internet's layout, N ASes of 8 routers (pure).

    minet generate class --ases 60 --servers 4 [--name class] [--out FILE]

Every AS has the eight routers of the classic layout (ZURI BASE GENE LUGA MUNI LYON VIEN MILA),
each with a host; inside an AS the routers form a ring (see addressing.py) running OSPF, with an
iBGP full mesh. Deterministic: the same arguments always give the same text. ASes 1..N take roles:

  tier 1    ASes 1..T (T = max(2, N // 10)): a full clique of peerings;
  transit   the next max(1, 3 (N - T) // 10) ASes: each is a customer of two tier-1 ASes, and
            consecutive transit ASes peer in pairs;
  stub      the rest: each is a customer of two transit ASes (multi-homed), and every fourth
            stub peers with the next one. The last two stubs are `configure: false`, left to students.

ASes go round-robin over the servers (AS k on server (k - 1) mod S), so most inter-AS links are
remote. An AS's links are attached to its routers in turn, so they spread over the eight.
"""
from __future__ import annotations

from itertools import combinations
from typing import Dict, List, Tuple

from ..errors import UserError

CLASS_ROUTERS = ("ZURI", "BASE", "GENE", "LUGA", "MUNI", "LYON", "VIEN", "MILA")
# BFD on the tunnels: hundreds of routers converging on two cores starve the userspace datapath for
# longer than 3 x 100 ms (the default), so tunnels flapped, the controller held every remote link
# down and up again, and eBGP never settled (seen at 40 x 8). 1 s (3 s to detect a cut) holds.
BFD_INTERVAL_MS = 1000


class GenerateError(UserError, ValueError):
    pass


def class_roles(n_ases: int) -> Tuple[List[int], List[int], List[int]]:
    """(tier-1, transit, stub) ASNs of an N-AS class topology."""
    if n_ases < 4:
        raise GenerateError(f"--ases {n_ases}: a class topology needs at least 4 ASes")
    t1 = max(2, n_ases // 10)
    tr = max(1, 3 * (n_ases - t1) // 10)
    asns = list(range(1, n_ases + 1))
    return asns[:t1], asns[t1:t1 + tr], asns[t1 + tr:]


# The layer 2 of the mini-Internet's current students' AS (platform/config: l2_switches.txt,
# l2_hosts.txt, l2_links.txt, l2_tunnel.txt): data centres DCN (S1 behind ZURI, S2 behind BASE, S3)
# and DCS (S4 behind GENE), hosts in VLANs 10 and 20 on every switch and VPN clients in VLAN 30 on
# the north ones, a triangle of trunks in DCN, the L2 tunnel ZURI-GENE.
L2_SWITCHES = (("S1", "DCN", "ZURI"), ("S2", "DCN", "BASE"), ("S3", "DCN", None), ("S4", "DCS", "GENE"))
L2_HOSTS = tuple((f"{kind}_{k}", f"S{k}", vlan) for k in (1, 2, 3, 4)
                 for kind, vlan in (("FIFA", 10), ("UEFA", 20), ("vpn", 30)) if not (kind == "vpn" and k == 4))
L2_LINKS = (("S1", "S2"), ("S1", "S3"), ("S2", "S3"))
L2_SHAPING = "throughput: 10mbit, delay: 1ms, buffer: 50ms"


def layer2_lines(indent: str = "    ") -> List[str]:
    """The `layer2:` section of one AS with the current layout's layer 2 (YAML lines)."""
    out = [f"{indent}layer2:", f"{indent}  switches:"]
    for k, (sw, dc, router) in enumerate(L2_SWITCHES, start=1):
        gw = f", router: {router}" if router else ""
        out.append(f"{indent}    {sw}: {{dc: {dc}{gw}, stp_priority: {k}, "
                   f"stp_system_id: \"{':'.join([f'{k}{k}'] * 6)}\"}}")
    out.append(f"{indent}  hosts:")
    out += [f"{indent}    {h}: {{switch: {sw}, vlan: {vlan}, {L2_SHAPING}" + (", vpn: true}" if h.startswith("vpn") else "}")
            for h, sw, vlan in L2_HOSTS]
    out.append(f"{indent}  links:")
    out += [f"{indent}    - {{a: {a}, b: {b}, {L2_SHAPING}}}" for a, b in L2_LINKS]
    out.append(f"{indent}  tunnel: {{a: ZURI, b: GENE}}")
    return out


def class_topology(n_ases: int = 60, servers: int = 4, name: str = "class", routers: int = 8,
                   unconfigured: int = 2, layer2: bool = False) -> str:
    """The YAML text of a class-shaped topology; with `layer2`, every AS also has the current
    layout's layer 2 (4 switches, 8 hosts, 3 VPN clients), preconfigured where the AS is configured
    and wired only in the students' ASes."""
    if layer2 and routers < 3:
        raise GenerateError(f"--routers {routers}: --layer2 needs ZURI, BASE and GENE (at least 3 routers)")
    if servers < 1:
        raise GenerateError(f"--servers {servers}: need at least 1 server")
    if not 1 <= routers <= len(CLASS_ROUTERS):
        raise GenerateError(f"--routers {routers}: between 1 and {len(CLASS_ROUTERS)}")
    tier1, transit, stubs = class_roles(n_ases)
    if unconfigured > len(stubs):
        raise GenerateError(f"--unconfigured {unconfigured}: only {len(stubs)} stub ASes")
    names = CLASS_ROUTERS[:routers]
    vms = [f"VM{i}" for i in range(1, servers + 1)]
    server_of = {asn: vms[(asn - 1) % servers] for asn in range(1, n_ases + 1)}
    used: Dict[int, int] = {asn: 0 for asn in server_of}

    def router(asn: int) -> str:
        r = names[used[asn] % len(names)]
        used[asn] += 1
        return f"{asn}.{r}"

    links: List[Tuple[str, str, str, str]] = []

    def link(a: int, b: int, rel: str, what: str) -> None:
        links.append((router(a), router(b), rel, what))

    for x, y in combinations(tier1, 2):
        link(x, y, "peer", "tier-1 peering")
    for k, asn in enumerate(transit):
        link(tier1[k % len(tier1)], asn, "provider", "tier-1 provider of transit")
        link(tier1[(k + 1) % len(tier1)], asn, "provider", "tier-1 provider of transit")
    for k in range(0, len(transit) - 1, 2):
        link(transit[k], transit[k + 1], "peer", "transit peering")
    for k, asn in enumerate(stubs):
        link(transit[k % len(transit)], asn, "provider", "transit provider of stub")
        if len(transit) > 1:
            link(transit[(k + 1) % len(transit)], asn, "provider", "second transit provider of stub")
    for k in range(0, len(stubs) - 1, 4):
        link(stubs[k], stubs[k + 1], "peer", "stub peering")

    students = set(stubs[len(stubs) - unconfigured:]) if unconfigured else set()
    remote = sum(1 for a, b, _, _ in links if server_of[int(a.split(".")[0])] != server_of[int(b.split(".")[0])])
    out = [f"# Generated by `minet generate class --ases {n_ases} --servers {servers} --name {name}"
           f"{' --layer2' if layer2 else ''}`; "
           "do not edit by hand.",
           f"# {n_ases} ASes ({len(tier1)} tier 1, {len(transit)} transit, {len(stubs)} stubs, "
           f"{len(students)} unconfigured), {n_ases * routers} routers and as many hosts, "
           f"{f'{n_ases * len(L2_SWITCHES)} layer-2 switches, ' if layer2 else ''}"
           f"{len(links)} inter-AS links ({remote} remote) on {servers} servers.",
           "# rel is a's relationship to b: provider = a is b's provider, customer = a is b's customer.",
           f"name: {name}",
           "fabric:",
           "  isolation: key",
           "  encapsulation: gre",
           "  underlay_mtu: 9000",
           f"  bfd_interval_ms: {BFD_INTERVAL_MS}          # see BFD_INTERVAL_MS in minet_sdn/topology/generate.py",
           "servers:"]
    out += [f"  {vm}: {{underlay_ip: 192.0.2.{i}}}" for i, vm in enumerate(vms, start=1)]
    out.append("ases:")
    for asn in range(1, n_ases + 1):
        role = "tier 1" if asn in tier1 else "transit" if asn in transit else "stub"
        extra = ", configure: false" if asn in students else ""
        if layer2:
            out.append(f"  {asn}:".ljust(96) + f"# {role}")
            out.append(f"    server: {server_of[asn]}")
            out.append(f"    routers: [{', '.join(names)}]")
            if extra:
                out.append("    configure: false")
            out += layer2_lines()
            continue
        out.append(f"  {asn}: {{server: {server_of[asn]}, routers: [{', '.join(names)}]{extra}}}".ljust(96)
                   + f"# {role}")
    out.append("links:                     # link id = 1-based position in this list")
    for i, (a, b, rel, what) in enumerate(links, start=1):
        sa, sb = server_of[int(a.split(".")[0])], server_of[int(b.split(".")[0])]
        where = f"{sa}-{sb}" if sa != sb else f"local {sa}"
        out.append(f"  - {{a: {a}, b: {b}, rel: {rel}}}".ljust(50) + f"# {i} {where}: {what}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":      # the old `python -m minet_sdn.topology.generate`: its parser is in cli/
    import runpy
    runpy.run_module("minet_sdn.cli.generate", run_name="__main__")
