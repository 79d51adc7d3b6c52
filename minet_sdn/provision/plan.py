"""The provisioning plan: everything that should exist on one server, computed from the topology (pure).

`build_plan(topo, server)` returns a `Plan`; `apply` makes a machine match it and `down` removes it.
The plan is backend-neutral: a node is a named network context (a network namespace for the
`netns` backend, a container for `docker`), an interface belongs to a node or to the server
itself (node None), and processes are described by their command line only.

Names
    node             ``<asn>.<NAME>`` (router) and ``<asn>.<NAME>.host`` (its host)
    node namespace   ``<topo.tag>-<node>``
    router ifaces    ``lo``; ring link to router R: ``to_<R>`` (``to_<index>`` when R is over 12
                     characters); inter-AS link L: ``model.router_ifname(L)`` (``ext<L>``);
                     host link: ``host``
    host iface       ``eth0`` (default route via the router's host-link address)
    remote link L    server end ``topo.link_port_name(L)``, a port of ``topo.bridge(server, peer)``
                     with ofport ``link.ofport``
    IXP segment S    (a member on another server than its IXP) the same, on both servers: on the
                     member's, its ``ixp<N>`` interface; on the IXP's, port ``m<i>`` of the LAN bridge
MTU: inter-AS links (local or remote) use ``topo.fabric.link_mtu`` on both ends, so a topology
behaves the same wherever its ASes are placed; ring and host links use 1500.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Optional, Tuple

from ..topology.addressing import ASAddressing, ASAddressing6, is_mini, topology_addressing, topology_addressing6
from ..topology.model import Bridge, Link, Shaping, Topology, ixp_mac, ixp_port_ifname, router_ifname
from ..topology import names
from ..topology.names import frr_pathspace, intra_ifname  # noqa: F401  (re-exported)
from ..topology.places import build_places, node_id
from . import frr
from . import layer2

STATE_DIR_ENV = "MINET_STATE_DIR"
DEFAULT_STATE_ROOT = "/var/lib/minet-sdn"
FRR_DIR_ENV = "MINET_FRR_DIR"            # where the FRR daemons live (default /usr/lib/frr)
DEFAULT_FRR_DIR = "/usr/lib/frr"
FRR_DAEMONS = frr.ALL_DAEMONS             # zebra first: the others connect to it
# FRR sizes its per-thread fd tables to the open-file limit (here 20,000): 1,024 fds saved about 2.5 MB
# of PSS per router (zebra 2.8, bgpd 1.6, ospfd 0.5, measured). 256 saves 0.35 MB more (zebra 0.23,
# bgpd 0.1, ospfd/ospf6d 0.02-0.03; 4 routers of a dual-stack 10 x 8 lab restarted each way; 128 only
# 0.04 more). A configured router needs a few fds per BGP session (a dual-stack reflector of the class
# topology has about 20 sessions): it gets 256, or 128 + 2 per neighbour when that is more (a route
# server); a student's router keeps 1,024 (anything may be configured on it later).
FRR_LIMIT_FDS = 1024
FRR_LIMIT_FDS_CONFIGURED = 256


def limit_fds(configure: bool, config: str) -> int:
    """FRR's --limit-fds for a router with this frr.conf."""
    if not configure:
        return FRR_LIMIT_FDS
    neighbours = sum(1 for line in config.splitlines()
                     if line.strip().startswith("neighbor ") and " remote-as " in line)
    return max(FRR_LIMIT_FDS_CONFIGURED, 128 + 2 * neighbours)
# glibc malloc settings in every FRR daemon's environment: one arena instead of one per thread (bgpd
# has I/O and keepalive pthreads, zebra a dataplane one), return free heap top at once (a fixed
# threshold also stops glibc raising it after the start-up burst), no per-thread cache. Measured on
# 5 routers of a 10 x 8 class lab, same routers restarted each way: 19.5-19.7 -> 18.2 MB PSS per
# router (zebra 5.6 -> 5.0, bgpd 10.3-10.5 -> 9.7, ospfd 3.6 -> 3.45). Applied by `env` inside the
# node, so both backends (and real servers) get it.
FRR_MALLOC_ENV = ("MALLOC_ARENA_MAX=1", "MALLOC_TRIM_THRESHOLD_=0", "MALLOC_TOP_PAD_=0",
                  "GLIBC_TUNABLES=glibc.malloc.tcache_count=0")
