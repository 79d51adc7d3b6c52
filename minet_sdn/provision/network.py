"""The network steps of provisioning (a part of provision/apply.py's Provisioner): the state
directory, nodes with their markers, veth pairs, routes, IXP LANs and shaping, layer 2; all
through the pyroute2 layer (provision/netlink.py).

`NetworkSteps` is a mixin: the Provisioner holds `plan`, `backend`, `_nl` and `_identities`, and
the journal (provision/journal.py).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import List, Optional, Tuple

from . import netlink as nlk
from .journal import ProvisionError, _remove, _rmdir, _write_json
from .plan import Iface, Node, Veth, frr_pathspace
from .routers import FRR_RUN_DIR

# keep_addr_on_down: an interface set down (`ip link set X down`, vtysh `shutdown`, a link failed
# by the controller) keeps its global IPv6 addresses, as IPv4 does; without it the address is gone
# when the link comes back and the IPv6 session with it, until the next provisioning.
ROUTER_SYSCTLS = (("net.ipv4.ip_forward", "1"), ("net.ipv6.conf.all.forwarding", "1"),
                  ("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.default.rp_filter", "0"),
                  ("net.ipv6.conf.all.keep_addr_on_down", "1"), ("net.ipv6.conf.default.keep_addr_on_down", "1"))
HOST_SYSCTLS = (("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.default.rp_filter", "0"))


class NetworkSteps:
    def _path(self, node_id: Optional[str]) -> Optional[str]:
        return None if node_id is None else self.backend.nspath(self.plan.node_by_id[node_id])

    def _up_state_dir(self) -> None:
        sdir = self.plan.state_dir
        if not os.path.isdir(sdir):
            os.makedirs(sdir)
            self._created(f"state dir {sdir}", self._remove_state_dir)
        os.makedirs(self.plan.nodes_dir, exist_ok=True)

    def _read_marker(self, node: Node) -> Optional[dict]:
        try:
            with open(self.plan.marker_path(node)) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def _up_nodes(self) -> None:
        self.progress(f"{len(self.plan.nodes)} nodes")
        for node in self.plan.nodes:
            ident = self.backend.identity(node)
            if ident is None:
                # the undo first: an interrupt between the namespace and its marker (the master
                # forwards one to every server) must not leave a namespace nobody knows of
                self._created(f"node {node.ns}", lambda n=node: self._undo_new_node(n))
                ident = self.backend.create(node)
                _write_json(self.plan.marker_path(node), {
                    "instance": self.plan.instance, "server": self.plan.server, "node": node.id,
                    "name": node.ns, "backend": self.plan.backend, "identity": ident})
            else:
                marker = self._read_marker(node)
                if not marker or marker.get("identity") != ident or marker.get("instance") != self.plan.instance:
                    raise ProvisionError(self.plan.server, f"{node.ns} exists but is not ours (no matching marker "
                                                           f"in {self.plan.nodes_dir}); remove it or rename the topology")
            self._identities[node.id] = ident
            path = self.backend.nspath(node)
            sysctls = ROUTER_SYSCTLS if node.kind == "router" else HOST_SYSCTLS
            self._changed(nlk.ensure_sysctls(path, sysctls, node.id))
            self._changed(nlk.ensure_loopback(self._nl, path, node))

    def _undo_new_node(self, node: Node) -> None:
        """Roll back a node this run created (it did not exist before the run), however far its
        creation got."""
        ident = self.backend.identity(node)
        if ident is not None:
            self._delete_node(node, ident)
        else:
            _remove(self.plan.marker_path(node))

    def _delete_node(self, node: Node, identity: str) -> None:
        if self._nl is not None:
            self._nl.forget(self.backend.nspath(node))
        self.backend.delete(node, identity)
        _remove(self.plan.marker_path(node))
        _rmdir(os.path.join(FRR_RUN_DIR, frr_pathspace(node.ns)))

    def _up_veths(self) -> None:
        self.progress(f"{len(self.plan.veths)} veth pairs")
        for veth in self.plan.veths:
            pa, pb = self._path(veth.a.node), self._path(veth.b.node)
            state = nlk.veth_state(self._nl, pa, pb, veth)
            created = False
            if state == "broken":
                self._clear_broken(veth, pa, pb)
                self._changed([f"removed broken veth {_label(veth.a)}/{_label(veth.b)}"])
            if state != "ok":
                nlk.create_veth(self._nl, pa, pb, veth)
                created = True
                self._fresh_ends |= {(e.node, e.ifname) for e in (veth.a, veth.b) if e.node is not None}
                self._created(f"veth {_label(veth.a)} -- {_label(veth.b)}",
                              lambda v=veth, p=pa: nlk.delete_link(self._nl, p, v.a.ifname))
            for end, path in ((veth.a, pa), (veth.b, pb)):
                # the controller may set a bridge port down (link failure): only bring it up when new
                bring_up = created or end.node is not None
                self._changed(nlk.ensure_iface(self._nl, path, end, _label(end), bring_up=bring_up))
                if end.node is None:      # a router-facing port: the server's kernel must ignore it
                    self._changed(nlk.ensure_port_guard(path, end.ifname, _label(end)))

    def _clear_broken(self, veth: Veth, pa: Optional[str], pb: Optional[str]) -> None:
        for end, path in ((veth.a, pa), (veth.b, pb)):
            if end.node is None:      # the server's namespace: only if it carries our mark
                if nlk.link_index(self._nl(path), end.ifname) is not None and \
                        not nlk.delete_link(self._nl, path, end.ifname, alias=end.alias):
                    raise ProvisionError(self.plan.server, f"interface {end.ifname} exists in the server's "
                                                           "namespace and is not ours")
            else:
                nlk.delete_link(self._nl, path, end.ifname)

    def _up_routes(self) -> None:
        for node in self.plan.nodes:
            if node.routes:
                self._changed(nlk.ensure_routes(self._nl, self.backend.nspath(node), node))
        for router in self.plan.routers:      # the AS prefix a configured router announces
            if router.configure and router.asn in self.plan.addressing:
                node = self.plan.node_by_id[router.node]
                self._changed(nlk.ensure_blackhole(self._nl, self.backend.nspath(node),
                                                   self.plan.addressing[router.asn].prefix, router.node))
            if router.configure and router.asn in self.plan.addressing6:      # dual stack
                node = self.plan.node_by_id[router.node]
                self._changed(nlk.ensure_blackhole(self._nl, self.backend.nspath(node),
                                                   self.plan.addressing6[router.asn].prefix, router.node))

    def _up_shaping(self) -> None:
        """IXP peering LANs (ixp.py), then tc on link interfaces (shaping.py); a kernel without
        netem gives one warning line."""
        from . import ixp, shaping
        self._changed(ixp.apply_plan(self.plan, self._path))      # IXP peering LANs (ports exist now)
        changes, warning = shaping.apply_plan(self.plan, self._path, fresh=self._fresh_ends)
        self._changed(changes)
        if warning:
            self.progress(f"warning: {warning}")

    def _up_layer2(self) -> None:
        """Switches, router trunks and the tunnel (provision/layer2.py), once their veths exist."""
        if self.plan.layer2 is None:
            return
        from . import layer2
        self.progress(f"layer 2: {len(self.plan.layer2.bridges)} switches")
        self._changed(layer2.apply_plan(self.plan, self._path,
                                        lambda nid: self.backend.exec_args(self.plan.node_by_id[nid], [])))

    def _stale_nodes(self) -> List[Tuple[Node, dict]]:
        """Nodes with our marker file that the plan no longer has."""
        planned = {n.ns for n in self.plan.nodes}
        out = []
        try:
            names = sorted(os.listdir(self.plan.nodes_dir))
        except FileNotFoundError:
            return []
        for fname in names:
            if not fname.endswith(".json") or fname[:-5] in planned:
                continue
            try:
                with open(os.path.join(self.plan.nodes_dir, fname)) as fh:
                    marker = json.load(fh)
                node = Node(id=marker["node"], kind="?", asn=0, ns=marker["name"], forwarding=False)
            except (OSError, ValueError, KeyError):
                continue
            out.append((node, marker))
        return out

    def _remove_state_dir(self) -> None:
        """The server's state dir is all ours; its parent (the instance's) goes when empty."""
        shutil.rmtree(self.plan.state_dir, ignore_errors=True)
        _rmdir(os.path.dirname(self.plan.state_dir))


def _label(iface: Iface) -> str:
    return f"{iface.node}:{iface.ifname}" if iface.node else iface.ifname
