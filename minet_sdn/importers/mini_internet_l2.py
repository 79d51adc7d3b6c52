"""Layer 2 and services of a mini-Internet folder, read into plain dataclasses (no topology model).

`minet_sdn.importers.mini_internet` calls `read_layer2` for every AS that names layer-2 files and
keeps the result in the imported topology under the AS key `imported_layer2` (`Layer2.as_dict()`),
which the loader accepts as it is. The layer-2 model and its provisioning build on these classes.

Files (whitespace-separated, `#` comments; every form the mini-Internet has shipped):

  l2_switches   DC  SWITCH  ROUTER|N/A  MAC  ID              (2020 on)
                SWITCH  ROUTER|N/A  MAC                      (2019 layout: one data centre, "L2")
  l2_hosts      NAME IMAGE DC SWITCH THROUGHPUT DELAY BUFFER VLAN     (2023 on)
                NAME IMAGE DC SWITCH THROUGHPUT DELAY VLAN            (2019 course - 2022)
                NAME DC SWITCH THROUGHPUT DELAY VLAN                  (2020 platform)
                NAME SWITCH THROUGHPUT DELAY VLAN                     (2019 layout)
  l2_links      DC1 SWITCH1 DC2 SWITCH2 THROUGHPUT DELAY [BUFFER]
                SWITCH1 SWITCH2 THROUGHPUT DELAY                      (2019 layout)
  l2_tunnel     ROUTER1 ROUTER2                                       (the AS's L2 tunnel between sites)

A switch's ROUTER column names the router that serves its data centre (the router's l3_routers row
says `L2-<DC>`); VLAN 0 means untagged. Hosts whose name starts with `vpn` get no address (the
mini-Internet leaves them for the VPN exercise) but take a number in their VLAN, as upstream does.
Shaping values are kept as written (bare numbers: kbit/s, microseconds, bytes, as everywhere in the
importer); `mini_internet._quantity` turns them into topology units.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
NO = ("n/a", "none", "-")
DEFAULT_DC = "L2"          # the 2019 layout's single data centre


@dataclass
class Switch:
    dc: str
    name: str
    router: Optional[str]          # the router of the DC this switch is wired to, None: none
    mac: str
    id: int                        # the switch's number in the AS (the file's last column)
    where: str = ""                # "FILE: line N" for messages


@dataclass
class L2Host:
    name: str
    dc: str
    switch: str
    vlan: int                      # 0: untagged
    image: Optional[str] = None
    throughput: Optional[str] = None
    delay: Optional[str] = None
    buffer: Optional[str] = None
    where: str = ""

    @property
    def addressed(self) -> bool:
        """vpn* hosts are left unaddressed by the mini-Internet (the students' VPN exercise)."""
        return not self.name.lower().startswith("vpn")


@dataclass
class L2Link:
    dc_a: str
    a: str
    dc_b: str
    b: str
    throughput: Optional[str] = None
    delay: Optional[str] = None
    buffer: Optional[str] = None
    where: str = ""


@dataclass
class Layer2:
    """One AS's layer 2: data centres (in the order their routers are listed), switches, hosts,
    switch-switch trunks, and the L2 tunnel between two sites."""
    dcs: List[str] = field(default_factory=list)
    gateways: Dict[str, List[str]] = field(default_factory=dict)   # DC -> its routers, l3_routers order
    switches: List[Switch] = field(default_factory=list)
    hosts: List[L2Host] = field(default_factory=list)
    links: List[L2Link] = field(default_factory=list)
    tunnel: Optional[Tuple[str, str]] = None

    def __bool__(self) -> bool:
        return bool(self.switches or self.hosts or self.links or self.tunnel)

    def vlans(self, dc: str) -> List[int]:
        return sorted({h.vlan for h in self.hosts if h.dc == dc})

    def as_dict(self) -> Dict[str, Any]:
        """The plain form kept in the topology file (no `where`)."""
        def clean(obj) -> Dict[str, Any]:
            return {k: v for k, v in asdict(obj).items() if k != "where" and v is not None}
        out: Dict[str, Any] = {"dcs": {dc: {"routers": list(self.gateways.get(dc, []))} for dc in self.dcs},
                               "switches": [clean(s) for s in self.switches],
                               "hosts": [clean(h) for h in self.hosts],
                               "links": [clean(link) for link in self.links]}
        if self.tunnel:
            out["tunnel"] = list(self.tunnel)
        return out


# A row as the importer reads it: .file, .line, .cols, .where(col)
Problem = Callable[[Any, str, Optional[int]], None]


def _no(value: str) -> bool:
    return value.lower() in NO


def read_switches(rows, add: Problem, l2: Layer2) -> None:
    seen: Dict[Tuple[str, str], str] = {}
    for row in rows:
        c = row.cols
        if len(c) == 3:                                   # 2019: SWITCH router|N/A MAC
            dc, name, router, mac, sid = DEFAULT_DC, c[0], c[1], c[2], len(l2.switches) + 1
            gws = l2.gateways.get(DEFAULT_DC) or []
            if router.lower() == "router" and len(gws) == 1:
                router = gws[0]      # "router": the AS's one router whose router_config row says L2
        elif len(c) >= 5:
            dc, name, router, mac = c[:4]
            if not c[4].isdigit():
                add(row, f"switch id {c[4]!r} is not a number", 4)
                continue
            sid = int(c[4])
        else:
            add(row, "a switch row is DC SWITCH ROUTER|N/A MAC ID", None)
            continue
        mac_col = 2 if len(c) == 3 else 3
        if not MAC_RE.fullmatch(mac):
            add(row, f"{mac!r} is not a MAC address", mac_col)
            continue
        bad = [(i, v) for i, v in ((0, dc), (1, name)) if len(c) > 3 and not NAME_RE.fullmatch(v)]
        if len(c) == 3 and not NAME_RE.fullmatch(name):
            bad = [(0, name)]
        if bad:
            add(row, f"{bad[0][1]!r} is not a name (letters, digits, '_' or '-')", bad[0][0])
            continue
        if (dc, name) in seen:
            add(row, f"switch {name} of {dc} is already defined on {seen[(dc, name)]}", 1 if len(c) > 3 else 0)
            continue
        seen[(dc, name)] = f"line {row.line}"
        l2.switches.append(Switch(dc=dc, name=name, router=None if _no(router) else router, mac=mac.lower(),
                                  id=sid, where=row.where()))


def _known_switches(l2: Layer2) -> Tuple[set, Dict[str, str]]:
    """The AS's switches as (DC, name) pairs, and each name's DC (the 2019 rows name no DC)."""
    return {(s.dc, s.name) for s in l2.switches}, {s.name: s.dc for s in l2.switches}


def _shaping(thr: str, dly: str, buf: Optional[str]) -> Dict[str, Optional[str]]:
    """A row's shaping columns as written, N/A (or absent) as None."""
    return {"throughput": None if _no(thr) else thr, "delay": None if _no(dly) else dly,
            "buffer": None if buf is None or _no(buf) else buf}


def read_hosts(rows, add: Problem, l2: Layer2) -> None:
    switches, by_name = _known_switches(l2)
    names: Dict[str, int] = {}
    for row in rows:
        c = row.cols
        n = len(c)
        if n >= 8:
            name, image, dc, sw, thr, dly, buf, vlan, vcol = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], 7
        elif n == 7:
            name, image, dc, sw, thr, dly, vlan, buf, vcol = c[0], c[1], c[2], c[3], c[4], c[5], c[6], None, 6
        elif n == 6:
            name, image, dc, sw, thr, dly, vlan, buf, vcol = c[0], None, c[1], c[2], c[3], c[4], c[5], None, 5
        elif n == 5:                                      # 2019: NAME SWITCH THR DELAY VLAN
            name, image, sw, thr, dly, vlan, buf, vcol = c[0], None, c[1], c[2], c[3], c[4], None, 4
            dc = by_name.get(sw, DEFAULT_DC)
        else:
            add(row, "a host row is NAME IMAGE DC SWITCH THROUGHPUT DELAY [BUFFER] VLAN", None)
            continue
        if not vlan.isdigit() or not 0 <= int(vlan) <= 4094:
            add(row, f"VLAN {vlan!r} is not a number in 0..4094", vcol)
            continue
        if not NAME_RE.fullmatch(name):
            add(row, f"{name!r} is not a host name (letters, digits, '_' or '-')", 0)
            continue
        if name in names:
            add(row, f"host {name} is already defined on line {names[name]}", 0)
            continue
        if (dc, sw) not in switches:
            add(row, f"switch {sw} of {dc} is not in the AS's switches file", 3 if n >= 6 else 1)
            continue
        names[name] = row.line
        l2.hosts.append(L2Host(name=name, dc=dc, switch=sw, vlan=int(vlan), image=image,
                               where=row.where(), **_shaping(thr, dly, buf)))


