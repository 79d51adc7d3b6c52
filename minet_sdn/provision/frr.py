"""FRR configuration text for one router (pure).

Routing policy of a configured AS (`configure: true`, the default):
  * OSPF area 0 inside the AS: loopback and host link passive, ring links point-to-point (timers
    below). A router with no link inside its AS (a one-router AS) runs no OSPF at all.
  * iBGP on loopbacks (update-source lo, next-hop-self, all communities sent): a full mesh in an
    AS of up to 3 routers; from 4 routers on, route reflection with two reflectors (the AS's first
    router and the one halfway round its ring), each client peering with both reflectors only. At 8
    routers that is 13 sessions per AS instead of 28 (memory: each session costs bgpd ~0.7 MB of
    packet buffers; CPU: keepalives), and every router still learns every best path.
  * eBGP on every inter-AS link, neighbour = the far end's link address from the model.
  * Gao-Rexford: on import each route is tagged with the large community ``<asn>:1:<lp>`` and given
    local-pref ``lp`` = 300 from a customer, 200 from a peer, 100 from a provider (any forged
    ``<asn>:1:*`` tag is removed first). Export to customers: everything. Export to peers and
    providers: own routes (empty AS path) and routes tagged as learned from a customer. Our tags
    are stripped on every eBGP export.
  * The AS prefix is announced with a `network` statement, kept in the RIB by a blackhole route
    that provisioning puts in the router's kernel table (zebra learns it), so no staticd is needed.
  * Timers for hundreds of routers on a few cores, where what costs is how often a daemon (and the
    Open vSwitch a remote link crosses) wakes up: BGP keepalive 10 / hold 30, eBGP and iBGP alike
    (a link that fails loses carrier and fast-external-failover drops the session at once, also
    when the controller fails a remote link; only a black hole that keeps carrier waits for the
    hold time; iBGP runs over loopbacks that OSPF reroutes), connect-retry 5,
    advertisement-interval 0; OSPF hello 4 / dead 40 on ring links (a cut veth is noticed at once
    by carrier; hellos only catch silent failures).

Import filters (what real operators do; issue 21: a student's AS announced a more-specific of another
AS's prefix, a default route, /32s of link addresses and 20,000 /24s, and every router took them):
  * from a customer or a peer (an IXP route server too): only the prefixes of that AS's customer
    cone as the topology says (its own and its customers', recursively), at most /24 (IPv6: /48)
    or the prefix's own length; never a default route, nothing inside the link subnets, nothing
    inside our own prefix;
  * from a provider: anything but those (default, link subnets, our own prefix, longer than /24 or /48);
  * a cap on the prefixes accepted per session (`maximum-prefix`, counted after the filters): ten
    per cone prefix plus 100 from a customer or a peer, twice the topology's prefixes plus 100 from
    a provider; a session over it is closed and retried after a minute.
IPv6 (dual stack): the same again for the AS's IPv6 prefix, as separate IPv6 sessions (not
MP-BGP over the IPv4 ones): OSPFv3 (ospf6d) on the same interfaces, iBGP on the IPv6 loopbacks,
eBGP on the link's IPv6 addresses, the same route-maps applied in `address-family ipv6 unicast`
(they match communities and AS paths only, so one policy serves both families). IPv6 neighbours
are deactivated in the IPv4 family (FRR's traditional defaults activate every neighbour there).

`configure: false` gives a router nothing but its hostname, for students to configure.

Every daemon of a router reads the same frr.conf (`-f`) and skips the commands of the others, so
the text has no `exit` lines: an `exit` after a block a daemon does not know (say `router ospf` in
bgpd) would take that daemon out of configuration mode and make it ignore everything after.
Blocks end implicitly: FRR tries a command in the parent node when the current one lacks it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

# what the far end of an eBGP session is to us -> local preference on import
LOCAL_PREF = {"customer": 300, "peer": 200, "provider": 100}
KEEPALIVE, HOLDTIME, CONNECT_RETRY = 10, 30, 5      # eBGP (was 3 / 9: bench/results, docs/scale.md)
IBGP_KEEPALIVE, IBGP_HOLDTIME = 10, 30
OSPF_HELLO, OSPF_DEAD = 4, 40
RR_MIN_ROUTERS = 4          # ASes with at least this many routers use two route reflectors

# Daemons, in start order (zebra first: the others connect to it). A router runs only those its
# frr.conf uses; a student's router (configure: false) gets all of them, for whatever they configure.
ALL_DAEMONS = ("zebra", "staticd", "bgpd", "ospfd", "ospf6d")


@dataclass(frozen=True)
class IbgpPeer:
    router: str        # "<asn>.<NAME>"
    loopback: str
    client: bool = False   # we reflect routes to it (route-reflector-client)
    loopback6: Optional[str] = None   # its IPv6 loopback (an IPv6 session when set)


@dataclass(frozen=True)
class EbgpPeer:
    link_id: int
    router: str        # the far end, "<asn>.<NAME>"
    asn: int
    ip: str            # the far end's link address
    role: str          # what the far end is to us: customer | peer | provider
    ip6: Optional[str] = None   # the far end's IPv6 link address (an IPv6 session when set)
    accept: Optional[Tuple[str, ...]] = None    # IPv4 prefixes it may announce (its cone); None: any
    accept6: Optional[Tuple[str, ...]] = None   # the same in IPv6


@dataclass(frozen=True)
class RouterPolicy:
    """Everything FRR needs to know about one router."""
    hostname: str
    asn: int
    router_id: str                       # the loopback
    prefix: str                          # the AS prefix to announce
    ospf_ifaces: Tuple[str, ...]         # intra-AS ring links (point-to-point)
    passive_ifaces: Tuple[str, ...]      # lo, host link
    ibgp: Tuple[IbgpPeer, ...]
    ebgp: Tuple[EbgpPeer, ...]
    prefix6: Optional[str] = None        # the AS's IPv6 prefix: dual stack when set
    networks: Tuple[str, ...] = ()       # more IPv4 prefixes to announce (layer-2 networks outside `prefix`)
    host_ifaces: Tuple[str, ...] = ()    # of passive_ifaces, the links to a single host (point-to-point)
    link_subnets: Tuple[str, ...] = ()   # the topology's inter-AS link subnets (both families)
    all_prefixes: int = 0                # how many AS prefixes the topology has (a provider's cap)


def far_role(rel: str, we_are_a: bool) -> str:
    """What the far end of a link is to us, given the link's `rel` (a's relationship to b)."""
    if rel == "peer":
        return "peer"
    # rel == "provider": a is b's provider; rel == "customer": a is b's customer
    a_is_provider = rel == "provider"
    if we_are_a:
        return "customer" if a_is_provider else "provider"
    return "provider" if a_is_provider else "customer"


MAX_LEN4, MAX_LEN6 = 24, 48          # longest prefix accepted over eBGP


def customer_cones(links: Iterable[Tuple[int, int, str]]) -> Dict[int, FrozenSet[int]]:
    """{AS: itself and every AS below it} from (a's AS, b's AS, rel) of the topology's links."""
    below: Dict[int, Set[int]] = {}
    for a, b, rel in links:
        below.setdefault(a, set())
        below.setdefault(b, set())
        if rel == "provider":          # a is b's provider
            below[a].add(b)
        elif rel == "customer":        # a is b's customer
            below[b].add(a)
    cones: Dict[int, FrozenSet[int]] = {}
    for asn in below:
        seen, todo = {asn}, [asn]
        while todo:
            for c in below.get(todo.pop(), ()):
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        cones[asn] = frozenset(seen)
    return cones


