"""The lab's two shared networks and each emulated server's ports on them.

    mgmt   10.254.0.0/24 by default (an option of `lab up`): .1 is the mgmt namespace (on bridge
           <tag>-mbr), .1+i is server i (1-based index in the topology), on veth <tag>-mg in the
           server's namespace. The controller and the SSH client of master mode run in <tag>-mgmt.
    ul     the servers' `underlay_ip`s: veth <tag>-ul in the server's namespace is a port of the
           OvS netdev bridge <tag>-phy, whose internal port holds underlay_ip with the shortest
           prefix covering every server's underlay_ip (a connected route: OvS's tunnel routing
           ignores host routes; IPv4 or IPv6, added without DAD); MTU `fabric.underlay_mtu` on
           every underlay port (bridge <tag>-ubr in <tag>-ul).
"""
from __future__ import annotations

import ipaddress
from typing import Dict

from ..topology import Topology, names
from . import LabError, paths
from .state import LabState, MgmtRecord, UnderlayRecord
from .system import ip, ip_batch, nsenter_argv, ovs_vsctl, run

DEFAULT_MGMT_SUBNET = "10.254.0.0/24"
UNDERLAY_BRIDGE_MTU = 9000      # the Linux bridge joining the servers; their ports set the real limit


def mgmt_network(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise LabError(f"management subnet {subnet!r}: {exc}")
    if net.version != 4:
        raise LabError(f"management subnet {subnet}: must be IPv4")
    return net


def mgmt_addresses(topo: Topology, subnet: str = DEFAULT_MGMT_SUBNET) -> Dict[str, str]:
    """{"mgmt": .1, <server>: .1+index}: the management address of every lab node."""
    net = mgmt_network(subnet)
    need = 2 + len(topo.servers)          # mgmt ns + servers, plus the broadcast address
    highest = max((s.index for s in topo.servers.values()), default=0)
    if net.num_addresses < highest + 3:
        raise LabError(f"management subnet {subnet} is too small for {len(topo.servers)} servers "
                       f"(needs at least {need + 1} addresses)")
    base = int(net.network_address)
    out = {"mgmt": str(ipaddress.IPv4Address(base + 1))}
    for name, server in topo.servers.items():
        out[name] = str(ipaddress.IPv4Address(base + 1 + server.index))
    return out


def check_addressing(topo: Topology, subnet: str) -> None:
    """Refuse a management subnet that clashes with the topology's own addresses."""
    net = mgmt_network(subnet)
    for name, server in topo.servers.items():
        addr = ipaddress.ip_address(server.underlay_ip)
        if addr.version == 4 and addr in net:
            raise LabError(f"servers.{name}.underlay_ip {addr} is inside the lab's management subnet "
                           f"{net}; choose another with --mgmt-subnet")
        if addr.is_loopback or addr.is_multicast or addr.is_unspecified:
            raise LabError(f"servers.{name}.underlay_ip {addr} cannot be an underlay address in the lab")
    if net.overlaps(ipaddress.ip_network(topo.fabric.link_subnet)):
        raise LabError(f"the lab's management subnet {net} overlaps fabric.link_subnet "
                       f"{topo.fabric.link_subnet}; choose another with --mgmt-subnet")


def underlay_prefixlen(topo: Topology, version: int) -> int:
    """Length of the smallest prefix holding the underlay address of every server (of a version)."""
    addrs = [ipaddress.ip_address(s.underlay_ip) for s in topo.servers.values()]
    addrs = [a for a in addrs if a.version == version]
    bits = addrs[0].max_prefixlen
    plen = bits
    while plen > 0 and len({int(a) >> (bits - plen) for a in addrs}) > 1:
        plen -= 1
    return plen


def build_shared(topo: Topology, state: LabState, mgmt_ip: str, prefixlen: int) -> None:
    """The mgmt and underlay namespaces with their bridges (their namespaces already recorded)."""
    mns, uns = names.mgmt_ns(topo), names.underlay_ns(topo)
    mbr, ubr = names.mgmt_bridge(topo), names.underlay_bridge(topo)
    ip_batch(mns, [f"link add {mbr} type bridge", f"addr add {mgmt_ip}/{prefixlen} dev {mbr}",
                   f"link set {mbr} up"])
    ip_batch(uns, [f"link add {ubr} mtu {UNDERLAY_BRIDGE_MTU} type bridge", f"link set {ubr} up"])
    state.mgmt = MgmtRecord(ns=mns, bridge=mbr, ip=mgmt_ip)
    # the emulated underlay has the topology's MTU, so the tunnel overhead the model subtracts
    # (for an IPv4 or IPv6 outer header) is checked against a real limit
    state.underlay = UnderlayRecord(ns=uns, bridge=ubr, mtu=topo.fabric.underlay_mtu)
    state.save()


def disable_offloads(ns: str, ifname: str) -> None:
    # TCP through the userspace datapath stalls with TX checksum/segmentation offload on.
    run(nsenter_argv(ns, ["ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off"]), check=False)


def build_underlay(topo: Topology, server: str, state: LabState) -> None:
    """<tag>-ul (veth, port of the OvS netdev bridge <tag>-phy) and the underlay IP on <tag>-phy."""
    ns = names.server_ns(topo, server)
    ul, peer, phy = names.underlay_ifname(topo), names.underlay_peer_ifname(topo, server), names.phy_bridge(topo)
    uns = names.underlay_ns(topo)
    mtu = topo.fabric.underlay_mtu
    ip(ns, "link", "add", ul, "mtu", str(mtu), "type", "veth", "peer", "name", peer,
       "mtu", str(mtu), "netns", uns)
    ip_batch(uns, [f"link set {peer} master {names.underlay_bridge(topo)}", f"link set {peer} up"])
    ip(ns, "link", "set", ul, "up")
    disable_offloads(ns, ul)
    disable_offloads(uns, peer)
    ovs_vsctl(paths.server_dir(topo, server), "--may-exist", "add-br", phy, "--", "set", "bridge", phy, "datapath_type=netdev",
              f"external_ids:minet-lab={topo.name}", "external_ids:minet-role=underlay",
              "--", "--may-exist", "add-port", phy, ul,
              "--", "set", "interface", phy, f"mtu_request={mtu}")
    me = ipaddress.ip_address(topo.servers[server].underlay_ip)
    # A connected prefix covering every server: OvS's tunnel routing ignores host routes whose
    # destination no address of the device covers, so /32 plus host routes would black-hole GRE.
    plen = underlay_prefixlen(topo, me.version)
    nodad = " nodad" if me.version == 6 else ""     # usable at once (a tentative address is not)
    ip_batch(ns, [f"link set {phy} mtu {mtu} up", f"addr add {me}/{plen} dev {phy}{nodad}"])
    disable_offloads(ns, phy)
    srv = state.servers[server]
    srv.underlay_if, srv.underlay_peer_if, srv.phy_bridge = ul, peer, phy
    state.save()


def build_mgmt(topo: Topology, server: str, state: LabState, address: str, prefixlen: int) -> None:
    """<tag>-mg in the server's namespace, its peer on the mgmt bridge; the server's mgmt address."""
    ns, mns = names.server_ns(topo, server), names.mgmt_ns(topo)
    mg, peer = names.mgmt_ifname(topo), names.mgmt_peer_ifname(topo, server)
    ip(ns, "link", "add", mg, "type", "veth", "peer", "name", peer, "netns", mns)
    ip_batch(mns, [f"link set {peer} master {names.mgmt_bridge(topo)}", f"link set {peer} up"])
    ip_batch(ns, [f"addr add {address}/{prefixlen} dev {mg}", f"link set {mg} up"])
    srv = state.servers[server]
    srv.mgmt_if, srv.mgmt_peer_if = mg, peer
    state.save()
