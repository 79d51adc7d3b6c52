"""Layer 2 inside an AS: data centres, switches, hosts in VLANs, trunks, router trunks, the L2 tunnel.

The mini-Internet's student ASes have, besides routers, data centres of Open vSwitch switches with
hosts in VLANs; gateway routers reach them over a trunk with one subinterface per VLAN, and two
routers join the sites by a tunnel. This module holds that part of the model, its loader (called by
`loader.py` for `ases.N.layer2`) and its addressing (one swappable plan function per plan). Pure.

Topology form (docs/layer2.md)::

    ases:
      3:
        server: VM1
        routers: [ZURI, BASE, GENE]
        layer2:
          datacenters: [DCN, DCS]            # optional: data-centre order (its index numbers addresses)
          prefix: 172.16.48.0/20             # optional (default plan): where VLAN networks are numbered
          switches:
            S1: {dc: DCN, router: ZURI, stp_priority: 1, stp_system_id: "11:11:11:11:11:11"}
            S2: {dc: DCN}
            S4: {dc: DCS, router: GENE}
          hosts:
            FIFA_1: {switch: S1, vlan: 10, throughput: 10mbit, delay: 1ms, buffer: 50ms}
            vpn_1: {switch: S1, vlan: 30, vpn: true}     # a VPN client: numbered, not emulated
          links:
            - {a: S1, b: S2, throughput: 10mbit, delay: 1ms, buffer: 50ms}
          tunnel: {a: ZURI, b: GENE}

Node ids: a switch is `<asn>.<SWITCH>`, a host `<asn>.<HOST>`, beside the routers' `<asn>.<ROUTER>`;
a switch or host with a router's name (or each other's) is refused.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .model import Shaping

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,15}")
MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
LAYER2_KEYS = ("datacenters", "prefix", "switches", "hosts", "links", "tunnel")
SWITCH_KEYS = ("dc", "router", "stp_priority", "stp_system_id")
HOST_KEYS = ("switch", "vlan", "vpn", "throughput", "delay", "buffer")
LINK_KEYS = ("a", "b", "throughput", "delay", "buffer")
TUNNEL_KEYS = ("a", "b")
MAX_VLAN = 4094
DEFAULT_L2_POOL = "172.16.0.0/12"       # default plan: AS N (1..255) gets the N-th /20 of it
DEFAULT_L2_PREFIXLEN = 20
VLAN_PREFIXLEN = 24                     # one /24 per (data centre, VLAN), as the mini-Internet does


@dataclass(frozen=True)
class L2Switch:
    name: str
    dc: str
    router: Optional[str] = None         # the gateway router attached by a trunk (None: no router)
    stp_priority: Optional[int] = None
    stp_system_id: Optional[str] = None


@dataclass(frozen=True)
class L2Host:
    name: str
    switch: str
    vlan: int                            # 0: no VLAN (untagged)
    shaping: Optional[Shaping] = None
    vpn: bool = False                    # a VPN client of the mini-Internet: numbered, not emulated


@dataclass(frozen=True)
class L2Link:
    a: str
    b: str
    shaping: Optional[Shaping] = None


@dataclass(frozen=True)
class L2Tunnel:
    a: str                               # router names
    b: str


@dataclass(frozen=True)
class Layer2:
    datacenters: Tuple[str, ...]
    switches: Tuple[L2Switch, ...]
    hosts: Tuple[L2Host, ...] = ()
    links: Tuple[L2Link, ...] = ()
    tunnel: Optional[L2Tunnel] = None
    prefix: Optional[str] = None

    @property
    def vlans(self) -> Tuple[int, ...]:
        """Every VLAN of the AS's hosts, in order of first use (trunks carry all of them)."""
        out: List[int] = []
        for h in self.hosts:
            if h.vlan not in out:
                out.append(h.vlan)
        return tuple(out)

    def switch(self, name: str) -> L2Switch:
        return next(s for s in self.switches if s.name == name)

    def dc_index(self, dc: str) -> int:
        return self.datacenters.index(dc)

    def gateways(self, dc: str, routers: Sequence[str]) -> List[str]:
        """The routers attached to a switch of data centre `dc`, in the AS's router order (their rank
        numbers their addresses: the first is every host's default gateway)."""
        attached = {s.router for s in self.switches if s.dc == dc and s.router}
        return [r for r in routers if r in attached]

    def router_dc(self, router: str) -> Optional[str]:
        return next((s.dc for s in self.switches if s.router == router), None)

    @property
    def node_names(self) -> Tuple[str, ...]:
        return tuple(s.name for s in self.switches) + tuple(h.name for h in self.hosts if not h.vpn)


