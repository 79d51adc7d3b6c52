"""Load and validate a topology file.

Every problem is reported as one line `FILE: KEY.PATH: what is wrong` (or `FILE: line L, column C:
what is wrong` when the file is not readable YAML), all of them at once. List positions in key paths
are 1-based, so `links[3]` is link id 3.
"""
from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
import stat
import sys
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import yaml

from ..errors import UserError
from .addressing import (LINK_HOSTS, PLAN_MINET, PLANS, default_prefix6, is_mini, mini_ixp_lan, mini_link_addresses,
                         mini_member_ip, prefix_clashes, twin6)
from .layer2 import from_imported, layer2_problems, parse_layer2
from .model import (AS, ASLink, DEFAULT_IXP_SUBNET, DEFAULT_IXP_SUBNET6, ENCAP_OVERHEAD, encap_overhead, IXP, IXPMember, Shaping, ENCAPSULATIONS, ISOLATION_MODES, MAX_LINKS,
                    MAX_TOS_LINKS_PER_PAIR, RELATIONSHIPS, Controller, Endpoint, Fabric, Link,
                    Server, Topology, endpoint_mac, link_addresses, link_capacity, router_ifname)

# All patterns are used with fullmatch: `$` would let a trailing newline through.
NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?")
SERVER_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
ROUTER_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,15}")
ROUTER_REF_RE = re.compile(r"(0|[1-9][0-9]{0,9})\.([^.]+)")
IFNAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
SSH_RE = re.compile(r"(?:(?P<user>[A-Za-z0-9_.-]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)"
                    r"(?::(?P<port>[0-9]{1,5}))?")
LISTEN_RE = re.compile(r"\[(?P<h6>[^\]]*)\](?::(?P<p6>[0-9]{1,5}))?|(?P<h>[^:\[\]]+)(?::(?P<p>[0-9]{1,5}))?")
PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,39}")

MAX_ASN = 4294967294
MAX_FILE_BYTES = 16 << 20       # a topology of MAX_LINKS links is a few MB
MAX_NODES = 1_500_000           # YAML nodes in one file (scalars, lists, mappings)
MAX_ITEMS = MAX_LINKS           # entries in one list or mapping (no section may hold more)
MAX_MERGED = 10_000             # mapping entries copied by merge keys (<<), over the whole file
MAX_SERVERS = 0xFFFF            # a server's index is 16 bits of every datapath id
MIN_ROUTER_MTU = 1280           # IPv6 minimum: what must still fit through a tunnel

TOP_KEYS = ("name", "fabric", "controller", "servers", "ases", "links", "ixps", "addressing", "class")
ADDRESSING_KEYS = ("plan", "link_hosts")
SERVICES = ("dns", "matrix", "matrix_target", "measurement", "routinator", "krill")   # services.SERVICES
FABRIC_KEYS = ("isolation", "encapsulation", "underlay_mtu", "bfd_interval_ms", "link_subnet", "link_subnet6",
               "ipv6", "share_memory")
CONTROLLER_KEYS = ("ofp", "rest")
SERVER_KEYS = ("underlay_ip", "interface", "ssh")
AS_KEYS = ("server", "routers", "configure", "prefix", "links", "prefix6", "services", "imported_layer2", "layer2")
SHAPING_KEYS = ("throughput", "delay", "buffer")
LINK_KEYS = ("a", "b", "rel", "subnet") + SHAPING_KEYS
AS_LINK_KEYS = ("a", "b") + SHAPING_KEYS
IXP_KEYS = ("server", "members", "peering_lan", "route_server_asn", "peering_lan6")
IXP_MEMBER_KEYS = ("router", "announce_to") + SHAPING_KEYS
LIST_SERVER_NET = "192.0.2.0/24"     # `servers: [A, B]`: underlay addresses .1, .2, ... of TEST-NET-1
PREFIX6_LONGEST = 56            # an AS's IPv6 layout needs 256 /64s (addressing.as_addressing6)