def _plen(prefix: str) -> int:
    return int(prefix.rsplit("/", 1)[1])


def _prefix_list(name: str, six: bool, own: Optional[str], bogons: Sequence[str],
                 accept: Optional[Sequence[str]]) -> List[str]:
    """`accept` None: anything but the bogons; else only `accept` (each up to MAX_LEN or its length)."""
    kw, full, top = ("ipv6", 128, MAX_LEN6) if six else ("ip", 32, MAX_LEN4)
    default = "::/0" if six else "0.0.0.0/0"
    out = [f"{kw} prefix-list {name} seq 5 deny {default}"]
    seq = 10
    for net in [b for b in bogons if (":" in b) == six] + ([own] if own else []):
        out.append(f"{kw} prefix-list {name} seq {seq} deny {net} le {full}")
        seq += 5
    for net in (accept if accept is not None else [default]):
        out.append(f"{kw} prefix-list {name} seq {seq} permit {net} le {max(top, _plen(net))}")
        seq += 5
    return out


def _filter_name(peer: "EbgpPeer", six: bool) -> str:
    accept = peer.accept6 if six else peer.accept
    base = "MINET-PFX6" if six else "MINET-PFX"
    return f"{base}-ANY" if accept is None else f"{base}-AS{peer.asn}" if peer.link_id else f"{base}-RS{peer.asn}"


