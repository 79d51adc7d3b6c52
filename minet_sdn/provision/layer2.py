"""Layer 2 of the ASes on one server: the plan (pure) and making it so (apply).

What a server gets for its ASes' `layer2` sections (docs/layer2.md):

  node `l2-<asn>`                    the AS's own layer-2 Open vSwitch instance (l2switchd.py; one per
                                     AS: docs/layer2.md has the measurements); every switch is a bridge
                                     `s<k>` of it (k: its position in the AS), fail_mode standalone, STP
                                     on (as upstream)
  node `<asn>.<SWITCH>`              an empty namespace: where a student's shell "on" the switch runs;
                                     its `ovs-vsctl` is l2ctl.py, which sees and changes that bridge only
  node `<asn>.<HOST>`                an L2 host: veth `<asn>-<SWITCH>` to port `s<k>h<j>` of its switch
  switch-switch link                 patch ports `s<k>x<k2>` / `s<k2>x<k>` (free when idle, unlike veths:
                                     bench/switch_cost.py), so its shaping is not applied
  router trunk                       patch `s<k>r` on the switch, peer `d<k>` on bridge `l2rtr`, whose
                                     static flows give each VLAN its own veth to the router: `d<k>v<V>`
                                     here, `<ROUTER>-L2.<V>` in the router (this kernel has no 802.1Q
                                     devices, so the trunk is terminated in OvS; the router still sees
                                     one interface per VLAN)
  tunnel                             a VXLAN device `tun6to4_<asn>` in each end router between their
                                     loopbacks, IPv6 routes to the other site's VLANs through it (the
                                     mini-Internet uses a 6in4 `sit` device; this kernel has no sit)

Configured ASes: host ports tagged with their VLAN, switch links and router trunks carry every
VLAN of the AS, hosts and router subinterfaces addressed (addresses from topology/layer2.py), the
subinterfaces in OSPF, the tunnel built. `configure: false`: all of it wired, none of it configured
(no tags, no trunks list, no addresses, no tunnel), as the mini-Internet leaves it to students; a
second run never touches what students set on those ports.

Everything in the instance carries external_ids minet-instance / minet-server; the instance, its
files and every namespace are removed by `down` (the nodes' marker files prove they are ours).
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..topology import layer2 as l2m
from ..topology import names
from ..topology.model import Topology
from . import l2switchd, ovsdb

L2_NODE_PREFIX = "l2-"              # node id of an AS's layer-2 OvS node: `l2-<asn>` (not an <asn>.<NAME> id)
DEMUX_BRIDGE = "l2rtr"
STP_FORWARD_DELAY = 4               # s (OvS minimum; upstream's default 15 s makes a port wait 30 s)
STP_MAX_AGE = 6                     # s; 802.1D wants max_age <= 2 (forward_delay - 1)
TUNNEL_PORT = 4789
DEMUX_COOKIE = 0x6D6E << 48         # ours (model.COOKIE_MAGIC): the demux bridge's flows
TUNNEL_MTU = 1450                   # 1500 - VXLAN's 50 bytes
SWITCH_MAP = "switches.json"        # what l2ctl reads: student names <-> real names, per switch
KIND_SWITCH = "switch"
KIND_L2HOST = "l2-host"
KIND_L2OVS = "l2-ovs"


@dataclass(frozen=True)
class SwitchPort:
    name: str                       # real name in the layer-2 instance
    student: str                    # the name students see (the mini-Internet's)
    kind: str                       # host | link | router
    peer: Optional[str] = None      # patch peer (link, router)
    tag: Optional[int] = None       # configured ASes: access VLAN of a host port
    trunks: Tuple[int, ...] = ()    # configured ASes: VLANs of a link or router trunk


@dataclass(frozen=True)
class SwitchBridge:
    switch: str                     # node id "<asn>.<SWITCH>"
    name: str                       # "s<k>"
    asn: int
    configure: bool
    ports: Tuple[SwitchPort, ...]
    stp_priority: Optional[int] = None
    stp_system_id: Optional[str] = None


@dataclass(frozen=True)
class DemuxRouter:
    router: str                     # router node id
    patch: str                      # "d<k>" on the demux bridge
    peer: str                       # "s<k>r" on the switch
    subifs: Tuple[Tuple[int, str], ...]     # (vlan, veth end in the layer-2 node)


@dataclass(frozen=True)
class TunnelEnd:
    router: str
    ifname: str
    vni: int
    local: str
    remote: str
    mac: str
    ll_local: str
    ll_remote: str
    routes6: Tuple[str, ...]


@dataclass(frozen=True)
class L2Instance:
    """One AS's layer-2 Open vSwitch instance: its switches and its router trunks."""
    asn: int
    node: str                       # `l2-<asn>`
    rundir: str
    bridges: Tuple[SwitchBridge, ...]
    demux: Tuple[DemuxRouter, ...]