BACKENDS = ("netns", "docker")

MARK_INSTANCE = "minet-instance"         # OvS external_ids and marker files carry these
MARK_SERVER = "minet-server"
LOCAL_MTU = 1500
HOST_IFNAME = "eth0"
ROUTER_HOST_IFNAME = "host"

Pairs = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class Route:
    dst: str                  # "default" or a CIDR
    via: str


@dataclass(frozen=True)
class Node:
    id: str                   # "1.ZURI" or "1.ZURI.host"
    kind: str                 # "router" | "host"
    asn: int
    ns: str                   # "<tag>-<id>": namespace (netns) or container (docker) name
    forwarding: bool
    routes: Tuple[Route, ...] = ()
    lo_addresses: Tuple[str, ...] = ()  # "ip/prefixlen" on lo (a router's loopback)


@dataclass(frozen=True)
class Iface:
    node: Optional[str]       # node id; None = the server itself (current network namespace)
    ifname: str
    addresses: Tuple[str, ...] = ()     # "ip/prefixlen", IPv4 and IPv6
    mac: Optional[str] = None
    mtu: int = LOCAL_MTU
    offloads_off: bool = False          # TX checksum / TSO / GSO off (netdev datapath needs it)
    alias: Optional[str] = None         # ownership mark on interfaces in the server's namespace
    shaping: Optional[Shaping] = None   # tc on this interface's egress (shaping.py); router ends only


@dataclass(frozen=True)
class Veth:
    kind: str                 # "ring" | "host" | "inter" (same-server inter-AS) | "remote" | "ixp"
                              # (a member's LAN port) | "ixp-member" / "ixp-segment" (an IXP segment's
                              # member end / LAN port end, each to its server's remote bridge)
    a: Iface
    b: Iface
    link_id: Optional[int] = None


@dataclass(frozen=True)
class OvsPort:
    name: str
    ofport: int
    type: str = ""                      # "" (a system/veth port), "gre", "vxlan"
    options: Pairs = ()
    bfd: Pairs = ()


@dataclass(frozen=True)
class OvsBridge:
    name: str
    dpid: int
    peer: str                 # the server at the other end of the tunnel
    datapath_type: str
    controller: str           # "tcp:HOST:PORT"
    ports: Tuple[OvsPort, ...]
    marks: Pairs              # external_ids on the bridge, its ports and interfaces

    @property
    def other_config(self) -> Pairs:
        return (("datapath-id", f"{self.dpid:016x}"), ("disable-in-band", "true"))

    def vsctl_args(self, remove_ports: Tuple[str, ...] = ()) -> List[str]:
        """One chained ovs-vsctl transaction that creates or converges the bridge (idempotent)."""
        marks = [f"external_ids:{k}={v}" for k, v in self.marks]
        args = ["--may-exist", "add-br", self.name,
                "--", "set", "bridge", self.name, f"datapath_type={self.datapath_type}",
                "fail_mode=secure", "stp_enable=false", "rstp_enable=false", "protocols=OpenFlow13",
                *[f"other-config:{k}={v}" for k, v in self.other_config], *marks,
                "--", "set-controller", self.name, self.controller,
                # in-band mode adds hidden flows that would break link isolation
                "--", "set", "controller", self.name, "connection-mode=out-of-band",
                # reconnect within 1 s of a controller restart (OvS backs off to 8 s by default)
                "max_backoff=1000", *marks]
        for name in remove_ports:
            args += ["--", "--if-exists", "del-port", self.name, name]
        for port in self.ports:
            args += ["--", "--may-exist", "add-port", self.name, port.name,
                     "--", "set", "port", port.name, *marks]
            if port.type:     # make options/bfd exact: nothing stale survives a mode change
                args += ["--", "clear", "interface", port.name, "options", "bfd"]
            args += ["--", "set", "interface", port.name]
            if port.type:
                args.append(f"type={port.type}")
            args += [f"options:{k}={v}" for k, v in port.options]
            args += [f"bfd:{k}={v}" for k, v in port.bfd]
            args += [f"ofport_request={port.ofport}", *marks]
        return args


