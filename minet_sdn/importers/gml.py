"""Import a network map in GML (Topology Zoo style; read by networkx).

Nodes become routers, named from their `label` (else their id), sanitised to router names
(ASCII letters, digits, '_' and '-', starting with a letter, at most 16 characters) and made unique
within their AS with a numeric suffix. The AS of a node is its `asn` attribute (another with
`asn_attr`), or `single_as` for every node of a one-network map.

Edges inside an AS become intra-AS links, edges across ASes inter-AS links (relationship from the
edge's `rel` attribute if it is peer/provider/customer -- a is b's provider when rel is provider,
with a the edge's source -- else `rel`). Parallel edges are merged and self-loops dropped. An edge's
`LinkSpeedRaw` (bit/s, as the Topology Zoo writes it) becomes its throughput.

An AS whose routers are not connected among themselves gets one link per extra component (from its
best-connected router to the best-connected router of the largest component), with a note: OSPF and
iBGP need every AS connected.

Condensation (`max_routers`): an AS with more routers keeps its `max_routers` best-connected ones
(highest degree in the whole map; ties by name); every removed router is merged into its nearest
kept router inside the AS (multi-source breadth-first search, ties to the better-connected kept
router), and its links move with it. The regions merged into each kept router are connected, so the
condensed AS stays connected.
"""
from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections import deque
from typing import Any, Dict, List, Optional, Set, Tuple

from ..topology.addressing import default_prefix
from ..topology.loader import MAX_ASN, RELATIONSHIPS
from ..topology.model import _fmt_rate
from . import ImportProblem, Imported, instance_name, read_input

MAX_FILE_BYTES = 64 * 1024 * 1024
ROUTER_MAX = 16
BIG_PREFIX_POOL = "172.16.0.0/12"   # prefixes of ASes too big for a /24 or with ASNs over 65535
MAX_PROBLEMS = 20


def _sanitise(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_text).strip("_-")
    if not name or not name[0].isalpha():
        name = "R" + name
    return name[:ROUTER_MAX].rstrip("_-") or "R"