@dataclass(frozen=True)
class Layer2Plan:
    map_path: str
    instances: Tuple[L2Instance, ...]
    tunnels: Tuple[TunnelEnd, ...] = ()
    blackholes: Tuple[Tuple[str, str], ...] = ()       # (router node, prefix)
    marks: Tuple[Tuple[str, str], ...] = ()

    @property
    def bridges(self) -> Tuple[SwitchBridge, ...]:
        return tuple(b for i in self.instances for b in i.bridges)


@dataclass(frozen=True)
class RouterExtras:
    """What layer 2 adds to a configured router's FRR configuration."""
    passive_ifaces: Tuple[str, ...] = ()
    networks: Tuple[str, ...] = ()


@dataclass
class Layer2Build:
    nodes: list
    veths: list
    plan: Optional[Layer2Plan]
    extras: Dict[str, RouterExtras]


def l2_node(asn: int) -> str:
    return f"{L2_NODE_PREFIX}{asn}"


def addressing_of(topo: Topology, as_, ipv6_prefix: Optional[str]) -> l2m.L2Addressing:
    return l2m.layer2_addressing(as_.asn, as_.routers, as_.layer2, l2m.plan_name(topo), ipv6_prefix)


def announced_outside(topo: Topology, as_, prefix: str, la: Optional[l2m.L2Addressing] = None) -> Tuple[str, ...]:
    """The IPv4 networks every router of a configured AS with layer 2 announces besides its AS
    prefix `prefix`: its VLAN networks outside that prefix (the default plan: the whole layer-2
    prefix). The one place plan.py's routers and import filters take them from."""
    if as_.layer2 is None or not as_.configure:
        return ()
    if la is None:
        addr6 = None                       # IPv4 networks only: the IPv6 prefix does not change them
        la = addressing_of(topo, as_, addr6)
    as_net = ipaddress.ip_network(prefix)
    outside = [n for n in la.networks4 if not ipaddress.ip_network(n).subnet_of(as_net)]
    if not outside:
        return ()
    if l2m.plan_name(topo) == "default":
        return (as_.layer2.prefix or l2m.default_l2_prefix(as_.asn),)
    return tuple(outside)


def tunnel_mac(asn: int, side: int) -> str:
    h = zlib.crc32(str(asn).encode())
    return "02:74:{:02x}:{:02x}:{:02x}:{:02x}".format((h >> 16) & 0xFF, (h >> 8) & 0xFF, h & 0xFF, side)