@dataclass(frozen=True)
class Router:
    node: str                 # "<asn>.<NAME>"
    asn: int
    configure: bool
    confdir: str              # owned by user frr: frr.conf, pid files, vty sockets, zserv.api, logs
    config: str               # frr.conf text
    daemons: Tuple[str, ...] = FRR_DAEMONS
    share_memory: bool = False   # fabric.share_memory: started with ASLR off when page merging is on

    @property
    def conf_path(self) -> str:
        return os.path.join(self.confdir, "frr.conf")

    @property
    def zserv_path(self) -> str:
        return os.path.join(self.confdir, "zserv.api")

    def pid_path(self, daemon: str) -> str:
        return os.path.join(self.confdir, f"{daemon}.pid")

    def daemon_args(self, daemon: str, ns: str, frr_dir: str = DEFAULT_FRR_DIR, merging: bool = False) -> List[str]:
        """The daemon's argv; `merging`: KSM is on for it (host.page_merging), so start it with ASLR
        off, where every copy of the daemon lays out its memory alike and KSM can share it."""
        d = self.confdir
        no_aslr = ["setarch", "-R"] if merging and self.share_memory else []
        return [*no_aslr, "env", *FRR_MALLOC_ENV, os.path.join(frr_dir, daemon), "-d", "-N", frr_pathspace(ns), "-f", self.conf_path, "-i", self.pid_path(daemon),
                "-z", self.zserv_path, "--vty_socket", d, "--log", f"file:{d}/{daemon}.log",
                "--limit-fds", str(limit_fds(self.configure, self.config))]

    def vtysh_args(self, *commands: str) -> List[str]:
        return names.vtysh_argv(self.confdir, *commands)


@dataclass(frozen=True)
class IxpPort:
    ifname: str               # the port's name on the peering-LAN bridge (in the route server's node)
    member: str               # member router node id
    member_ifname: str        # its interface on the LAN
    mac: str
    ip: str
    remote: bool = False      # the member is on another server (an IXP segment through the remote bridge)
    ip6: Optional[str] = None


@dataclass(frozen=True)
class IxpLan:
    """An IXP's peering LAN: a bridge `lan` inside the route server's node, no flooding or learning,
    a static forwarding entry per port and static ARP entries everywhere (provision/ixp.py)."""
    number: int
    node: str                 # the route server's node id
    ip: str                   # the route server's address
    prefixlen: int
    mac: str
    ports: Tuple[IxpPort, ...]
    ip6: Optional[str] = None  # the route server's IPv6 address (None: IPv4-only LAN)
    prefixlen6: Optional[int] = None


@dataclass(frozen=True)
class IxpNeighbours:
    """Permanent IPv6 neighbour entries for a member whose IXP is on another server: its IPv4
    neighbours are answered by the controller's proxy ARP, IPv6 neighbour discovery is not proxied
    (every IPv6 address and MAC of the LAN comes from the topology, as on the IXP's own server)."""
    number: int
    node: str                 # the member router
    ifname: str               # its LAN interface
    entries: Tuple[Tuple[str, str], ...]     # (IPv6 address, MAC) of everyone else on the LAN


@dataclass(frozen=True)
class Underlay:
    """The underlay address this server's tunnels leave from (only planned when it has bridges)."""
    ip: str
    interface: Optional[str]  # servers.X.interface: moved onto `bridge` if the IP is not on an OvS port
    bridge: str               # "<tag>-phy"


