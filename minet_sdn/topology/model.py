"""The topology model: what the mini-Internet is, and every name, number and address derived from it.

Pure data, no I/O. Provisioning and the controller both import this module, so a datapath id,
an OpenFlow port number, an address or a MAC is defined exactly once, here.
"""
from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Dict, List, Optional, Tuple

ISOLATION_MODES = ("key", "tos")
ENCAPSULATIONS = ("gre", "vxlan")
RELATIONSHIPS = ("peer", "provider", "customer")

# Every datapath id and flow cookie we make starts with these 16 bits ("mn").
MAGIC = 0x6D6E
COOKIE_MAGIC = MAGIC << 48
COOKIE_MAGIC_MASK = 0xFFFF << 48

TUNNEL_OFPORT = 1
LINK_OFPORT_BASE = 100          # link L is OpenFlow port 100 + L on its remote bridge
MAX_OFPORT = 65279              # OvS ofport_request upper bound
MAX_LINKS = MAX_OFPORT - LINK_OFPORT_BASE
MAX_TOS_LINKS_PER_PAIR = 63     # DSCP 1..63; 0 means "unmarked"

# Encapsulation overhead on the underlay, by encapsulation and underlay IP version: outer IP header
# (20 / 40) + GRE with key (8) or UDP + VXLAN (8 + 8) + the inner Ethernet header (14). Measured on
# OvS 3.1 userspace (largest inner packet through a 1500-byte underlay: 1458, 1438, 1450, 1430).
OUTER_IP_HEADER = {4: 20, 6: 40}
ENCAP_HEADER = {"gre": 8, "vxlan": 8 + 8}
INNER_ETHERNET = 14


def encap_overhead(encapsulation: str, family: int = 4) -> int:
    """Bytes a tunnel adds to an inner IP packet on the underlay."""
    return OUTER_IP_HEADER[family] + ENCAP_HEADER[encapsulation] + INNER_ETHERNET


ENCAP_OVERHEAD = {e: encap_overhead(e, 4) for e in ENCAP_HEADER}     # IPv4 underlay

DEFAULT_LINK_SUBNET = "100.64.0.0/10"     # shared address space: never routed on the Internet
DEFAULT_LINK_SUBNET6 = "fd00:6d6e::/32"
DEFAULT_IXP_SUBNET = "198.18.0.0/15"      # IXP k's peering LAN: the k-th /24 (RFC 2544 range)
DEFAULT_IXP_SUBNET6 = "fd00:6978::/48"    # and its IPv6 LAN (fabric.ipv6): fd00:6978:0:<k>::/64


@lru_cache(maxsize=256)          # read for every dpid the controller looks up: 50,000 times a large sync
def instance_hash16(name: str) -> int:
    return zlib.crc32(name.encode()) & 0xFFFF


def link_cookie(link_id: int) -> int:
    """Cookie of every flow serving link `link_id`; 0 is for bridge-wide flows."""
    if not 0 <= link_id <= 0xFFFFFFFF:
        raise ValueError(f"link id {link_id} does not fit a cookie")
    return COOKIE_MAGIC | link_id


def cookie_link_id(cookie: int) -> Optional[int]:
    """The link a cookie serves (0 for bridge-wide), or None if the cookie is not one we make."""
    if cookie >> 32 != MAGIC << 16:
        return None
    return cookie & 0xFFFFFFFF


def link_ofport(link_id: int) -> int:
    return LINK_OFPORT_BASE + link_id


@dataclass(frozen=True)
class Server:
    name: str
    index: int                      # 1-based position in the file; part of every dpid
    underlay_ip: str
    interface: Optional[str] = None
    ssh: Optional[str] = None       # user@host:port for master mode


def _fmt_rate(bps: int) -> str:
    for unit, size in (("gbit", 10 ** 9), ("mbit", 10 ** 6), ("kbit", 10 ** 3)):
        if bps % size == 0:
            return f"{bps // size}{unit}"
    return f"{bps}bit"


def _fmt_time(us: int) -> str:
    if us >= 1000 and us % 100 == 0:
        return f"{us / 1000:g}ms"
    return f"{us}us"


def _fmt_size(n: int) -> str:
    for unit, size in (("mb", 1024 * 1024), ("kb", 1024)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}b"