class TopologyError(UserError):
    """A topology file is not valid; `problems` holds one formatted line per problem."""

    def __init__(self, problems: List[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _Problems:
    def __init__(self, source: str):
        self.source = source
        self.lines: List[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}")


# ---- describing values in messages ----------------------------------------------------------

def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _number(value: Union[int, float]) -> str:
    if isinstance(value, int) and abs(value) >= 10 ** 18:      # str() of a huge int can raise
        return _clip(f"{value:#x}", 24)
    return str(value)


def _describe(value: Any) -> str:
    """A short, single-line description of a value from the file."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {_number(value)}"
    if isinstance(value, str):
        return repr(_clip(value))
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):
        return f"the date {value}"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"


def _key(key: Any) -> str:
    """A mapping key as a key path component."""
    if isinstance(key, str) and PLAIN_KEY_RE.fullmatch(key):
        return key
    if key is None or isinstance(key, bool):
        return "null" if key is None else str(key).lower()
    if isinstance(key, (int, float)):
        return _number(key)
    return _describe(key)


def _join(path: str, key: Any) -> str:
    return f"{path}.{_key(key)}" if path else _key(key)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_asn(value: Any) -> bool:
    """An AS number (or an IXP's): an integer in 1..MAX_ASN."""
    return _is_int(value) and 1 <= value <= MAX_ASN


# ---- reading YAML ---------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader whose bad scalars (`!!bool maybe`, `2001-02-30`) fail like any YAML error: with a position,
    and which stops at the hard limits instead of building whatever the file describes: MAX_NODES nodes,
    MAX_ITEMS entries in a list or mapping, MAX_MERGED entries copied by merge keys (a merge-key bomb
    doubles them at every level)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._nodes = 0
        self._merged = 0

    def compose_node(self, parent, index):
        if not self.check_event(yaml.AliasEvent):
            self._nodes += 1
            mark = self.peek_event().start_mark
            if self._nodes > MAX_NODES:
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_NODES} YAML nodes: too large "
                                                  "for a topology", mark)
            count = index if isinstance(parent, yaml.SequenceNode) else (
                len(parent.value) if isinstance(parent, yaml.MappingNode) and index is None else 0)
            if isinstance(count, int) and count >= MAX_ITEMS:
                raise yaml.composer.ComposerError(None, None, f"a list or mapping of more than {MAX_ITEMS} "
                                                  f"entries (at most {MAX_LINKS} links fit the OpenFlow port "
                                                  "range; no other section may be larger)", mark)
        return super().compose_node(parent, index)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Merge keys (<<) resolved as PyYAML does, but counting what they copy."""
        merge: List[Tuple[yaml.Node, yaml.Node]] = []
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag == _MERGE_TAG:
                del node.value[index]
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                parts = []
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            f"a merge key (<<) takes a mapping or a list of mappings, not {source.id}",
                            source.start_mark)
                    self.flatten_mapping(source)
                    self._merged += len(source.value)
                    if self._merged > MAX_MERGED:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"merge keys (<<) copy more than {MAX_MERGED} entries", key_node.start_mark)
                    parts.append(source.value)
                for part in reversed(parts):
                    merge.extend(part)
            elif key_node.tag == "tag:yaml.org,2002:value":
                key_node.tag = "tag:yaml.org,2002:str"
                index += 1
            else:
                index += 1
        if merge:
            node.value = merge + node.value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception:   # PyYAML's constructors raise KeyError, IndexError, AttributeError... on odd scalars
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            value = _describe(node.value) if isinstance(node, yaml.ScalarNode) else "this node"
            raise yaml.constructor.ConstructorError(None, None, f"cannot read {value} as {tag}",
                                                    node.start_mark) from None


def _find_duplicate_keys(p: _Problems, loader: _Loader, node: yaml.Node, path: str, seen: Set[int]) -> None:
    if id(node) in seen:            # an alias: its node was checked where the anchor is
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value, start=1):
            _find_duplicate_keys(p, loader, item, f"{path}[{i}]", seen)
    elif isinstance(node, yaml.MappingNode):
        first: Dict[Any, Tuple[Any, int]] = {}         # key -> (the key as first written, its line)
        for key_node, value_node in node.value:
            sub = path
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                key = loader.construct_object(key_node, deep=True)
                sub = _join(path, key)
                line = key_node.start_mark.line + 1
                if key in first:
                    old, old_line = first[key]
                    same = "" if type(old) is type(key) else f"{_key(key)} equals {_key(old)}; "   # yes == 1
                    p.add(sub, f"duplicate key ({same}lines {old_line} and {line})")
                else:
                    first[key] = (key, line)
            _find_duplicate_keys(p, loader, value_node, sub, seen)


def _yaml_error(p: _Problems, exc: yaml.YAMLError, text: str) -> None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    problem = (", ".join(part for part in parts if part)
               or str(exc).split("\n", 1)[0] or type(exc).__name__).replace("\n", " ")
    if mark is not None:
        p.add("", f"line {mark.line + 1}, column {mark.column + 1}: {problem}")
    elif isinstance(exc, yaml.reader.ReaderError):       # a character YAML refuses; position is in `text`
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        p.add("", f"line {line}, column {column}: {problem}")
    else:
        p.add("", problem)


def _read_yaml(p: _Problems, text: str) -> Any:
    """The single YAML document in `text`, or None with the problems added to `p`."""
    try:
        loader = _Loader(text)          # refuses non-printable characters right away
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _find_duplicate_keys(p, loader, node, "", set())
            return None if p.lines else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        _yaml_error(p, exc, text)
    except RecursionError:
        p.add("", "nested too deeply to read")
    return None


# ---- field helpers --------------------------------------------------------------------------

def _check_keys(p: _Problems, path: str, data: Dict, allowed: Tuple[str, ...], required: Tuple[str, ...] = ()) -> None:
    for key in data:
        if key not in allowed:
            p.add(_join(path, key), f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in data:
            p.add(_join(path, key), "is required")


def _mapping(p: _Problems, path: str, value: Any) -> Optional[Dict]:
    if isinstance(value, dict):
        return value
    p.add(path, f"must be a mapping, not {_describe(value)}")
    return None


def _entry(p: _Problems, path: str, value: Any, allowed: Tuple[str, ...],
           required: Tuple[str, ...] = ()) -> Optional[Dict]:
    """`value` as a mapping with its keys checked (a section or one entry of one), or None when it
    is not a mapping (reported)."""
    data = _mapping(p, path, value)
    if data is not None:
        _check_keys(p, path, data, allowed, required)
    return data


def _choice(p: _Problems, path: str, value: Any, choices: Tuple[str, ...]) -> Optional[str]:
    if isinstance(value, str) and value in choices:
        return value
    p.add(path, f"{_describe(value)} is not one of {', '.join(choices)}")
    return None


def _int(p: _Problems, path: str, value: Any, lo: int, hi: int) -> Optional[int]:
    if _is_int(value) and lo <= value <= hi:
        return value
    p.add(path, f"{_describe(value)} is not an integer in {lo}..{hi}")
    return None


def _network(p: _Problems, path: str, value: Any, version: int, longest: int) -> Optional[str]:
    """An IPv`version` network of prefix length /`longest` or shorter, in its canonical form."""
    try:
        net = ipaddress.ip_network(value, strict=False) if isinstance(value, str) else None
    except ValueError:
        net = None
    if net is None or net.version != version:
        p.add(path, f"{_describe(value)} is not an IPv{version} network (ADDRESS/LENGTH)")
    elif ipaddress.ip_interface(value).ip != net.network_address:
        p.add(path, f"{_describe(value)} has host bits set (the network is {net})")
    elif net.prefixlen > longest:
        p.add(path, f"{net} is too small: the prefix length must be /{longest} or shorter")
    else:
        return str(net)
    return None


def listen_address(value: Any, default_port: int) -> Tuple[Optional[Tuple[str, int]], str]:
    """((host, port), "") for HOST[:PORT] (IPv6 as [ADDR][:PORT]), else (None, what is wrong).

    Wildcards are refused: listeners stay on loopback or the management address. The topology's
    controller.ofp/rest and `minet controller --ofp/--rest` share these rules."""
    m = LISTEN_RE.fullmatch(value) if isinstance(value, str) else None
    if not m:
        return None, f"{_describe(value)} is not HOST:PORT (IPv6 as [ADDRESS]:PORT)"
    host = m.group("h6") if m.group("h6") is not None else m.group("h")
    port = int(m.group("p6") or m.group("p") or default_port)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None, f"{_describe(host)} is not an IP address (listeners bind to an address, not a name)"
    shown = f"[{addr}]" if addr.version == 6 else str(addr)
    mapped = getattr(addr, "ipv4_mapped", None)
    if addr.is_unspecified or (mapped is not None and mapped.is_unspecified):
        return None, f"{shown} is a wildcard address; listen on loopback or the management address"
    if not 1 <= port <= 65535:
        return None, f"port {port} is not in 1..65535"
    return (str(addr), port), ""


def _listen(p: _Problems, path: str, value: Any, default_port: int) -> Optional[Tuple[str, int]]:
    hostport, problem = listen_address(value, default_port)
    if problem:
        p.add(path, problem)
    return hostport


# ---- link shaping ---------------------------------------------------------------------------

_QUANTITY_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)")
RATE_UNITS = {"bit": 1, "bps": 1, "kbit": 10 ** 3, "mbit": 10 ** 6, "gbit": 10 ** 9,
              "kbps": 8 * 10 ** 3, "mbps": 8 * 10 ** 6, "gbps": 8 * 10 ** 9}
TIME_UNITS = {"us": 1, "usec": 1, "ms": 1000, "msec": 1000, "s": 10 ** 6, "sec": 10 ** 6}
SIZE_UNITS = {"b": 1, "kb": 1024, "k": 1024, "mb": 1024 * 1024, "m": 1024 * 1024}
MAX_RATE_BPS = 100 * 10 ** 9
MAX_DELAY_US = 10 * 10 ** 6
MAX_BUFFER_BYTES = 1 << 30


def parse_quantity(value: Any, units: Dict[str, int], bare: int) -> Optional[int]:
    """An integer amount of the base unit from `10mbit` / `2.5ms` / `64kb`, or a bare number
    (times `bare`); None if it is neither."""
    if _is_int(value) or isinstance(value, float):
        number, unit = float(value), ""
    elif isinstance(value, str) and (m := _QUANTITY_RE.fullmatch(value.strip())):
        number, unit = float(m.group(1)), m.group(2).lower()
    else:
        return None
    if unit and unit not in units:
        return None
    amount = number * (units[unit] if unit else bare)
    return int(round(amount)) if amount == amount and amount < 2 ** 62 else None


def _amount(p: _Problems, path: str, value: Any, units: Dict[str, int], bare: int, lo: int, hi: int,
            what: str) -> Optional[int]:
    """parse_quantity of `value` within lo..hi, else None with `<value> is not <what>` reported."""
    amount = parse_quantity(value, units, bare)
    if amount is None or not lo <= amount <= hi:
        p.add(path, f"{_describe(value)} is not {what}")
        return None
    return amount


def _shaping(p: _Problems, path: str, spec: Dict) -> Optional[Shaping]:
    """throughput (bare number: kbit/s, as the mini-Internet writes it), delay (bare: ms),
    buffer (a size, bare: bytes, or a time: the tbf latency)."""
    kw: Dict[str, Any] = {}
    if spec.get("throughput") is not None:
        kw["rate_bps"] = _amount(p, f"{path}.throughput", spec["throughput"], RATE_UNITS, 1000, 8000, MAX_RATE_BPS,
                                 "a rate in 8kbit..100gbit (e.g. 10mbit, 1gbit; a bare number is kbit/s)")
    if spec.get("delay") is not None:
        kw["delay_us"] = _amount(p, f"{path}.delay", spec["delay"], TIME_UNITS, 1000, 0, MAX_DELAY_US,
                                 "a delay in 0..10s (e.g. 5ms, 250us; a bare number is ms)")
    if spec.get("buffer") is not None:
        raw = spec["buffer"]
        unit = _QUANTITY_RE.fullmatch(raw.strip()).group(2).lower() if (
            isinstance(raw, str) and _QUANTITY_RE.fullmatch(raw.strip())) else ""
        if unit in TIME_UNITS:
            kw["latency_us"] = _amount(p, f"{path}.buffer", raw, TIME_UNITS, 1, 1, MAX_DELAY_US,
                                       "a queueing time in 1us..10s")
        else:
            kw["buffer_bytes"] = _amount(p, f"{path}.buffer", raw, SIZE_UNITS, 1, 1500, MAX_BUFFER_BYTES,
                                         "a buffer: a size in 1500b..1gb (e.g. 64kb; a bare number is bytes) "
                                         "or a time (e.g. 50ms)")
        if spec.get("throughput") is None:
            p.add(f"{path}.buffer", "needs a throughput (the buffer is the queue of the rate limiter)")
    shaping = Shaping(**kw)
    return shaping if shaping else None


# ---- the loader -----------------------------------------------------------------------------

def load_topology(path: str) -> Topology:
    """Read and validate `path`; raise TopologyError with every problem found."""
    source = os.path.basename(path)
    try:
        # stat first: opening a FIFO would wait for a writer, and /dev/zero never ends
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise TopologyError([f"{source}: cannot read: Is a directory"])
        if not stat.S_ISREG(mode):
            raise TopologyError([f"{source}: not a regular file (a pipe or a device is not read)"])
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TopologyError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise TopologyError([f"{source}: larger than {MAX_FILE_BYTES} bytes; a topology is at most that"])
    return parse_topology(raw, source)


def parse_topology(text: Union[str, bytes], source: str = "<topology>") -> Topology:
    """Validate a topology given as YAML text (bytes must be UTF-8); raise TopologyError with every problem."""
    p = _Problems(source)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TopologyError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    data = _read_yaml(p, text)
    topo = None if p.lines else _build(p, data, source)
    if p.lines:
        raise TopologyError(p.lines)
    assert topo is not None
    return topo


def _build(p: _Problems, data: Any, source: str) -> Optional[Topology]:
    if data is None:
        p.add("", f"the file is empty; a topology is a mapping with keys {', '.join(TOP_KEYS)}")
        return None
    if not isinstance(data, dict):
        p.add("", f"a topology is a mapping with keys {', '.join(TOP_KEYS)}, not {_describe(data)}")
        return None
    _check_keys(p, "", data, TOP_KEYS, ("name", "servers", "ases"))

    name = data.get("name")
    if "name" in data and not (isinstance(name, str) and NAME_RE.fullmatch(name)):
        p.add("name", f"{_describe(name)} is not a name: 1-12 characters of a-z, 0-9 and '-', "
                      "not starting or ending with '-'")

    fabric = _fabric(p, data.get("fabric"))
    controller = _controller(p, data.get("controller"))
    servers, declared = _servers(p, data["servers"]) if "servers" in data else ({}, None)
    fabric = _underlay_family(p, data.get("fabric"), servers, fabric)
    plan, link_hosts = _plan(p, data.get("addressing"))
    ases, known = _ases(p, data["ases"], servers, declared, fabric, plan) if "ases" in data else ({}, None)
    links = _links(p, data.get("links"), ases, known, servers, fabric, plan, link_hosts)
    ixps = _ixps(p, data.get("ixps"), ases, known, declared, servers, fabric, plan)
    if is_mini(plan):
        _check_mini_overlaps(p, ases, links, ixps)
    else:
        _check_subnet_overrides(p, data.get("links"), ases, links, fabric)
    from ..classroom import settings as class_settings        # the students' doors (docs/class.md)
    classroom = class_settings.parse(data.get("class"), ases, p.add)
    if p.lines:
        return None
    topo = Topology(name=name, servers=servers, ases=ases, links=tuple(links), fabric=fabric,
                    controller=controller, source=source, ixps=ixps, plan=plan, classroom=classroom)
    p.lines += layer2_problems(topo)          # layer-2 numbering (topology/layer2.py)
    if topo.ixp_segments:                    # members on other servers than their IXP
        if len(topo.link_by_id) > MAX_LINKS:
            p.add("ixps", f"{len(topo.links)} links and {len(topo.ixp_segments)} IXP members on other servers "
                          f"than their IXP; at most {MAX_LINKS} fit the OpenFlow port range")
        if fabric.isolation == "tos":
            _check_tos_capacity(p, list(topo.tunnelled), servers, path="ixps", already=list(links))
    return None if p.lines else topo


def _plan(p: _Problems, value: Any) -> Tuple[str, str]:
    """`addressing: {plan: minet | mini-internet | mini-internet-2019, link_hosts: asn | ends}`
    (addressing.PLANS; link_hosts: how a link's `subnet:` is numbered in the mini-Internet plans)."""
    data = None if value is None else _entry(p, "addressing", value, ADDRESSING_KEYS)
    if not data:
        return PLAN_MINET, "asn"
    plan = (_choice(p, "addressing.plan", data["plan"], PLANS) or PLAN_MINET) if "plan" in data else PLAN_MINET
    hosts = "asn"
    if "link_hosts" in data:
        hosts = _choice(p, "addressing.link_hosts", data["link_hosts"], LINK_HOSTS) or "asn"
        if not is_mini(plan):
            p.add("addressing.link_hosts", "applies to the mini-internet plans only")
    return plan, hosts


def _check_mini_overlaps(p: _Problems, ases: Dict[int, AS], links: List[Link], ixps: Dict[int, IXP]) -> None:
    """A mini-Internet plan: inter-AS subnets and IXP LANs must not repeat or fall into an AS's /8."""
    seen: Dict[ipaddress.IPv4Network, str] = {}
    for key, net in ([(f"links[{l.id}].subnet", ipaddress.ip_interface(f"{l.a.ip}/{l.prefixlen}").network)
                      for l in links] +
                     [(f"ixps.{n}.peering_lan", ipaddress.ip_network(x.peering_lan)) for n, x in ixps.items()]):
        for other_key, onet in ((k, v) for v, k in seen.items()):
            if net.overlaps(onet):
                p.add(key, f"{net} overlaps {other_key} ({onet})")
        seen.setdefault(net, key)
        owner = int(str(net.network_address).split(".")[0])
        if owner in ases:
            p.add(key, f"{net} lies in AS {owner}'s own {owner}.0.0.0/8")


def _check_subnet_overrides(p: _Problems, raw: Any, ases: Dict[int, AS], links: List[Link], fabric: Fabric) -> None:
    """minet plan: a link's own `subnet:` must not overlap another link's, an AS prefix or the link subnet."""
    if not isinstance(raw, list):
        return
    from .addressing import as_prefix
    given = {l.id: ipaddress.ip_interface(f"{l.a.ip}/{l.prefixlen}").network for l in links
             if isinstance(raw[l.id - 1], dict) and raw[l.id - 1].get("subnet") is not None}
    if not given:
        return
    others = [(f"links[{l.id}]", ipaddress.ip_interface(f"{l.a.ip}/{l.prefixlen}").network) for l in links
              if l.id not in given]
    others.append(("fabric.link_subnet", ipaddress.ip_network(fabric.link_subnet)))
    others += [(f"the prefix of AS {asn}", ipaddress.ip_network(as_prefix(a))) for asn, a in ases.items()
               if as_prefix(a)]
    done: List[Tuple[str, Any]] = []
    for lid, net in given.items():
        for what, onet in done + others:
            if net.overlaps(onet):
                p.add(f"links[{lid}].subnet", f"{net} overlaps {what} ({onet})")
        done.append((f"links[{lid}].subnet", net))


def _services(p: _Problems, path: str, value: Any, names: Optional[List[str]]) -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
    """`services: {ROUTER: [dns, matrix, matrix_target, measurement]}` (the mini-Internet's)."""
    data = _mapping(p, path, value)
    out = []
    for router, items in (data or {}).items():
        rpath = _join(path, router)
        if names is not None and router not in names:
            p.add(rpath, f"router {router} is not in this AS's routers")
            continue
        if not isinstance(items, list) or not all(isinstance(i, str) and i in SERVICES for i in items):
            p.add(rpath, f"{_describe(items)} is not a list of services ({', '.join(SERVICES)})")
            continue
        out.append((router, tuple(items)))
    return tuple(out)


def _fabric(p: _Problems, value: Any) -> Fabric:
    data = None if value is None else _entry(p, "fabric", value, FABRIC_KEYS)
    if data is None:
        return Fabric()
    kw: Dict[str, Any] = {}
    if "isolation" in data:
        kw["isolation"] = _choice(p, "fabric.isolation", data["isolation"], ISOLATION_MODES) or "key"
    if "encapsulation" in data:
        kw["encapsulation"] = _choice(p, "fabric.encapsulation", data["encapsulation"], ENCAPSULATIONS) or "gre"
    if "underlay_mtu" in data:
        mtu = data["underlay_mtu"]
        encap = kw.get("encapsulation", "gre")
        lo = MIN_ROUTER_MTU + ENCAP_OVERHEAD[encap]
        if _is_int(mtu) and mtu < lo:
            p.add("fabric.underlay_mtu", f"{mtu} is too small: {encap} needs at least {lo} "
                                         f"({MIN_ROUTER_MTU} + {ENCAP_OVERHEAD[encap]} bytes of overhead)")
        else:
            kw["underlay_mtu"] = _int(p, "fabric.underlay_mtu", mtu, lo, 65535) or 1500
    if "bfd_interval_ms" in data:
        kw["bfd_interval_ms"] = _int(p, "fabric.bfd_interval_ms", data["bfd_interval_ms"], 10, 60000) or 100
    for key in ("ipv6", "share_memory"):
        if key in data:
            if isinstance(data[key], bool):
                kw[key] = data[key]
            else:
                p.add(f"fabric.{key}", f"{_describe(data[key])} is not true or false")
    for key, version, longest in (("link_subnet", 4, 29), ("link_subnet6", 6, 63)):
        if key in data:
            net = _network(p, f"fabric.{key}", data[key], version, longest)
            if net is not None:
                kw[key] = net
    return Fabric(**kw)


def _controller(p: _Problems, value: Any) -> Controller:
    data = None if value is None else _entry(p, "controller", value, CONTROLLER_KEYS)
    if data is None:
        return Controller()
    kw: Dict[str, Any] = {}
    for key, default_port in (("ofp", 6653), ("rest", 8080)):
        hp = _listen(p, f"controller.{key}", data[key], default_port) if key in data else None
        if hp:
            kw[f"{key}_host"], kw[f"{key}_port"] = hp
    controller = Controller(**kw)
    host, port = controller.ofp_host, controller.ofp_port
    if (host, port) == (controller.rest_host, controller.rest_port):
        this, other = ("rest", "ofp") if "rest" in data else ("ofp", "rest")
        shown = f"[{host}]" if ":" in host else host
        p.add(f"controller.{this}", f"{shown}:{port} is also the controller.{other} listener")
    return controller


def _underlay_ip(p: _Problems, path: str, value: Any) -> Optional[str]:
    """An IPv4 or IPv6 unicast address (IPv6: global or unique-local; a link-local one needs a scope
    that a tunnel's remote_ip cannot carry)."""
    try:
        addr = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if addr is None:
        p.add(path, f"{_describe(value)} is not an IPv4 or IPv6 address")
    elif addr.is_unspecified or addr.is_multicast or addr == ipaddress.IPv4Address("255.255.255.255"):
        p.add(path, f"{addr} is not a unicast address")
    elif addr.version == 6 and addr.is_link_local:
        p.add(path, f"{addr} is link-local; an IPv6 underlay needs global or unique-local addresses")
    elif addr.version == 6 and addr.ipv4_mapped is not None:
        p.add(path, f"{addr} is IPv4-mapped; write the IPv4 address {addr.ipv4_mapped}")
    else:
        return str(addr)
    return None


def _underlay_family(p: _Problems, raw_fabric: Any, servers: Dict[str, Server], fabric: Fabric) -> Fabric:
    """The fabric with the servers' underlay IP version; every server must use the same one (a
    tunnel does not cross IP versions), and underlay_mtu must leave room for that outer header."""
    if not servers:
        return fabric
    first = next(iter(servers.values()))
    family = ipaddress.ip_address(first.underlay_ip).version
    for server in servers.values():
        version = ipaddress.ip_address(server.underlay_ip).version
        if version != family:
            p.add(f"servers.{server.name}.underlay_ip",
                  f"{server.underlay_ip} is IPv{version} but servers.{first.name}.underlay_ip is IPv{family}; "
                  f"every server's underlay must use the same IP version")
    if family == 4:
        return fabric
    mtu = raw_fabric.get("underlay_mtu") if isinstance(raw_fabric, dict) else None
    lo4, lo6 = (MIN_ROUTER_MTU + encap_overhead(fabric.encapsulation, f) for f in (4, 6))
    if _is_int(mtu) and lo4 <= mtu < lo6:     # below lo4 is already reported by _fabric
        p.add("fabric.underlay_mtu", f"{mtu} is too small: {fabric.encapsulation} over an IPv6 underlay "
                                     f"needs at least {lo6} ({MIN_ROUTER_MTU} + {lo6 - MIN_ROUTER_MTU} bytes "
                                     f"of overhead)")
    return dataclasses.replace(fabric, underlay_family=6)


def _servers(p: _Problems, value: Any) -> Tuple[Dict[str, Server], Optional[Set[str]]]:
    """The valid servers, and every well-formed name declared (None if the section is unusable)."""
    if isinstance(value, list):
        value = _server_list(p, value)
        if value is None:
            return {}, None
    if value is not None and not isinstance(value, dict):
        p.add("servers", f"must be a mapping or a list of server names, not {_describe(value)}")
        return {}, None
    data = value or {}
    if not data:
        p.add("servers", "must name at least one server")
    if len(data) > MAX_SERVERS:
        p.add("servers", f"{len(data)} servers; at most {MAX_SERVERS} fit a datapath id")
        return {}, None
    out: Dict[str, Server] = {}
    declared = {name for name in data if isinstance(name, str) and SERVER_RE.fullmatch(name)}
    seen_ips: Dict[str, str] = {}
    for index, (name, spec) in enumerate(data.items(), start=1):
        path = _join("servers", name)
        if not (isinstance(name, str) and SERVER_RE.fullmatch(name)):
            p.add(path, f"{_describe(name)} is not a server name "
                        "(a letter, then up to 31 letters, digits, '_' or '-')")
            continue
        spec = _entry(p, path, spec, SERVER_KEYS, ("underlay_ip",))
        if spec is None:
            continue
        ip = _underlay_ip(p, f"{path}.underlay_ip", spec["underlay_ip"]) if "underlay_ip" in spec else None
        if ip is not None:
            if ip in seen_ips:
                p.add(f"{path}.underlay_ip", f"{ip} is already the underlay address of {seen_ips[ip]}")
            seen_ips.setdefault(ip, name)
        iface = spec.get("interface")
        if iface is not None and not (isinstance(iface, str) and IFNAME_RE.fullmatch(iface)):
            p.add(f"{path}.interface", f"{_describe(iface)} is not an interface name (1-15 characters)")
        ssh = spec.get("ssh")
        if ssh is not None:
            m = SSH_RE.fullmatch(ssh) if isinstance(ssh, str) else None
            if not m or (m.group("port") and not 1 <= int(m.group("port")) <= 65535):
                p.add(f"{path}.ssh", f"{_describe(ssh)} is not [USER@]HOST[:PORT]")
        if ip is not None:
            out[name] = Server(name=name, index=index, underlay_ip=ip, interface=iface, ssh=ssh)
    return out, declared


def _server_list(p: _Problems, names: List[Any]) -> Optional[Dict[Any, Any]]:
    """`servers: [VM1, VM2]`: names only; underlay addresses are numbered from LIST_SERVER_NET."""
    net = ipaddress.ip_network(LIST_SERVER_NET)
    if len(names) > net.num_addresses - 2:
        p.add("servers", f"{len(names)} servers in a list; at most {net.num_addresses - 2} "
                         "(give underlay addresses in a mapping for more)")
        return None
    out: Dict[Any, Any] = {}
    for i, name in enumerate(names, start=1):
        if not isinstance(name, (str, int)) or isinstance(name, bool):
            p.add(f"servers[{i}]", f"{_describe(name)} is not a server name")
            return None
        if name in out:
            p.add(f"servers[{i}]", f"server {name} is listed twice")
            return None
        out[name] = {"underlay_ip": str(net.network_address + i)}
    return out


# Routers declared per AS number, so that a link to an AS or router that is declared but broken is
# not reported a second time as undefined. None: unknown (the section or the router list is broken).
_Known = Optional[Dict[int, Optional[Set[str]]]]


def _ases(p: _Problems, value: Any, servers: Dict[str, Server], declared_servers: Optional[Set[str]],
          fabric: Fabric, plan: str = PLAN_MINET) -> Tuple[Dict[int, AS], _Known]:
    data = {} if value is None else _mapping(p, "ases", value)
    if data is None:
        return {}, None
    if not data:
        p.add("ases", "must define at least one AS")
    out: Dict[int, AS] = {}
    known: Dict[int, Optional[Set[str]]] = {}
    for asn, spec in data.items():
        path = _join("ases", asn)
        if _is_int(asn):
            known[asn] = None
        if not _numbered(p, path, asn, "an AS"):
            continue
        spec = _entry(p, path, spec, AS_KEYS, ("server", "routers"))
        if spec is None:
            continue
        server = _server_of(p, path, spec, declared_servers)
        names = _routers(p, f"{path}.routers", spec["routers"]) if "routers" in spec else None
        if names is not None:
            known[asn] = set(names)
        configure = spec.get("configure", True)
        if not isinstance(configure, bool):
            p.add(f"{path}.configure", f"{_describe(configure)} is not true or false")
        prefix = _network(p, f"{path}.prefix", spec["prefix"], 4, 24) if spec.get("prefix") is not None else None
        intra = _as_links(p, f"{path}.links", spec["links"], names) if "links" in spec else None
        prefix6 = (_network(p, f"{path}.prefix6", spec["prefix6"], 6, PREFIX6_LONGEST)
                   if spec.get("prefix6") is not None else None)
        if is_mini(plan):
            for key in ("prefix", "prefix6"):
                if spec.get(key) is not None:
                    p.add(f"{path}.{key}", f"is set by the {plan} addressing plan (AS X owns X.0.0.0/8); remove it")
            if not 1 <= asn <= 254:
                p.add(path, f"the {plan} addressing plan numbers ASes 1..254 only (AS X owns X.0.0.0/8)")
        services = _services(p, f"{path}.services", spec["services"], names) if "services" in spec else ()
        layer2 = spec.get("imported_layer2")
        if layer2 is not None and not isinstance(layer2, dict):
            p.add(f"{path}.imported_layer2", f"must be a mapping, not {_describe(layer2)}")
            layer2 = None
        l2 = parse_layer2(p, f"{path}.layer2", spec["layer2"], names, sys.modules[__name__]) \
            if spec.get("layer2") is not None else None
        if l2 is None and spec.get("layer2") is None and layer2 and names:
            # an imported folder's layer 2 comes up as upstream builds it (a `layer2` section, when
            # written, wins); configure: false leaves it wired but unconfigured (provision/layer2.py)
            l2 = parse_layer2(p, f"{path}.imported_layer2", from_imported(layer2, names), names,
                              sys.modules[__name__])
        if isinstance(server, str) and server in servers and names:
            out[asn] = AS(asn=asn, server=server, routers=tuple(names), configure=configure is not False,
                          prefix=prefix, links=intra, prefix6=prefix6, plan=plan, services=services,
                          imported_layer2=layer2, layer2=l2)
    _check_prefix_overlaps(p, out, fabric)
    return out, known


def _numbered(p: _Problems, path: str, number: Any, what: str) -> bool:
    """Whether the key of an AS or IXP entry is a number it can have; the problem reported if not."""
    if _is_asn(number):
        return True
    p.add(path, f"{_describe(number)} is not {what} number (an integer in 1..{MAX_ASN})")
    return False


def _server_of(p: _Problems, path: str, spec: Dict[Any, Any], declared_servers: Optional[Set[str]]) -> Any:
    """The `server` of an AS or IXP (None if it has none), its problems added: a server name, and
    one defined under servers when they are declared."""
    server = spec.get("server")
    if "server" in spec:
        if not (isinstance(server, str) and SERVER_RE.fullmatch(server)):
            p.add(f"{path}.server", f"{_describe(server)} is not a server name")
        elif declared_servers is not None and server not in declared_servers:
            p.add(f"{path}.server", f"server {server} is not defined under servers")
    return server


def _routers(p: _Problems, path: str, value: Any) -> Optional[List[str]]:
    """The router names of an AS, or None if the list is not usable."""
    if not isinstance(value, list):
        p.add(path, f"must be a list of router names, not {_describe(value)}")
        return None
    if not value:
        p.add(path, "must list at least one router")
        return None
    names: List[str] = []
    for i, r in enumerate(value, start=1):
        if not (isinstance(r, str) and ROUTER_RE.fullmatch(r)):
            p.add(f"{path}[{i}]", f"{_describe(r)} is not a router name "
                                  "(a letter, then up to 15 letters, digits, '_' or '-')")
        elif r in names:
            p.add(f"{path}[{i}]", f"router {r} is listed twice")
        else:
            names.append(r)
    return names


def _as_links(p: _Problems, path: str, value: Any, names: Optional[List[str]]) -> Optional[Tuple[ASLink, ...]]:
    """Explicit intra-AS links `[{a: R1, b: R2, throughput..}]`; None when absent or unusable."""
    if value is None:
        return None
    if not isinstance(value, list):
        p.add(path, f"must be a list of intra-AS links {{a: ROUTER, b: ROUTER}}, not {_describe(value)}")
        return None
    out: List[ASLink] = []
    seen: Dict[frozenset, int] = {}
    for i, spec in enumerate(value, start=1):
        lpath = f"{path}[{i}]"
        spec = _entry(p, lpath, spec, AS_LINK_KEYS, ("a", "b"))
        if spec is None:
            continue
        ends = []
        for side in ("a", "b"):
            if side not in spec:
                continue
            r = spec[side]
            if not (isinstance(r, str) and ROUTER_RE.fullmatch(r)):
                p.add(f"{lpath}.{side}", f"{_describe(r)} is not a router name")
            elif names is not None and r not in names:
                p.add(f"{lpath}.{side}", f"router {r} is not in this AS's routers")
            else:
                ends.append(r)
        shaping = _shaping(p, lpath, spec)
        if len(ends) != 2:
            continue
        if ends[0] == ends[1]:
            p.add(lpath, f"joins router {ends[0]} to itself")
            continue
        pair = frozenset(ends)
        if pair in seen:
            p.add(lpath, f"{ends[0]} and {ends[1]} are already joined by {path}[{seen[pair]}]")
            continue
        seen[pair] = i
        out.append(ASLink(a=ends[0], b=ends[1], shaping=shaping))
    if names is not None and len(out) == len(value) and len(names) > 1:
        _check_connected(p, path, names, out)
    return tuple(out)


def _check_connected(p: _Problems, path: str, names: List[str], links: List[ASLink]) -> None:
    """OSPF and iBGP over loopbacks need every router of an AS reachable inside it."""
    adj: Dict[str, Set[str]] = {n: set() for n in names}
    for l in links:
        adj[l.a].add(l.b)
        adj[l.b].add(l.a)
    seen, todo = {names[0]}, [names[0]]
    while todo:
        for nxt in adj[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    cut = [n for n in names if n not in seen]
    if cut:
        p.add(path, f"router{'s' if len(cut) > 1 else ''} {', '.join(cut[:5])}"
                    f"{' ...' if len(cut) > 5 else ''} cannot reach {names[0]} over these links")


def _check_prefix_overlaps(p: _Problems, ases: Dict[int, AS], fabric: Fabric) -> None:
    """Explicit prefixes (derived ones: addressing.addressing_problems), by the same check."""
    for attr, key, link_subnet, v6 in (("prefix", "prefix", fabric.link_subnet, ""),
                                      ("prefix6", "prefix6", fabric.link_subnet6, "6")):
        nets = [(asn, ipaddress.ip_network(getattr(a, attr))) for asn, a in ases.items() if getattr(a, attr)]
        for asn, net, other, onet in prefix_clashes(nets, ipaddress.ip_network(link_subnet)):
            if other is None:
                p.add(f"ases.{asn}.{key}", f"{net} overlaps fabric.link_subnet{v6} ({onet})")
            else:
                p.add(f"ases.{asn}.{key}", f"{net} overlaps the {'IPv6 ' if v6 else ''}prefix of AS {other} ({onet})")


def _router_ref(p: _Problems, path: str, value: Any, known: _Known) -> Optional[Tuple[int, str]]:
    """(asn, router) from `<asn>.<NAME>`; None if malformed (reported) or not defined (reported unless known broken)."""
    m = ROUTER_REF_RE.fullmatch(value) if isinstance(value, str) else None
    if not m or not ROUTER_RE.fullmatch(m.group(2)):
        p.add(path, f"{_describe(value)} is not a router reference <asn>.<NAME>")
        return None
    asn, name = int(m.group(1)), m.group(2)
    if known is not None and (asn not in known or (known[asn] is not None and name not in known[asn])):
        p.add(path, f"router {value} is not defined")
        return None
    return asn, name


def _links(p: _Problems, value: Any, ases: Dict[int, AS], known: _Known, servers: Dict[str, Server],
           fabric: Fabric, plan: str = PLAN_MINET, link_hosts: str = "asn") -> List[Link]:
    if value is None:
        return []
    if not isinstance(value, list):
        p.add("links", f"must be a list of links, not {_describe(value)}")
        return []
    if len(value) > MAX_LINKS:
        p.add("links", f"{len(value)} links; at most {MAX_LINKS} fit the OpenFlow port range")
        return []
    if not is_mini(plan) and len(value) > link_capacity(fabric):
        p.add("links", f"{len(value)} links do not fit fabric.link_subnet/link_subnet6 "
                       f"(room for {link_capacity(fabric)})")
        return []
    out: List[Link] = []
    for link_id, spec in enumerate(value, start=1):
        path = f"links[{link_id}]"
        spec = _entry(p, path, spec, LINK_KEYS, ("a", "b", "rel"))
        if spec is None:
            continue
        a = _router_ref(p, f"{path}.a", spec["a"], known) if "a" in spec else None
        b = _router_ref(p, f"{path}.b", spec["b"], known) if "b" in spec else None
        rel = _choice(p, f"{path}.rel", spec["rel"], RELATIONSHIPS) if "rel" in spec else None
        shaping = _shaping(p, path, spec)
        subnet = None
        if spec.get("subnet") is not None:
            subnet = _network(p, f"{path}.subnet", spec["subnet"], 4, 30)
            if subnet is None:
                continue
        if a and b and a[0] == b[0]:
            p.add(path, f"{spec['a']} and {spec['b']} are both in AS {a[0]}; a link joins two ASes")
            continue
        if not (a and b and rel and a[0] in ases and b[0] in ases):
            continue
        if is_mini(plan):
            net = ipaddress.ip_network(subnet) if subnet else None
            if net is not None and link_hosts == "asn" and max(a[0], b[0]) >= net.num_addresses - 1:
                p.add(f"{path}.subnet", f"{net} has no room for host parts {a[0]} and {b[0]} "
                                        f"(the {plan} plan gives each side its AS number)")
                continue
            (a4, b4), (a6, b6), plen, plen6 = mini_link_addresses(plan, link_id, subnet, a[0], b[0], link_hosts)
        elif subnet is not None:         # minet plan: a .1, b .2 of the given subnet; IPv6 as usual
            net = ipaddress.ip_network(subnet)
            (_, _), (a6, b6), _, plen6 = link_addresses(fabric, link_id)
            a4, b4, plen = str(net.network_address + 1), str(net.network_address + 2), net.prefixlen
        else:
            (a4, b4), (a6, b6), plen, plen6 = link_addresses(fabric, link_id)
        ends = []
        for side, ((asn, rname), ip, ip6) in enumerate(((a, a4, a6), (b, b4, b6)), start=1):
            ends.append(Endpoint(router=f"{asn}.{rname}", asn=asn, server=ases[asn].server, ip=ip, ip6=ip6,
                                 mac=endpoint_mac(link_id, side), ifname=router_ifname(link_id)))
        out.append(Link(id=link_id, a=ends[0], b=ends[1], rel=rel, prefixlen=plen, prefixlen6=plen6,
                        shaping=shaping))
    if fabric.isolation == "tos":
        _check_tos_capacity(p, out, servers)
    return out


def _per_pair(links: List[Link], servers: Dict[str, Server]) -> Dict[Tuple[str, str], int]:
    per_pair: Dict[Tuple[str, str], int] = {}
    for link in links:
        if link.remote:
            pair = tuple(sorted(link.servers(), key=lambda s: servers[s].index))
            per_pair[pair] = per_pair.get(pair, 0) + 1
    return per_pair


def _check_tos_capacity(p: _Problems, links: List[Link], servers: Dict[str, Server], path: str = "links",
                        already: Optional[List[Link]] = None) -> None:
    """tos mode: at most 63 remote links (IXP segments included) per server pair. `already`: links
    whose pairs were checked before (a pair over the limit with those alone is not reported twice)."""
    before = _per_pair(already, servers) if already is not None else {}
    for (x, y), count in _per_pair(links, servers).items():
        if count > MAX_TOS_LINKS_PER_PAIR and before.get((x, y), 0) <= MAX_TOS_LINKS_PER_PAIR:
            what = "links" if already is None else "links and IXP segments"
            p.add(path, f"{count} {what} between {x} and {y}; tos isolation marks each with a DSCP "
                        f"in 1..{MAX_TOS_LINKS_PER_PAIR}, so at most {MAX_TOS_LINKS_PER_PAIR} fit "
                        f"(use fabric.isolation: key)")


def _ixps(p: _Problems, value: Any, ases: Dict[int, AS], known: _Known, declared_servers: Optional[Set[str]],
          servers: Dict[str, Server], fabric: Fabric, plan: str = PLAN_MINET) -> Dict[int, IXP]:
    """`ixps: {N: {server, members: [ROUTER | {router, announce_to, throughput, ...}], peering_lan,
    route_server_asn}}`. IXP k's peering LAN defaults to the k-th /24 of DEFAULT_IXP_SUBNET."""
    if value is None:
        return {}
    data = _mapping(p, "ixps", value)
    if data is None:
        return {}
    pool = ipaddress.ip_network(DEFAULT_IXP_SUBNET)
    out: Dict[int, IXP] = {}
    lans: List[Tuple[str, ipaddress.IPv4Network]] = []
    lans6: List[Tuple[str, ipaddress.IPv6Network]] = []
    for k, (number, spec) in enumerate(data.items(), start=1):
        path = _join("ixps", number)
        if not _numbered(p, path, number, "an IXP"):
            continue
        if number in ases or (known is not None and number in known):
            p.add(path, f"{number} is also an AS number; an IXP needs a number of its own")
            continue
        spec = _entry(p, path, spec, IXP_KEYS, ("server", "members"))
        if spec is None:
            continue
        server = _server_of(p, path, spec, declared_servers)
        rs_asn = spec.get("route_server_asn", number)
        if not _is_asn(rs_asn):
            p.add(f"{path}.route_server_asn", f"{_describe(rs_asn)} is not an AS number (1..{MAX_ASN})")
        elif rs_asn in ases:
            p.add(f"{path}.route_server_asn", f"{rs_asn} is a member AS's number; the route server needs its own")
        mini = None
        if is_mini(plan):
            # the mini-Internet's 180.N.0.0/24: route server .N, member AS X .X; IPv6 twins
            if not (_is_int(number) and 1 <= number <= 254):
                p.add(path, f"the {plan} addressing plan numbers IXPs 1..254 only (LAN 180.N.0.0/24)")
                continue
            for key in ("peering_lan", "peering_lan6"):
                if spec.get(key) is not None:
                    p.add(f"{path}.{key}", f"is set by the {plan} addressing plan (180.{number}.0.0/24); remove it")
            mini = mini_ixp_lan(number)
            lan = mini[0]
        elif spec.get("peering_lan") is not None:
            lan = _network(p, f"{path}.peering_lan", spec["peering_lan"], 4, 29)
        elif k <= pool.num_addresses // 256:
            lan = str(ipaddress.ip_network(f"{pool.network_address + 256 * (k - 1)}/24"))
        else:
            p.add(f"{path}.peering_lan", f"is required for more than {pool.num_addresses // 256} IXPs")
            lan = None
        lan6 = None
        if mini is not None:
            lan6 = mini[1] if fabric.ipv6 else None
        elif spec.get("peering_lan6") is not None:
            if not fabric.ipv6:
                p.add(f"{path}.peering_lan6", "needs fabric.ipv6 (IPv6 routing is off)")
            else:
                lan6 = _network(p, f"{path}.peering_lan6", spec["peering_lan6"], 6, 120)
        elif fabric.ipv6:
            lan6 = str(ipaddress.ip_network(DEFAULT_IXP_SUBNET6).network_address + (k << 64)) + "/64" \
                if k < 2 ** 16 else None
        if lan6 is not None and mini is None:
            _lan_clashes(p, f"{path}.peering_lan6", number, lan6, lans6, "fabric.link_subnet6", fabric.link_subnet6,
                         {asn: as_.prefix6 or default_prefix6(asn) for asn, as_ in ases.items()}, "IPv6 ")
        members = _ixp_members(p, f"{path}.members", spec.get("members"), known, ases, lan, lan6,
                               by_asn=mini is not None)
        if lan is not None and mini is None:
            _lan_clashes(p, f"{path}.peering_lan", number, lan, lans, "fabric.link_subnet", fabric.link_subnet,
                         {asn: as_.prefix for asn, as_ in ases.items()}, "")
        if members is not None and lan is not None and isinstance(server, str) and server in servers \
                and _is_int(rs_asn) and rs_asn not in ases:
            hosts = {"route_server_host": mini[2], "route_server_host6": mini[3]} if mini else {}
            out[number] = IXP(number=number, server=server, peering_lan=lan, route_server_asn=rs_asn,
                              members=tuple(members), peering_lan6=lan6, **hosts)
    return out


def _lan_clashes(p, key: str, number, lan: str, lans: list, subnet_key: str, subnet: str,
                 prefixes: Dict[int, Optional[str]], family: str) -> None:
    """An IXP's peering LAN (one family) against the LANs of the IXPs before it, the link subnet
    and every AS prefix; then it joins `lans`."""
    net = ipaddress.ip_network(lan)
    for other, onet in lans:
        if net.overlaps(onet):
            p.add(key, f"{net} overlaps the {family}peering LAN of IXP {other} ({onet})")
    if net.overlaps(ipaddress.ip_network(subnet)):
        p.add(key, f"{net} overlaps {subnet_key} ({subnet})")
    for asn, prefix in prefixes.items():
        if prefix and net.overlaps(ipaddress.ip_network(prefix)):
            p.add(key, f"{net} overlaps the {family}prefix of AS {asn} ({prefix})")
    lans.append((str(number), net))


def _ixp_members(p: _Problems, path: str, value: Any, known: _Known, ases: Dict[int, AS],
                 lan: Optional[str], lan6: Optional[str] = None, by_asn: bool = False) -> Optional[List[IXPMember]]:
    """Members in order; addresses .2, .3, ... of the LAN, or (`by_asn`, the mini-Internet plans)
    each member's AS number as host part."""
    if not isinstance(value, list):
        p.add(path, f"must be a list of member routers, not {_describe(value)}")
        return None
    room = ipaddress.ip_network(lan).num_addresses - 3 if lan else None     # network, route server, broadcast
    if room is not None and len(value) > room:
        p.add(path, f"{len(value)} members do not fit the peering LAN {lan} (room for {room})")
        return None
    if lan6 is not None and room is not None and len(value) > ipaddress.ip_network(lan6).num_addresses - 2:
        p.add(path, f"{len(value)} members do not fit the IPv6 peering LAN {lan6}")
        return None
    base = ipaddress.ip_network(lan).network_address + 2 if lan else None
    base6 = ipaddress.ip_network(lan6).network_address + 2 if lan6 else None
    out: List[IXPMember] = []
    by_as: Dict[int, int] = {}
    refs: List[Tuple[str, Optional[List[Any]]]] = []
    for i, item in enumerate(value, start=1):
        mpath = f"{path}[{i}]"
        spec: Dict[str, Any]
        if isinstance(item, dict):
            spec = item
            _check_keys(p, mpath, spec, IXP_MEMBER_KEYS, ("router",))
        else:
            spec = {"router": item}
        if "router" not in spec:
            continue
        ref = _router_ref(p, f"{mpath}.router" if isinstance(item, dict) else mpath, spec["router"], known)
        shaping = _shaping(p, mpath, spec)
        announce = spec.get("announce_to")
        if announce is not None and not (isinstance(announce, list) and all(_is_int(a) for a in announce)):
            p.add(f"{mpath}.announce_to", f"{_describe(announce)} is not a list of AS numbers")
            announce = None
        if ref is None:
            continue
        asn, name = ref
        if asn in by_as:
            p.add(mpath, f"AS {asn} is already a member (members[{by_as[asn]}]); one router per AS and IXP")
            continue
        by_as[asn] = i
        refs.append((spec["router"], announce))
        if by_asn and lan is not None and asn in ases:
            ip4 = mini_member_ip(lan, asn)
            out.append(IXPMember(router=f"{asn}.{name}", asn=asn, ip=ip4,
                                 announce_to=tuple(announce) if announce is not None else None, shaping=shaping,
                                 ip6=twin6(ip4) if lan6 is not None else None))
        elif base is not None and asn in ases:
            out.append(IXPMember(router=f"{asn}.{name}", asn=asn, ip=str(base + len(out)),
                                 announce_to=tuple(announce) if announce is not None else None, shaping=shaping,
                                 ip6=str(base6 + len(out)) if base6 is not None else None))
    for i, (_, announce) in enumerate(refs, start=1):
        for a in announce or ():
            if a not in by_as:
                p.add(f"{path}[{i}].announce_to", f"AS {a} is not a member of this IXP")
    return out