@dataclass(frozen=True)
class Plan:
    instance: str             # topo.name
    tag: str
    server: str
    backend: str
    datapath: str             # "netdev" | "system"
    state_dir: str            # <root>/<topo.name>/<server>
    nodes: Tuple[Node, ...]
    veths: Tuple[Veth, ...]
    bridges: Tuple[OvsBridge, ...]
    routers: Tuple[Router, ...]
    underlay: Optional[Underlay]
    marks: Pairs = ()
    addressing: Dict[int, ASAddressing] = field(default_factory=dict, compare=False, repr=False)
    ixps: Tuple[IxpLan, ...] = ()
    addressing6: Dict[int, ASAddressing6] = field(default_factory=dict, compare=False, repr=False)
    ixp_neighbours: Tuple[IxpNeighbours, ...] = ()
    layer2: Optional["layer2.Layer2Plan"] = None   # switches, L2 hosts, router trunks (provision/layer2.py)
    services: Optional[object] = field(default=None, compare=False, repr=False)  # services.ServicesPlan

    @cached_property
    def node_by_id(self) -> Dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @property
    def alias(self) -> str:
        """Ownership mark (IFLA_IFALIAS) of interfaces we make in the server's own namespace."""
        return names.ownership_alias(self.instance, self.server)

    @property
    def underlay_bridge(self) -> str:
        """The bridge minet-provision builds for the underlay when it has to (see Underlay)."""
        return names.phy_bridge_of_tag(self.tag)

    @property
    def nodes_dir(self) -> str:
        return os.path.join(self.state_dir, "nodes")

    def marker_path(self, node: Node) -> str:
        return os.path.join(self.nodes_dir, f"{node.ns}.json")

    def summary(self) -> Dict[str, int]:
        return {"nodes": len(self.nodes), "veths": len(self.veths), "bridges": len(self.bridges),
                "routers": len(self.routers)}


def state_root(env: Optional[Dict[str, str]] = None) -> str:
    env = os.environ if env is None else env
    return env.get(STATE_DIR_ENV) or DEFAULT_STATE_ROOT


def state_dir(topo: Topology, server: str, root: Optional[str] = None) -> str:
    return names.provision_state_dir(root or state_root(), topo, server)


