"""The mini-Internet's services, placed on routers: DNS, MATRIX, MATRIX_TARGET, MEASUREMENT (pure).

The topology says where they are per AS (`ases.N.services: {ROUTER: [dns, matrix, ...]}`, read
by the loader into `AS.services`); a service runs in the host behind that router (`ASN.R.host`),
so it is reached over the mini-Internet's own routing. This module answers where each one is and
writes the DNS zones; provisioning (provision/services.py) and the views (watch/matrix.py,
watch/measure.py) ask here.

DNS naming follows the mini-Internet's: AS N's names are under `groupN.`; router R (lower case)
is `r.groupN` on every one of its interfaces (loopback, links, host link), its host is
`host.r.groupN`, the AS's name server is `ns.groupN`. minet-sdn also names a node of another kind
`name.groupN`, and an IXP route server `rs.ixpN`. Reverse names live in one zone `in-addr.arpa`
(and `ip6.arpa` for a dual-stack topology): every named address has its PTR.
"""
from __future__ import annotations

import ipaddress
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .model import AS, Topology
from .places import node_id, parse_node_id

DNS, MATRIX, MATRIX_TARGET, MEASUREMENT = "dns", "matrix", "matrix_target", "measurement"
# RPKI: a validator (routinator) or a certificate authority (krill) in the router's host, as the
# mini-Internet's image column places them. Kept in the topology, not emulated yet: the host is a
# plain host, and validate / lab up say so in one warning (not_emulated_warning).
ROUTINATOR, KRILL = "routinator", "krill"
NOT_EMULATED = (ROUTINATOR, KRILL)
SERVICES = (DNS, MATRIX, MATRIX_TARGET, MEASUREMENT) + NOT_EMULATED
TTL = 300                      # short: a lab's names change when it is re-provisioned
REVERSE4, REVERSE6 = "in-addr.arpa", "ip6.arpa"

Record = Tuple[str, str]       # (node id, address) of one interface


def routers_with(as_: AS, service: str) -> List[str]:
    """The routers of `as_` the topology gives `service`, in the AS's router order."""
    placed = {r for r, items in as_.services if service in items}
    return [r for r in as_.routers if r in placed]


def service_router(as_: AS, service: str) -> Optional[str]:
    """The first router of `as_` with `service`, or None."""
    found = routers_with(as_, service)
    return found[0] if found else None


def service_host(as_: AS, service: str, fallback: bool = True) -> Optional[str]:
    """Node id of the host that runs `service` for the AS; with `fallback`, the first router's
    host when the topology names none (today's choice for hand-written topologies)."""
    router = service_router(as_, service)
    if router is None:
        if not fallback:
            return None
        router = as_.routers[0]
    return node_id(as_.asn, router, host=True)


def not_emulated(topo: Topology) -> List[str]:
    """`ASN.ROUTER (service)` of every service the topology places and the lab does not run."""
    return [f"{asn}.{r} ({item})" for asn in sorted(topo.ases) for r, items in topo.ases[asn].services
            for item in items if item in NOT_EMULATED]


def not_emulated_warning(topo: Topology) -> Optional[str]:
    """One line naming them all (None when there are none)."""
    found = not_emulated(topo)
    if not found:
        return None
    return (f"{topo.source}: RPKI not emulated yet: {', '.join(found)}; their hosts run as plain hosts "
            "and routers do no origin validation")


def dns_hosts(topo: Topology) -> List[str]:
    """Host node ids running a DNS server, by ASN then router order."""
    return [node_id(asn, r, host=True) for asn in sorted(topo.ases) for r in routers_with(topo.ases[asn], DNS)]


def resolver_for(topo: Topology, asn: int, servers: Optional[List[str]] = None) -> Optional[str]:
    """Which DNS host the nodes of AS `asn` ask: their own AS's first one, else the first of all.
    `servers`: dns_hosts(topo), when the caller asks for every AS."""
    servers = dns_hosts(topo) if servers is None else servers
    if not servers:
        return None
    own = [h for h in servers if parse_node_id(h).asn == asn]
    return (own or servers)[0]


