"""Load and validate a topology file.

Every problem is reported as one line `FILE: KEY.PATH: what is wrong`, all of them at once.
List positions in key paths are 1-based, so `links[3]` is link id 3.
"""
from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import yaml

from .model import (AS, ENCAP_OVERHEAD, ENCAPSULATIONS, ISOLATION_MODES, MAX_LINKS,
                    MAX_TOS_LINKS_PER_PAIR, RELATIONSHIPS, Controller, Endpoint, Fabric, Link,
                    Server, Topology, endpoint_mac, link_addresses, link_capacity, router_ifname)

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$")
SERVER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
ROUTER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,15}$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
SSH_RE = re.compile(r"^(?:(?P<user>[A-Za-z0-9_.-]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?$")


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


# ---- YAML that refuses duplicate keys -------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Dict:
    loader.flatten_mapping(node)
    out: Dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error_line(source: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{source}: {where}{problem}"


# ---- field helpers --------------------------------------------------------------------------

def _check_keys(p: _Problems, path: str, data: Dict, allowed: Tuple[str, ...], required: Tuple[str, ...] = ()) -> None:
    for key in data:
        if key not in allowed:
            p.add(_join(path, key), f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in data:
            p.add(_join(path, key), "is required")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _mapping(p: _Problems, path: str, value: Any) -> Optional[Dict]:
    if isinstance(value, dict):
        return value
    p.add(path, f"must be a mapping, not {_describe(value)}")
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return repr(str(value))


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


def _ip(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    p.add(path, f"{_describe(value)} is not an IP address")
    return None


def _listen(p: _Problems, path: str, value: Any, default_port: int) -> Optional[Tuple[str, int]]:
    """HOST:PORT (IPv6 as [ADDR]:PORT). Wildcards are refused: listeners stay on loopback or mgmt."""
    if not isinstance(value, str):
        p.add(path, f"{_describe(value)} is not HOST:PORT")
        return None
    m = re.match(r"^\[(?P<h6>[^\]]+)\](?::(?P<p6>\d+))?$|^(?P<h>[^:\[\]]+)(?::(?P<p>\d+))?$", value)
    if not m:
        p.add(path, f"{value!r} is not HOST:PORT")
        return None
    host = m.group("h6") or m.group("h")
    port_s = m.group("p6") or m.group("p")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        p.add(path, f"{host!r} is not an IP address (listeners bind to an address, not a name)")
        return None
    if addr.is_unspecified:
        p.add(path, f"{host} listens on every interface; use loopback or the management address")
        return None
    port = int(port_s) if port_s else default_port
    if not 1 <= port <= 65535:
        p.add(path, f"port {port} is not in 1..65535")
        return None
    return str(addr), port


# ---- the loader -----------------------------------------------------------------------------

TOP_KEYS = ("name", "fabric", "controller", "servers", "ases", "links")
FABRIC_KEYS = ("isolation", "encapsulation", "underlay_mtu", "bfd_interval_ms", "link_subnet", "link_subnet6")
CONTROLLER_KEYS = ("ofp", "rest")
SERVER_KEYS = ("underlay_ip", "interface", "ssh")
AS_KEYS = ("server", "routers", "configure", "prefix")
LINK_KEYS = ("a", "b", "rel")


def load_topology(path: str) -> Topology:
    """Read and validate `path`; raise TopologyError with every problem found."""
    source = os.path.basename(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read: {exc.strerror or exc}"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError([f"{source}: not UTF-8 text (byte {exc.start})"])
    return parse_topology(text, source)


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise TopologyError([_yaml_error_line(source, exc)])
    except (RecursionError, ValueError, TypeError) as exc:   # pathological nesting, odd scalars
        raise TopologyError([f"{source}: not a readable YAML document ({type(exc).__name__})"])
    p = _Problems(source)
    topo = _build(p, data, source)
    if p.lines:
        raise TopologyError(p.lines)
    assert topo is not None
    return topo


def _build(p: _Problems, data: Any, source: str) -> Optional[Topology]:
    if not isinstance(data, dict):
        p.add("", f"the document must be a mapping with keys {', '.join(TOP_KEYS)}, not {_describe(data)}")
        return None
    _check_keys(p, "", data, TOP_KEYS, ("name", "servers", "ases"))

    name = data.get("name")
    if "name" in data and not (isinstance(name, str) and NAME_RE.match(name)):
        p.add("name", f"{_describe(name)} must be 1-12 characters of a-z, 0-9 and '-', not starting or ending with '-'")
        name = None

    fabric = _fabric(p, data.get("fabric"))
    controller = _controller(p, data.get("controller"))
    servers = _servers(p, data.get("servers")) if "servers" in data else {}
    ases = _ases(p, data.get("ases"), servers) if "ases" in data else {}
    links = _links(p, data.get("links", []), ases, servers, fabric)
    if p.lines or name is None:
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
        encap = kw.get("encapsulation", "gre")
        lo = 1280 + ENCAP_OVERHEAD[encap]
        kw["underlay_mtu"] = _int(p, "fabric.underlay_mtu", data["underlay_mtu"], lo, 65535) or 1500
    if "bfd_interval_ms" in data:
        kw["bfd_interval_ms"] = _int(p, "fabric.bfd_interval_ms", data["bfd_interval_ms"], 10, 60000) or 100
    for key, version, longest in (("link_subnet", 4, 29), ("link_subnet6", 6, 63)):
        if key in data:
            value = data[key]
            try:
                net = ipaddress.ip_network(value, strict=True) if isinstance(value, str) else None
            except ValueError:
                net = None
            if net is None or net.version != version or net.prefixlen > longest:
                p.add(f"fabric.{key}", f"{_describe(value)} is not an IPv{version} network of prefix length /{longest} or shorter")
            else:
                kw[key] = str(net)
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
    return Controller(**kw)


def _servers(p: _Problems, value: Any) -> Dict[str, Server]:
    data = _mapping(p, "servers", value)
    if data is None:
        return {}
    if not data:
        p.add("servers", "must name at least one server")
    out: Dict[str, Server] = {}
    seen_ips: Dict[str, str] = {}
    for index, (name, spec) in enumerate(data.items(), start=1):
        path = f"servers.{name}"
        if not (isinstance(name, str) and SERVER_RE.match(name)):
            p.add(path, "a server name is a letter then up to 31 letters, digits, '_' or '-'")
            continue
        spec = _mapping(p, path, spec)
        if spec is None:
            continue
        _check_keys(p, path, spec, SERVER_KEYS, ("underlay_ip",))
        ip = _ip(p, f"{path}.underlay_ip", spec["underlay_ip"]) if "underlay_ip" in spec else None
        if ip is not None:
            if ip in seen_ips:
                p.add(f"{path}.underlay_ip", f"{ip} is already the underlay address of {seen_ips[ip]}")
            seen_ips[ip] = name
        iface = spec.get("interface")
        if iface is not None and not (isinstance(iface, str) and IFNAME_RE.match(iface)):
            p.add(f"{path}.interface", f"{_describe(iface)} is not an interface name (1-15 characters)")
        ssh = spec.get("ssh")
        if ssh is not None:
            m = SSH_RE.match(ssh) if isinstance(ssh, str) else None
            if not m or (m.group("port") and not 1 <= int(m.group("port")) <= 65535):
                p.add(f"{path}.ssh", f"{_describe(ssh)} is not [USER@]HOST[:PORT]")
        if ip is not None:
            out[name] = Server(name=name, index=index, underlay_ip=ip, interface=iface, ssh=ssh)
    return out


def _ases(p: _Problems, value: Any, servers: Dict[str, Server]) -> Dict[int, AS]:
    data = _mapping(p, "ases", value)
    if data is None:
        return {}
    if not data:
        p.add("ases", "must define at least one AS")
    out: Dict[int, AS] = {}
    for asn, spec in data.items():
        path = f"ases.{asn}"
        if not (_is_int(asn) and 1 <= asn <= 4294967294):
            p.add(path, f"{_describe(asn)} is not an AS number (an integer in 1..4294967294)")
            continue
        spec = _mapping(p, path, spec)
        if spec is None:
            continue
        _check_keys(p, path, spec, AS_KEYS, ("server", "routers"))
        server = spec.get("server")
        if "server" in spec and server not in servers:
            if isinstance(server, str):
                p.add(f"{path}.server", f"server {server} is not defined under servers")
            else:
                p.add(f"{path}.server", f"{_describe(server)} is not a server name")
            server = None
        routers = spec.get("routers")
        names: List[str] = []
        if "routers" in spec:
            if not isinstance(routers, list) or not routers:
                p.add(f"{path}.routers", f"must be a non-empty list of router names, not {_describe(routers)}")
            else:
                for i, r in enumerate(routers, start=1):
                    if not (isinstance(r, str) and ROUTER_RE.match(r)):
                        p.add(f"{path}.routers[{i}]", f"{_describe(r)} is not a router name (a letter then up to 15 letters, digits, '_' or '-')")
                    elif r in names:
                        p.add(f"{path}.routers[{i}]", f"router {r} is listed twice")
                    else:
                        names.append(r)
        configure = spec.get("configure", True)
        if not isinstance(configure, bool):
            p.add(f"{path}.configure", f"{_describe(configure)} is not true or false")
            configure = True
        prefix = spec.get("prefix")
        if prefix is not None:
            try:
                net = ipaddress.ip_network(prefix, strict=True) if isinstance(prefix, str) else None
            except ValueError:
                net = None
            if net is None or net.version != 4 or net.prefixlen > 24:
                p.add(f"{path}.prefix", f"{_describe(prefix)} is not an IPv4 network of prefix length /24 or shorter")
                prefix = None
            else:
                prefix = str(net)
        if server is not None and names and ("routers" in spec) and len(names) == len(routers):
            out[asn] = AS(asn=asn, server=server, routers=tuple(names), configure=configure, prefix=prefix)
    _check_prefix_overlaps(p, out)
    return out


def _check_prefix_overlaps(p: _Problems, ases: Dict[int, AS]) -> None:
    nets = [(asn, ipaddress.ip_network(a.prefix)) for asn, a in ases.items() if a.prefix]
    for i, (asn, net) in enumerate(nets):
        for other, onet in nets[:i]:
            if net.overlaps(onet):
                p.add(f"ases.{asn}.prefix", f"{net} overlaps the prefix of AS {other} ({onet})")


def _router_ref(p: _Problems, path: str, value: Any, ases: Dict[int, AS]) -> Optional[Tuple[int, str]]:
    if not isinstance(value, str) or "." not in value:
        p.add(path, f"{_describe(value)} is not a router reference <asn>.<NAME>")
        return None
    asn_s, name = value.split(".", 1)
    if not asn_s.isdigit():
        p.add(path, f"{value!r} is not a router reference <asn>.<NAME>")
        return None
    asn = int(asn_s)
    if asn not in ases or name not in ases[asn].routers:
        p.add(path, f"router {value} is not defined")
        return None
    return asn, name


def _links(p: _Problems, value: Any, ases: Dict[int, AS], servers: Dict[str, Server], fabric: Fabric) -> List[Link]:
    if value is None:
        return []
    if not isinstance(value, list):
        p.add("links", f"must be a list of links, not {_describe(value)}")
        return []
    if len(value) > MAX_LINKS:
        p.add("links", f"{len(value)} links; at most {MAX_LINKS} fit the OpenFlow port range")
        return []
    if len(value) > link_capacity(fabric):
        p.add("links", f"{len(value)} links do not fit fabric.link_subnet/link_subnet6 (room for {link_capacity(fabric)})")
        return []
    out: List[Link] = []
    for link_id, spec in enumerate(value, start=1):
        path = f"links[{link_id}]"
        spec = _mapping(p, path, spec)
        if spec is None:
            continue
        _check_keys(p, path, spec, LINK_KEYS, ("a", "b", "rel"))
        a = _router_ref(p, f"{path}.a", spec["a"], ases) if "a" in spec else None
        b = _router_ref(p, f"{path}.b", spec["b"], ases) if "b" in spec else None
        rel = _choice(p, f"{path}.rel", spec["rel"], RELATIONSHIPS) if "rel" in spec else None
        if a and b and a[0] == b[0]:
            p.add(f"{path}.b", f"{spec['a']} and {spec['b']} are in the same AS; links lists inter-AS links only")
            continue
        if not (a and b and rel):
            continue
        (a4, b4), (a6, b6), plen, plen6 = link_addresses(fabric, link_id)
        ends = []
        for side, ((asn, rname), ip, ip6) in enumerate(((a, a4, a6), (b, b4, b6)), start=1):
            ends.append(Endpoint(router=f"{asn}.{rname}", asn=asn, server=ases[asn].server, ip=ip, ip6=ip6,
                                 mac=endpoint_mac(link_id, side), ifname=router_ifname(link_id)))
        out.append(Link(id=link_id, a=ends[0], b=ends[1], rel=rel, prefixlen=plen, prefixlen6=plen6))
    if fabric.isolation == "tos":
        per_pair: Dict[Tuple[str, str], int] = {}
        for link in out:
            if link.remote:
                key = tuple(sorted(link.servers(), key=lambda s: servers[s].index))
                per_pair[key] = per_pair.get(key, 0) + 1
        for (x, y), count in per_pair.items():
            if count > MAX_TOS_LINKS_PER_PAIR:
                p.add("links", f"{count} links between {x} and {y}; tos isolation marks each with a DSCP "
                               f"in 1..{MAX_TOS_LINKS_PER_PAIR}, so at most {MAX_TOS_LINKS_PER_PAIR} fit "
                               f"(use fabric.isolation: key)")
    return out