def build_plan(topo: Topology, server: str, *, datapath: str = "netdev", backend: str = "netns",
               root: Optional[str] = None, with_services: bool = True) -> Plan:
    """Everything that should exist on `server`. Raises AddressingError / ValueError on bad input."""
    if server not in topo.servers:
        raise ValueError(f"{server} is not a server of {topo.name} ({', '.join(topo.servers)})")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    addressing = topology_addressing(topo)
    # fabric.ipv6: false = IPv4 routing only (no IPv6 AS prefixes, OSPFv3 or IPv6 sessions)
    addressing6 = topology_addressing6(topo, addressing) if topo.fabric.ipv6 else {}
    # which nodes this server has, their names and FRR directories: places.py (shared with everyone)
    places = build_places(topo, root or state_root(), backend, servers=[server])
    sdir = places.server_state_dir(server)
    filters = ImportFilters(topo, addressing, addressing6)
    offloads_off = datapath == "netdev"
    marks = ((MARK_INSTANCE, topo.name), (MARK_SERVER, server))
    alias = names.ownership_alias(topo.name, server)

    made: Dict[str, Node] = {}        # by id: places.py says which nodes exist, and their order
    veths: List[Veth] = []
    routers: List[Router] = []
    local_ases = [as_ for as_ in topo.ases.values() if as_.server == server]

    for as_ in local_ases:
        addr, addr6 = addressing[as_.asn], addressing6.get(as_.asn)
        for name in as_.routers:
            rid, hid = node_id(as_.asn, name), node_id(as_.asn, name, host=True)
            ra, plen = addr.routers[name], addr.routers[name].host_prefixlen
            lo, routes = [f"{ra.loopback}/32"], [Route("default", ra.host_router_ip)]
            router_ips, host_ips = [f"{ra.host_router_ip}/{plen}"], [f"{ra.host_ip}/{plen}"]
            if addr6 is not None:
                ra6, plen6 = addr6.routers[name], addr6.routers[name].host_prefixlen
                lo.append(f"{ra6.loopback}/128")
                routes.append(Route("default", ra6.host_router_ip))
                router_ips.append(f"{ra6.host_router_ip}/{plen6}")
                host_ips.append(f"{ra6.host_ip}/{plen6}")
            made[rid] = Node(id=rid, kind="router", asn=as_.asn, ns=places[rid].ns, forwarding=True,
                             lo_addresses=tuple(lo))
            made[hid] = Node(id=hid, kind="host", asn=as_.asn, ns=places[hid].ns, forwarding=False, routes=tuple(routes))
            veths.append(Veth("host",
                              Iface(rid, ROUTER_HOST_IFNAME, tuple(router_ips), offloads_off=offloads_off),
                              Iface(hid, HOST_IFNAME, tuple(host_ips), offloads_off=offloads_off)))
        for link in addr.links:
            ia, ib = addr.routers[link.a], addr.routers[link.b]
            ips_a, ips_b = [f"{link.a_ip}/{link.prefixlen}"], [f"{link.b_ip}/{link.prefixlen}"]
            if addr6 is not None:
                a6, b6 = addr6.links[link.index]
                ips_a.append(f"{a6}/{addr6.link_prefixlen}")
                ips_b.append(f"{b6}/{addr6.link_prefixlen}")
            veths.append(Veth("ring",
                              Iface(node_id(as_.asn, link.a), intra_ifname(link.b, ib.index),
                                    tuple(ips_a), offloads_off=offloads_off, shaping=link.shaping),
                              Iface(node_id(as_.asn, link.b), intra_ifname(link.a, ia.index),
                                    tuple(ips_b), offloads_off=offloads_off, shaping=link.shaping)))

    refused = layer2.refuse_backend(topo, server, backend)
    if refused:
        raise ValueError(refused)
    l2 = layer2.build(topo, server, addressing, addressing6, offloads_off, sdir, marks, (Node, Iface, Route, Veth))
    made.update((n.id, n) for n in l2.nodes)
    veths += l2.veths

    mtu = topo.fabric.link_mtu
    for link in topo.links:
        if server not in link.servers():
            continue
        if not link.remote:
            veths.append(Veth("inter", _link_iface(link, link.a, mtu, offloads_off),
                              _link_iface(link, link.b, mtu, offloads_off), link_id=link.id))
        else:
            veths.append(Veth("remote", _link_iface(link, link.side(server), mtu, offloads_off),
                              Iface(None, topo.link_port_name(link.id), mtu=mtu, offloads_off=offloads_off, alias=alias),
                              link_id=link.id))

    for as_ in local_ases:
        for name in as_.routers:
            rid = node_id(as_.asn, name)
            config = (_router_config(topo, addressing[as_.asn], rid, name, addressing6.get(as_.asn),
                                     l2.extras.get(rid), filters) if as_.configure else frr.empty_config(rid))
            routers.append(Router(node=rid, asn=as_.asn, configure=as_.configure,
                                  confdir=places[rid].frr_dir, config=config,
                                  daemons=frr.daemons_for(config, as_.configure, topo.fabric.ipv6),
                                  share_memory=topo.fabric.share_memory))

    ixps: List[IxpLan] = []
    ixp_neighbours: List[IxpNeighbours] = []
    for position, x in enumerate(topo.ixps.values(), start=1):
        def lan_ips(m) -> Tuple[str, ...]:
            return (f"{m.ip}/{x.prefixlen}",) + ((f"{m.ip6}/{x.prefixlen6}",) if m.ip6 else ())
        # every interface on a peering LAN has the remote-link MTU, so a LAN with members on other
        # servers (IXP segments through a tunnel) behaves like one without
        for i, m in enumerate(x.members, start=1):
            seg = topo.ixp_segment(x.number, m.router)
            if seg is not None and seg.a.server == server:        # our member, the IXP elsewhere
                veths.append(Veth("ixp-member", Iface(m.router, x.ifname, lan_ips(m), mac=seg.a.mac,
                                                  mtu=mtu, offloads_off=offloads_off, shaping=m.shaping),
                                  Iface(None, topo.link_port_name(seg.id), mtu=mtu, offloads_off=offloads_off,
                                        alias=alias), link_id=seg.id))
                if x.route_server_ip6:
                    everyone6 = [(x.route_server_ip6, ixp_mac(position, 0))] + [
                        (o.ip6, ixp_mac(position, j)) for j, o in enumerate(x.members, start=1) if o is not m]
                    ixp_neighbours.append(IxpNeighbours(x.number, m.router, x.ifname, tuple(everyone6)))
        if x.server != server:
            continue
        made[x.node_id] = Node(id=x.node_id, kind="router", asn=x.route_server_asn, ns=places[x.node_id].ns,
                               forwarding=False)
        ports = []
        for i, m in enumerate(x.members, start=1):
            seg = topo.ixp_segment(x.number, m.router)
            port = IxpPort(ifname=ixp_port_ifname(i), member=m.router, member_ifname=x.ifname,
                           mac=ixp_mac(position, i), ip=m.ip, remote=seg is not None, ip6=m.ip6)
            ports.append(port)
            if seg is None:
                veths.append(Veth("ixp", Iface(m.router, x.ifname, lan_ips(m), mac=port.mac,
                                               mtu=mtu, offloads_off=offloads_off, shaping=m.shaping),
                                  Iface(x.node_id, port.ifname, mtu=mtu, offloads_off=offloads_off)))
            else:       # the member is on another server: this port leads to the remote bridge
                veths.append(Veth("ixp-segment", Iface(x.node_id, port.ifname, mtu=mtu, offloads_off=offloads_off),
                                  Iface(None, topo.link_port_name(seg.id), mtu=mtu, offloads_off=offloads_off,
                                        alias=alias), link_id=seg.id))
        ixps.append(IxpLan(number=x.number, node=x.node_id, ip=x.route_server_ip, prefixlen=x.prefixlen,
                           mac=ixp_mac(position, 0), ports=tuple(ports), ip6=x.route_server_ip6,
                           prefixlen6=x.prefixlen6))
        clients = [frr.RouteServerClient(m.router, m.asn, m.ip, m.announce_to, m.ip6,
                                         accept=filters.accept(m.asn), accept6=filters.accept6(m.asn))
                   for m in x.members if topo.ases[m.asn].configure]
        routers.append(Router(node=x.node_id, asn=x.route_server_asn, configure=True,
                              confdir=places[x.node_id].frr_dir,
                              config=frr.route_server_config(x.node_id, x.route_server_asn, x.route_server_ip, clients,
                                                             filters.bogons),
                              daemons=("zebra", "bgpd"), share_memory=topo.fabric.share_memory))

    # a node kind places.py knows and this plan has no recipe for (or the reverse) is our bug
    unplanned = [p.id for p in places.on(server) if p.id not in made] + [n for n in made if n not in places]
    if unplanned:
        raise AssertionError(f"plan and places.py disagree on nodes {', '.join(unplanned[:5])}")
    nodes = [made[p.id] for p in places.on(server)]
    bridges = tuple(_bridge(topo, b, datapath, marks) for b in topo.bridges.values() if b.server == server)
    srv = topo.servers[server]
    underlay = Underlay(srv.underlay_ip, srv.interface, names.phy_bridge(topo)) if bridges else None
    plan = Plan(instance=topo.name, tag=topo.tag, server=server, backend=backend, datapath=datapath,
                state_dir=sdir, nodes=tuple(nodes), veths=tuple(veths), bridges=bridges,
                routers=tuple(routers), underlay=underlay, marks=marks, addressing=addressing,
                ixps=tuple(ixps), addressing6=addressing6, ixp_neighbours=tuple(ixp_neighbours), layer2=l2.plan)
    if with_services:       # DNS servers and resolvers (provision/services.py); None of it without a service
        from . import services
        object.__setattr__(plan, "services", services.build(topo, server, plan))
    return plan