# ---- loading ----------------------------------------------------------------------------------

def parse_layer2(p, path: str, value: Any, routers: Optional[List[str]], fields) -> Optional[Layer2]:
    """`ases.N.layer2` checked; problems go to `p` (the loader's collector), one line each. `fields`
    is the loader module: its field checks (this module cannot import the loader, which imports it)."""
    _describe, _entry, _is_int, _network, _shaping = (fields._describe, fields._entry, fields._is_int,
                                                      fields._network, fields._shaping)
    data = _entry(p, path, value, LAYER2_KEYS, ("switches",))
    if data is None:
        return None
    ok = True
    taken: Dict[str, str] = {r: "a router" for r in (routers or [])}

    def name_ok(npath: str, name: Any, what: str) -> bool:
        if not (isinstance(name, str) and NAME_RE.fullmatch(name)):
            p.add(npath, f"{_describe(name)} is not a {what} name (a letter, then up to 15 letters, digits, '_' or '-')")
            return False
        if name in taken:
            p.add(npath, f"{what} {name} has the name of {taken[name]} of this AS (node ids <asn>.<NAME> must be unique)")
            return False
        taken[name] = f"a {what}"
        return True

    dcs: List[str] = []
    declared_dcs = data.get("datacenters")
    if declared_dcs is not None:
        if not (isinstance(declared_dcs, list) and declared_dcs):
            p.add(f"{path}.datacenters", f"must be a list of data-centre names, not {_describe(declared_dcs)}")
            ok, declared_dcs = False, None
        else:
            for i, dc in enumerate(declared_dcs, start=1):
                if not (isinstance(dc, str) and NAME_RE.fullmatch(dc)):
                    p.add(f"{path}.datacenters[{i}]", f"{_describe(dc)} is not a data-centre name")
                    ok = False
                elif dc in dcs:
                    p.add(f"{path}.datacenters[{i}]", f"data centre {dc} is listed twice")
                    ok = False
                else:
                    dcs.append(dc)
    prefix = _network(p, f"{path}.prefix", data["prefix"], 4, 24) if data.get("prefix") is not None else None
    if data.get("prefix") is not None and prefix is None:
        ok = False

    switches: List[L2Switch] = []
    raw = data.get("switches")
    attached: Dict[str, str] = {}
    if not isinstance(raw, dict) or not raw:
        p.add(f"{path}.switches", f"must be a mapping of switch names, not {_describe(raw)}")
        return None
    for name, spec in raw.items():
        spath = f"{path}.switches.{name}" if isinstance(name, str) else f"{path}.switches.{_describe(name)}"
        good = name_ok(spath, name, "switch")
        spec = _entry(p, spath, spec if spec is not None else {}, SWITCH_KEYS, ("dc",))
        if spec is None or not good:
            ok = False
            continue
        dc = spec.get("dc")
        if not (isinstance(dc, str) and NAME_RE.fullmatch(dc)):
            if "dc" in spec:
                p.add(f"{spath}.dc", f"{_describe(dc)} is not a data-centre name")
            ok = False
            continue
        if declared_dcs is not None and dc not in dcs:
            p.add(f"{spath}.dc", f"data centre {dc} is not in {path}.datacenters")
            ok = False
            continue
        if declared_dcs is None and dc not in dcs:
            dcs.append(dc)
        router = spec.get("router")
        if router is not None:
            if not isinstance(router, str) or (routers is not None and router not in routers):
                p.add(f"{spath}.router", f"{_describe(router)} is not a router of this AS")
                ok = False
                router = None
            elif router in attached:
                p.add(f"{spath}.router", f"router {router} is already attached to switch {attached[router]} "
                                         "(one trunk per router)")
                ok = False
                router = None
            else:
                attached[router] = name
        prio = spec.get("stp_priority")
        if prio is not None and not (_is_int(prio) and 0 <= prio <= 65535):
            p.add(f"{spath}.stp_priority", f"{_describe(prio)} is not an integer in 0..65535")
            ok, prio = False, None
        sysid = spec.get("stp_system_id")
        if sysid is not None and not (isinstance(sysid, str) and MAC_RE.fullmatch(sysid)):
            p.add(f"{spath}.stp_system_id", f"{_describe(sysid)} is not a MAC address (xx:xx:xx:xx:xx:xx)")
            ok, sysid = False, None
        switches.append(L2Switch(name=name, dc=dc, router=router, stp_priority=prio,
                                 stp_system_id=sysid.lower() if sysid else None))
    known_switches = {s.name for s in switches}

    hosts: List[L2Host] = []
    raw_hosts = data.get("hosts")
    if raw_hosts is not None and not isinstance(raw_hosts, dict):
        p.add(f"{path}.hosts", f"must be a mapping of host names, not {_describe(raw_hosts)}")
        ok, raw_hosts = False, None
    for name, spec in (raw_hosts or {}).items():
        hpath = f"{path}.hosts.{name}" if isinstance(name, str) else f"{path}.hosts.{_describe(name)}"
        good = name_ok(hpath, name, "host")
        spec = _entry(p, hpath, spec, HOST_KEYS, ("switch", "vlan"))
        if spec is None or not good:
            ok = False
            continue
        sw, vlan, vpn = spec.get("switch"), spec.get("vlan"), spec.get("vpn", False)
        shaping = _shaping(p, hpath, spec)
        if "switch" in spec and sw not in known_switches:
            p.add(f"{hpath}.switch", f"{_describe(sw)} is not a switch of this AS")
            ok = False
            continue
        if "vlan" in spec and not (_is_int(vlan) and 0 <= vlan <= MAX_VLAN):
            p.add(f"{hpath}.vlan", f"{_describe(vlan)} is not a VLAN id in 0..{MAX_VLAN} (0: untagged)")
            ok = False
            continue
        if not isinstance(vpn, bool):
            p.add(f"{hpath}.vpn", f"{_describe(vpn)} is not true or false")
            ok = False
            continue
        if "switch" in spec and "vlan" in spec:
            hosts.append(L2Host(name=name, switch=sw, vlan=vlan, shaping=shaping, vpn=vpn))

    links: List[L2Link] = []
    raw_links = data.get("links")
    if raw_links is not None and not isinstance(raw_links, list):
        p.add(f"{path}.links", f"must be a list of switch links {{a: SWITCH, b: SWITCH}}, not {_describe(raw_links)}")
        ok, raw_links = False, None
    seen: Dict[frozenset, int] = {}
    for i, spec in enumerate(raw_links or [], start=1):
        lpath = f"{path}.links[{i}]"
        spec = _entry(p, lpath, spec, LINK_KEYS, ("a", "b"))
        if spec is None:
            ok = False
            continue
        shaping = _shaping(p, lpath, spec)
        ends = []
        for side in ("a", "b"):
            if side in spec and spec[side] not in known_switches:
                p.add(f"{lpath}.{side}", f"{_describe(spec[side])} is not a switch of this AS")
                ok = False
            elif side in spec:
                ends.append(spec[side])
        if len(ends) != 2:
            continue
        if ends[0] == ends[1]:
            p.add(lpath, f"joins switch {ends[0]} to itself")
            ok = False
            continue
        pair = frozenset(ends)
        if pair in seen:
            p.add(lpath, f"{ends[0]} and {ends[1]} are already joined by {path}.links[{seen[pair]}]")
            ok = False
            continue
        seen[pair] = i
        links.append(L2Link(a=ends[0], b=ends[1], shaping=shaping))

    tunnel = None
    if data.get("tunnel") is not None:
        spec = _entry(p, f"{path}.tunnel", data["tunnel"], TUNNEL_KEYS, TUNNEL_KEYS)
        if spec is None:
            ok = False
        else:
            ends = []
            for side in TUNNEL_KEYS:
                r = spec.get(side)
                if side in spec and (not isinstance(r, str) or (routers is not None and r not in routers)):
                    p.add(f"{path}.tunnel.{side}", f"{_describe(r)} is not a router of this AS")
                    ok = False
                elif side in spec:
                    ends.append(r)
            if len(ends) == 2 and ends[0] == ends[1]:
                p.add(f"{path}.tunnel", f"joins router {ends[0]} to itself")
                ok = False
            elif len(ends) == 2:
                tunnel = L2Tunnel(a=ends[0], b=ends[1])
    if not ok:
        return None
    return Layer2(datacenters=tuple(dcs), switches=tuple(switches), hosts=tuple(hosts), links=tuple(links),
                  tunnel=tunnel, prefix=prefix)


