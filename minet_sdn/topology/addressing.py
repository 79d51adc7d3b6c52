"""The intra-AS addressing plan: pure functions from the topology model to router and host addresses.

Inter-AS link addresses come from the model (`model.link_addresses`); this module numbers
everything *inside* an AS.

AS prefix
    ``as_.prefix`` when the topology sets it, else the default ``10.<asn // 256>.<asn % 256>.0/24``
    (ASNs 1..65535; larger ASNs must set ``prefix``). 10.0.0.0/8 never overlaps the default link
    subnet ``model.DEFAULT_LINK_SUBNET`` (100.64.0.0/10); a custom ``fabric.link_subnet`` or an
    explicit prefix that overlaps anything is reported by `addressing_problems`.

Layout of an AS prefix P holding S addresses (S >= 256, so a /24 or shorter). Routers are numbered
i = 1..N in the order the topology lists them; each region is a quarter or half of P:

    ========================  ====================  =======  =========================================
    region                    offsets in P          size     item
    ========================  ====================  =======  =========================================
    router loopbacks          [0, S/4)              /32      router i: P + i
    intra-AS ring links       [S/4, S/2)            /30      ring link k: P + S/4 + 4(k-1);
                                                             .+1 = router k, .+2 = router k % N + 1
    router <-> host links     [S/2, S)              /30      router i: P + S/2 + 4(i-1);
                                                             .+1 = router i, .+2 = its host
    ========================  ====================  =======  =========================================

Intra-AS links: the AS's explicit ``links`` (``ases.N.links``) in the order written, link k being
the k-th; ``.+1`` is its ``a`` end. When an AS lists no links, they default to a ring:
the routers of an AS form a ring in listed order: link k joins router k and router k+1
(k = 1..N-1) and, when N >= 3, link N closes the ring (router N -- router 1). Two routers: one link;
one router: none. A /24 therefore holds up to 16 routers (S/16 ring links); a /23 holds 32.

Example, AS 1 with routers [ZURI, GENE, BASE] (default prefix 10.0.1.0/24):
ZURI lo 10.0.1.1, GENE lo 10.0.1.2, BASE lo 10.0.1.3; ring ZURI-GENE 10.0.1.64/30 (.65/.66),
GENE-BASE 10.0.1.68/30, BASE-ZURI 10.0.1.72/30; ZURI-host 10.0.1.128/30 (router .129, host .130).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..errors import UserError
from .model import AS, Shaping, Topology

MAX_DEFAULT_ASN = 65535

# ---- plans ------------------------------------------------------------------------------------
#
# `addressing: {plan: ...}` at the top of a topology chooses how everything is numbered:
#   minet               (the default) the layout described above, link /30s from fabric.link_subnet
#   mini-internet       the mini-Internet's default plan (its subnet_config.sh, 2020 on): AS X owns
#                       X.0.0.0/8; router i (0-based, listed order): loopback X.(151+i).0.1, host
#                       network X.(101+i).0.0/24 (host .1, router .2); intra-AS link n (0-based,
#                       listed order, the ring when none are listed): X.0.(n+1).0/24 (a .1, b .2);
#                       inter-AS link with `subnet: S/24`: S + ASN on each side (179.1.3.0/24 between
#                       AS 1 and AS 3: 179.1.3.1 and 179.1.3.3; `link_hosts: ends`, the platform
#                       before mid-2023: a .1, b .2), without one: link L is
#                       179.(L div 100).(L mod 100).0/24 (a .1, b .2); IXP N's peering LAN
#                       180.N.0.0/24 (route server .N, member AS X .X); layer-2 network `id`
#                       (0-based data centre) VLAN v: X.(200+id).v.0/24 (`l2_address`)
#   mini-internet-2019  the same with loopbacks X.(201+i).0.1 and link L without a subnet 179.24.L.0/24
# IPv6 in the mini-Internet plans (upstream numbers only its layer-2 networks in IPv6, as
# X:(200+id):v::n/48): every IPv4 address A.B.C.D/len of the plan has the twin A:B:C::D/(2 len), each
# octet's decimal digits written as a hex group (`twin6`): AS 3 owns 3::/16, router 0's loopback is
# 3:151::1, link 179.1.3.0/24 is 179:1:3::/48 (AS 3: 179:1:3::3). ASNs and IXP numbers 1..254.
PLAN_MINET = "minet"
PLAN_MINI = "mini-internet"
PLAN_MINI_2019 = "mini-internet-2019"
PLANS = (PLAN_MINET, PLAN_MINI, PLAN_MINI_2019)
MINI_MAX_ASN = 254
MINI_LOOPBACK_BASE = {PLAN_MINI: 151, PLAN_MINI_2019: 201}
MINI_HOST_BASE = 101
MINI_PREFIXLEN, MINI_PREFIXLEN6 = 24, 48


def is_mini(plan: str) -> bool:
    return plan in MINI_LOOPBACK_BASE


def twin6(address: str, prefixlen: Optional[int] = None) -> str:
    """The IPv6 twin of an IPv4 address of the mini-Internet plans: A.B.C.D -> A:B:C::D (decimal
    digits as hex groups), with `/2*prefixlen` appended when a prefix length is given."""
    a, b, c, d = address.split(".")
    text = str(ipaddress.IPv6Address(f"{a}:{b}:{c}:0:0:0:0:{d}"))
    return f"{text}/{2 * prefixlen}" if prefixlen is not None else text


def mini_link_subnet(plan: str, link_id: int) -> str:
    """The /24 of inter-AS link `link_id` that names no subnet, by the plan's default rule."""
    if plan == PLAN_MINI_2019:
        return f"179.24.{link_id}.0/24"
    return f"179.{link_id // 100}.{link_id % 100}.0/24"