def _link_iface(link: Link, end, mtu: int, offloads_off: bool) -> Iface:
    return Iface(end.router, router_ifname(link.id),
                 (f"{end.ip}/{link.prefixlen}", f"{end.ip6}/{link.prefixlen6}"),
                 mac=end.mac, mtu=mtu, offloads_off=offloads_off, shaping=link.shaping)


def _bridge(topo: Topology, b: Bridge, datapath: str, marks: Pairs) -> OvsBridge:
    fab = topo.fabric
    options: List[Tuple[str, str]] = [("remote_ip", topo.servers[b.peer].underlay_ip)]
    if fab.isolation == "key":
        options.append(("key", "flow"))
    bfd = (("enable", "true"), ("min_tx", str(fab.bfd_interval_ms)), ("min_rx", str(fab.bfd_interval_ms)))
    ports = [OvsPort(b.tunnel_port, b.tunnel_ofport, type=fab.encapsulation, options=tuple(options), bfd=bfd)]
    ports += [OvsPort(topo.link_port_name(lid), topo.link(lid).ofport) for lid in b.link_ids]
    ctl = topo.controller
    host = f"[{ctl.ofp_host}]" if ":" in ctl.ofp_host else ctl.ofp_host
    return OvsBridge(name=b.name, dpid=b.dpid, peer=b.peer, datapath_type=datapath,
                     controller=f"tcp:{host}:{ctl.ofp_port}", ports=tuple(ports), marks=marks)