# ---- addressing -------------------------------------------------------------------------------
#
# A plan is a function (asn, layer2, data-centre index, vlan, vlan position, the AS's IPv6 prefix)
# -> (IPv4 /24 network, IPv6 network or None); it raises ValueError (one line) when it cannot
# number that VLAN. Inside each network, the DC's gateway routers take .1, .2, ... in the AS's
# router order, then its hosts of that VLAN, in file order (VPN clients count too), as the
# mini-Internet numbers them; hosts' default gateway is the first router.

NetPair = Tuple[str, Optional[str]]
Plan = Callable[[int, Layer2, int, int, int, Optional[str]], NetPair]


def default_l2_prefix(asn: int) -> Optional[str]:
    """Default plan: AS N (1..255) gets 172.16.0.0/12's N-th /20; others must set layer2.prefix."""
    pool = ipaddress.ip_network(DEFAULT_L2_POOL)
    if not 1 <= asn <= 255:
        return None
    return str(ipaddress.ip_network(f"{pool.network_address + (asn << (32 - DEFAULT_L2_PREFIXLEN))}/{DEFAULT_L2_PREFIXLEN}"))


def default_plan(asn: int, l2: Layer2, dc: int, vlan: int, position: int, prefix6: Optional[str]) -> NetPair:
    """The plan of hand-written topologies: /24 number dc * V + position of `layer2.prefix` (or
    default_l2_prefix), V the AS's VLAN count; IPv6: /64 number 1 + dc * V + position of the AS's
    IPv6 prefix (the loopbacks' quarter, where only subnet 0 is used)."""
    prefix = l2.prefix or default_l2_prefix(asn)
    if prefix is None:
        raise ValueError(f"layer2.prefix is required for AS numbers above 255 (the default plan numbers "
                         f"AS 1..255 in {DEFAULT_L2_POOL})")
    net = ipaddress.ip_network(prefix)
    number = dc * len(l2.vlans) + position
    room = 2 ** (VLAN_PREFIXLEN - net.prefixlen)
    if number >= room:
        raise ValueError(f"layer2.prefix {net} holds {room} VLAN networks (/24), "
                         f"{len(l2.datacenters)} data centres x {len(l2.vlans)} VLANs need more")
    net4 = f"{net.network_address + (number << 8)}/{VLAN_PREFIXLEN}"
    net6 = None
    if prefix6 is not None:
        p6 = ipaddress.ip_network(prefix6)
        if 1 + number >= 2 ** (64 - p6.prefixlen) // 4:
            raise ValueError(f"the IPv6 prefix {p6} has no room for {number + 1} VLAN networks")
        net6 = f"{p6.network_address + ((1 + number) << 64)}/64"
    return net4, net6