# ---- names --------------------------------------------------------------------------------------

def domain(asn: int) -> str:
    return f"group{asn}"


def _label(name: str) -> str:
    # router names are [A-Za-z0-9_-] (the loader checks); DNS labels are case-insensitive
    return name.lower()


def node_name(node: str) -> str:
    """The DNS name (no final dot) of node id `node`: `r.groupN`, `host.r.groupN`, `rs.ixpN`."""
    if node.startswith("ixp") and node[3:].isdigit():
        return f"rs.{node}"
    ref = parse_node_id(node)
    name = f"{_label(ref.name)}.{domain(ref.asn)}"
    return f"host.{name}" if ref.host else name


def zone_of(name: str) -> str:
    """The forward zone holding `name`: its last two labels (`groupN`, `ixpN`)."""
    return name.split(".")[-1]


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer


# ---- zone files ---------------------------------------------------------------------------------

def _soa(zone: str, ns: str, serial: int) -> List[str]:
    return [f"$ORIGIN {zone}.", f"$TTL {TTL}",
            f"@ IN SOA {ns}. hostmaster.{ns}. ({serial} 3600 600 86400 {TTL})",
            f"@ IN NS {ns}."]


def zones(topo: Topology, records: Iterable[Record], ns_addresses: Dict[int, Sequence[str]],
          serial: int = 1) -> Dict[str, str]:
    """{zone name: zone file text} for the whole mini-Internet.

    `records`: every (node id, address) to name, as provisioned; `ns_addresses`: for each AS, the
    addresses of the DNS server it asks (`ns.groupN`). Every DNS server serves all these zones, so
    the text is the same wherever it runs. Records are sorted: the same topology gives the same files.
    """
    forward: Dict[str, List[str]] = {}
    reverse: Dict[str, List[str]] = {REVERSE4: [], REVERSE6: []}
    # each address parsed once and each node named once: this runs over every interface of the
    # mini-Internet (thousands at class size) on every server
    parsed = {rec: ipaddress.ip_address(rec[1]) for rec in set(records)}
    names: Dict[str, str] = {}
    for (node, _ip), addr in sorted(parsed.items(), key=lambda kv: (kv[0][0], kv[1].version, kv[1])):
        name = names.get(node) or names.setdefault(node, node_name(node))
        rtype = "A" if addr.version == 4 else "AAAA"
        forward.setdefault(zone_of(name), []).append(f"{name}. IN {rtype} {addr}")
        reverse[REVERSE4 if addr.version == 4 else REVERSE6].append(f"{addr.reverse_pointer}. IN PTR {name}.")
    for asn in sorted(ns_addresses):
        if asn not in topo.ases:
            continue
        for ip in ns_addresses[asn]:
            addr = ipaddress.ip_address(ip)
            forward.setdefault(domain(asn), []).append(f"ns.{domain(asn)}. IN {'A' if addr.version == 4 else 'AAAA'} {addr}")
    out: Dict[str, str] = {}
    first_ns = f"ns.{domain(min(ns_addresses))}" if ns_addresses else None
    for zone in sorted(forward):
        ns = f"ns.{zone}" if zone.startswith("group") and int(zone[5:]) in ns_addresses else first_ns
        if ns is None:
            continue
        if not any(line.startswith(f"{ns}.") for line in forward.get(zone_of(ns), [])):
            continue            # an NS without an address would make the zone unusable
        out[zone] = "\n".join(_soa(zone, ns, serial) + forward[zone]) + "\n"
    for zone, lines in reverse.items():
        if lines and first_ns is not None:
            out[zone] = "\n".join(_soa(zone, first_ns, serial) + lines) + "\n"
    return out


def resolv_conf(nameservers: Sequence[str], asn: int, mark: str) -> str:
    """resolv.conf of a node of AS `asn`: its DNS server, its own group as search domain."""
    lines = [f"# {mark}"] + [f"nameserver {ip}" for ip in nameservers]
    lines += [f"search {domain(asn)}", "options timeout:1 attempts:2"]
    return "\n".join(lines) + "\n"