def build(topo: Topology, server: str, addressing, addressing6, offloads_off: bool, state_dir: str,
          marks, types) -> Layer2Build:
    """The layer-2 nodes, veths and plan of `server` (empty when none of its ASes has layer 2).
    `types`: plan.py's (Node, Iface, Route, Veth), passed in since plan.py imports this module."""
    Node, Iface, Route, Veth = types
    ases = [a for a in topo.ases.values() if a.server == server and a.layer2 is not None]
    out = Layer2Build(nodes=[], veths=[], plan=None, extras={})
    if not ases:
        return out
    base = os.path.join(state_dir, "l2ovs")
    instances: List[L2Instance] = []
    tunnels: List[TunnelEnd] = []
    blackholes: List[Tuple[str, str]] = []
    for as_ in ases:
        l2 = as_.layer2
        node = l2_node(as_.asn)
        out.nodes.append(Node(id=node, kind=KIND_L2OVS, asn=as_.asn, ns=names.node_ns(topo, node), forwarding=False))
        number = {sw.name: k for k, sw in enumerate(l2.switches, start=1)}
        bridges: List[SwitchBridge] = []
        demux: List[DemuxRouter] = []
        prefix6 = addressing6[as_.asn].prefix if as_.asn in addressing6 else None
        la = addressing_of(topo, as_, prefix6)
        conf = as_.configure
        vlans = l2.vlans
        for sw in l2.switches:
            sid = f"{as_.asn}.{sw.name}"
            out.nodes.append(Node(id=sid, kind=KIND_SWITCH, asn=as_.asn, ns=names.node_ns(topo, sid), forwarding=False))
        for sw in l2.switches:
            k = number[sw.name]
            ports: List[SwitchPort] = []
            j = 0
            for h in l2.hosts:
                if h.switch != sw.name or h.vpn:
                    continue
                j += 1
                hid = f"{as_.asn}.{h.name}"
                real = f"s{k}h{j}"
                ports.append(SwitchPort(real, f"{as_.asn}-{h.name}", "host", tag=h.vlan if conf and h.vlan else None))
                ha = la.hosts[h.name]
                routes = []
                if conf and ha.gateway4:
                    routes.append(Route("default", ha.gateway4))
                if conf and ha.gateway6:
                    routes.append(Route("default", ha.gateway6))
                out.nodes.append(Node(id=hid, kind=KIND_L2HOST, asn=as_.asn, ns=names.node_ns(topo, hid),
                                      forwarding=False, routes=tuple(routes)))
                out.veths.append(Veth("l2-host",
                                      Iface(hid, l2m.host_ifname(as_.asn, sw.name),
                                            ha.addresses if conf else (), offloads_off=offloads_off,
                                            shaping=h.shaping),
                                      Iface(node, real, offloads_off=offloads_off, shaping=h.shaping)))
            for link in l2.links:
                if sw.name not in (link.a, link.b):
                    continue
                other = link.b if link.a == sw.name else link.a
                k2 = number[other]
                ports.append(SwitchPort(f"s{k}x{k2}", f"{as_.asn}-{other}", "link", peer=f"s{k2}x{k}",
                                        trunks=vlans if conf else ()))
            if sw.router:
                rid = f"{as_.asn}.{sw.router}"
                ports.append(SwitchPort(f"s{k}r", f"{sw.router}router", "router", peer=f"d{k}",
                                        trunks=vlans if conf else ()))
                subifs = []
                ips = la.routers.get(sw.router, {})
                for v in vlans:
                    end = f"d{k}v{v}"
                    subifs.append((v, end))
                    out.veths.append(Veth("l2-router",
                                          Iface(rid, l2m.router_subif(sw.router, v), ips.get(v, ()) if conf else (),
                                                offloads_off=offloads_off),
                                          Iface(node, end, offloads_off=offloads_off)))
                demux.append(DemuxRouter(router=rid, patch=f"d{k}", peer=f"s{k}r", subifs=tuple(subifs)))
                if conf:
                    extra = out.extras.get(rid, RouterExtras())
                    out.extras[rid] = RouterExtras(
                        passive_ifaces=extra.passive_ifaces + tuple(l2m.router_subif(sw.router, v) for v in vlans),
                        networks=extra.networks)
            bridges.append(SwitchBridge(switch=f"{as_.asn}.{sw.name}", name=f"s{k}", asn=as_.asn, configure=conf,
                                        ports=tuple(ports), stp_priority=sw.stp_priority,
                                        stp_system_id=sw.stp_system_id))
        instances.append(L2Instance(asn=as_.asn, node=node, rundir=os.path.join(base, str(as_.asn)),
                                    bridges=tuple(bridges), demux=tuple(demux)))
        if conf:
            announce = announced_outside(topo, as_, addressing[as_.asn].prefix, la)
            for r in as_.routers:
                rid = f"{as_.asn}.{r}"
                extra = out.extras.get(rid, RouterExtras())
                out.extras[rid] = RouterExtras(passive_ifaces=extra.passive_ifaces, networks=tuple(announce))
                blackholes += [(rid, n) for n in announce]
        if conf and l2.tunnel and prefix6 is not None:
            tunnels += _tunnel(as_, l2, la, addressing[as_.asn])
    plan = Layer2Plan(map_path=os.path.join(base, SWITCH_MAP), instances=tuple(instances), tunnels=tuple(tunnels),
                      blackholes=tuple(blackholes), marks=tuple(marks))
    out.plan = plan
    return out