@dataclass(frozen=True)
class Shaping:
    """Per-link traffic shaping, applied in both directions (tc on each end's interface).

    rate_bps     throughput (tbf rate), bit/s
    delay_us     one-way delay added by each end (netem; needs the sch_netem kernel module)
    buffer_bytes the tbf queue in bytes (tc `limit`), or
    latency_us   the tbf queue as the longest time a packet may wait (tc `latency`)
    """
    rate_bps: Optional[int] = None
    delay_us: Optional[int] = None
    buffer_bytes: Optional[int] = None
    latency_us: Optional[int] = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.rate_bps, self.delay_us, self.buffer_bytes, self.latency_us))

    @property
    def buffer(self) -> Optional[str]:
        if self.buffer_bytes is not None:
            return _fmt_size(self.buffer_bytes)
        if self.latency_us is not None:
            return _fmt_time(self.latency_us)
        return None

    def as_dict(self) -> Dict[str, str]:
        """The topology-file form (`throughput`, `delay`, `buffer`) of what is set."""
        out: Dict[str, str] = {}
        if self.rate_bps is not None:
            out["throughput"] = _fmt_rate(self.rate_bps)
        if self.delay_us is not None:
            out["delay"] = _fmt_time(self.delay_us)
        if self.buffer is not None:
            out["buffer"] = self.buffer
        return out

    def describe(self) -> str:
        """One short line, e.g. `10mbit 5ms buf 64kb`; empty when nothing is shaped."""
        d = self.as_dict()
        parts = [d.get("throughput", ""), d.get("delay", ""), f"buf {d['buffer']}" if "buffer" in d else ""]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class ASLink:
    """An explicit intra-AS link between routers `a` and `b` (names without the ASN)."""
    a: str
    b: str
    shaping: Optional[Shaping] = None


@dataclass(frozen=True)
class AS:
    asn: int
    server: str
    routers: Tuple[str, ...]
    configure: bool = True
    prefix: Optional[str] = None
    links: Optional[Tuple[ASLink, ...]] = None   # None: the routers form a ring (listed order)
    prefix6: Optional[str] = None   # IPv6 AS prefix; None = derived (addressing.default_prefix6)
    plan: str = "minet"             # the topology's addressing plan (addressing.PLANS), set by the loader
    # mini-Internet services placed on routers: ((router, ("dns", "matrix", ...)), ...)
    services: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    # layer 2 read from a mini-Internet folder (importers.mini_internet_l2.Layer2.as_dict()), kept
    # as imported until the topology's own layer-2 section takes it over
    imported_layer2: Optional[Dict] = field(default=None, compare=False, hash=False)
    layer2: Optional["Layer2"] = None   # data centres, switches, L2 hosts: topology/layer2.py's Layer2

    def router_ids(self) -> List[str]:
        return [f"{self.asn}.{r}" for r in self.routers]


@dataclass(frozen=True)
class Endpoint:
    router: str          # "<asn>.<NAME>"
    asn: int
    server: str
    ip: str              # IPv4 address, no prefix length
    ip6: str
    mac: str
    ifname: str          # the router's interface for this link

    @property
    def name(self) -> str:
        return self.router.split(".", 1)[1]


@dataclass(frozen=True)
class Link:
    id: int
    a: Endpoint
    b: Endpoint
    rel: str             # a's relationship to b: peer | provider (a is b's provider) | customer
    prefixlen: int
    prefixlen6: int
    shaping: Optional[Shaping] = None
    # An IXP segment (Topology.ixp_segments): a member on another server than its IXP reaches the
    # peering LAN over the remote bridges like a link. `a` is the member, `b` the IXP's side (the
    # route server's node, its port on the LAN bridge); `lan` is every other (IPv4, MAC) of the LAN
    # (route server and the other members): proxy ARP answers all of them on the member's side.
    ixp: Optional[int] = None
    lan: Tuple[Tuple[str, str], ...] = ()

    @cached_property             # remote, ofport: read for every link on every sync and event
    def remote(self) -> bool:
        return self.a.server != self.b.server

    @cached_property
    def ofport(self) -> int:
        return link_ofport(self.id)

    @property
    def cookie(self) -> int:
        return link_cookie(self.id)

    # side/far tell the ends of a REMOTE link apart by server (a local link has both on one server)
    def side(self, server: str) -> Endpoint:
        return self.a if self.a.server == server else self.b

    def far(self, server: str) -> Endpoint:
        return self.b if self.a.server == server else self.a

    def servers(self) -> Tuple[str, str]:
        return (self.a.server, self.b.server)


