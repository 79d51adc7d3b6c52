"""The lab's two shared networks and each emulated server's ports on them.

    mgmt   10.254.0.0/24 by default (an option of `lab up`): .1 is the mgmt namespace (on bridge
           <tag>-mbr), .1+i is server i (1-based index in the topology), on veth <tag>-mg in the
           server's namespace. The controller and the SSH client of master mode run in <tag>-mgmt.
    ul     the servers' `underlay_ip`s: veth <tag>-ul in the server's namespace is a port of the
           OvS netdev bridge <tag>-phy, whose internal port holds underlay_ip with the shortest
           prefix covering every server's underlay_ip (a connected route: OvS's tunnel routing
           ignores host routes; IPv4 or IPv6, added without DAD); MTU `fabric.underlay_mtu` on
           every underlay port (bridge <tag>-ubr in <tag>-ul).

Links, addresses, MTUs and offloads go through the pyroute2 layer provisioning uses
(provision/netlink.py); only the OvS bridge <tag>-phy is made with ovs-vsctl.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
from typing import Dict, Iterator

from pyroute2.netlink.exceptions import NetlinkError

from .. import host
from ..provision import netlink as nlk
from ..provision.plan import LOCAL_MTU, Iface, Veth
from ..topology import Topology, names
from . import LabError, paths
from .state import LabState, MgmtRecord, UnderlayRecord
from .system import ovs_vsctl

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


@contextlib.contextmanager
def _netlink(what: str) -> Iterator[nlk.Netlink]:
    """A netlink session for one step; what fails in it is a LabError naming the step."""
    nl = nlk.Netlink()
    try:
        yield nl
    except NetlinkError as exc:
        raise LabError(f"{what}: {os.strerror(exc.code) if exc.code else exc}") from None
    except (nlk.NetlinkProblem, OSError) as exc:
        raise LabError(f"{what}: {exc}") from None
    finally:
        nl.close()


def _port(ifname: str, *addresses: str, mtu: int = LOCAL_MTU, offloads_off: bool = False) -> Iface:
    """An interface of the lab's own namespaces, for the pyroute2 layer (LOCAL_MTU is the kernel's
    default for a veth or a bridge: ensure_iface then leaves the MTU as it is)."""
    return Iface(node=None, ifname=ifname, addresses=addresses, mtu=mtu, offloads_off=offloads_off)


def build_shared(topo: Topology, state: LabState, mgmt_ip: str, prefixlen: int) -> None:
    """The mgmt and underlay namespaces with their bridges (their namespaces already recorded)."""
    mns, uns = names.mgmt_ns(topo), names.underlay_ns(topo)
    mbr, ubr = names.mgmt_bridge(topo), names.underlay_bridge(topo)
    mpath, upath = host.netns_path(mns), host.netns_path(uns)
    with _netlink("the lab's shared networks") as nl:
        nlk.create_bridge(nl, mpath, mbr)
        nlk.ensure_iface(nl, mpath, _port(mbr, f"{mgmt_ip}/{prefixlen}"), mbr)
        nlk.create_bridge(nl, upath, ubr, mtu=UNDERLAY_BRIDGE_MTU)
        nlk.set_up(nl, upath, ubr)
    state.mgmt = MgmtRecord(ns=mns, bridge=mbr, ip=mgmt_ip)
    # the emulated underlay has the topology's MTU, so the tunnel overhead the model subtracts
    # (for an IPv4 or IPv6 outer header) is checked against a real limit
    state.underlay = UnderlayRecord(ns=uns, bridge=ubr, mtu=topo.fabric.underlay_mtu)
    state.save()


def build_underlay(topo: Topology, server: str, state: LabState) -> None:
    """<tag>-ul (veth, port of the OvS netdev bridge <tag>-phy) and the underlay IP on <tag>-phy.

    TX checksum/segmentation offloads are off on the veth's two ends and on <tag>-phy: TCP through
    the userspace datapath stalls with them on (PLATFORM-NOTES)."""
    ns = names.server_ns(topo, server)
    ul, peer, phy = names.underlay_ifname(topo), names.underlay_peer_ifname(topo, server), names.phy_bridge(topo)
    uns = names.underlay_ns(topo)
    path, upath = host.netns_path(ns), host.netns_path(uns)
    mtu = topo.fabric.underlay_mtu
    with _netlink(f"underlay port of server {server}") as nl:
        nlk.create_veth(nl, path, upath, Veth("lab", _port(ul), _port(peer)), mtu=mtu)
        nlk.set_master(nl, upath, peer, names.underlay_bridge(topo))
        nlk.set_up(nl, path, ul)
        nlk.ensure_offloads_off(path, ul)
        nlk.ensure_offloads_off(upath, peer)
    ovs_vsctl(paths.server_dir(topo, server), "--may-exist", "add-br", phy, "--", "set", "bridge", phy, "datapath_type=netdev",
              f"external_ids:minet-lab={topo.name}", "external_ids:minet-role=underlay",
              "--", "--may-exist", "add-port", phy, ul,
              "--", "set", "interface", phy, f"mtu_request={mtu}")
    me = ipaddress.ip_address(topo.servers[server].underlay_ip)
    # A connected prefix covering every server: OvS's tunnel routing ignores host routes whose
    # destination no address of the device covers, so /32 plus host routes would black-hole GRE.
    # IPv6 is added without DAD (usable at once: a tentative address is not).
    plen = underlay_prefixlen(topo, me.version)
    with _netlink(f"underlay address of server {server}") as nl:
        nlk.ensure_iface(nl, path, _port(phy, f"{me}/{plen}", mtu=mtu, offloads_off=True), phy)
    srv = state.servers[server]
    srv.underlay_if, srv.underlay_peer_if, srv.phy_bridge = ul, peer, phy
    state.save()


def build_mgmt(topo: Topology, server: str, state: LabState, address: str, prefixlen: int) -> None:
    """<tag>-mg in the server's namespace, its peer on the mgmt bridge; the server's mgmt address."""
    ns, mns = names.server_ns(topo, server), names.mgmt_ns(topo)
    path, mpath = host.netns_path(ns), host.netns_path(mns)
    mg, peer = names.mgmt_ifname(topo), names.mgmt_peer_ifname(topo, server)
    with _netlink(f"management port of server {server}") as nl:
        nlk.create_veth(nl, path, mpath, Veth("lab", _port(mg), _port(peer)))
        nlk.set_master(nl, mpath, peer, names.mgmt_bridge(topo))
        nlk.ensure_iface(nl, path, _port(mg, f"{address}/{prefixlen}"), mg)
    srv = state.servers[server]
    srv.mgmt_if, srv.mgmt_peer_if = mg, peer
    state.save()
