"""The Open vSwitch steps of provisioning (a part of provision/apply.py's Provisioner): the underlay
moved onto an OvS internal port (userspace datapath), and the remote bridges.

`BridgeSteps` is a mixin: the Provisioner holds `plan` and `_nl`, and the journal
(provision/journal.py).
"""
from __future__ import annotations

import ipaddress
import socket
import sys

from . import netlink as nlk
from . import ovs
from .journal import ProvisionError


class BridgeSteps:
    def _up_underlay(self) -> None:
        """On netdev, tunnels leave from an IP on an OvS internal port; put it there if needed."""
        u = self.plan.underlay
        if u is None or self.plan.datapath != "netdev":
            return
        ipr = self._nl(None)
        found = nlk.find_address(ipr, u.ip)
        state = ovs.read_state()
        if found and ovs.interface_type(state, found[0]) == "internal":
            return
        if found is None:
            raise ProvisionError(self.plan.server, f"underlay_ip {u.ip} is not configured on any interface "
                                                   "of this server")
        ifname, plen = found
        if not u.interface:
            raise ProvisionError(self.plan.server, f"underlay_ip {u.ip} is on {ifname}, which is not an Open vSwitch "
                                                   f"port; the userspace datapath needs it on one: set "
                                                   f"servers.{self.plan.server}.interface: {ifname} to let "
                                                   f"minet-provision move it onto bridge {u.bridge}")
        if ifname != u.interface:
            raise ProvisionError(self.plan.server, f"underlay_ip {u.ip} is on {ifname}, not on "
                                                   f"servers.{self.plan.server}.interface {u.interface}")
        cidr = f"{u.ip}/{plen}"
        self.progress(f"moving underlay {cidr} from {ifname} onto OvS bridge {u.bridge}")
        ovs.vsctl(*ovs.underlay_bridge_args(u.bridge, ifname, cidr, self.plan.marks, self.plan.datapath))
        self._created(f"underlay bridge {u.bridge}", lambda: self._restore_underlay(u.bridge))
        _move_address(ipr, ifname, u.bridge, cidr)

    def _restore_underlay(self, bridge: str) -> bool:
        state = ovs.read_state()
        row = state.bridges.get(bridge)
        if row is None or not ovs.is_marked(row, self.plan.marks):
            return False
        ifname = row["external_ids"].get(ovs.UNDERLAY_IFACE_KEY)
        cidr = row["external_ids"].get(ovs.UNDERLAY_ADDR_KEY)
        if ifname and cidr:
            ipr = self._nl(None)
            if nlk.link_index(ipr, bridge) is not None and nlk.link_index(ipr, ifname) is not None:
                _move_address(ipr, bridge, ifname, cidr)
        ovs.vsctl("--if-exists", "del-br", bridge)
        return True

    def _up_bridges(self) -> None:
        self.progress(f"{len(self.plan.bridges)} remote bridges")
        for bridge in self.plan.bridges:
            changes, created = ovs.ensure_bridge(bridge)
            if created:
                self._created(f"bridge {bridge.name}", lambda b=bridge: ovs.delete_bridge(b.name, self.plan.marks))
                changes = changes[1:]
            self._changed(changes)


def _move_address(ipr, src: str, dst: str, cidr: str) -> None:
    """Move `cidr` and the routes through it from interface `src` to `dst` (brought up, same MTU)."""
    si, di = nlk.link_index(ipr, src), nlk.link_index(ipr, dst)
    iface = ipaddress.ip_interface(cidr)
    routes = [r for r in ipr.route("dump", family=socket.AF_INET, table=254)
              if r.get_attr("RTA_OIF") == si and r.get_attr("RTA_GATEWAY")]
    ipr.link("set", index=di, mtu=nlk.link_info(ipr, si)["mtu"], state="up")
    ipr.addr("del", index=si, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    ipr.addr("add", index=di, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    for r in routes:
        dst_addr = r.get_attr("RTA_DST") or "0.0.0.0"
        kw = {"dst": f"{dst_addr}/{r['dst_len']}", "gateway": r.get_attr("RTA_GATEWAY"), "oif": di}
        if r.get_attr("RTA_PRIORITY") is not None:
            kw["priority"] = r.get_attr("RTA_PRIORITY")
        try:
            ipr.route("replace", **kw)
        except Exception as exc:      # report, but the address move itself succeeded
            print(f"warning: could not move route {kw['dst']} via {kw['gateway']}: {exc}", file=sys.stderr)