@dataclass(frozen=True)
class IXPMember:
    """One member router's port on an IXP's peering LAN."""
    router: str                          # "<asn>.<NAME>"
    asn: int
    ip: str                              # its address on the peering LAN
    announce_to: Optional[Tuple[int, ...]] = None   # member ASes the route server passes its routes to (None: all)
    shaping: Optional[Shaping] = None
    ip6: Optional[str] = None            # its IPv6 address on the LAN (None: IPv4-only LAN)


@dataclass(frozen=True)
class IXP:
    """A layer-2 exchange: a peering LAN on `server`, a transparent route server, member routers."""
    number: int                          # the IXP's number (the mini-Internet writes it as an AS number)
    server: str
    peering_lan: str                     # IPv4 network; .1 is the route server, members .2, .3, ...
    route_server_asn: int
    members: Tuple[IXPMember, ...]
    peering_lan6: Optional[str] = None   # IPv6 network (::1 the route server, members ::2, ::3, ...); None: IPv4 only
    # the route server's host number on the LAN (1, or the IXP's number in the mini-Internet plan)
    route_server_host: int = 1
    route_server_host6: int = 1

    @property
    def route_server_ip(self) -> str:
        return str(ipaddress.ip_network(self.peering_lan).network_address + self.route_server_host)

    @property
    def route_server_ip6(self) -> Optional[str]:
        if self.peering_lan6 is None:
            return None
        return str(ipaddress.ip_network(self.peering_lan6).network_address + self.route_server_host6)

    @property
    def prefixlen6(self) -> Optional[int]:
        return ipaddress.ip_network(self.peering_lan6).prefixlen if self.peering_lan6 else None

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.peering_lan).prefixlen

    @property
    def ifname(self) -> str:
        """A member router's interface on this IXP's peering LAN."""
        return f"ixp{self.number}"

    @property
    def node_id(self) -> str:
        """The route server's node; the peering LAN is a bridge inside it."""
        return f"ixp{self.number}"


def ixp_mac(position: int, index: int) -> str:
    """Locally administered MAC on IXP `position` (1-based, file order): 02:69:<position 16 bits>:
    <index 16 bits>; index 0 is the route server, member i is i."""
    return "02:69:{:02x}:{:02x}:{:02x}:{:02x}".format(
        (position >> 8) & 0xFF, position & 0xFF, (index >> 8) & 0xFF, index & 0xFF)


def ixp_port_ifname(index: int) -> str:
    """Member `index`'s port (1-based) on the peering-LAN bridge inside the route server's node."""
    return f"m{index}"


@dataclass(frozen=True)
class Bridge:
    """The remote bridge on `server` that carries every link towards `peer`."""
    server: str
    peer: str
    dpid: int
    name: str
    tunnel_port: str
    link_ids: Tuple[int, ...]

    @property
    def tunnel_ofport(self) -> int:
        return TUNNEL_OFPORT


@dataclass(frozen=True)
class Fabric:
    isolation: str = "key"
    encapsulation: str = "gre"
    underlay_mtu: int = 1500
    bfd_interval_ms: int = 100
    link_subnet: str = DEFAULT_LINK_SUBNET
    link_subnet6: str = DEFAULT_LINK_SUBNET6
    underlay_family: int = 4        # IP version of every server's underlay_ip (set by the loader)
    ipv6: bool = True               # dual stack: IPv6 prefixes, OSPFv3, IPv6 BGP sessions, IPv6 hosts
    share_memory: bool = True       # FRR daemons share identical pages (KSM, ASLR off): host.page_merging

    @property
    def encap_overhead(self) -> int:
        return encap_overhead(self.encapsulation, self.underlay_family)

    @property
    def link_mtu(self) -> int:
        """MTU of router interfaces on remote links: what still fits through the tunnel."""
        return min(1500, self.underlay_mtu - self.encap_overhead)