def read_links(rows, add: Problem, l2: Layer2) -> None:
    switches, by_name = _known_switches(l2)
    seen: Dict[frozenset, int] = {}
    for row in rows:
        c = row.cols
        if len(c) == 4:                                   # 2019: S1 S2 THR DELAY
            ends = [(by_name.get(c[0], DEFAULT_DC), c[0], 0), (by_name.get(c[1], DEFAULT_DC), c[1], 1)]
            thr, dly, buf = c[2], c[3], None
        elif len(c) >= 6:
            ends = [(c[0], c[1], 1), (c[2], c[3], 3)]
            thr, dly, buf = c[4], c[5], c[6] if len(c) > 6 else None
        else:
            add(row, "a layer-2 link row is DC1 SWITCH1 DC2 SWITCH2 THROUGHPUT DELAY [BUFFER]", None)
            continue
        bad = False
        for dc, sw, col in ends:
            if (dc, sw) not in switches:
                add(row, f"switch {sw} of {dc} is not in the AS's switches file", col)
                bad = True
        if bad:
            continue
        key = frozenset((ends[0][:2], ends[1][:2]))
        if ends[0][:2] == ends[1][:2]:
            add(row, f"joins switch {ends[0][1]} to itself", None)
            continue
        if key in seen:
            add(row, f"switches {ends[0][1]} and {ends[1][1]} are already joined on line {seen[key]}", None)
            continue
        seen[key] = row.line
        l2.links.append(L2Link(dc_a=ends[0][0], a=ends[0][1], dc_b=ends[1][0], b=ends[1][1],
                               where=row.where(), **_shaping(thr, dly, buf)))