LINK_HOSTS = ("asn", "ends")


def mini_link_addresses(plan: str, link_id: int, subnet: Optional[str], asn_a: int, asn_b: int,
                        link_hosts: str = "asn") -> Tuple[Tuple[str, str], Tuple[str, str], int, int]:
    """(a, b) IPv4, (a, b) IPv6 and both prefix lengths of an inter-AS link in a mini-Internet plan:
    a `subnet` gives each side its AS number as host part (`link_hosts: asn`, the platform since
    2023) or a .1 and b .2 (`link_hosts: ends`, the platform before), else the plan's default /24
    with a .1 and b .2."""
    if subnet is not None and link_hosts == "asn":
        net = ipaddress.IPv4Network(subnet)
        a, b = (str(net.network_address + asn) for asn in (asn_a, asn_b))
    else:
        net = ipaddress.IPv4Network(subnet or mini_link_subnet(plan, link_id))
        a, b = str(net.network_address + 1), str(net.network_address + 2)
    return (a, b), (twin6(a), twin6(b)), net.prefixlen, 2 * net.prefixlen


def mini_ixp_lan(number: int) -> Tuple[str, str, int, int]:
    """IXP `number`'s peering LAN in the mini-Internet plans: (IPv4 network, IPv6 network, route
    server host part in IPv4, in IPv6)."""
    return (f"180.{number}.0.0/24", twin6(f"180.{number}.0.0", 24), number,
            int(str(number), 16))


def mini_member_ip(lan: str, asn: int) -> str:
    return str(ipaddress.IPv4Network(lan).network_address + asn)


def l2_address(asn: int, dc_index: int, vlan: int, host: int) -> Tuple[str, str]:
    """(IPv4/24, IPv6/48) of device number `host` in VLAN `vlan` of data centre `dc_index` (0-based,
    the order the AS's routers name their DCs) of AS `asn`, as the mini-Internet numbers layer 2:
    the DC's routers are 1, 2, ... (l3_routers order; the first is the hosts' gateway), then its
    hosts in file order per VLAN (vpn* hosts take a number but no address)."""
    v4 = f"{asn}.{200 + dc_index}.{vlan}.{host}"
    return f"{v4}/24", f"{asn}:{200 + dc_index}:{vlan}::{host}/48"
INTRA_PREFIXLEN = 30
HOST_PREFIXLEN = 30