@dataclass(frozen=True)
class Controller:
    ofp_host: str = "127.0.0.1"
    ofp_port: int = 6653
    rest_host: str = "127.0.0.1"
    rest_port: int = 8080

    @property
    def rest_url(self) -> str:
        host = f"[{self.rest_host}]" if ":" in self.rest_host else self.rest_host
        return f"http://{host}:{self.rest_port}"


@dataclass(frozen=True)
class Topology:
    name: str
    servers: Dict[str, Server]
    ases: Dict[int, AS]
    links: Tuple[Link, ...]
    fabric: Fabric = field(default_factory=Fabric)
    controller: Controller = field(default_factory=Controller)
    source: str = "<topology>"
    ixps: Dict[int, IXP] = field(default_factory=dict)
    plan: str = "minet"             # addressing plan (addressing.PLANS); `addressing: {plan: ...}`
    classroom: Any = None           # classroom.settings.ClassSettings (the `class:` section)

    # ---- names ------------------------------------------------------------------------------
    @property
    def tag(self) -> str:
        """Short per-instance prefix for kernel names (15-char limit): the name itself when short,
        else its first letter, "_" and a hash. Names cannot hold "_", so a hashed tag never
        equals another instance's name."""
        if len(self.name) <= 6:
            return self.name
        return f"{self.name[0]}_{instance_hash16(self.name):04x}"

    def bridge_name(self, server: str, peer: str) -> str:
        return f"{self.tag}-br{self.servers[peer].index}"

    def link_port_name(self, link_id: int) -> str:
        """Server-side veth of a remote link; it is the link's port on the remote bridge."""
        return f"{self.tag}-l{link_id}"

    # ---- datapaths --------------------------------------------------------------------------
    def dpid(self, server: str, peer: str) -> int:
        got = self._dpids.get((server, peer))
        if got is None:
            self.servers[server], self.servers[peer]            # KeyError for an unknown server
            got = self._dpids[(server, peer)] = ((MAGIC << 48) | (instance_hash16(self.name) << 32)
                                                 | (self.servers[server].index << 16) | self.servers[peer].index)
        return got

    @cached_property
    def _dpids(self) -> Dict[Tuple[str, str], int]:
        return {}

    @cached_property
    def remote_links(self) -> Tuple[Link, ...]:
        return tuple(link for link in self.links if link.remote)

    @cached_property
    def ixp_segments(self) -> Tuple[Link, ...]:
        """One link-like segment per IXP member whose AS sits on another server than the IXP: the
        member's LAN interface ends on its server's remote bridge towards the IXP's server, and the
        IXP's side is a port of that pair's other bridge plugged into the peering-LAN bridge. Ids
        follow the inter-AS links (len(links) + 1, ... in IXP then member order), so a segment gets
        an OpenFlow port, a cookie, a tunnel key and a DSCP mark exactly as a link does."""
        out: List[Link] = []
        next_id = len(self.links) + 1
        for position, x in enumerate(self.ixps.values(), start=1):
            everyone = [(x.route_server_ip, ixp_mac(position, 0))] + [
                (m.ip, ixp_mac(position, i)) for i, m in enumerate(x.members, start=1)]
            for i, m in enumerate(x.members, start=1):
                server = self.ases[m.asn].server
                if server == x.server:
                    continue
                a = Endpoint(router=m.router, asn=m.asn, server=server, ip=m.ip, ip6=m.ip6 or "",
                             mac=ixp_mac(position, i), ifname=x.ifname)
                b = Endpoint(router=x.node_id, asn=x.route_server_asn, server=x.server, ip=x.route_server_ip,
                             ip6=x.route_server_ip6 or "", mac=ixp_mac(position, 0), ifname=ixp_port_ifname(i))
                out.append(Link(id=next_id, a=a, b=b, rel="ixp", prefixlen=x.prefixlen, prefixlen6=x.prefixlen6 or 0,
                                shaping=m.shaping, ixp=x.number,
                                lan=tuple(e for e in everyone if e[0] != m.ip)))
                next_id += 1
        return tuple(out)

    @cached_property
    def tunnelled(self) -> Tuple[Link, ...]:
        """What crosses the remote bridges: remote inter-AS links, then IXP segments."""
        return self.remote_links + self.ixp_segments

    @cached_property
    def restricted_exporters(self) -> frozenset:
        """ASes that announce to listed IXP members only (`announce_to`): whether everyone else
        reaches them is up to policy, so a lab does not wait for routes to them."""
        return frozenset(m.asn for x in self.ixps.values() for m in x.members if m.announce_to is not None
                         and {o.asn for o in x.members if o.asn != m.asn} - set(m.announce_to))

    def ixp_segment(self, number: int, router: str) -> Optional[Link]:
        """The segment of member `router` on IXP `number` (None: the member is on the IXP's server)."""
        return next((s for s in self.ixp_segments if s.ixp == number and s.a.router == router), None)

    @cached_property
    def bridges(self) -> Dict[int, Bridge]:
        """Every remote bridge, by dpid, in a stable order."""
        by_pair: Dict[Tuple[str, str], List[int]] = {}
        for link in self.tunnelled:
            x, y = link.servers()
            by_pair.setdefault((x, y), []).append(link.id)
            by_pair.setdefault((y, x), []).append(link.id)
        out: Dict[int, Bridge] = {}
        for (x, y) in sorted(by_pair, key=lambda p: (self.servers[p[0]].index, self.servers[p[1]].index)):
            dpid = self.dpid(x, y)
            out[dpid] = Bridge(server=x, peer=y, dpid=dpid, name=self.bridge_name(x, y),
                               tunnel_port=f"{self.tag}-t{self.servers[y].index}",
                               link_ids=tuple(by_pair[(x, y)]))
        return out

    @cached_property
    def link_marks(self) -> Dict[int, int]:
        """Per-pair number (1-based) of every remote link: its DSCP in tos isolation mode.

        The DSCP field has 6 bits and 0 means unmarked, so marks are counted per server pair
        (at most 63), not taken from the global link id.
        """
        marks: Dict[int, int] = {}
        for bridge in self.bridges.values():
            for position, lid in enumerate(bridge.link_ids, start=1):
                marks[lid] = position
        return marks

    def bridge(self, server: str, peer: str) -> Bridge:
        return self.bridges[self.dpid(server, peer)]

    def peer_bridge(self, bridge: Bridge) -> Bridge:
        return self.bridge(bridge.peer, bridge.server)

    @cached_property
    def link_by_id(self) -> Dict[int, Link]:
        """Inter-AS links and IXP segments, by id."""
        return {link.id: link for link in self.links + self.ixp_segments}

    def link(self, link_id: int) -> Link:
        return self.link_by_id[link_id]

    # ---- routers ----------------------------------------------------------------------------
    @cached_property
    def routers(self) -> Dict[str, AS]:
        return {rid: as_ for as_ in self.ases.values() for rid in as_.router_ids()}

    def server_of(self, router: str) -> str:
        return self.routers[router].server