def mini_internet_plan(asn: int, l2: Layer2, dc: int, vlan: int, position: int, prefix6: Optional[str]) -> NetPair:
    """The mini-Internet's subnet_config.sh: X.(200+dc).VLAN.0/24 and X:(200+dc):VLAN::/48 (the
    numbers written as they are, so the IPv6 groups read like the IPv4 octets)."""
    if asn > 255 or 200 + dc > 255 or vlan > 255:
        raise ValueError(f"the mini-Internet plan numbers layer 2 as {asn}.{200 + dc}.{vlan}.0/24: "
                         "AS, 200 + data centre and VLAN must each be at most 255")
    return f"{asn}.{200 + dc}.{vlan}.0/24", str(ipaddress.ip_network(f"{asn}:{200 + dc}:{vlan}::/48"))


PLANS: Dict[str, Plan] = {"default": default_plan, "mini-internet": mini_internet_plan}


def plan_name(topo) -> str:
    """This module's plan for a topology's addressing plan (`addressing: {plan: ...}`, the loader's
    `Topology.plan`): the mini-Internet plans number layer 2 alike; anything else is the default."""
    plan = getattr(topo, "plan", None)
    addressing = getattr(topo, "addressing", None)          # a mapping form, for callers that have one
    if plan is None and isinstance(addressing, dict):
        plan = addressing.get("plan")
    return "mini-internet" if isinstance(plan, str) and plan.startswith("mini-internet") else "default"


