"""Import a mini-Internet configuration folder (the nsg-ethz mini_internet_project layout).

Files read (tab-separated; runs of spaces work too; `#` starts a comment):

  AS_config.txt       ASN  AS|IXP  Config|NoConfig  l3_routers.txt  l3_links.txt  l2_switches.txt
                      l2_hosts.txt  l2_links.txt  [SERVER]
                      (file columns name per-AS files in the folder; an IXP row may stop after the
                      third column; SERVER, last, only in the multi-server form)
  l3_routers*.txt     Name  Service  HostKind:image  vtysh|linux      (host `N/A`: no host)
  l3_links*.txt       R1  R2  throughput  delay  [buffer]             (intra-AS links)
  aslevel_links.txt   AS1 Router1 Role1  AS2 Router2 Role2  Throughput Delay Buffer Subnet
  external_links_config.txt   the older form: the same without Buffer
                      Role: Provider | Customer | Peer; Router `None`/`N/A` on an IXP's side;
                      towards an IXP, the last column lists the member ASes the route server
                      passes this member's routes to
  servers.txt         NAME  INTERFACE  UNDERLAY_IP  SSH        (multi-server form; SSH may be N/A)

An IXP row becomes an `ixps:` entry whose members are the routers with a link to it (the last
column, the ASes the route server passes the member's routes to, becomes `announce_to`).

Units: a bare throughput is kbit/s (OvS ingress_policing_rate, as the mini-Internet used it);
a bare delay is microseconds (tc's default unit); a bare buffer is bytes. Values with units
(`1mbit`, `2.5ms`, `50ms`) are kept. The mini-Internet's own subnets (last column) are not kept:
minet-sdn numbers links itself. Layer-2 files (switches, hosts, L2 links) are not imported; every
router gets one host, as everywhere in minet-sdn.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..topology.model import _fmt_rate, _fmt_size, _fmt_time
from ..topology.loader import (RATE_UNITS, ROUTER_RE, SERVER_RE, SIZE_UNITS, TIME_UNITS, parse_quantity)
from . import ImportProblem, Imported, instance_name, read_input

AS_CONFIG = "AS_config.txt"
ASLEVEL = ("aslevel_links.txt", "external_links_config.txt")
SERVER_FILES = ("servers.txt", "server_config.txt")
ROLES = {"provider": "provider", "customer": "customer", "peer": "peer"}
NO_ROUTER = ("none", "n/a", "-")
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass
class Row:
    file: str
    line: int
    cols: List[str]

    def where(self, col: Optional[int] = None) -> str:
        return f"{self.file}: line {self.line}" + (f", column {col + 1}" if col is not None else "")


@dataclass
class _AS:
    asn: int
    kind: str                      # "AS" | "IXP"
    configure: bool
    routers_file: Optional[str]
    links_file: Optional[str]
    server: Optional[str]
    row: Row
    routers: List[str] = field(default_factory=list)
    links: List[Dict[str, Any]] = field(default_factory=list)


class _Problems:
    def __init__(self) -> None:
        self.lines: List[str] = []

    def add(self, row: Row, message: str, col: Optional[int] = None) -> None:
        self.lines.append(f"{row.where(col)}: {message}")


def read_table(path: str, label: str) -> List[Row]:
    """Rows of a whitespace-separated file, `#` comments and blank lines dropped."""
    raw = read_input(path, label, MAX_FILE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportProblem([f"{label}: not UTF-8 text (byte {exc.start})"]) from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        cols = line.split("#", 1)[0].split()
        if cols:
            rows.append(Row(label, number, cols))
    return rows


def _quantity(p: _Problems, row: Row, col: int, what: str, units: Dict[str, int], bare_unit: str) -> Optional[str]:
    """A throughput/delay/buffer column as the topology writes it (bare numbers get their unit)."""
    value = row.cols[col]
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        value += bare_unit
    amount = parse_quantity(value, units, 1)
    if amount is None or amount <= 0 and what != "delay":
        example = {"throughput": "1mbit or 100000 (kbit/s)", "delay": "2.5ms", "buffer": "50ms or 64kb"}[what]
        p.add(row, f"{what} {row.cols[col]!r} is not a {what} (e.g. {example})", col)
        return None
    unit = re.sub(r"[0-9.]", "", value).lower()
    if what == "throughput":
        return _fmt_rate(amount)
    if what == "delay" or unit in TIME_UNITS:
        return _fmt_time(parse_quantity(value, TIME_UNITS, 1))
    return _fmt_size(amount)


def _shaping(p: _Problems, row: Row, cols: Tuple[Optional[int], Optional[int], Optional[int]]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for (key, units, bare), col in zip((("throughput", RATE_UNITS, "kbit"), ("delay", TIME_UNITS, "us"),
                                        ("buffer", {**SIZE_UNITS, **TIME_UNITS}, "b")), cols):
        if col is None or col >= len(row.cols) or row.cols[col].lower() in NO_ROUTER:
            continue
        value = _quantity(p, row, col, key, units, bare)
        if value is not None:
            out[key] = value
    return out


def _asn(p: _Problems, row: Row, col: int) -> Optional[int]:
    value = row.cols[col]
    if not re.fullmatch(r"[1-9][0-9]{0,9}", value) or int(value) > 4294967294:
        p.add(row, f"{value!r} is not an AS number", col)
        return None
    return int(value)


def _file_column(row: Row, col: int) -> Optional[str]:
    if col >= len(row.cols) or row.cols[col].lower() in NO_ROUTER:
        return None
    return row.cols[col]


def _read_servers(p: _Problems, folder: str) -> Optional[Dict[str, Dict[str, str]]]:
    for name in SERVER_FILES:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            break
    else:
        return None
    servers: Dict[str, Dict[str, str]] = {}
    for row in read_table(path, name):
        if len(row.cols) < 3:
            p.add(row, "a server row is NAME INTERFACE UNDERLAY_IP [SSH]")
            continue
        sname, iface, ip = row.cols[:3]
        if not SERVER_RE.fullmatch(sname):
            p.add(row, f"{sname!r} is not a server name (a letter, then letters, digits, '_' or '-')", 0)
            continue
        if sname in servers:
            p.add(row, f"server {sname} is listed twice", 0)
            continue
        spec = {"underlay_ip": ip}
        if iface.lower() not in NO_ROUTER:
            spec["interface"] = iface
        if len(row.cols) > 3 and row.cols[3].lower() not in NO_ROUTER:
            spec["ssh"] = row.cols[3]
        servers[sname] = spec
    return servers


def _read_as_config(p: _Problems, folder: str, servers: Optional[Dict[str, Any]]) -> Dict[int, _AS]:
    out: Dict[int, _AS] = {}
    for row in read_table(os.path.join(folder, AS_CONFIG), AS_CONFIG):
        if len(row.cols) < 3:
            p.add(row, "an AS row is ASN AS|IXP Config|NoConfig l3_routers l3_links ...")
            continue
        asn = _asn(p, row, 0)
        kind = row.cols[1].upper()
        if kind not in ("AS", "IXP"):
            p.add(row, f"{row.cols[1]!r} is not AS or IXP", 1)
            continue
        config = row.cols[2].lower()
        if config not in ("config", "noconfig"):
            p.add(row, f"{row.cols[2]!r} is not Config or NoConfig", 2)
            continue
        cols = list(row.cols)
        server = None
        if servers is not None and cols[-1] in servers and len(cols) > 3:
            server = cols.pop()
        elif servers is not None:
            p.add(row, f"the last column names no server of {SERVER_FILES[0]} "
                       f"({', '.join(servers) or 'none'})", len(cols) - 1)
        if asn is None:
            continue
        if asn in out:
            p.add(row, f"AS {asn} is already defined on line {out[asn].row.line}", 0)
            continue
        routers_file, links_file = _file_column(row, 3), _file_column(row, 4)
        if server is not None and routers_file == server:
            routers_file = None
        if kind == "AS" and routers_file is None:
            p.add(row, "an AS needs its l3_routers file (column 4)", 3)
            continue
        out[asn] = _AS(asn=asn, kind=kind, configure=config == "config", routers_file=routers_file,
                       links_file=links_file if links_file != server else None, server=server, row=row)
    return out


def _read_routers(p: _Problems, folder: str, as_: _AS, notes: List[str]) -> None:
    assert as_.routers_file is not None
    rows = _per_as_file(p, folder, as_, as_.routers_file, 3)
    no_host = []
    for row in rows or ():
        name = row.cols[0]
        if not ROUTER_RE.fullmatch(name):
            p.add(row, f"{name!r} is not a router name (a letter, then up to 15 letters, digits, '_' or '-')", 0)
        elif name in as_.routers:
            p.add(row, f"router {name} is listed twice", 0)
        else:
            as_.routers.append(name)
            if len(row.cols) > 2 and row.cols[2].lower() in NO_ROUTER:
                no_host.append(name)
    if rows is not None and not rows:
        p.add(as_.row, f"AS {as_.asn}: {as_.routers_file} lists no router", 3)
    if no_host:
        notes.append(f"AS {as_.asn}: routers without a host ({', '.join(no_host)}) get one anyway")


def _per_as_file(p: _Problems, folder: str, as_: _AS, name: str, col: int) -> Optional[List[Row]]:
    path = os.path.join(folder, name)
    if os.path.basename(name) != name:
        p.add(as_.row, f"{name!r} must be a file of the folder itself", col)
        return None
    if not os.path.isfile(path):
        p.add(as_.row, f"{name} does not exist in the folder", col)
        return None
    return read_table(path, name)


def _read_links(p: _Problems, folder: str, as_: _AS) -> None:
    if as_.links_file is None:
        return
    rows = _per_as_file(p, folder, as_, as_.links_file, 4)
    seen: Dict[frozenset, int] = {}
    for row in rows or ():
        if len(row.cols) < 2:
            p.add(row, "an l3 link row is R1 R2 throughput delay [buffer]")
            continue
        a, b = row.cols[:2]
        bad = False
        for col, r in ((0, a), (1, b)):
            if r not in as_.routers:
                p.add(row, f"router {r} is not in {as_.routers_file} (AS {as_.asn} uses this file)", col)
                bad = True
        if bad:
            continue
        if a == b:
            p.add(row, f"joins router {a} to itself")
            continue
        if frozenset((a, b)) in seen:
            p.add(row, f"{a} and {b} are already joined on line {seen[frozenset((a, b))]}")
            continue
        seen[frozenset((a, b))] = row.line
        as_.links.append({"a": a, "b": b, **_shaping(p, row, (2, 3, 4))})


def _router_side(p: _Problems, row: Row, col: int, as_: Optional[_AS]) -> Optional[str]:
    name = row.cols[col]
    if as_ is None:
        p.add(row, f"AS {row.cols[col - 1]} is not in {AS_CONFIG}", col - 1)
        return None
    if as_.kind == "IXP":
        return None
    if name not in as_.routers:
        p.add(row, f"router {name} is not a router of AS {as_.asn}", col)
        return None
    return name


def _read_aslevel(p: _Problems, folder: str, ases: Dict[int, _AS]) -> Tuple[List[Dict], Dict[int, List[Dict]]]:
    path = next((n for n in ASLEVEL if os.path.exists(os.path.join(folder, n))), None)
    if path is None:
        return [], {}
    links: List[Dict] = []
    members: Dict[int, List[Dict]] = {}
    rows = read_table(os.path.join(folder, path), path)
    for row in rows:
        if len(row.cols) < 6:
            p.add(row, "an AS-level link row is AS1 Router1 Role1 AS2 Router2 Role2 Throughput Delay [Buffer] Subnet")
            continue
        a_asn, b_asn = _asn(p, row, 0), _asn(p, row, 3)
        roles = [ROLES.get(row.cols[c].lower()) for c in (2, 5)]
        for c, r in zip((2, 5), roles):
            if r is None:
                p.add(row, f"{row.cols[c]!r} is not Provider, Customer or Peer", c)
        if a_asn is None or b_asn is None or None in roles:
            continue
        a_as, b_as = ases.get(a_asn), ases.get(b_asn)
        a_r, b_r = _router_side(p, row, 1, a_as), _router_side(p, row, 4, b_as)
        if a_as is None or b_as is None:
            continue
        # older files have no Buffer column: Throughput Delay Subnet (9 columns)
        has_buffer = len(row.cols) >= 10 or (len(row.cols) == 9 and "/" not in row.cols[8] and "," not in row.cols[8]
                                            and re.search(r"[a-z]", row.cols[8].lower()) is not None)
        shaping = _shaping(p, row, (6, 7, 8 if has_buffer else None))
        if a_as.kind == "IXP" and b_as.kind == "IXP":
            p.add(row, f"joins two IXPs ({a_asn} and {b_asn})")
            continue
        if a_as.kind == "IXP" or b_as.kind == "IXP":
            ixp, member_as, member_r = (a_as, b_as, b_r) if a_as.kind == "IXP" else (b_as, a_as, a_r)
            if member_r is None:
                continue
            last = row.cols[-1] if len(row.cols) > 6 + 2 + int(has_buffer) else ""
            to = [int(x) for x in last.split(",") if x.isdigit()]
            member = {"router": f"{member_as.asn}.{member_r}", **shaping}
            if to:
                member["announce_to"] = to
            members.setdefault(ixp.asn, []).append(member)
            continue
        if a_r is None or b_r is None:
            continue
        if a_asn == b_asn:
            p.add(row, f"both ends are in AS {a_asn}; intra-AS links belong in its l3_links file")
            continue
        expected = {"provider": "customer", "customer": "provider", "peer": "peer"}[roles[0]]
        if roles[1] != expected:
            p.add(row, f"roles {row.cols[2]} and {row.cols[5]} do not match "
                       f"(Provider-Customer, Customer-Provider or Peer-Peer)", 5)
            continue
        links.append({"a": f"{a_asn}.{a_r}", "b": f"{b_asn}.{b_r}", "rel": roles[0], **shaping})
    return links, members


def import_folder(folder: str, name: Optional[str] = None) -> Imported:
    """The topology of a mini-Internet configuration folder; raises ImportProblem."""
    if not os.path.isdir(folder):
        raise ImportProblem([f"{folder}: not a folder"])
    if not os.path.isfile(os.path.join(folder, AS_CONFIG)):
        raise ImportProblem([f"{folder}: has no {AS_CONFIG} (is this a mini-Internet config folder?)"])
    p = _Problems()
    notes: List[str] = []
    servers = _read_servers(p, folder)
    ases = _read_as_config(p, folder, servers)
    for as_ in ases.values():
        if as_.kind == "AS":
            _read_routers(p, folder, as_, notes)
            _read_links(p, folder, as_)
    links, members = _read_aslevel(p, folder, ases)
    if p.lines:
        raise ImportProblem(p.lines)
    real = [a for a in ases.values() if a.kind == "AS"]
    if not real:
        raise ImportProblem([f"{AS_CONFIG}: defines no AS (only IXPs or nothing)"])

    topo: Dict[str, Any] = {"name": name or instance_name(os.path.basename(os.path.abspath(folder)))}
    if servers:
        topo["servers"] = servers
    else:
        topo["servers"] = ["VM1"]
    topo["ases"] = {}
    for as_ in real:
        spec: Dict[str, Any] = {"server": as_.server or "VM1", "routers": as_.routers}
        if not as_.configure:
            spec["configure"] = False
        if as_.links_file is not None:
            spec["links"] = as_.links
            if not as_.links and len(as_.routers) > 1:
                notes.append(f"AS {as_.asn}: {as_.links_file} has no link; its routers form the default ring")
                del spec["links"]
        topo["ases"][as_.asn] = spec
    ixps = {a.asn: a for a in ases.values() if a.kind == "IXP"}
    if ixps:
        topo["ixps"] = {asn: {"server": ixp.server or "VM1", "members": members.get(asn, [])}
                        for asn, ixp in ixps.items()}
    topo["links"] = links
    return Imported(topology=topo, notes=notes)
