"""Interfaces, addresses, routes, sysctls and offloads through netlink / ioctl (pyroute2), no `ip` processes.

Backend-neutral: every function takes a network-namespace *path* (``/var/run/netns/NAME`` for the
netns backend, ``/proc/PID/ns/net`` for a container) or None for the current namespace.
Each `ensure_*` function makes one thing match and returns the list of changes it made.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Dict, List, Optional, Tuple

from pyroute2 import IPRoute
from pyroute2.ethtool.ioctl import IoctlEthtool
from pyroute2.netlink.exceptions import NetlinkError

from .. import host
from .plan import Iface, Node, Veth

IFF_UP = 0x1
IFA_F_NODAD = 0x02


class NetlinkProblem(Exception):
    pass


RTN_BLACKHOLE = 6


def _is_offload(name: str) -> bool:
    """The features `ethtool -K IF tx off tso off gso off` turns off."""
    return (name.startswith("tx-checksum-") or name == "tx-generic-segmentation"
            or (name.startswith("tx-tcp") and name.endswith("segmentation")))


entered = host.entered      # the calling thread inside a namespace (path or None) for the body


class Netlink:
    """One rtnetlink socket per namespace, opened on first use and reused."""

    def __init__(self) -> None:
        self._sockets: Dict[Optional[str], IPRoute] = {}

    def __call__(self, nspath: Optional[str]) -> IPRoute:
        ipr = self._sockets.get(nspath)
        if ipr is None:
            if nspath is None:
                ipr = IPRoute()
            else:
                with entered(nspath):         # the socket lives in the namespace it was made in
                    ipr = IPRoute()
            self._sockets[nspath] = ipr
        return ipr

    def forget(self, nspath: Optional[str]) -> None:
        ipr = self._sockets.pop(nspath, None)
        if ipr is not None:
            ipr.close()

    def close(self) -> None:
        for nspath in list(self._sockets):
            self.forget(nspath)

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- queries --------------------------------------------------------------------------------

def link_index(ipr: IPRoute, ifname: str) -> Optional[int]:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_info(ipr: IPRoute, index: int) -> dict:
    msg = ipr.link("get", index=index)[0]
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    return {"index": index, "ifname": msg.get_attr("IFLA_IFNAME"), "flags": msg["flags"],
            "mac": msg.get_attr("IFLA_ADDRESS"), "mtu": msg.get_attr("IFLA_MTU"),
            "alias": msg.get_attr("IFLA_IFALIAS"), "peer": msg.get_attr("IFLA_LINK"),
            "kind": linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo else None}


def addresses(ipr: IPRoute, index: Optional[int] = None) -> List[Tuple[int, str, int]]:
    """(ifindex, address, prefixlen) of global addresses (link-local IPv6 left out)."""
    out = []
    for msg in ipr.addr("dump"):
        if index is not None and msg["index"] != index:
            continue
        addr = msg.get_attr("IFA_ADDRESS")
        if msg["family"] == socket.AF_INET6 and ipaddress.ip_address(addr).is_link_local:
            continue
        out.append((msg["index"], addr, msg["prefixlen"]))
    return out


def links_with_alias(ipr: IPRoute, alias: str) -> List[str]:
    """Names of the interfaces carrying ownership mark `alias`."""
    return sorted(msg.get_attr("IFLA_IFNAME") for msg in ipr.link("dump") if msg.get_attr("IFLA_IFALIAS") == alias)


def find_address(ipr: IPRoute, ip: str) -> Optional[Tuple[str, int]]:
    """(ifname, prefixlen) of the interface holding `ip` in this namespace, or None."""
    for index, addr, plen in addresses(ipr):
        if addr == ip:
            return link_info(ipr, index)["ifname"], plen
    return None


# ---- offloads and sysctls -------------------------------------------------------------------

def ensure_offloads_off(nspath: Optional[str], ifname: str) -> List[str]:
    with entered(nspath):
        eth = IoctlEthtool()           # its socket is made here, inside the namespace
    try:
        eth.change_ifname(ifname)
        features = eth.get_features()
        # requested as well as active: a tap (OvS's internal port) shows them off until its user
        # turns tap offloads on (TUNSETOFFLOAD), then the requested ones would come on
        active = [name for name, on, available, _, _ in features
                  if available and _is_offload(name) and (on or features.is_requested(name))]
        if not active:
            return []
        for name in active:
            features[name] = False
        eth.set_features(features)
        return [f"offloads off ({len(active)} features)"]
    finally:
        eth.close()


def ensure_sysctls(nspath: Optional[str], settings: Tuple[Tuple[str, str], ...], where: str) -> List[str]:
    changes = []
    with entered(nspath):           # /proc/sys/net resolves to the calling thread's namespace
        for key, value in settings:
            path = "/proc/sys/" + key.replace(".", "/")
            with open(path) as fh:
                if fh.read().strip() == value:
                    continue
            with open(path, "w") as fh:
                fh.write(value)
            changes.append(f"{where}: sysctl {key}={value}")
    return changes


# A router-facing port in the server's namespace (the server end of a remote link's or an IXP
# segment's veth) only carries frames between the router and the server's OvS. The server's kernel
# must neither route nor answer what arrives on it: a namespace inherits ip_forward=1 and rp_filter=0,
# and a student's router could then hand the kernel a GRE packet with a spoofed outer source and
# another link's key, which the kernel would route onto the underlay into another AS's link.
#   forwarding=0        nothing arriving here is routed (IPv4 checks the input device's setting)
#   rp_filter=1         strict: the port has no address and no route points at it, so every IPv4
#                       packet arriving on it fails the reverse-path check (no local delivery either)
#   accept_local=0      nor with a source that is one of the server's own addresses
#   arp_ignore=8        no ARP answer for any address (the router must not learn a next hop here)
#   arp_announce=2, drop_gratuitous_arp=1, arp_accept=0   no neighbour entry from the router's ARP
#   disable_ipv6=1      no IPv6 at all on the port: no link-local address, no NDP, no forwarding
PORT_GUARD = (("ipv4", "forwarding", "0"), ("ipv4", "rp_filter", "1"), ("ipv4", "accept_local", "0"),
              ("ipv4", "arp_ignore", "8"), ("ipv4", "arp_announce", "2"), ("ipv4", "drop_gratuitous_arp", "1"),
              ("ipv4", "arp_accept", "0"), ("ipv4", "accept_source_route", "0"),
              ("ipv4", "accept_redirects", "0"), ("ipv4", "send_redirects", "0"),
              ("ipv6", "disable_ipv6", "1"))


def ensure_port_guard(nspath: Optional[str], ifname: str, where: str, proc: str = "/proc/sys") -> List[str]:
    """Make the server's kernel ignore a router-facing port (PORT_GUARD); the changes made."""
    changes = []
    with entered(nspath):
        for family, key, value in PORT_GUARD:
            path = os.path.join(proc, "net", family, "conf", ifname, key)
            try:
                with open(path) as fh:
                    if fh.read().strip() == value:
                        continue
                with open(path, "w") as fh:
                    fh.write(value)
            except OSError as exc:
                raise NetlinkProblem(f"{where}: cannot set {family} {key}={value} on {ifname}: "
                                     f"{exc.strerror or exc}") from None
            changes.append(f"{where}: {family} {key}={value}")
    return changes