@dataclass(frozen=True)
class VlanNet:
    dc: str
    vlan: int
    net4: str
    net6: Optional[str] = None

    def ip4(self, n: int) -> str:
        net = ipaddress.ip_network(self.net4)
        return f"{net.network_address + n}/{net.prefixlen}"

    def ip6(self, n: int) -> Optional[str]:
        if self.net6 is None:
            return None
        net = ipaddress.ip_network(self.net6)
        return f"{net.network_address + n}/{net.prefixlen}"


@dataclass(frozen=True)
class HostAddress:
    addresses: Tuple[str, ...]           # "ip/len", IPv4 then IPv6
    gateway4: Optional[str] = None
    gateway6: Optional[str] = None


@dataclass(frozen=True)
class L2Addressing:
    asn: int
    nets: Dict[Tuple[str, int], VlanNet]
    routers: Dict[str, Dict[int, Tuple[str, ...]]]     # router -> vlan -> its addresses on that VLAN
    hosts: Dict[str, HostAddress]
    networks4: Tuple[str, ...] = field(default=())     # every VLAN network (OSPF / announcements)


def layer2_addressing(asn: int, routers: Sequence[str], l2: Layer2, plan: str = "default",
                      prefix6: Optional[str] = None) -> L2Addressing:
    """Number the layer 2 of one AS with `plan`; ValueError (one line) when it does not fit."""
    fn = PLANS[plan]
    vlans = l2.vlans
    nets: Dict[Tuple[str, int], VlanNet] = {}
    for d, dc in enumerate(l2.datacenters):
        for pos, vlan in enumerate(vlans):
            n4, n6 = fn(asn, l2, d, vlan, pos, prefix6)
            nets[(dc, vlan)] = VlanNet(dc=dc, vlan=vlan, net4=n4, net6=n6)
    out_routers: Dict[str, Dict[int, Tuple[str, ...]]] = {}
    gateways: Dict[str, List[str]] = {dc: l2.gateways(dc, routers) for dc in l2.datacenters}
    for dc, gws in gateways.items():
        for rank, r in enumerate(gws, start=1):
            out_routers[r] = {v: tuple(a for a in (nets[(dc, v)].ip4(rank), nets[(dc, v)].ip6(rank)) if a)
                              for v in vlans}
    hosts: Dict[str, HostAddress] = {}
    count: Dict[Tuple[str, int], int] = {}
    for h in l2.hosts:
        dc = l2.switch(h.switch).dc
        key = (dc, h.vlan)
        count[key] = count.get(key, 0) + 1
        n = len(gateways[dc]) + count[key]
        vn = nets[key]
        if n >= ipaddress.ip_network(vn.net4).num_addresses - 1:
            raise ValueError(f"VLAN {h.vlan} of data centre {dc} has more hosts than {vn.net4} holds")
        gw4 = vn.ip4(1).split("/")[0] if gateways[dc] else None
        gw6 = vn.ip6(1).split("/")[0] if gateways[dc] and vn.net6 else None
        hosts[h.name] = HostAddress(addresses=tuple(a for a in (vn.ip4(n), vn.ip6(n)) if a),
                                    gateway4=gw4, gateway6=gw6)
    return L2Addressing(asn=asn, nets=nets, routers=out_routers, hosts=hosts,
                        networks4=tuple(v.net4 for v in nets.values()))


# ---- names ------------------------------------------------------------------------------------

def router_subif(router: str, vlan: int) -> str:
    """A gateway router's interface on VLAN `vlan`: `<ROUTER>-L2.<vlan>` as in the mini-Internet
    (`<ROUTER>-L2` for VLAN 0), or `L2.<vlan>` when that is over the kernel's 15 characters."""
    name = f"{router}-L2" + (f".{vlan}" if vlan else "")
    return name if len(name) <= 15 else ("L2" + (f".{vlan}" if vlan else ""))


def host_ifname(asn: int, switch: str) -> str:
    """An L2 host's interface: `<asn>-<SWITCH>` as in the mini-Internet, or `eth0` when too long."""
    name = f"{asn}-{switch}"
    return name if len(name) <= 15 else "eth0"