def _tunnel(as_, l2, la: l2m.L2Addressing, addr) -> List[TunnelEnd]:
    """Both ends of the AS's tunnel; each routes the IPv6 VLAN networks of the other end's data
    centre through it (upstream: `ip route add <net> dev tun6to4_<asn>` on a sit device)."""
    ends = []
    t = l2.tunnel
    for side, (me, far) in enumerate(((t.a, t.b), (t.b, t.a)), start=1):
        far_dc = l2.router_dc(far)
        routes = tuple(vn.net6 for (dc, _), vn in la.nets.items() if dc == far_dc and vn.net6) if far_dc else ()
        ends.append(TunnelEnd(router=f"{as_.asn}.{me}", ifname=f"tun6to4_{as_.asn}"[:15], vni=as_.asn & 0xFFFFFF,
                              local=addr.routers[me].loopback, remote=addr.routers[far].loopback,
                              mac=tunnel_mac(as_.asn, side), ll_local=f"fe80::{side}", ll_remote=f"fe80::{3 - side}",
                              routes6=routes))
    return ends


def refuse_backend(topo: Topology, server: str, backend: str) -> Optional[str]:
    """Why this backend cannot build the server's layer 2 (None: it can)."""
    if backend != "netns" and any(a.server == server and a.layer2 is not None for a in topo.ases.values()):
        return ("layer 2 (ases.N.layer2) needs the netns backend: the docker backend does not build "
                "switches and L2 hosts yet")
    return None


# ---- apply ------------------------------------------------------------------------------------

Runner = Callable[[Optional[str], List[str]], Tuple[int, str]]


def _run(nspath: Optional[str], args: List[str]) -> Tuple[int, str]:
    argv = (names.nsenter_prefix(nspath) if nspath else []) + args
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return res.returncode, (res.stdout if res.returncode == 0 else (res.stderr or res.stdout).strip())


def _must(run: Runner, nspath: Optional[str], args: List[str]) -> str:
    code, out = run(nspath, args)
    if code != 0:
        raise l2switchd.SwitchdProblem(f"{' '.join(args)}: {out}")
    return out


def read_db(rundir: str) -> Tuple[Dict[str, dict], Dict[str, dict], Dict[str, dict]]:
    """(bridges, ports, interfaces) of the layer-2 instance, by name."""
    out = l2switchd.vsctl(rundir, "--format=json", "--", "list", "Bridge", "--", "list", "Port", "--", "list",
                          "Interface")
    bridges, ports, ifaces = ({r["name"]: r for r in rows} for rows in ovsdb.tables(out))
    return bridges, ports, ifaces


_list = ovsdb.as_list


def bridge_args(b: SwitchBridge, marks, have_ports: Sequence[str]) -> List[str]:
    """One ovs-vsctl transaction making switch `b` (idempotent). VLAN settings only for configured
    ASes, and only on ports this transaction adds or that are ours to configure."""
    m = [f"external_ids:{k}={v}" for k, v in marks]
    args = ["--may-exist", "add-br", b.name, "--", "set", "bridge", b.name, "datapath_type=netdev",
            "fail_mode=standalone", "stp_enable=true", f"other_config:stp-forward-delay={STP_FORWARD_DELAY}",
            f"other_config:stp-max-age={STP_MAX_AGE}", f"external_ids:minet-switch={b.switch}", *m]
    if b.stp_priority is not None:
        args.append(f"other_config:stp-priority={b.stp_priority}")
    if b.stp_system_id:
        args.append(f"other_config:stp-system-id={b.stp_system_id}")
    for p in b.ports:
        args += ["--", "--may-exist", "add-port", b.name, p.name, "--", "set", "port", p.name,
                 f"external_ids:minet-student-name={p.student}", *m]
        if p.peer:
            args += ["--", "set", "interface", p.name, "type=patch", f"options:peer={p.peer}"]
        if b.configure:
            if p.tag is not None:
                args += ["--", "set", "port", p.name, f"tag={p.tag}"]
            if p.trunks:
                args += ["--", "set", "port", p.name, f"trunks={','.join(str(v) for v in p.trunks)}"]
    return args


def bridge_diff(b: SwitchBridge, bridges: Dict[str, dict], ports: Dict[str, dict], ifaces: Dict[str, dict]) -> List[str]:
    row = bridges.get(b.name)
    if row is None:
        return [f"switch {b.switch} (bridge {b.name}) missing"]
    diffs = []
    if row.get("stp_enable") is not True or row.get("fail_mode") != "standalone":
        diffs.append(f"switch {b.switch}: STP / fail mode")
    have = set()
    for u in _list(row.get("ports") or []):
        have.update(name for name, p in ports.items() if p["_uuid"] == u)
    for p in b.ports:
        prow = ports.get(p.name)
        if prow is None or p.name not in have:
            diffs.append(f"switch {b.switch}: port {p.student} missing")
            continue
        if p.peer and (ifaces.get(p.name, {}).get("options") or {}).get("peer") != p.peer:
            diffs.append(f"switch {b.switch}: port {p.student} not patched")
        if b.configure:
            if p.tag is not None and _list(prow.get("tag")) != [p.tag]:
                diffs.append(f"switch {b.switch}: port {p.student} tag")
            if p.trunks and sorted(_list(prow.get("trunks"))) != sorted(p.trunks):
                diffs.append(f"switch {b.switch}: port {p.student} trunks")
    return diffs