class ImportFilters:
    """What each AS may announce over eBGP (provision/frr.py's import filters): its customer cone's
    networks, each AS's taken from what the plan has its routers announce (`announced`); and what
    nobody may: the link subnets the links really use and the peering LANs (`link_subnets`)."""

    def __init__(self, topo: Topology, addressing: Dict[int, ASAddressing], addressing6: Dict[int, ASAddressing6]):
        self.cones = frr.customer_cones((l.a.asn, l.b.asn, l.rel) for l in topo.links)
        self.announced = announced(topo, addressing)
        self.prefix6 = {asn: a.prefix for asn, a in addressing6.items()}
        lans = [f"{x.route_server_ip}/{x.prefixlen}" for x in topo.ixps.values()]
        lans += [f"{x.route_server_ip6}/{x.prefixlen6}" for x in topo.ixps.values() if x.route_server_ip6]
        self.bogons = link_subnets(topo, bool(addressing6)) + tuple(
            str(ipaddress.ip_network(n, strict=False)) for n in lans)
        self.all_prefixes = sum(len(nets) for nets in self.announced.values())

    def accept(self, asn: int) -> Tuple[str, ...]:
        cone = self.cones.get(asn, {asn})
        return tuple(sorted({n for a in cone for n in self.announced.get(a, ())}))

    def accept6(self, asn: int) -> Optional[Tuple[str, ...]]:
        if not self.prefix6:
            return None
        return tuple(sorted({self.prefix6[a] for a in self.cones.get(asn, {asn}) if a in self.prefix6}))


def announced(topo: Topology, addressing: Dict[int, ASAddressing]) -> Dict[int, Tuple[str, ...]]:
    """{AS: the IPv4 networks its routers announce}: the AS prefix, and for a configured AS with
    layer 2 its VLAN networks outside that prefix (layer2.announced_outside, which the routers'
    `network` statements use too)."""
    return {asn: (a.prefix,) + layer2.announced_outside(topo, topo.ases[asn], a.prefix)
            for asn, a in addressing.items() if asn in topo.ases}