# ---- deterministic addressing ---------------------------------------------------------------

def link_addresses(fabric: Fabric, link_id: int) -> Tuple[Tuple[str, str], Tuple[str, str], int, int]:
    """((a_ip, b_ip), (a_ip6, b_ip6), prefixlen, prefixlen6) of link `link_id`: a /30 and a /64."""
    net4 = ipaddress.ip_network(fabric.link_subnet)
    base = int(net4.network_address) + 4 * (link_id - 1)
    net6 = ipaddress.ip_network(fabric.link_subnet6)
    base6 = int(net6.network_address) + (link_id << 64)
    a4, b4 = (str(ipaddress.IPv4Address(base + i)) for i in (1, 2))
    a6, b6 = (str(ipaddress.IPv6Address(base6 + i)) for i in (1, 2))
    return (a4, b4), (a6, b6), 30, 64


def link_capacity(fabric: Fabric) -> int:
    """How many links the configured link subnets can number."""
    n4 = ipaddress.ip_network(fabric.link_subnet).num_addresses // 4
    n6 = 2 ** max(0, 64 - ipaddress.ip_network(fabric.link_subnet6).prefixlen) - 1
    return min(n4, n6)


def endpoint_mac(link_id: int, side: int) -> str:
    """Locally administered unicast MAC: 02:6d:<link id, 24 bits>:<side 1|2>."""
    return "02:6d:{:02x}:{:02x}:{:02x}:{:02x}".format(
        (link_id >> 16) & 0xFF, (link_id >> 8) & 0xFF, link_id & 0xFF, side)


def router_ifname(link_id: int) -> str:
    return f"ext{link_id}"