class AddressingError(UserError):
    """The topology cannot be numbered; `problems` holds one formatted line per problem."""

    def __init__(self, problems: List[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class IntraLink:
    """One ring link inside an AS: a /30 between routers `a` and `b` (router names, no ASN)."""
    index: int            # 1-based position in the ring
    a: str
    b: str
    a_ip: str
    b_ip: str
    prefixlen: int = INTRA_PREFIXLEN
    shaping: Optional[Shaping] = None

    def ip_of(self, router: str) -> str:
        return self.a_ip if router == self.a else self.b_ip

    def peer_of(self, router: str) -> str:
        return self.b if router == self.a else self.a


@dataclass(frozen=True)
class RouterAddressing:
    name: str             # router name, no ASN
    index: int            # 1-based position in the AS's router list
    loopback: str         # /32
    host_router_ip: str   # router side of the router <-> host /30
    host_ip: str          # host side; the host's default gateway is host_router_ip
    host_prefixlen: int = HOST_PREFIXLEN


@dataclass(frozen=True)
class ASAddressing:
    asn: int
    prefix: str
    routers: Dict[str, RouterAddressing]
    links: Tuple[IntraLink, ...]

    def links_of(self, router: str) -> List[IntraLink]:
        return [link for link in self.links if router in (link.a, link.b)]


def default_prefix(asn: int) -> Optional[str]:
    """10.<asn // 256>.<asn % 256>.0/24 for ASNs 1..65535, else None (the AS must set prefix)."""
    if not 1 <= asn <= MAX_DEFAULT_ASN:
        return None
    return f"10.{asn // 256}.{asn % 256}.0/24"


def _prefix_required(asn: int, key: str) -> str:
    """The problem of an AS above MAX_DEFAULT_ASN without its `prefix` / `prefix6`: it has no default."""
    return f"ases.{asn}.{key}: is required for AS numbers above {MAX_DEFAULT_ASN}"


def as_prefix(as_: AS) -> Optional[str]:
    if is_mini(as_.plan):
        return f"{as_.asn}.0.0.0/8" if 1 <= as_.asn <= MINI_MAX_ASN else None
    return as_.prefix or default_prefix(as_.asn)


def _mini_as_addressing(as_: AS) -> "ASAddressing":
    """One AS in a mini-Internet plan (see PLANS above)."""
    x = as_.asn
    if not 1 <= x <= MINI_MAX_ASN:
        raise AddressingError([f"ases.{x}: the {as_.plan} plan numbers ASes 1..{MINI_MAX_ASN} only "
                               f"(AS X owns X.0.0.0/8)"])
    base = MINI_LOOPBACK_BASE[as_.plan]
    room = min(base - MINI_HOST_BASE, 256 - base)
    if len(as_.routers) > room:
        raise AddressingError([f"ases.{x}.routers: {len(as_.routers)} routers do not fit the {as_.plan} plan "
                               f"(room for {room})"])
    pairs = intra_links(as_)
    if len(pairs) > 254:
        raise AddressingError([f"ases.{x}.links: {len(pairs)} intra-AS links do not fit the {as_.plan} plan "
                               f"(room for 254: X.0.1.0/24 .. X.0.254.0/24)"])
    routers = {name: RouterAddressing(name=name, index=i + 1, loopback=f"{x}.{base + i}.0.1",
                                      host_router_ip=f"{x}.{MINI_HOST_BASE + i}.0.2",
                                      host_ip=f"{x}.{MINI_HOST_BASE + i}.0.1", host_prefixlen=MINI_PREFIXLEN)
               for i, name in enumerate(as_.routers)}
    links = tuple(IntraLink(index=n + 1, a=a, b=b, a_ip=f"{x}.0.{n + 1}.1", b_ip=f"{x}.0.{n + 1}.2",
                            prefixlen=MINI_PREFIXLEN, shaping=shaping)
                  for n, (a, b, shaping) in enumerate(pairs))
    return ASAddressing(asn=x, prefix=f"{x}.0.0.0/8", routers=routers, links=links)


def max_routers(prefix: str) -> int:
    """How many routers fit the layout of `prefix` (ring links are the tightest region)."""
    size = ipaddress.ip_network(prefix).num_addresses
    return size // 16


def ring(routers: Tuple[str, ...]) -> List[Tuple[str, str]]:
    n = len(routers)
    if n < 2:
        return []
    pairs = [(routers[k], routers[k + 1]) for k in range(n - 1)]
    if n >= 3:
        pairs.append((routers[-1], routers[0]))
    return pairs


def intra_links(as_: AS) -> List[Tuple[str, str, Optional[Shaping]]]:
    """(a, b, shaping) of every intra-AS link: the explicit ones, else the ring."""
    if as_.links is not None:
        return [(l.a, l.b, l.shaping) for l in as_.links]
    return [(a, b, None) for a, b in ring(as_.routers)]


def max_intra_links(prefix: str) -> int:
    """How many intra-AS /30s the layout of `prefix` holds (a quarter of it)."""
    return ipaddress.ip_network(prefix).num_addresses // 16


def as_addressing(as_: AS) -> ASAddressing:
    """Number one AS; raises AddressingError if it has no prefix or too many routers."""
    if is_mini(as_.plan):
        return _mini_as_addressing(as_)
    prefix = as_prefix(as_)
    if prefix is None:
        raise AddressingError([_prefix_required(as_.asn, "prefix")])
    net = ipaddress.IPv4Network(prefix)
    size = net.num_addresses
    if len(as_.routers) > max_routers(prefix):
        raise AddressingError([f"ases.{as_.asn}.routers: {len(as_.routers)} routers do not fit {prefix} "
                               f"(room for {max_routers(prefix)}; set a shorter prefix)"])
    pairs = intra_links(as_)
    if len(pairs) > max_intra_links(prefix):
        raise AddressingError([f"ases.{as_.asn}.links: {len(pairs)} intra-AS links do not fit {prefix} "
                               f"(room for {max_intra_links(prefix)}; set a shorter prefix)"])
    base = int(net.network_address)

    def ip(offset: int) -> str:
        return str(ipaddress.IPv4Address(base + offset))

    routers = {}
    for i, name in enumerate(as_.routers, start=1):
        host_base = size // 2 + 4 * (i - 1)
        routers[name] = RouterAddressing(name=name, index=i, loopback=ip(i),
                                         host_router_ip=ip(host_base + 1), host_ip=ip(host_base + 2))
    links = []
    for k, (a, b, shaping) in enumerate(pairs, start=1):
        link_base = size // 4 + 4 * (k - 1)
        links.append(IntraLink(index=k, a=a, b=b, a_ip=ip(link_base + 1), b_ip=ip(link_base + 2),
                               shaping=shaping))
    return ASAddressing(asn=as_.asn, prefix=str(net), routers=routers, links=tuple(links))


Net = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def prefix_clashes(nets: Sequence[Tuple[int, Net]], link_net: Net
                   ) -> Iterator[Tuple[int, Net, Optional[int], Net]]:
    """The one overlap check of AS prefixes (the loader's explicit ones, every derived one here):
    (asn, net, other asn or None for the link subnet, the net it overlaps), each AS against the
    link subnet then against the ASes before it."""
    for i, (asn, net) in enumerate(nets):
        if net.overlaps(link_net):
            yield asn, net, None, link_net
        for other, onet in nets[:i]:
            if net.overlaps(onet):
                yield asn, net, other, onet


def addressing_problems(topo: Topology) -> List[str]:
    """Every reason the topology cannot be numbered, as `FILE: KEY: problem` lines (empty: fine)."""
    lines: List[str] = []
    nets: List[Tuple[int, ipaddress.IPv4Network]] = []
    for asn, as_ in topo.ases.items():
        try:
            addressing = as_addressing(as_)
        except AddressingError as exc:
            lines.extend(f"{topo.source}: {p}" for p in exc.problems)
            continue
        nets.append((asn, ipaddress.IPv4Network(addressing.prefix)))
    if is_mini(topo.plan):      # X.0.0.0/8 never overlap; link subnets are checked by the loader
        return lines
    for asn, net, other, onet in prefix_clashes(nets, ipaddress.ip_network(topo.fabric.link_subnet)):
        key = f"ases.{asn}.prefix" if topo.ases[asn].prefix else f"ases.{asn}"
        what = "" if topo.ases[asn].prefix else f" (default prefix {net})"
        if other is None:
            lines.append(f"{topo.source}: {key}: {net}{what} overlaps fabric.link_subnet {onet}")
        else:
            lines.append(f"{topo.source}: {key}: {net}{what} overlaps the prefix of AS {other} ({onet})")
    if topo.fabric.ipv6:
        lines.extend(addressing6_problems(topo))
    return lines


def topology_addressing(topo: Topology) -> Dict[int, ASAddressing]:
    """The addressing of every AS, by ASN; raises AddressingError listing every problem."""
    problems = addressing_problems(topo)
    if problems:
        raise AddressingError(problems)
    return {asn: as_addressing(as_) for asn, as_ in topo.ases.items()}


# ---- IPv6 -------------------------------------------------------------------------------------
#
# Every AS also has an IPv6 prefix: ``as_.prefix6`` when the topology sets it (a /56 or shorter),
# else ``fd0a:<asn div 10000>:<asn mod 10000>::/48`` with both groups written in the ASN's decimal
# digits, so AS 1 is fd0a:0:1::/48, AS 100 fd0a:0:100::/48 and AS 65001 fd0a:6:5001::/48 (ASNs
# 1..65535, like IPv4). The layout is the IPv4 one with /64 subnets in place of /30s: if P holds
# S /64 subnets (S >= 256), router i's loopback is P::i/128 (in subnet 0), ring link k is subnet
# S/4 + k - 1 (::1 = its router a, ::2 = router b) and router i's host link is subnet S/2 + i - 1
# (::1 the router, ::2 the host, whose default route is via ::1). Ring links are numbered by the
# IPv4 plan (`ASAddressing.links`), so both families always describe the same links.
#
# Example, AS 1 with routers [ZURI, GENE]: ZURI lo fd0a:0:1::1, GENE lo fd0a:0:1::2, ring
# ZURI-GENE fd0a:0:1:4000::1 / ::2, ZURI-host fd0a:0:1:8000::1 (router) / ::2 (host).

PREFIX6_LONGEST = 56
SUBNET6_PREFIXLEN = 64


@dataclass(frozen=True)
class RouterAddressing6:
    name: str
    loopback: str              # /128
    host_router_ip: str        # /64 with the host
    host_ip: str
    host_prefixlen: int = SUBNET6_PREFIXLEN


@dataclass(frozen=True)
class ASAddressing6:
    asn: int
    prefix: str
    routers: Dict[str, RouterAddressing6]
    links: Dict[int, Tuple[str, str]]      # ring link index -> (a_ip, b_ip), /64
    link_prefixlen: int = SUBNET6_PREFIXLEN


def default_prefix6(asn: int) -> Optional[str]:
    """fd0a:<asn div 10000>:<asn mod 10000>::/48 in decimal digits (ASNs 1..65535), else None."""
    if not 1 <= asn <= MAX_DEFAULT_ASN:
        return None
    return str(ipaddress.IPv6Network(f"fd0a:{asn // 10000}:{asn % 10000}::/48"))


def as_prefix6(as_: AS) -> Optional[str]:
    if is_mini(as_.plan):
        return twin6(f"{as_.asn}.0.0.0", 8) if 1 <= as_.asn <= MINI_MAX_ASN else None
    return as_.prefix6 or default_prefix6(as_.asn)


def as_addressing6(as_: AS, addressing: ASAddressing) -> ASAddressing6:
    """The IPv6 numbers of one AS, for the routers and ring links of its IPv4 `addressing`."""
    if is_mini(as_.plan):       # every IPv4 address's twin (see PLANS)
        routers = {name: RouterAddressing6(name=name, loopback=twin6(r.loopback),
                                           host_router_ip=twin6(r.host_router_ip), host_ip=twin6(r.host_ip),
                                           host_prefixlen=MINI_PREFIXLEN6)
                   for name, r in addressing.routers.items()}
        links = {link.index: (twin6(link.a_ip), twin6(link.b_ip)) for link in addressing.links}
        return ASAddressing6(asn=as_.asn, prefix=str(as_prefix6(as_)), routers=routers, links=links,
                             link_prefixlen=MINI_PREFIXLEN6)
    prefix = as_prefix6(as_)
    if prefix is None:
        raise AddressingError([_prefix_required(as_.asn, "prefix6")])
    net = ipaddress.IPv6Network(prefix)
    if net.prefixlen > PREFIX6_LONGEST:
        raise AddressingError([f"ases.{as_.asn}.prefix6: {net} is too small (a /{PREFIX6_LONGEST} or shorter)"])
    subnets = 2 ** (SUBNET6_PREFIXLEN - net.prefixlen)
    base = int(net.network_address)

    def ip(subnet: int, host: int) -> str:
        return str(ipaddress.IPv6Address(base + (subnet << 64) + host))

    if max(len(addressing.routers), len(addressing.links)) > subnets // 4:
        raise AddressingError([f"ases.{as_.asn}.routers: {len(addressing.routers)} routers do not fit {net}"])
    routers = {name: RouterAddressing6(name=name, loopback=ip(0, r.index),
                                       host_router_ip=ip(subnets // 2 + r.index - 1, 1),
                                       host_ip=ip(subnets // 2 + r.index - 1, 2))
               for name, r in addressing.routers.items()}
    links = {link.index: (ip(subnets // 4 + link.index - 1, 1), ip(subnets // 4 + link.index - 1, 2))
             for link in addressing.links}
    return ASAddressing6(asn=as_.asn, prefix=str(net), routers=routers, links=links)


def addressing6_problems(topo: Topology) -> List[str]:
    """Reasons the IPv6 plan cannot be made (derived prefixes clashing, prefix6 missing)."""
    lines: List[str] = []
    if is_mini(topo.plan):
        return lines
    nets: List[Tuple[int, ipaddress.IPv6Network]] = []
    for asn, as_ in topo.ases.items():
        prefix = as_prefix6(as_)
        if prefix is None:
            lines.append(f"{topo.source}: {_prefix_required(asn, 'prefix6')}")
            continue
        nets.append((asn, ipaddress.IPv6Network(prefix)))
    link_net = ipaddress.ip_network(topo.fabric.link_subnet6)
    for i, (asn, net) in enumerate(nets):
        if topo.ases[asn].prefix6:
            continue            # an explicit prefix6 was checked by the loader
        what = f"ases.{asn}: default IPv6 prefix {net}"
        if net.overlaps(link_net):
            lines.append(f"{topo.source}: {what} overlaps fabric.link_subnet6 {link_net}; set ases.{asn}.prefix6")
        for other, onet in nets:
            if other != asn and net.overlaps(onet) and (topo.ases[other].prefix6 or other < asn):
                lines.append(f"{topo.source}: {what} overlaps the IPv6 prefix of AS {other} ({onet}); "
                             f"set ases.{asn}.prefix6")
    return lines


def topology_addressing6(topo: Topology, addressing: Dict[int, ASAddressing]) -> Dict[int, ASAddressing6]:
    return {asn: as_addressing6(as_, addressing[asn]) for asn, as_ in topo.ases.items()}


@dataclass(frozen=True)
class L2Addresses:
    """Layer-2 addresses of one AS in the mini-Internet plans (upstream's layer2_config numbering).

    routers  (router, vlan) -> (IPv4/24, IPv6/48): the DC's routers are devices 1, 2, ... in
             l3_routers order, one subinterface per VLAN used in their DC (VLAN 0: untagged)
    hosts    host -> (IPv4/24, IPv6/48, gateway IPv4, gateway IPv6): hosts of a (DC, VLAN) follow the
             DC's routers in file order; the gateway is device 1. vpn* hosts take a number but are
             left out (upstream leaves them to the students' VPN exercise)."""
    routers: Dict[Tuple[str, int], Tuple[str, str]]
    hosts: Dict[str, Tuple[str, str, str, str]]


def layer2_addresses(asn: int, layer2: Dict) -> L2Addresses:
    """`layer2` is the imported form (importers.mini_internet_l2.Layer2.as_dict())."""
    dcs = list(layer2.get("dcs", {}))
    routers: Dict[Tuple[str, int], Tuple[str, str]] = {}
    hosts: Dict[str, Tuple[str, str, str, str]] = {}
    vlans: Dict[str, List[int]] = {}
    for h in layer2.get("hosts", []):
        vlans.setdefault(h["dc"], [])
        if h["vlan"] not in vlans[h["dc"]]:
            vlans[h["dc"]].append(h["vlan"])
    for index, dc in enumerate(dcs):
        for device, router in enumerate(layer2["dcs"][dc].get("routers", []), start=1):
            for vlan in sorted(vlans.get(dc, [])):
                routers[(router, vlan)] = l2_address(asn, index, vlan, device)
    count: Dict[Tuple[str, int], int] = {}
    for h in layer2.get("hosts", []):
        dc, vlan = h["dc"], h["vlan"]
        if dc not in dcs:
            continue
        index, first = dcs.index(dc), len(layer2["dcs"][dc].get("routers", [])) + 1
        number = first + count.get((dc, vlan), 0)
        count[(dc, vlan)] = count.get((dc, vlan), 0) + 1
        if h["name"].lower().startswith("vpn"):
            continue
        v4, v6 = l2_address(asn, index, vlan, number)
        g4, g6 = l2_address(asn, index, vlan, 1)
        hosts[h["name"]] = (v4, v6, g4.split("/")[0], g6.split("/")[0])
    return L2Addresses(routers=routers, hosts=hosts)