def link_subnets(topo: Topology, ipv6: bool) -> Tuple[str, ...]:
    """The inter-AS link subnets no AS may announce into, as the links really use them: each
    link's own subnet (a `subnet:` of its own, the mini-Internet plans' Subnet column or default
    /24) and its IPv6 one, plus fabric.link_subnet (and link_subnet6) in the minet plan, where the
    other links' /30s come from; collapsed. Not fabric.link_subnet in the mini-Internet plans: no
    link uses it there."""
    links = [l for l in topo.links if l.rel != "ixp"]
    nets4 = [ipaddress.ip_interface(f"{l.a.ip}/{l.prefixlen}").network for l in links]
    nets6 = [ipaddress.ip_interface(f"{l.a.ip6}/{l.prefixlen6}").network
             for l in links if ipv6 and l.a.ip6 and l.prefixlen6]
    if not is_mini(topo.plan):
        nets4.append(ipaddress.ip_network(topo.fabric.link_subnet))
        if ipv6:
            nets6.append(ipaddress.ip_network(topo.fabric.link_subnet6))
    return (tuple(str(n) for n in ipaddress.collapse_addresses(nets4))
            + tuple(str(n) for n in ipaddress.collapse_addresses(nets6)))


def _router_config(topo: Topology, addr: ASAddressing, rid: str, name: str,
                   addr6: Optional[ASAddressing6] = None, l2: Optional["layer2.RouterExtras"] = None,
                   filters: Optional[ImportFilters] = None) -> str:
    ra = addr.routers[name]
    ibgp = frr.ibgp_peers(rid, [(node_id(addr.asn, o.name), o.loopback) for o in addr.routers.values()],
                          {node_id(addr.asn, o.name): addr6.routers[o.name].loopback for o in addr.routers.values()}
                          if addr6 else None)
    ebgp = []
    for link in topo.links:
        if rid not in (link.a.router, link.b.router):
            continue
        we_are_a = link.a.router == rid
        far = link.b if we_are_a else link.a
        role = frr.far_role(link.rel, we_are_a)
        up = role == "provider" or filters is None      # from a provider: anything but bogons
        ebgp.append(frr.EbgpPeer(link_id=link.id, router=far.router, asn=far.asn, ip=far.ip,
                                 role=role, ip6=far.ip6 if addr6 else None,
                                 accept=None if up else filters.accept(far.asn),
                                 accept6=None if up or not addr6 else filters.accept6(far.asn)))
    for x in topo.ixps.values():          # a route server is a peer: we send it own and customer routes
        if any(m.router == rid for m in x.members):
            members = sorted({m.asn for m in x.members if m.router != rid})    # the route server is transparent
            accept = tuple(sorted({p for a in members for p in filters.accept(a)})) if filters else None
            accept6 = (tuple(sorted({p for a in members for p in (filters.accept6(a) or ())}))
                       if filters and addr6 else None)
            ebgp.append(frr.EbgpPeer(link_id=0, router=f"{x.node_id} route server", asn=x.route_server_asn,
                                     ip=x.route_server_ip, role="peer",
                                     ip6=x.route_server_ip6 if addr6 else None, accept=accept, accept6=accept6))
    ring = tuple(intra_ifname(l.peer_of(name), addr.routers[l.peer_of(name)].index) for l in addr.links_of(name))
    return frr.router_config(frr.RouterPolicy(
        hostname=rid, asn=addr.asn, router_id=ra.loopback, prefix=addr.prefix, ospf_ifaces=ring,
        passive_ifaces=("lo", ROUTER_HOST_IFNAME) + (l2.passive_ifaces if l2 else ()), ibgp=ibgp, ebgp=tuple(ebgp),
        host_ifaces=(ROUTER_HOST_IFNAME,),
        prefix6=addr6.prefix if addr6 else None, networks=l2.networks if l2 else (),
        link_subnets=filters.bogons if filters else (), all_prefixes=filters.all_prefixes if filters else 0))