# ---- interfaces ------------------------------------------------------------------------------

def ensure_iface(nl: Netlink, nspath: Optional[str], iface: Iface, where: str, bring_up: bool = True) -> List[str]:
    """Make an existing interface match: MAC, MTU, alias, addresses (added, never removed), up, offloads.
    `where` prefixes each change, e.g. "1.ZURI:ext1"."""
    ipr = nl(nspath)
    index = link_index(ipr, iface.ifname)
    if index is None:
        raise NetlinkProblem(f"{where}: interface {iface.ifname} is missing")
    info = link_info(ipr, index)
    changes: List[str] = []
    attrs = {}
    if iface.mac and (info["mac"] or "").lower() != iface.mac.lower():
        attrs["address"] = iface.mac
        changes.append(f"{where}: mac {iface.mac}")
    if info["mtu"] != iface.mtu:
        attrs["mtu"] = iface.mtu
        changes.append(f"{where}: mtu {iface.mtu}")
    if iface.alias and info["alias"] != iface.alias:
        attrs["ifalias"] = iface.alias
        changes.append(f"{where}: alias {iface.alias}")
    if attrs:
        ipr.link("set", index=index, **attrs)
    if iface.offloads_off:
        changes += [f"{where}: {c}" for c in ensure_offloads_off(nspath, iface.ifname)]
    changes += _ensure_addresses(ipr, index, iface.addresses, where)
    if bring_up and not info["flags"] & IFF_UP:
        ipr.link("set", index=index, state="up")
        changes.append(f"{where}: up")
    return changes


def set_up(nl: Netlink, nspath: Optional[str], ifname: str) -> None:
    """Bring `ifname` up (`ip link set IF up`)."""
    ipr = nl(nspath)
    index = link_index(ipr, ifname)
    if index is None:
        raise NetlinkProblem(f"cannot bring {ifname} up: it is missing")
    ipr.link("set", index=index, state="up")


def _ensure_addresses(ipr: IPRoute, index: int, wanted: Tuple[str, ...], where: str) -> List[str]:
    present = {(addr, plen) for _, addr, plen in addresses(ipr, index)}
    changes = []
    for cidr in wanted:
        iface = ipaddress.ip_interface(cidr)
        key = (str(iface.ip), iface.network.prefixlen)
        if key in present:
            continue
        kw = {"flags": IFA_F_NODAD} if iface.version == 6 else {}
        ipr.addr("add", index=index, address=key[0], prefixlen=key[1], **kw)
        changes.append(f"{where}: address {cidr}")
    return changes