def demux_ofports(inst: L2Instance) -> Dict[str, int]:
    """OpenFlow port numbers on the demux bridge, in plan order (requested, so flows can name them)."""
    names_ = [n for d in inst.demux for n in (d.patch, *(end for _, end in d.subifs))]
    return {n: i for i, n in enumerate(names_, start=1)}


def demux_flows(inst: L2Instance) -> str:
    """The demux bridge's flows: each router's VLANs off its trunk onto their own veths, and back."""
    of = demux_ofports(inst)
    lines = []
    for d in inst.demux:
        for vlan, end in d.subifs:
            p, e = of[d.patch], of[end]
            if vlan == 0:
                lines.append(f"cookie={DEMUX_COOKIE:#x},priority=100,in_port={p},vlan_tci=0x0000/0x1fff actions=output:{e}")
                lines.append(f"cookie={DEMUX_COOKIE:#x},priority=100,in_port={e} actions=output:{p}")
            else:
                lines.append(f"cookie={DEMUX_COOKIE:#x},priority=100,in_port={p},dl_vlan={vlan} actions=strip_vlan,output:{e}")
                lines.append(f"cookie={DEMUX_COOKIE:#x},priority=100,in_port={e} actions=mod_vlan_vid:{vlan},output:{p}")
    return "\n".join(lines) + "\n"


def apply_plan(plan, nspath_of: Callable[[str], Optional[str]], exec_prefix_of: Callable[[str], List[str]],
               run: Runner = _run) -> List[str]:
    """Make the server's layer 2 match `plan.layer2`; the changes made."""
    lp: Optional[Layer2Plan] = getattr(plan, "layer2", None)
    if lp is None:
        return []
    changes: List[str] = []
    os.makedirs(os.path.dirname(lp.map_path), exist_ok=True)
    for inst in lp.instances:
        changes += _ensure_instance(inst, lp.marks, exec_prefix_of(inst.node))
    for t in lp.tunnels:
        changes += _ensure_tunnel(t, nspath_of(t.router), run)
    for router, prefix in lp.blackholes:
        changes += _ensure_blackhole(router, prefix, nspath_of(router), run)
    changes += _write_map(lp)
    return changes


def _ensure_instance(inst: L2Instance, marks, exec_prefix: List[str]) -> List[str]:
    """One AS's instance running, its switches and demux bridge as planned."""
    changes = l2switchd.ensure_running(inst.rundir, exec_prefix)
    bridges, ports, ifaces = read_db(inst.rundir)
    for b in inst.bridges:
        diffs = bridge_diff(b, bridges, ports, ifaces)
        if diffs:
            l2switchd.vsctl(inst.rundir, *bridge_args(b, marks, ()))
            changes += diffs if b.name in bridges else [f"switch {b.switch} created (bridge {b.name})"]
    # the demux bridge: static flows only (secure: nothing forwarded but what they say)
    m = [f"external_ids:{k}={v}" for k, v in marks]
    wanted_ports = [d.patch for d in inst.demux] + [end for d in inst.demux for _, end in d.subifs]
    row = bridges.get(DEMUX_BRIDGE)
    have = set()
    if row is not None:
        for u in _list(row.get("ports") or []):
            have.update(name for name, p in ports.items() if p["_uuid"] == u)
    if inst.demux and (row is None or not set(wanted_ports) <= have):
        args = ["--may-exist", "add-br", DEMUX_BRIDGE, "--", "set", "bridge", DEMUX_BRIDGE, "datapath_type=netdev",
                "fail_mode=secure", "protocols=OpenFlow13", *m]
        of = demux_ofports(inst)
        for d in inst.demux:
            args += ["--", "--may-exist", "add-port", DEMUX_BRIDGE, d.patch, "--", "set", "interface", d.patch,
                     "type=patch", f"options:peer={d.peer}", f"ofport_request={of[d.patch]}"]
            args += [x for _, end in d.subifs for x in ("--", "--may-exist", "add-port", DEMUX_BRIDGE, end, "--", "set",
                                                         "interface", end, f"ofport_request={of[end]}")]
        l2switchd.vsctl(inst.rundir, *args)
        changes.append(f"AS {inst.asn}: layer-2 demux bridge, {len(inst.demux)} router trunks")
    if inst.demux:
        target = l2switchd.mgmt_target(inst.rundir, DEMUX_BRIDGE)
        path = os.path.join(inst.rundir, "demux.flows")
        with open(path, "w") as fh:
            fh.write(demux_flows(inst))
        # replace-flows sends only the difference; comparing the table before and after says if it changed
        before = l2switchd.ofctl(inst.rundir, "dump-flows", "--no-stats", target)
        l2switchd.ofctl(inst.rundir, "--bundle", "replace-flows", target, path)
        if l2switchd.ofctl(inst.rundir, "dump-flows", "--no-stats", target) != before:
            changes.append(f"AS {inst.asn}: demux flows")
    keep = {b.name for b in inst.bridges} | {DEMUX_BRIDGE}
    for name, row in bridges.items():          # switches of an earlier plan
        ids = row.get("external_ids") or {}
        if name not in keep and all(ids.get(k) == v for k, v in marks):
            l2switchd.vsctl(inst.rundir, "--if-exists", "del-br", name)
            changes.append(f"AS {inst.asn}: removed stale switch bridge {name}")
    return changes


