"""Import a mini-Internet configuration folder (the nsg-ethz mini_internet_project layout).

Files read (tab-separated; runs of spaces work too; `#` starts a comment):

  AS_config.txt       ASN  AS|IXP  Config|NoConfig  l3_routers.txt  l3_links.txt  l2_switches.txt
                      l2_hosts.txt  l2_links.txt  [SERVER]
                      (file columns name per-AS files in the folder; an IXP row may stop after the
                      third column; SERVER, last, only in the multi-server form). The 2019 layout
                      has three columns only, and every AS uses router_config.txt,
                      internal_links_config.txt and layer2_{switches,hosts,links}_config.txt.
  l3_routers*.txt     Name  Service  Host  [vtysh|linux  [ALL]]
                      Service: DNS | MATRIX | MATRIX_TARGET | MEASUREMENT | N/A (kept per router as
                      `services:`); Host: N/A | host[:image] | L2-<DC>[:image] (the router serves that
                      data centre) | routinator:image / krill:image (RPKI: reported, not emulated).
                      Rows repeating a router with a fifth column ALL are one router (all-in-one AS):
                      its services are merged and its links file, if any, is not read.
  l3_links*.txt       R1  R2  throughput  delay  [buffer]             (intra-AS links, R1 gets .1)
                      A throughput may be a per-AS list `10000,100000,...`: AS N takes entry N % length.
  aslevel_links.txt   AS1 Router1 Role1  AS2 Router2 Role2  Throughput Delay Buffer Subnet
  external_links_config.txt   the older form: the same without Buffer
                      Role: Provider | Customer | Peer; Router `None`/`N/A` on an IXP's side;
                      towards an IXP, the last column lists the ASes the route server passes this
                      member's routes to (upstream makes route-server communities of it: listed ASes
                      that are not members of the IXP have no effect and are dropped with a note)
  l2_*, layer2_*      layer 2: see `mini_internet_l2`
  subnet_config.sh    the addressing plan: recognised as the mini-Internet's default plan (or its
                      2019 variant) and followed; anything else is refused (one line)
  servers.txt         NAME  INTERFACE  UNDERLAY_IP  SSH        (multi-server form; SSH may be N/A)

An IXP row becomes an `ixps:` entry whose members are the routers with a link to it (the last
column becomes `announce_to`).

Units: a bare throughput is kbit/s (OvS ingress_policing_rate, as the mini-Internet used it);
a bare delay is microseconds (tc's default unit); a bare buffer is bytes. Values with units
(`1mbit`, `2.5ms`, `50ms`) are kept. Addresses follow the folder's plan (`addressing: {plan:
mini-internet}`): the Subnet column becomes the link's `subnet:`. Every router gets one host, as
everywhere in minet-sdn.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

from ..topology.model import _fmt_rate, _fmt_size, _fmt_time
from ..topology.loader import (RATE_UNITS, ROUTER_RE, SERVER_RE, SIZE_UNITS, TIME_UNITS, parse_quantity)
from . import ImportProblem, Imported, instance_name, read_input
from . import mini_internet_l2 as l2mod
from .subnet_plan import read_plan

AS_CONFIG = "AS_config.txt"
ASLEVEL = ("aslevel_links.txt", "external_links_config.txt")
SERVER_FILES = ("servers.txt", "server_config.txt")
# the 2019 layout: three-column AS_config.txt, the same files for every AS
LAYOUT_2019 = ("router_config.txt", "internal_links_config.txt", "layer2_switches_config.txt",
               "layer2_hosts_config.txt", "layer2_links_config.txt")
L2_TUNNEL = "l2_tunnel.txt"
ROLES = {"provider": "provider", "customer": "customer", "peer": "peer"}
NO_ROUTER = ("none", "n/a", "n\\a", "-")
SERVICES = ("dns", "matrix", "matrix_target", "measurement")
RPKI_KINDS = ("routinator", "krill")
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
    l2_files: Tuple[Optional[str], Optional[str], Optional[str]] = (None, None, None)
    routers: List[str] = field(default_factory=list)
    links: List[Dict[str, Any]] = field(default_factory=list)
    services: Dict[str, List[str]] = field(default_factory=dict)
    rpki: List[str] = field(default_factory=list)          # "ZURI (routinator)"
    l2_of: Dict[str, str] = field(default_factory=dict)     # router -> DC it serves
    all_in_one: bool = False
    layer2: Optional[l2mod.Layer2] = None
    origins: Dict[str, str] = field(default_factory=dict)   # router -> "FILE: line N"
    link_rows: List[str] = field(default_factory=list)       # "FILE: line N" of each intra-AS link


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


def _per_as_value(value: str, asn: Optional[int]) -> str:
    """A per-AS list `a,b,c` (2020 configs): AS N takes entry N % length, as upstream does."""
    if "," in value and asn is not None:
        parts = [v for v in value.split(",")]
        return parts[asn % len(parts)]
    return value


def _quantity(p: _Problems, row: Row, col: int, what: str, units: Dict[str, int], bare_unit: str,
              asn: Optional[int] = None) -> Optional[str]:
    """A throughput/delay/buffer column as the topology writes it (bare numbers get their unit)."""
    value = _per_as_value(row.cols[col], asn)
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


def _shaping(p: _Problems, row: Row, cols: Tuple[Optional[int], Optional[int], Optional[int]],
             asn: Optional[int] = None) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for (key, units, bare), col in zip((("throughput", RATE_UNITS, "kbit"), ("delay", TIME_UNITS, "us"),
                                        ("buffer", {**SIZE_UNITS, **TIME_UNITS}, "b")), cols):
        if col is None or col >= len(row.cols) or row.cols[col].lower() in NO_ROUTER:
            continue
        value = _quantity(p, row, col, key, units, bare, asn)
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
        if len(cols) == 3 and kind == "AS" and os.path.isfile(os.path.join(folder, LAYOUT_2019[0])):
            routers_file, links_file = LAYOUT_2019[0], LAYOUT_2019[1]     # the 2019 layout
            l2_files = tuple(f if os.path.isfile(os.path.join(folder, f)) else None for f in LAYOUT_2019[2:])
        else:
            routers_file, links_file = _file_column(row, 3), _file_column(row, 4)
            l2_files = tuple(_file_column(row, c) if len(cols) > c else None for c in (5, 6, 7))
            if server is not None:
                l2_files = tuple(None if f == server else f for f in l2_files)
        if server is not None and routers_file == server:
            routers_file = None
        if kind == "AS" and routers_file is None:
            p.add(row, "an AS needs its l3_routers file (column 4)", 3)
            continue
        out[asn] = _AS(asn=asn, kind=kind, configure=config == "config", routers_file=routers_file,
                       links_file=links_file if links_file != server else None, server=server, row=row,
                       l2_files=l2_files)   # type: ignore[arg-type]
    return out


def _host_column(value: str) -> Tuple[str, Optional[str]]:
    """(kind, image) of an l3_routers host column: `host:img`, `L2-DCN:img`, `L2`, `krill:img`, `N/A`."""
    kind, _, image = value.partition(":")
    return kind, image or None


def _read_routers(p: _Problems, folder: str, as_: _AS, notes: List[str]) -> None:
    assert as_.routers_file is not None
    col = 3 if as_.routers_file not in LAYOUT_2019 else 0
    rows = _per_as_file(p, folder, as_, as_.routers_file, col)
    no_host = []
    first_row: Dict[str, Row] = {}
    for row in rows or ():
        name = row.cols[0]
        all_flag = len(row.cols) > 4 and row.cols[4].upper() == "ALL"
        if not ROUTER_RE.fullmatch(name):
            p.add(row, f"{name!r} is not a router name (a letter, then up to 15 letters, digits, '_' or '-')", 0)
            continue
        if name in first_row:
            if not (all_flag and as_.all_in_one):
                p.add(row, f"router {name} is listed twice (line {first_row[name].line}; "
                           f"an all-in-one AS marks every row ALL in column 5)", 0)
                continue
        else:
            if all_flag:
                if as_.routers:
                    p.add(row, f"an ALL row repeats one router; {name} is not {as_.routers[0]}", 0)
                    continue
                as_.all_in_one = True
            elif as_.all_in_one:
                p.add(row, f"router {name} has no ALL although the AS is all-in-one "
                           f"({as_.routers[0]}, line {first_row[as_.routers[0]].line})", 4)
                continue
            first_row[name] = row
            as_.routers.append(name)
            as_.origins[name] = row.where()
        if len(row.cols) > 1 and row.cols[1].lower() not in NO_ROUTER:
            service = row.cols[1].lower()
            if service not in SERVICES:
                p.add(row, f"{row.cols[1]!r} is not a service (DNS, MATRIX, MATRIX_TARGET, MEASUREMENT or N/A)", 1)
            elif service not in as_.services.setdefault(name, []):
                as_.services[name].append(service)
        if len(row.cols) > 2:
            kind, _image = _host_column(row.cols[2])
            low = kind.lower()
            if low in RPKI_KINDS:
                as_.rpki.append(f"{as_.asn}.{name} ({low})")
                if low not in as_.services.setdefault(name, []):
                    as_.services[name].append(low)      # kept: validate and lab up warn about it
            elif low.startswith("l2"):
                dc = kind[3:] if len(kind) > 3 and kind[2] == "-" else l2mod.DEFAULT_DC
                as_.l2_of[name] = dc
            elif low in NO_ROUTER and not as_.all_in_one:
                no_host.append(name)
    if rows is not None and not rows:
        p.add(as_.row, f"AS {as_.asn}: {as_.routers_file} lists no router", col)
    for name in list(as_.services):
        if not as_.services[name]:
            del as_.services[name]
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


def _read_links(p: _Problems, folder: str, as_: _AS, notes: List[str]) -> None:
    if as_.links_file is None:
        return
    col = 4 if as_.links_file not in LAYOUT_2019 else 0
    rows = _per_as_file(p, folder, as_, as_.links_file, col)
    if as_.all_in_one:
        if rows:
            notes.append(f"AS {as_.asn}: all-in-one (one router); {as_.links_file} is not read for it")
        return
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
        as_.links.append({"a": a, "b": b, **_shaping(p, row, (2, 3, 4), as_.asn)})
        as_.link_rows.append(row.where())


def _read_layer2(p: _Problems, folder: str, as_: _AS, notes: List[str]) -> None:
    """Layer-2 files of one AS into `as_.layer2` (mini_internet_l2); a missing layer-2 file is a note
    (upstream builds no layer 2 for that AS), a malformed one an error."""
    l2 = l2mod.Layer2()
    for r in as_.routers:
        dc = as_.l2_of.get(r)
        if dc is not None:
            if dc not in l2.dcs:
                l2.dcs.append(dc)
            l2.gateways.setdefault(dc, []).append(r)
    readers = (l2mod.read_switches, l2mod.read_hosts, l2mod.read_links)
    cols = (5, 6, 7) if as_.routers_file not in LAYOUT_2019 else (None, None, None)
    for name, reader, col in zip(as_.l2_files, readers, cols):
        if name is None:
            continue
        if os.path.basename(name) != name:
            p.add(as_.row, f"{name!r} must be a file of the folder itself", col)
            continue
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            notes.append(f"{as_.row.where(col)}: {name} does not exist in the folder; AS {as_.asn} gets no layer 2 from it")
            if reader is l2mod.read_switches:
                break           # hosts and links hang off the switches: nothing more to build
            continue
        reader(read_table(path, name), p.add, l2)
    if l2.dcs and os.path.isfile(os.path.join(folder, L2_TUNNEL)):
        l2mod.read_tunnel(read_table(os.path.join(folder, L2_TUNNEL), L2_TUNNEL), p.add, l2, as_.routers, notes,
                          as_.asn)
    l2mod.check_gateways(l2, p.lines.append)
    # node ids ASN.SWITCH and ASN.HOST sit beside ASN.ROUTER: one name space per AS
    taken = {r: f"a router ({as_.origins.get(r, as_.routers_file)})" for r in as_.routers}
    for item, what in [(s, "switch") for s in l2.switches] + [(h, "host") for h in l2.hosts]:
        if item.name in taken:
            p.lines.append(f"{item.where}: {what} {item.name} of AS {as_.asn} has the name of {taken[item.name]}; "
                           f"node {as_.asn}.{item.name} would be both")
        else:
            taken[item.name] = f"a {what} ({item.where})"
    if l2.switches or l2.hosts:
        missing = [dc for dc in {s.dc for s in l2.switches} if dc not in l2.gateways and dc != l2mod.DEFAULT_DC]
        for dc in sorted(missing):
            notes.append(f"AS {as_.asn}: data centre {dc} has switches but no router says L2-{dc}")
        as_.layer2 = l2


def _router_side(p: _Problems, row: Row, col: int, as_: Optional[_AS], aslevel: str,
                 skipped: Optional[List[Row]] = None) -> Optional[str]:
    name = row.cols[col]
    if as_ is None:
        if skipped is not None:         # the 2019 layout: rows of ASes not in AS_config.txt are inert
            if not skipped or skipped[-1] is not row:
                skipped.append(row)
            return None
        p.add(row, f"AS {row.cols[col - 1]} is not in {AS_CONFIG}", col - 1)
        return None
    if as_.kind == "IXP":
        return None
    if name not in as_.routers:
        p.add(row, f"router {name} is not a router of AS {as_.asn}", col)
        return None
    return name


@dataclass
class _Member:
    ixp: int
    router: str
    shaping: Dict[str, str]
    announce: List[int]
    row: Row
    col: Optional[int]


def link_hosts_of(folder: str) -> str:
    """How the folder's platform numbers a Subnet-column link: `asn` (each side its AS number; the
    platform since July 2023, whose folders have hijacks.txt or a Buffer column) or `ends` (the first
    AS .1, the second .2; the platform before)."""
    if os.path.isfile(os.path.join(folder, "hijacks.txt")):
        return "asn"
    path = os.path.join(folder, ASLEVEL[0])
    if os.path.isfile(path):
        for row in read_table(path, ASLEVEL[0]):
            if len(row.cols) >= 10:
                return "asn"
    return "ends"


def _read_aslevel(p: _Problems, folder: str, ases: Dict[int, _AS], notes: List[str],
                  origins: Dict[str, str], plan: Optional[str] = None) -> Tuple[List[Dict], Dict[int, List[Dict]]]:
    path = next((n for n in ASLEVEL if os.path.exists(os.path.join(folder, n))), None)
    if path is None:
        return [], {}
    links: List[Dict] = []
    members: List[_Member] = []
    rows = read_table(os.path.join(folder, path), path)
    layout_2019 = any(a.routers_file in LAYOUT_2019 for a in ases.values())
    skipped: Optional[List[Row]] = [] if layout_2019 else None
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
        a_r, b_r = _router_side(p, row, 1, a_as, path, skipped), _router_side(p, row, 4, b_as, path, skipped)
        if a_as is None or b_as is None:
            continue
        # older files have no Buffer column: Throughput Delay Subnet (9 columns)
        has_buffer = len(row.cols) >= 10 or (len(row.cols) == 9 and "/" not in row.cols[8] and "," not in row.cols[8]
                                            and re.search(r"[a-z]", row.cols[8].lower()) is not None)
        shaping = _shaping(p, row, (6, 7, 8 if has_buffer else None))
        last_col = 6 + 2 + int(has_buffer)
        last = row.cols[last_col] if len(row.cols) > last_col else ""
        if a_as.kind == "IXP" and b_as.kind == "IXP":
            p.add(row, f"joins two IXPs ({a_asn} and {b_asn})")
            continue
        if a_as.kind == "IXP" or b_as.kind == "IXP":
            ixp, member_as, member_r = (a_as, b_as, b_r) if a_as.kind == "IXP" else (b_as, a_as, a_r)
            if member_r is None:
                continue
            to = []
            for x in last.split(","):
                if x.isdigit():
                    to.append(int(x))
                elif x and x.lower() not in NO_ROUTER:
                    p.add(row, f"{x!r} in {last!r} is not an AS number", last_col)
            members.append(_Member(ixp.asn, f"{member_as.asn}.{member_r}", shaping, to, row,
                                   last_col if last else None))
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
        link = {"a": f"{a_asn}.{a_r}", "b": f"{b_asn}.{b_r}", "rel": roles[0], **shaping}
        if re.fullmatch(r"[0-9.]+/[0-9]+", last):
            link["subnet"] = last
            origins[f"links[{len(links) + 1}].subnet"] = row.where(last_col)
        elif plan is not None:
            # no Subnet: upstream numbers the link by its line in this file (0-based, every line)
            n = row.line - 1
            link["subnet"] = f"179.24.{n + 1}.0/24" if plan == "mini-internet-2019" else f"179.{n // 100}.{n % 100}.0/24"
            origins[f"links[{len(links) + 1}].subnet"] = row.where(last_col if last else None)
        origins[f"links[{len(links) + 1}]"] = row.where()
        links.append(link)
    if skipped:
        notes.append(f"{path}: {len(skipped)} rows name ASes that are not in {AS_CONFIG} (first: line "
                     f"{skipped[0].line}); the 2019 layout builds only the ASes it lists, so do we")
    # the route servers' peering lists: upstream turns them into communities, a non-member is inert
    by_ixp: Dict[int, List[Dict]] = {}
    member_ases: Dict[int, Set[int]] = {}
    for m in members:
        member_ases.setdefault(m.ixp, set()).add(int(m.router.split(".")[0]))
    dropped: Dict[int, Set[int]] = {}
    for m in members:
        spec: Dict[str, Any] = {"router": m.router, **m.shaping}
        keep = [a for a in m.announce if a in member_ases[m.ixp]]
        for a in m.announce:
            if a not in member_ases[m.ixp]:
                dropped.setdefault(m.ixp, set()).add(a)
        if m.announce:
            spec["announce_to"] = keep
        key = f"ixps.{m.ixp}.members[{len(by_ixp.get(m.ixp, [])) + 1}]"
        origins[key] = m.row.where()
        origins[key + ".announce_to"] = m.row.where(m.col)
        by_ixp.setdefault(m.ixp, []).append(spec)
    for ixp, gone in sorted(dropped.items()):
        notes.append(f"{path}: IXP {ixp}: peering lists name ASes that are not its members "
                     f"({', '.join(map(str, sorted(gone)))}); upstream's route server ignores them, so do we")
    return links, by_ixp


def import_folder(folder: str, name: Optional[str] = None) -> Imported:
    """The topology of a mini-Internet configuration folder; raises ImportProblem."""
    if not os.path.isdir(folder):
        raise ImportProblem([f"{folder}: not a folder"])
    if not os.path.isfile(os.path.join(folder, AS_CONFIG)):
        raise ImportProblem([f"{folder}: has no {AS_CONFIG} (is this a mini-Internet config folder?)"])
    p = _Problems()
    notes: List[str] = []
    origins: Dict[str, str] = {}
    plan = read_plan(folder)           # ImportProblem (one line) for a plan we cannot follow
    servers = _read_servers(p, folder)
    ases = _read_as_config(p, folder, servers)
    for as_ in ases.values():
        if as_.kind == "AS":
            _read_routers(p, folder, as_, notes)
            _read_links(p, folder, as_, notes)
            _read_layer2(p, folder, as_, notes)
    links, members = _read_aslevel(p, folder, ases, notes, origins, plan)
    if p.lines:                  # a file shared by several ASes reports its problems once
        raise ImportProblem(list(dict.fromkeys(p.lines)))
    real = [a for a in ases.values() if a.kind == "AS"]
    if not real:
        raise ImportProblem([f"{AS_CONFIG}: defines no AS (only IXPs or nothing)"])
    rpki = [r for a in real for r in a.rpki]
    if rpki:
        notes.append(f"RPKI not emulated yet: {', '.join(rpki)} (imported as services of plain hosts)")

    topo: Dict[str, Any] = {"name": name or instance_name(os.path.basename(os.path.abspath(folder)))}
    if plan is not None:
        topo["addressing"] = {"plan": plan, "link_hosts": link_hosts_of(folder)}
    if servers:
        topo["servers"] = servers
    else:
        topo["servers"] = ["VM1"]
    topo["ases"] = {}
    for as_ in real:
        spec: Dict[str, Any] = {"server": as_.server or "VM1", "routers": as_.routers}
        origins[f"ases.{as_.asn}"] = as_.row.where()
        if not as_.configure:
            spec["configure"] = False
        if as_.links_file is not None and not as_.all_in_one:
            spec["links"] = as_.links
            for k, where in enumerate(as_.link_rows, start=1):
                origins[f"ases.{as_.asn}.links[{k}]"] = where
            if not as_.links and len(as_.routers) > 1:
                notes.append(f"AS {as_.asn}: {as_.links_file} has no link; its routers form the default ring")
                del spec["links"]
        if as_.services:
            spec["services"] = {r: s for r, s in as_.services.items()}
        if as_.layer2:
            spec["imported_layer2"] = as_.layer2.as_dict()
        topo["ases"][as_.asn] = spec
    ixps = {a.asn: a for a in ases.values() if a.kind == "IXP"}
    if ixps:
        topo["ixps"] = {asn: {"server": ixp.server or "VM1", "members": members.get(asn, [])}
                        for asn, ixp in ixps.items()}
        for asn, ixp in ixps.items():
            origins[f"ixps.{asn}"] = ixp.row.where()
    topo["links"] = links
    return Imported(topology=topo, notes=notes, origins=origins)