def ensure_loopback(nl: Netlink, nspath: str, node: Node) -> List[str]:
    ipr = nl(nspath)
    index = link_index(ipr, "lo")
    changes = _ensure_addresses(ipr, index, node.lo_addresses, f"{node.id}:lo")
    if not link_info(ipr, index)["flags"] & IFF_UP:
        ipr.link("set", index=index, state="up")
        changes.append(f"{node.id}:lo: up")
    return changes


def ensure_routes(nl: Netlink, nspath: str, node: Node) -> List[str]:
    ipr = nl(nspath)
    changes = []
    for route in node.routes:
        v6 = ipaddress.ip_address(route.via).version == 6
        any_addr = "::" if v6 else "0.0.0.0"
        dst = f"{any_addr}/0" if route.dst == "default" else route.dst
        net = ipaddress.ip_network(dst)
        family = socket.AF_INET6 if v6 else socket.AF_INET
        current = [r for r in ipr.route("dump", family=family, table=254)
                   if r["dst_len"] == net.prefixlen
                   and (r.get_attr("RTA_DST") or any_addr) == str(net.network_address)]
        if any(r.get_attr("RTA_GATEWAY") == route.via for r in current):
            continue
        ipr.route("replace", dst=dst, gateway=route.via, family=family)
        changes.append(f"{node.id}: route {route.dst} via {route.via}")
    return changes


def ensure_blackhole(nl: Netlink, nspath: str, prefix: str, where: str) -> List[str]:
    """A blackhole route for `prefix` in the main table (a router's own AS prefix, so that BGP's
    `network` statement finds it in zebra's RIB as a kernel route: no staticd needed)."""
    ipr = nl(nspath)
    net = ipaddress.ip_network(prefix)
    family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
    for r in ipr.route("dump", family=family, table=254):
        if (r["dst_len"] == net.prefixlen and r["type"] == RTN_BLACKHOLE
                and r.get_attr("RTA_DST") == str(net.network_address)):
            return []
    ipr.route("replace", dst=str(net), type="blackhole", family=family)
    return [f"{where}: blackhole route {prefix}"]


def veth_state(nl: Netlink, path_a: Optional[str], path_b: Optional[str], veth: Veth) -> str:
    """'ok' (both ends, paired), 'absent' (neither end) or 'broken' (anything else)."""
    ia = link_index(nl(path_a), veth.a.ifname)
    ib = link_index(nl(path_b), veth.b.ifname)
    if ia is None and ib is None:
        return "absent"
    if ia is None or ib is None:
        return "broken"
    a, b = link_info(nl(path_a), ia), link_info(nl(path_b), ib)
    if a["kind"] != "veth" or b["kind"] != "veth" or a["peer"] != ib or b["peer"] != ia:
        return "broken"
    return "ok"


def create_veth(nl: Netlink, path_a: Optional[str], path_b: Optional[str], veth: Veth,
                mtu: Optional[int] = None) -> None:
    """Create both ends directly in their namespaces (no temporary names in ours), with `mtu` on
    both when given (else the kernel's default; ensure_iface sets the plan's afterwards)."""
    peer: dict = {"ifname": veth.b.ifname}
    if path_b is not None:
        peer["net_ns_fd"] = path_b
    kw: dict = {"ifname": veth.a.ifname, "kind": "veth", "peer": peer}
    if path_a is not None:
        kw["net_ns_fd"] = path_a
    if mtu is not None:
        kw["mtu"] = peer["mtu"] = mtu
    try:
        nl(None).link("add", **kw)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            raise NetlinkProblem(f"cannot create veth {veth.a.ifname}/{veth.b.ifname}: a device of that name exists")
        raise


def create_bridge(nl: Netlink, nspath: Optional[str], ifname: str, mtu: Optional[int] = None) -> None:
    """A Linux bridge `ifname` in namespace `nspath`, down, with `mtu` when given. An MTU given at
    creation counts as set by the user: the kernel then keeps it whatever its ports' MTUs."""
    kw: dict = {"ifname": ifname, "kind": "bridge"}
    if mtu is not None:
        kw["mtu"] = mtu
    try:
        nl(nspath).link("add", **kw)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            raise NetlinkProblem(f"cannot create bridge {ifname}: a device of that name exists")
        raise


def set_master(nl: Netlink, nspath: Optional[str], ifname: str, bridge: str) -> None:
    """Make `ifname` a port of Linux bridge `bridge` (both in `nspath`) and bring it up."""
    ipr = nl(nspath)
    index, master = link_index(ipr, ifname), link_index(ipr, bridge)
    if index is None or master is None:
        raise NetlinkProblem(f"cannot attach {ifname} to {bridge}: "
                             f"{ifname if index is None else bridge} is missing")
    ipr.link("set", index=index, master=master, state="up")


def delete_link(nl: Netlink, nspath: Optional[str], ifname: str, alias: Optional[str] = None) -> bool:
    """Delete `ifname` (only if it carries `alias`, when given). True if something was deleted."""
    ipr = nl(nspath)
    index = link_index(ipr, ifname)
    if index is None:
        return False
    if alias is not None and link_info(ipr, index)["alias"] != alias:
        return False
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise
        return False
    return True