def _ensure_tunnel(t: TunnelEnd, ns: Optional[str], run: Runner) -> List[str]:
    code, out = run(ns, ["ip", "-d", "-j", "link", "show", "dev", t.ifname])
    want = {"id": t.vni, "local": t.local, "remote": t.remote}
    ok = False
    if code == 0:
        try:
            info = json.loads(out)[0]["linkinfo"]["info_data"]
            ok = all(str(info.get(k)) == str(v) for k, v in want.items())
        except (ValueError, KeyError, IndexError, TypeError):
            ok = False
    changes = []
    if not ok:
        if code == 0:
            _must(run, ns, ["ip", "link", "del", t.ifname])
        _must(run, ns, ["ip", "link", "add", t.ifname, "type", "vxlan", "id", str(t.vni), "local", t.local,
                        "remote", t.remote, "dstport", str(TUNNEL_PORT)])
        changes.append(f"{t.router}: tunnel {t.ifname} to {t.remote}")
    _must(run, ns, ["ip", "link", "set", t.ifname, "address", t.mac, "mtu", str(TUNNEL_MTU), "up"])
    _must(run, ns, ["ip", "-6", "addr", "replace", f"{t.ll_local}/64", "dev", t.ifname, "nodad"])
    _must(run, ns, ["ip", "-6", "neigh", "replace", t.ll_remote, "lladdr",
                    tunnel_mac(int(t.router.split(".")[0]), 3 - int(t.ll_local[-1])), "dev", t.ifname,
                    "nud", "permanent"])
    for net in t.routes6:
        code, out = run(ns, ["ip", "-6", "route", "show", net, "via", t.ll_remote, "dev", t.ifname])
        if code != 0 or not out.strip():
            _must(run, ns, ["ip", "-6", "route", "replace", net, "via", t.ll_remote, "dev", t.ifname])
            changes.append(f"{t.router}: route {net} through {t.ifname}")
    return changes


def _ensure_blackhole(router: str, prefix: str, ns: Optional[str], run: Runner) -> List[str]:
    code, out = run(ns, ["ip", "route", "show", "type", "blackhole", prefix])
    if code == 0 and out.strip():
        return []
    _must(run, ns, ["ip", "route", "replace", "blackhole", prefix])
    return [f"{router}: blackhole route {prefix}"]


def switch_map(lp: Layer2Plan) -> dict:
    return {"switches": {b.switch: {"bridge": b.name, "asn": b.asn, "configure": b.configure, "rundir": i.rundir,
                                    "ports": {p.student: p.name for p in b.ports}}
                         for i in lp.instances for b in i.bridges}}


def _write_map(lp: Layer2Plan) -> List[str]:
    text = json.dumps(switch_map(lp), indent=1, sort_keys=True)
    try:
        with open(lp.map_path) as fh:
            if fh.read() == text:
                return []
    except OSError:
        pass
    tmp = lp.map_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, lp.map_path)
    return [f"layer-2 switch map {lp.map_path}"]