def read_tunnel(rows, add: Problem, l2: Layer2, routers: List[str], notes: List[str], asn: int) -> None:
    """The L2 tunnel file is shared by every AS with layer 2: an AS whose data-centre routers are not
    the two it names gets no tunnel (a note), as upstream builds none there."""
    for row in rows:
        if len(row.cols) < 2:
            add(row, "an L2 tunnel row is ROUTER1 ROUTER2", None)
            continue
        a, b = row.cols[:2]
        serving = {r for rs in l2.gateways.values() for r in rs}
        if a not in serving or b not in serving:
            notes.append(f"{row.where()}: AS {asn}: {a} and {b} are not both data-centre routers of this AS; "
                         f"no L2 tunnel for it")
            continue
        if a == b:
            add(row, f"joins router {a} to itself", None)
            continue
        if l2.tunnel is not None:
            add(row, "the AS already has its L2 tunnel (one per AS)", None)
            continue
        l2.tunnel = (a, b)


def check_gateways(l2: Layer2, add_as: Callable[[str], None]) -> None:
    """Every switch's router must serve the switch's DC; every DC with switches needs a router."""
    for s in l2.switches:
        if s.router is not None and s.router not in l2.gateways.get(s.dc, []) and s.dc != DEFAULT_DC:
            add_as(f"{s.where}: router {s.router} does not serve data centre {s.dc} "
                   f"(its l3_routers row does not say L2-{s.dc})")