def _max_prefixes(peer: "EbgpPeer", six: bool, all_prefixes: int) -> int:
    accept = peer.accept6 if six else peer.accept
    return 2 * all_prefixes + 100 if accept is None else 10 * len(accept) + 100


def _filters(p: "RouterPolicy") -> List[str]:
    """The import prefix-lists of every eBGP session of `p` (both families), once per name."""
    out: List[str] = []
    done: Set[str] = set()
    for six in (False, True):
        if six and not p.prefix6:
            continue
        for peer in p.ebgp:
            name = _filter_name(peer, six)
            if name in done:
                continue
            done.add(name)
            out += _prefix_list(name, six, p.prefix6 if six else p.prefix, p.link_subnets,
                                peer.accept6 if six else peer.accept)
    return out + (["!"] if out else [])


def _import_guard(peer: "EbgpPeer", ip: str, six: bool, all_prefixes: int) -> List[str]:
    return [f"  neighbor {ip} prefix-list {_filter_name(peer, six)} in",
            f"  neighbor {ip} maximum-prefix {_max_prefixes(peer, six, all_prefixes)} restart 1"]


def tag(asn: int, role: str) -> str:
    return f"{asn}:1:{LOCAL_PREF[role]}"


def reflectors(routers: Sequence[str]) -> Tuple[str, ...]:
    """The route reflectors of an AS whose routers are `routers` (ring order); () = full mesh."""
    if len(routers) < RR_MIN_ROUTERS:
        return ()
    return (routers[0], routers[len(routers) // 2])


def ibgp_peers(me: str, routers: Sequence[Tuple[str, str]],
               loopbacks6: Optional[Mapping[str, str]] = None) -> Tuple[IbgpPeer, ...]:
    """My iBGP sessions, given the AS's (router id, loopback) pairs in ring order and, for dual
    stack, every router's IPv6 loopback (the IPv6 sessions follow the same reflector layout)."""
    rrs = reflectors([r for r, _ in routers])
    six = loopbacks6 or {}
    out = []
    for rid, lo in routers:
        if rid == me:
            continue
        if not rrs:
            out.append(IbgpPeer(rid, lo, loopback6=six.get(rid)))
        elif me in rrs:
            out.append(IbgpPeer(rid, lo, client=rid not in rrs, loopback6=six.get(rid)))
        elif rid in rrs:
            out.append(IbgpPeer(rid, lo, loopback6=six.get(rid)))
    return tuple(out)


def daemons_for(config: str, configure: bool = True, ipv6: bool = True) -> Tuple[str, ...]:
    """The FRR daemons a router with this frr.conf needs, in start order. A student's router
    (`configure` false) gets every daemon a student may configure: ospf6d only when the
    topology routes IPv6 (fabric.ipv6), since its interfaces have no IPv6 addresses otherwise."""
    if not configure:
        return tuple(d for d in ALL_DAEMONS if ipv6 or d != "ospf6d")
    lines = config.splitlines()
    need = {"zebra"}
    if any(l.startswith(("ip route ", "ipv6 route ")) for l in lines):
        need.add("staticd")
    if any(l.startswith("router bgp") for l in lines):
        need.add("bgpd")
    if any(l.startswith("router ospf") and not l.startswith("router ospf6") for l in lines):
        need.add("ospfd")
    if any(l.startswith("router ospf6") for l in lines):
        need.add("ospf6d")
    return tuple(d for d in ALL_DAEMONS if d in need)


def empty_config(hostname: str) -> str:
    return f"hostname {hostname}\n"


def router_config(p: RouterPolicy) -> str:
    out: List[str] = [
        "frr defaults traditional",
        f"hostname {p.hostname}",
        "!",
    ]
    out += _ospf(p)
    out += _filters(p)
    out += _policy(p.asn, p.ebgp)
    out += [f"router bgp {p.asn}",
            f" bgp router-id {p.router_id}",
            " bgp log-neighbor-changes",
            f" timers bgp {KEEPALIVE} {HOLDTIME}"]
    for peer in p.ibgp:
        out += [f" neighbor {peer.loopback} remote-as {p.asn}",
                f" neighbor {peer.loopback} description iBGP {peer.router}",
                f" neighbor {peer.loopback} update-source lo",
                f" neighbor {peer.loopback} timers {IBGP_KEEPALIVE} {IBGP_HOLDTIME}"]
        out += _session_timers(peer.loopback)
    for peer in p.ebgp:
        out += [f" neighbor {peer.ip} remote-as {peer.asn}",
                f" neighbor {peer.ip} description link {peer.link_id} to {peer.router} ({peer.role})"]
        out += _session_timers(peer.ip)
    out += _bgp_neighbors6(p)
    out += [" !", " address-family ipv4 unicast", f"  network {p.prefix}", *(f"  network {n}" for n in p.networks)]
    for peer in p.ibgp:
        out += [f"  neighbor {peer.loopback} next-hop-self",
                f"  neighbor {peer.loopback} send-community all"]
        if peer.client:
            out.append(f"  neighbor {peer.loopback} route-reflector-client")
    for peer in p.ebgp:
        out += [f"  neighbor {peer.ip} route-map MINET-IN-{peer.role.upper()} in",
                f"  neighbor {peer.ip} route-map {_export_map(peer.role)} out"]
        out += _import_guard(peer, peer.ip, False, p.all_prefixes)
    out += [f"  no neighbor {n} activate" for n in _neighbors6(p)]
    out += [" exit-address-family"]
    out += _bgp_family6(p)
    out += ["!"]
    return "\n".join(out) + "\n"


def _ospf(p: RouterPolicy) -> List[str]:
    """OSPF (and OSPFv3) inside the AS. A router without an intra-AS link has no OSPF neighbour to
    tell anything (a one-router AS): its own networks are connected routes already, so it runs no
    ospfd (nor ospf6d) at all, which would only wake up every second for nothing."""
    if not p.ospf_ifaces:
        return []
    out: List[str] = []
    for ifname in p.passive_ifaces:
        # A broadcast interface, passive or not, keeps a 1 s timer (delayed acks) started when it
        # becomes DR, 40 s after the ring links' timers: ospfd woke twice a second instead of once.
        # The link to the host is point-to-point anyway: its timers start with the ring links' and
        # fire in the same wake-ups. What it announces does not change (a stub network either way).
        p2p = [" ip ospf network point-to-point"] if ifname in p.host_ifaces else []
        out += [f"interface {ifname}", " ip ospf area 0", *p2p, " ip ospf passive",
                *_ospf6_iface(p, True, ifname in p.host_ifaces), "!"]
    for ifname in p.ospf_ifaces:
        out += [f"interface {ifname}", " ip ospf area 0", " ip ospf network point-to-point",
                f" ip ospf hello-interval {OSPF_HELLO}", f" ip ospf dead-interval {OSPF_DEAD}",
                *_ospf6_iface(p, False), "!"]
    # FRR waits 5 s between two instances of an LSA by default: adjacencies would take ~6 s to route
    out += ["router ospf", f" ospf router-id {p.router_id}", " timers throttle spf 0 50 1000",
            " timers throttle lsa all 0", " timers lsa min-arrival 0", "!"]
    return out + _ospf6(p)


def _session_timers(neighbor: str) -> List[str]:
    return [f" neighbor {neighbor} timers connect {CONNECT_RETRY}",
            f" neighbor {neighbor} advertisement-interval 0"]


def _export_map(role: str) -> str:
    return "MINET-OUT-CUSTOMER" if role == "customer" else "MINET-OUT-UP"


def _policy(asn: int, ebgp: Sequence[EbgpPeer]) -> List[str]:
    """Community lists and route-maps for the roles this router has sessions with."""
    if not ebgp:
        return []
    out: List[str] = []
    for seq, role in enumerate(("customer", "peer", "provider"), start=1):
        out.append(f"bgp large-community-list standard MINET-OURS seq {5 * seq} permit {tag(asn, role)}")
    out += [f"bgp large-community-list standard MINET-FROM-CUSTOMER seq 5 permit {tag(asn, 'customer')}",
            "bgp as-path access-list MINET-LOCAL seq 5 permit ^$", "!"]
    roles = sorted({peer.role for peer in ebgp}, key=list(LOCAL_PREF).index)
    for role in roles:
        name = f"MINET-IN-{role.upper()}"
        out += [f"route-map {name} permit 10", " set large-comm-list MINET-OURS delete", " on-match next",
                f"route-map {name} permit 20", f" set large-community {tag(asn, role)} additive",
                f" set local-preference {LOCAL_PREF[role]}", "!"]
    if "customer" in roles:
        out += ["route-map MINET-OUT-CUSTOMER permit 10", " set large-comm-list MINET-OURS delete", "!"]
    if set(roles) - {"customer"}:
        out += ["route-map MINET-OUT-UP permit 10", " match large-community MINET-FROM-CUSTOMER",
                " set large-comm-list MINET-OURS delete",
                "route-map MINET-OUT-UP permit 20", " match as-path MINET-LOCAL", "!"]
    return out


# ---- IXP route servers ---------------------------------------------------------------------

@dataclass(frozen=True)
class RouteServerClient:
    router: str        # "<asn>.<NAME>"
    asn: int
    ip: str            # its peering-LAN address
    announce_to: Optional[Tuple[int, ...]] = None   # member ASes that get its routes (None: every member)
    ip6: Optional[str] = None   # its IPv6 LAN address: an IPv6 session too (same export policy)
    accept: Optional[Tuple[str, ...]] = None    # what it may announce (its cone, as from a peer)
    accept6: Optional[Tuple[str, ...]] = None


def _rs_filters(clients: Sequence[RouteServerClient], bogons: Sequence[str]) -> List[str]:
    out: List[str] = []
    for c in clients:
        if c.accept is not None:
            out += _prefix_list(f"MINET-PFX-AS{c.asn}", False, None, bogons, c.accept)
        if c.ip6 and c.accept6 is not None:
            out += _prefix_list(f"MINET-PFX6-AS{c.asn}", True, None, bogons, c.accept6)
    return out + (["!"] if out else [])


def route_server_exports(clients: Sequence[RouteServerClient]) -> Mapping[int, Tuple[int, ...]]:
    """{client AS Y: the member ASes X whose routes Y must not get} (X's announce_to leaves Y out);
    only clients that lose something appear."""
    out: dict = {}
    for y in clients:
        hidden = tuple(sorted({x.asn for x in clients
                               if x.asn != y.asn and x.announce_to is not None and y.asn not in x.announce_to}))
        if hidden:
            out[y.asn] = hidden
    return out


def route_server_config(hostname: str, asn: int, router_id: str, clients: Sequence[RouteServerClient],
                        bogons: Sequence[str] = ()) -> str:
    """A transparent route server (bgpd `route-server-client`): it keeps the members' next hops and
    does not add its AS, so members exchange traffic directly over the peering LAN. Every member
    learns every other member's routes (the classic layout's default) unless the other member's
    `announce_to` leaves it out: then an export route-map towards it (MINET-RS-TO-<asn>) denies
    every route whose AS path starts with that member's AS (what the member announced: the route
    server is transparent, so the first AS is the member that sent it). Members decide what they
    announce (their own and their customers' routes, as to any peer)."""
    exports = route_server_exports(clients)
    out: List[str] = ["frr defaults traditional", f"hostname {hostname}", "!"]
    out += _rs_filters(clients, bogons)       # each member announces only its cone (import filters above)
    for x in sorted({x for hidden in exports.values() for x in hidden}):
        out.append(f"bgp as-path access-list MINET-RS-FROM-{x} permit ^{x}_")
    for y, hidden in sorted(exports.items()):
        for seq, x in enumerate(hidden, start=1):
            out += [f"route-map MINET-RS-TO-{y} deny {seq * 10}", f" match as-path MINET-RS-FROM-{x}"]
        out += [f"route-map MINET-RS-TO-{y} permit {(len(hidden) + 1) * 10}"]
    if exports:
        out.append("!")
    out += [f"router bgp {asn}", f" bgp router-id {router_id}", " bgp log-neighbor-changes",
            " no bgp ebgp-requires-policy", f" timers bgp {KEEPALIVE} {HOLDTIME}"]
    for c in clients:
        out += [f" neighbor {c.ip} remote-as {c.asn}", f" neighbor {c.ip} description member {c.router}"]
        out += _session_timers(c.ip)
    six = [c for c in clients if c.ip6]
    for c in six:
        out += [f" neighbor {c.ip6} remote-as {c.asn}", f" neighbor {c.ip6} description member {c.router} (IPv6)"]
        out += _session_timers(c.ip6)
    for family, members in (("ipv4", [(c, c.ip) for c in clients]), ("ipv6", [(c, c.ip6) for c in six])):
        if not members:
            continue
        out += [" !", f" address-family {family} unicast"]
        if family == "ipv4":
            out += [f"  no neighbor {c.ip6} activate" for c in six]
        for c, ip in members:
            out += [f"  neighbor {ip} route-server-client", f"  neighbor {ip} activate"]
            if c.asn in exports:
                out.append(f"  neighbor {ip} route-map MINET-RS-TO-{c.asn} out")
            accept = c.accept6 if family == "ipv6" else c.accept
            if accept is not None:
                out += [f"  neighbor {ip} prefix-list {'MINET-PFX6' if family == 'ipv6' else 'MINET-PFX'}-AS{c.asn} in",
                        f"  neighbor {ip} maximum-prefix {10 * len(accept) + 100} restart 1"]
        out += [" exit-address-family"]
    out += ["!"]
    return "\n".join(out) + "\n"


# ---- IPv6 (rendered only when the policy has a prefix6) ---------------------------------------

def _ibgp6(p: RouterPolicy) -> List[IbgpPeer]:
    return [peer for peer in p.ibgp if peer.loopback6] if p.prefix6 else []


def _ebgp6(p: RouterPolicy) -> List[EbgpPeer]:
    return [peer for peer in p.ebgp if peer.ip6] if p.prefix6 else []


def _neighbors6(p: RouterPolicy) -> List[str]:
    return [peer.loopback6 for peer in _ibgp6(p)] + [peer.ip6 for peer in _ebgp6(p)]


def _ospf6_iface(p: RouterPolicy, passive: bool, p2p: bool = False) -> List[str]:
    """OSPFv3 area 0 on an interface OSPFv2 runs on, with the same role and timers."""
    if not p.prefix6:
        return []
    if passive:
        return [" ipv6 ospf6 area 0", *([" ipv6 ospf6 network point-to-point"] if p2p else []), " ipv6 ospf6 passive"]
    return [" ipv6 ospf6 area 0", " ipv6 ospf6 network point-to-point",
            f" ipv6 ospf6 hello-interval {OSPF_HELLO}", f" ipv6 ospf6 dead-interval {OSPF_DEAD}"]


def _ospf6(p: RouterPolicy) -> List[str]:
    if not p.prefix6:
        return []
    out = ["router ospf6", f" ospf6 router-id {p.router_id}", " timers throttle spf 0 50 1000",
            " timers lsa min-arrival 0", "!"]
    return out


def _bgp_neighbors6(p: RouterPolicy) -> List[str]:
    """IPv6 sessions, inside `router bgp`: iBGP on the IPv6 loopbacks, eBGP on the link addresses."""
    out: List[str] = []
    for peer in _ibgp6(p):
        out += [f" neighbor {peer.loopback6} remote-as {p.asn}",
                f" neighbor {peer.loopback6} description iBGP {peer.router} (IPv6)",
                f" neighbor {peer.loopback6} update-source lo",
                f" neighbor {peer.loopback6} timers {IBGP_KEEPALIVE} {IBGP_HOLDTIME}"]
        out += _session_timers(peer.loopback6)
    for peer in _ebgp6(p):
        out += [f" neighbor {peer.ip6} remote-as {peer.asn}",
                f" neighbor {peer.ip6} description link {peer.link_id} to {peer.router} ({peer.role}, IPv6)"]
        out += _session_timers(peer.ip6)
    return out


def _bgp_family6(p: RouterPolicy) -> List[str]:
    """`address-family ipv6 unicast`: the AS's IPv6 prefix and the same policy as IPv4."""
    if not p.prefix6:
        return []
    out = [" !", " address-family ipv6 unicast", f"  network {p.prefix6}"]
    for peer in _ibgp6(p):
        out += [f"  neighbor {peer.loopback6} activate", f"  neighbor {peer.loopback6} next-hop-self",
                f"  neighbor {peer.loopback6} send-community all"]
        if peer.client:
            out.append(f"  neighbor {peer.loopback6} route-reflector-client")
    for peer in _ebgp6(p):
        out += [f"  neighbor {peer.ip6} activate",
                f"  neighbor {peer.ip6} route-map MINET-IN-{peer.role.upper()} in",
                f"  neighbor {peer.ip6} route-map {_export_map(peer.role)} out"]
        out += _import_guard(peer, peer.ip6, True, p.all_prefixes)
    out += [" exit-address-family"]
    return out