def _unique(base: str, taken: Set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"_{n}"
        cand = base[:ROUTER_MAX - len(suffix)] + suffix
        if cand not in taken:
            return cand
        n += 1


def _read(path: str):
    import networkx as nx
    label = os.path.basename(path)
    raw = read_input(path, label, MAX_FILE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")          # older Topology Zoo files
    try:
        try:
            graph = nx.parse_gml(text.splitlines(), label="id")
        except nx.NetworkXError as exc:
            # Many Topology Zoo copies have parallel edges but no `multigraph 1` header; networkx
            # refuses them ("edge ... is duplicated"). Read them as the multigraph they are: parallel
            # edges merge below, as for a declared multigraph.
            if "duplicated" not in str(exc):
                raise
            patched, count = re.subn(r"(\bgraph\s*\[)", r"\1\n  multigraph 1", text, count=1)
            if not count:
                raise
            graph = nx.parse_gml(patched.splitlines(), label="id")
    except (nx.NetworkXError, ValueError, KeyError, IndexError, TypeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportProblem([f"{label}: not readable GML: {message}"]) from None
    return label, graph


def _asn_of(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"(AS)?[1-9][0-9]{0,9}", value.strip(), re.I):
        value = int(value.strip().upper().lstrip("AS"))
    if isinstance(value, int) and 1 <= value <= MAX_ASN:
        return value
    return None


def _speed(data: Dict[str, Any]) -> Optional[str]:
    raw = data.get("LinkSpeedRaw")
    try:
        bps = int(float(raw)) if raw is not None and not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        return None
    if bps is None or not 8000 <= bps <= 100 * 10 ** 9:
        return None
    return _fmt_rate(bps)


def _bfs_owner(adj: Dict[Any, Set[Any]], kept: List[Any], rank: Dict[Any, Tuple]) -> Dict[Any, Any]:
    """Every node reachable from `kept` mapped to its nearest kept node (ties: best rank)."""
    owner: Dict[Any, Any] = {k: k for k in kept}
    frontier = sorted(kept, key=lambda k: rank[k])
    while frontier:
        nxt: Dict[Any, Any] = {}
        for node in frontier:                      # frontier in rank order of its owners
            for nb in sorted(adj[node], key=lambda n: rank[n]):
                if nb not in owner and nb not in nxt:
                    nxt[nb] = owner[node]
        owner.update(nxt)
        frontier = sorted(nxt, key=lambda n: rank[owner[n]])
    return owner


def import_gml(path: str, *, asn_attr: str = "asn", single_as: Optional[int] = None,
               max_routers: Optional[int] = None, rel: str = "peer", name: Optional[str] = None) -> Imported:
    label, graph = _read(path)
    notes: List[str] = []
    if single_as is not None and not 1 <= single_as <= MAX_ASN:
        raise ImportProblem([f"--single-as {single_as} is not an AS number (1..{MAX_ASN})"])
    if graph.number_of_nodes() == 0:
        raise ImportProblem([f"{label}: the graph has no node"])

    # ---- AS of every node ----
    problems: List[str] = []
    asn: Dict[Any, int] = {}
    for node, data in graph.nodes(data=True):
        if single_as is not None:
            asn[node] = single_as
            continue
        value = _asn_of(data.get(asn_attr))
        if value is None:
            what = "has no" if asn_attr not in data else f"has {data.get(asn_attr)!r} as its"
            problems.append(f"{label}: node {node} ({data.get('label', node)}) {what} {asn_attr} attribute "
                            f"(an AS number; use --single-as N for a map of one network)")
        else:
            asn[node] = value
    if problems:
        raise ImportProblem(problems[:MAX_PROBLEMS] + ([f"{label}: ... and {len(problems) - MAX_PROBLEMS} more"]
                                                         if len(problems) > MAX_PROBLEMS else []))

    # ---- simple undirected graph, parallel edges merged, self-loops dropped ----
    adj: Dict[Any, Set[Any]] = {n: set() for n in graph.nodes}
    edge_data: Dict[frozenset, Dict[str, Any]] = {}
    loops = 0
    for u, v, data in graph.edges(data=True):
        if u == v:
            loops += 1
            continue
        key = frozenset((u, v))
        if key not in edge_data:
            edge_data[key] = dict(data, _src=u)
        adj[u].add(v)
        adj[v].add(u)
    if loops:
        notes.append(f"{loops} self-loop edge(s) dropped")

    # ---- names ----
    names: Dict[Any, str] = {}
    taken: Dict[int, Set[str]] = {}
    renamed = 0
    for node in graph.nodes:
        raw = str(graph.nodes[node].get("label", node))
        base = _sanitise(raw)
        final = _unique(base, taken.setdefault(asn[node], set()))
        taken[asn[node]].add(final)
        names[node] = final
        renamed += final != raw
    if renamed:
        notes.append(f"{renamed} router name(s) sanitised or made unique")

    rank = {n: (-len(adj[n]), names[n], str(n)) for n in graph.nodes}     # best-connected first
    by_as: Dict[int, List[Any]] = {}
    for node in sorted(graph.nodes, key=lambda n: (asn[n], rank[n])):
        by_as.setdefault(asn[node], []).append(node)

    # ---- every AS connected inside ----
    extra: Set[frozenset] = set()
    for a, nodes in by_as.items():
        members = set(nodes)
        comps = _components(nodes, lambda n: (x for x in adj[n] if x in members))
        if len(comps) > 1:
            comps.sort(key=lambda c: (-len(c), rank[min(c, key=lambda n: rank[n])]))
            hub = min(comps[0], key=lambda n: rank[n])
            for comp in comps[1:]:
                best = min(comp, key=lambda n: rank[n])
                extra.add(frozenset((hub, best)))
                adj[hub].add(best)
                adj[best].add(hub)
            notes.append(f"AS {a}: {len(comps)} parts not linked inside the AS; joined by "
                         f"{len(comps) - 1} added link(s) from {names[hub]}")

    # ---- condensation ----
    rep: Dict[Any, Any] = {n: n for n in graph.nodes}
    if max_routers is not None:
        for a, nodes in by_as.items():
            if len(nodes) <= max_routers:
                continue
            members = set(nodes)
            kept = nodes[:max_routers]                            # nodes are sorted by rank
            intra = {n: {x for x in adj[n] if x in members} for n in nodes}
            owner = _bfs_owner(intra, kept, rank)
            rep.update(owner)
            notes.append(f"AS {a}: condensed from {len(nodes)} to {len(kept)} routers")
        for a in by_as:
            by_as[a] = [n for n in by_as[a] if rep[n] == n]

    # ---- links ----
    intra_links: Dict[int, Dict[frozenset, Dict[str, Any]]] = {a: {} for a in by_as}
    inter: Dict[frozenset, Dict[str, Any]] = {}
    all_edges = list(edge_data.items()) + [(k, {"_src": min(k, key=lambda n: rank[n])}) for k in extra
                                           if k not in edge_data]
    for key, data in sorted(all_edges, key=lambda kv: sorted(rank[n] for n in kv[0])):
        u, v = tuple(key)
        if data.get("_src") == v:
            u, v = v, u
        ru, rv = rep[u], rep[v]
        if ru == rv:
            continue
        pair = frozenset((ru, rv))
        spec: Dict[str, Any] = {}
        speed = _speed(data)
        if speed:
            spec["throughput"] = speed
        if asn[ru] == asn[rv]:
            intra_links[asn[ru]].setdefault(pair, {"a": names[ru], "b": names[rv], **spec})
        elif pair not in inter:
            r = data.get("rel") if data.get("rel") in RELATIONSHIPS else rel
            inter[pair] = {"a": f"{asn[ru]}.{names[ru]}", "b": f"{asn[rv]}.{names[rv]}", "rel": r, **spec}

    # ---- the topology ----
    pool = ipaddress.ip_network(BIG_PREFIX_POOL)
    cursor = int(pool.network_address)
    ases: Dict[int, Dict[str, Any]] = {}
    for a in sorted(by_as):
        routers = [names[n] for n in by_as[a]]
        links = list(intra_links[a].values())
        spec: Dict[str, Any] = {"server": "VM1", "routers": routers}
        need = max(len(routers), len(links), 1) * 16      # see topology/addressing.py: layout
        if need > 256 or default_prefix(a) is None:
            size = max(256, 1 << (need - 1).bit_length())
            cursor = (cursor + size - 1) // size * size
            net = ipaddress.ip_network(f"{ipaddress.IPv4Address(cursor)}/{32 - size.bit_length() + 1}")
            if not net.subnet_of(pool):
                raise ImportProblem([f"{label}: the ASes need more address space than {BIG_PREFIX_POOL}"])
            spec["prefix"] = str(net)
            cursor += size
        if len(routers) > 1:
            spec["links"] = links
        ases[a] = spec
    topo: Dict[str, Any] = {"name": name or instance_name(os.path.splitext(label)[0]),
                            "servers": ["VM1"], "ases": ases, "links": list(inter.values())}
    return Imported(topology=topo, notes=notes)


def _components(nodes: List[Any], neighbours) -> List[Set[Any]]:
    seen: Set[Any] = set()
    comps: List[Set[Any]] = []
    for start in nodes:
        if start in seen:
            continue
        comp = {start}
        queue = deque([start])
        while queue:
            for nb in neighbours(queue.popleft()):
                if nb not in comp:
                    comp.add(nb)
                    queue.append(nb)
        seen |= comp
        comps.append(comp)
    return comps
