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
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import yaml

from .model import (AS, ENCAP_OVERHEAD, ENCAPSULATIONS, encap_overhead, ISOLATION_MODES, MAX_LINKS,
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
MAX_SERVERS = 0xFFFF            # a server's index is 16 bits of every datapath id
MIN_ROUTER_MTU = 1280           # IPv6 minimum: what must still fit through a tunnel

TOP_KEYS = ("name", "fabric", "controller", "servers", "ases", "links")
FABRIC_KEYS = ("isolation", "encapsulation", "underlay_mtu", "bfd_interval_ms", "link_subnet", "link_subnet6")
CONTROLLER_KEYS = ("ofp", "rest")
SERVER_KEYS = ("underlay_ip", "interface", "ssh")
AS_KEYS = ("server", "routers", "configure", "prefix", "prefix6")
PREFIX6_LONGEST = 56            # an AS's IPv6 layout needs 256 /64s (addressing.as_addressing6)
LINK_KEYS = ("a", "b", "rel")


class TopologyError(Exception):
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


# ---- reading YAML ---------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader whose bad scalars (`!!bool maybe`, `2001-02-30`) fail like any YAML error: with a position."""

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


def _listen(p: _Problems, path: str, value: Any, default_port: int) -> Optional[Tuple[str, int]]:
    """HOST[:PORT] (IPv6 as [ADDR][:PORT]). Wildcards are refused: listeners stay on loopback or mgmt."""
    m = LISTEN_RE.fullmatch(value) if isinstance(value, str) else None
    if not m:
        p.add(path, f"{_describe(value)} is not HOST:PORT (IPv6 as [ADDRESS]:PORT)")
        return None
    host = m.group("h6") if m.group("h6") is not None else m.group("h")
    port = int(m.group("p6") or m.group("p") or default_port)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        p.add(path, f"{_describe(host)} is not an IP address (listeners bind to an address, not a name)")
        return None
    shown = f"[{addr}]" if addr.version == 6 else str(addr)
    mapped = getattr(addr, "ipv4_mapped", None)
    if addr.is_unspecified or (mapped is not None and mapped.is_unspecified):
        p.add(path, f"{shown} is a wildcard address; listen on loopback or the management address")
        return None
    if not 1 <= port <= 65535:
        p.add(path, f"port {port} is not in 1..65535")
        return None
    return str(addr), port


# ---- the loader -----------------------------------------------------------------------------

def load_topology(path: str) -> Topology:
    """Read and validate `path`; raise TopologyError with every problem found."""
    source = os.path.basename(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise TopologyError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
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
    ases, known = _ases(p, data["ases"], servers, declared, fabric) if "ases" in data else ({}, None)
    links = _links(p, data.get("links"), ases, known, servers, fabric)
    if p.lines:
        return None
    return Topology(name=name, servers=servers, ases=ases, links=tuple(links), fabric=fabric,
                    controller=controller, source=source)


def _fabric(p: _Problems, value: Any) -> Fabric:
    if value is None:
        return Fabric()
    data = _mapping(p, "fabric", value)
    if data is None:
        return Fabric()
    _check_keys(p, "fabric", data, FABRIC_KEYS)
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
    for key, version, longest in (("link_subnet", 4, 29), ("link_subnet6", 6, 63)):
        if key in data:
            net = _network(p, f"fabric.{key}", data[key], version, longest)
            if net is not None:
                kw[key] = net
    return Fabric(**kw)


def _controller(p: _Problems, value: Any) -> Controller:
    if value is None:
        return Controller()
    data = _mapping(p, "controller", value)
    if data is None:
        return Controller()
    _check_keys(p, "controller", data, CONTROLLER_KEYS)
    kw: Dict[str, Any] = {}
    if "ofp" in data:
        hp = _listen(p, "controller.ofp", data["ofp"], 6653)
        if hp:
            kw["ofp_host"], kw["ofp_port"] = hp
    if "rest" in data:
        hp = _listen(p, "controller.rest", data["rest"], 8080)
        if hp:
            kw["rest_host"], kw["rest_port"] = hp
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
    data = {} if value is None else _mapping(p, "servers", value)
    if data is None:
        return {}, None
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
        spec = _mapping(p, path, spec)
        if spec is None:
            continue
        _check_keys(p, path, spec, SERVER_KEYS, ("underlay_ip",))
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


# Routers declared per AS number, so that a link to an AS or router that is declared but broken is
# not reported a second time as undefined. None: unknown (the section or the router list is broken).
_Known = Optional[Dict[int, Optional[Set[str]]]]


def _ases(p: _Problems, value: Any, servers: Dict[str, Server], declared_servers: Optional[Set[str]],
          fabric: Fabric) -> Tuple[Dict[int, AS], _Known]:
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
        if not (_is_int(asn) and 1 <= asn <= MAX_ASN):
            p.add(path, f"{_describe(asn)} is not an AS number (an integer in 1..{MAX_ASN})")
            continue
        spec = _mapping(p, path, spec)
        if spec is None:
            continue
        _check_keys(p, path, spec, AS_KEYS, ("server", "routers"))
        server = spec.get("server")
        if "server" in spec:
            if not (isinstance(server, str) and SERVER_RE.fullmatch(server)):
                p.add(f"{path}.server", f"{_describe(server)} is not a server name")
            elif declared_servers is not None and server not in declared_servers:
                p.add(f"{path}.server", f"server {server} is not defined under servers")
        names = _routers(p, f"{path}.routers", spec["routers"]) if "routers" in spec else None
        if names is not None:
            known[asn] = set(names)
        configure = spec.get("configure", True)
        if not isinstance(configure, bool):
            p.add(f"{path}.configure", f"{_describe(configure)} is not true or false")
        prefix = _network(p, f"{path}.prefix", spec["prefix"], 4, 24) if spec.get("prefix") is not None else None
        prefix6 = (_network(p, f"{path}.prefix6", spec["prefix6"], 6, PREFIX6_LONGEST)
                   if spec.get("prefix6") is not None else None)
        if isinstance(server, str) and server in servers and names:
            out[asn] = AS(asn=asn, server=server, routers=tuple(names), configure=configure is not False,
                          prefix=prefix, prefix6=prefix6)
    _check_prefix_overlaps(p, out, fabric)
    return out, known


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


def _check_prefix_overlaps(p: _Problems, ases: Dict[int, AS], fabric: Fabric) -> None:
    link_net = ipaddress.ip_network(fabric.link_subnet)
    nets = [(asn, ipaddress.ip_network(a.prefix)) for asn, a in ases.items() if a.prefix]
    for i, (asn, net) in enumerate(nets):
        for other, onet in nets[:i]:
            if net.overlaps(onet):
                p.add(f"ases.{asn}.prefix", f"{net} overlaps the prefix of AS {other} ({onet})")
        if net.overlaps(link_net):
            p.add(f"ases.{asn}.prefix", f"{net} overlaps fabric.link_subnet ({link_net})")
    link_net6 = ipaddress.ip_network(fabric.link_subnet6)
    nets6 = [(asn, ipaddress.ip_network(a.prefix6)) for asn, a in ases.items() if a.prefix6]
    for i, (asn, net) in enumerate(nets6):
        for other, onet in nets6[:i]:
            if net.overlaps(onet):
                p.add(f"ases.{asn}.prefix6", f"{net} overlaps the IPv6 prefix of AS {other} ({onet})")
        if net.overlaps(link_net6):
            p.add(f"ases.{asn}.prefix6", f"{net} overlaps fabric.link_subnet6 ({link_net6})")


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
           fabric: Fabric) -> List[Link]:
    if value is None:
        return []
    if not isinstance(value, list):
        p.add("links", f"must be a list of links, not {_describe(value)}")
        return []
    if len(value) > MAX_LINKS:
        p.add("links", f"{len(value)} links; at most {MAX_LINKS} fit the OpenFlow port range")
        return []
    if len(value) > link_capacity(fabric):
        p.add("links", f"{len(value)} links do not fit fabric.link_subnet/link_subnet6 "
                       f"(room for {link_capacity(fabric)})")
        return []
    out: List[Link] = []
    for link_id, spec in enumerate(value, start=1):
        path = f"links[{link_id}]"
        spec = _mapping(p, path, spec)
        if spec is None:
            continue
        _check_keys(p, path, spec, LINK_KEYS, ("a", "b", "rel"))
        a = _router_ref(p, f"{path}.a", spec["a"], known) if "a" in spec else None
        b = _router_ref(p, f"{path}.b", spec["b"], known) if "b" in spec else None
        rel = _choice(p, f"{path}.rel", spec["rel"], RELATIONSHIPS) if "rel" in spec else None
        if a and b and a[0] == b[0]:
            p.add(path, f"{spec['a']} and {spec['b']} are both in AS {a[0]}; a link joins two ASes")
            continue
        if not (a and b and rel and a[0] in ases and b[0] in ases):
            continue
        (a4, b4), (a6, b6), plen, plen6 = link_addresses(fabric, link_id)
        ends = []
        for side, ((asn, rname), ip, ip6) in enumerate(((a, a4, a6), (b, b4, b6)), start=1):
            ends.append(Endpoint(router=f"{asn}.{rname}", asn=asn, server=ases[asn].server, ip=ip, ip6=ip6,
                                 mac=endpoint_mac(link_id, side), ifname=router_ifname(link_id)))
        out.append(Link(id=link_id, a=ends[0], b=ends[1], rel=rel, prefixlen=plen, prefixlen6=plen6))
    if fabric.isolation == "tos":
        _check_tos_capacity(p, out, servers)
    return out


def _check_tos_capacity(p: _Problems, links: List[Link], servers: Dict[str, Server]) -> None:
    per_pair: Dict[Tuple[str, str], int] = {}
    for link in links:
        if link.remote:
            pair = tuple(sorted(link.servers(), key=lambda s: servers[s].index))
            per_pair[pair] = per_pair.get(pair, 0) + 1
    for (x, y), count in per_pair.items():
        if count > MAX_TOS_LINKS_PER_PAIR:
            p.add("links", f"{count} links between {x} and {y}; tos isolation marks each with a DSCP "
                           f"in 1..{MAX_TOS_LINKS_PER_PAIR}, so at most {MAX_TOS_LINKS_PER_PAIR} fit "
                           f"(use fabric.isolation: key)")