def switch_port_names(asn: int, l2: Layer2, switch: str) -> List[Tuple[str, str]]:
    """(student-visible port name, kind) of every port of `switch`, as the mini-Internet names
    them: `<asn>-<HOST>` for a host, `<asn>-<SWITCH>` towards another switch, `<ROUTER>router` for
    the gateway's trunk."""
    out: List[Tuple[str, str]] = []
    for h in l2.hosts:
        if h.switch == switch and not h.vpn:
            out.append((f"{asn}-{h.name}", "host"))
    for link in l2.links:
        if switch in (link.a, link.b):
            out.append((f"{asn}-{link.b if link.a == switch else link.a}", "link"))
    sw = l2.switch(switch)
    if sw.router:
        out.append((f"{sw.router}router", "router"))
    return out


def layer2_problems(topo) -> List[str]:
    """Why a topology's layer 2 cannot be numbered (`FILE: KEY: problem` lines; empty: fine): a plan
    that does not fit, a default-plan prefix overlapping another AS's prefix, layer-2 prefix or
    the link subnet."""
    from .addressing import as_prefix, as_prefix6
    lines: List[str] = []
    plan = plan_name(topo)
    nets: List[Tuple[int, Any]] = []
    for asn, as_ in topo.ases.items():
        if as_.layer2 is None:
            continue
        try:
            layer2_addressing(asn, as_.routers, as_.layer2, plan, as_prefix6(as_) if topo.fabric.ipv6 else None)
        except ValueError as exc:
            lines.append(f"{topo.source}: ases.{asn}.layer2: {exc}")
            continue
        if plan == "default":
            nets.append((asn, ipaddress.ip_network(as_.layer2.prefix or default_l2_prefix(asn))))
    others = [(f"the prefix of AS {asn}", ipaddress.ip_network(p)) for asn, a in topo.ases.items()
              if (p := as_prefix(a))]
    others.append(("fabric.link_subnet", ipaddress.ip_network(topo.fabric.link_subnet)))
    for i, (asn, net) in enumerate(nets):
        what = f"ases.{asn}.layer2.prefix" if topo.ases[asn].layer2.prefix else f"ases.{asn}.layer2"
        shown = str(net) if topo.ases[asn].layer2.prefix else f"default layer-2 prefix {net}"
        for name, onet in others + [(f"the layer-2 prefix of AS {o}", n) for o, n in nets[:i]]:
            if net.overlaps(onet):
                lines.append(f"{topo.source}: {what}: {shown} overlaps {name} ({onet})")
    return lines


def from_imported(data: Any, routers: Sequence[str]) -> Any:
    """The `layer2` section for what `minet import mini-internet` keeps as `imported_layer2`
    (importers.mini_internet_l2.Layer2.as_dict()): switches keep their MAC as STP system id and
    their number as STP priority (as upstream's connect_l2_network.sh sets them), hosts named vpn*
    are VPN clients, a tunnel naming a router the AS does not have is dropped (upstream builds it
    only between the AS's gateways). Anything not of that form is returned as it is, so the
    layer-2 checks report it."""
    if not isinstance(data, dict):
        return data
    try:
        out: Dict[str, Any] = {"datacenters": list(data.get("dcs") or {}), "switches": {}, "hosts": {}, "links": []}
        for s in data.get("switches") or []:
            spec = {"dc": s["dc"], "stp_priority": s.get("id"), "stp_system_id": s.get("mac")}
            if s.get("router"):
                spec["router"] = s["router"]
            out["switches"][s["name"]] = {k: v for k, v in spec.items() if v is not None}
        for h in data.get("hosts") or []:
            spec = {"switch": h["switch"], "vlan": h["vlan"], "throughput": h.get("throughput"),
                    "delay": h.get("delay"), "buffer": h.get("buffer")}
            if str(h["name"]).lower().startswith("vpn"):
                spec["vpn"] = True
            out["hosts"][h["name"]] = {k: v for k, v in spec.items() if v is not None}
        for link in data.get("links") or []:
            spec = {"a": link["a"], "b": link["b"], "throughput": link.get("throughput"), "delay": link.get("delay"),
                    "buffer": link.get("buffer")}
            out["links"].append({k: v for k, v in spec.items() if v is not None})
        tunnel = data.get("tunnel")
        if tunnel and len(tunnel) == 2 and all(r in routers for r in tunnel):
            out["tunnel"] = {"a": tunnel[0], "b": tunnel[1]}
        if not out["datacenters"]:
            del out["datacenters"]
        return out
    except (KeyError, TypeError, AttributeError):
        return data
