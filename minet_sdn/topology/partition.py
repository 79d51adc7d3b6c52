"""Place ASes on servers: router counts balanced, as few remote links as possible (pure; no I/O but
`partition_file`).

The AS graph: one vertex per AS weighted by its router count, one edge per AS pair weighted by the
inter-AS links between them (an IXP is a vertex of weight 1, its route server, joined to each
member AS: a member on another server reaches the IXP over a remote segment, counted as a remote
link). A placement
is feasible when the largest server holds at most `BALANCE` (10 %) more routers than the mean
(rounded down to whole routers, but never below the largest AS), and, in `tos` isolation mode, no
server pair carries more than 63 remote links.

Method: several starts -- graph growing (servers filled one after the other in breadth-first
order from different seeds; this keeps neighbouring ASes together) and a Kernighan-Lin recursive
bisection (networkx) -- each refined by Fiduccia-Mattheyses style local search (the best single-AS
move or two-AS swap that lowers the cost, repeated until none does). The cost is (overload,
tos-limit excess, remote links), compared in that order. The best result is kept; the baselines
(round-robin by AS number and uniformly random, mean of `RANDOM_TRIALS` seeds) are computed on
the same graph.
"""
from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .model import MAX_TOS_LINKS_PER_PAIR

BALANCE = 0.10
RANDOM_TRIALS = 20
STARTS = 8


@dataclass(frozen=True)
class Graph:
    weights: Dict[Any, int]                         # vertex -> routers
    edges: Dict[Tuple[Any, Any], int]               # (u, v) with u < v by key order -> links

    @property
    def total(self) -> int:
        return sum(self.weights.values())

    def adjacency(self) -> Dict[Any, Dict[Any, int]]:
        adj: Dict[Any, Dict[Any, int]] = {v: {} for v in self.weights}
        for (u, v), w in self.edges.items():
            adj[u][v] = adj[u].get(v, 0) + w
            adj[v][u] = adj[v].get(u, 0) + w
        return adj


def capacity(graph: Graph, servers: int) -> int:
    """Most routers one server may hold: the mean + 10 %, in whole routers (a server holding an AS
    bigger than that may hold that AS alone: see `_overload`)."""
    mean = graph.total / servers
    return int(math.floor(mean * (1 + BALANCE) + 1e-9))


def _overload(graph: Graph, place: Dict[Any, int], servers: int, cap: int) -> int:
    load = [0] * servers
    biggest = [0] * servers
    for v, srv in place.items():
        load[srv] += graph.weights[v]
        biggest[srv] = max(biggest[srv], graph.weights[v])
    return sum(max(0, l - max(cap, b)) for l, b in zip(load, biggest))


def cut(graph: Graph, place: Dict[Any, int]) -> int:
    return sum(w for (u, v), w in graph.edges.items() if place[u] != place[v])


def pair_counts(graph: Graph, place: Dict[Any, int]) -> Dict[Tuple[int, int], int]:
    out: Dict[Tuple[int, int], int] = {}
    for (u, v), w in graph.edges.items():
        a, b = place[u], place[v]
        if a != b:
            key = (min(a, b), max(a, b))
            out[key] = out.get(key, 0) + w
    return out


def loads(graph: Graph, place: Dict[Any, int], servers: int) -> List[int]:
    out = [0] * servers
    for v, s in place.items():
        out[s] += graph.weights[v]
    return out


def _cost(graph: Graph, place: Dict[Any, int], servers: int, cap: int, tos: bool) -> Tuple[int, int, int]:
    over = _overload(graph, place, servers, cap)
    excess = sum(max(0, c - MAX_TOS_LINKS_PER_PAIR) for c in pair_counts(graph, place).values()) if tos else 0
    return over, excess, cut(graph, place)


def _order(v: Any) -> Tuple[int, Any]:
    """ASNs in numeric order, then anything else (IXP vertices) by name."""
    return (0, v, "") if isinstance(v, int) else (1, 0, str(v))


def round_robin(graph: Graph, servers: int) -> Dict[Any, int]:
    return {v: i % servers for i, v in enumerate(sorted(graph.weights, key=_order))}


def random_placement(graph: Graph, servers: int, seed: int) -> Dict[Any, int]:
    rng = random.Random(seed)
    return {v: rng.randrange(servers) for v in sorted(graph.weights, key=_order)}


def _grow(graph: Graph, adj, servers: int, start: Any) -> Dict[Any, int]:
    """Fill server 0, then 1, ... to the mean, taking vertices in breadth-first order from `start`
    (the most strongly attached unplaced neighbour first)."""
    target = graph.total / servers
    place: Dict[Any, int] = {}
    server, load = 0, 0
    order = sorted(graph.weights, key=_order)
    while len(place) < len(graph.weights):
        seed = start if start not in place else next(v for v in order if v not in place)
        queue = deque([seed])
        queued = {seed}
        while queue:
            v = queue.popleft()
            if server < servers - 1 and load + graph.weights[v] / 2 > target and load > 0:
                server, load = server + 1, 0
            place[v] = server
            load += graph.weights[v]
            for nb, _ in sorted(adj[v].items(), key=lambda kv: (-kv[1], str(kv[0]))):
                if nb not in place and nb not in queued:
                    queued.add(nb)
                    queue.append(nb)
    return place


def _kl(graph: Graph, servers: int, seed: int) -> Optional[Dict[Any, int]]:
    """Recursive Kernighan-Lin bisection (networkx); halves get server counts in proportion."""
    try:
        import networkx as nx
        from networkx.algorithms.community import kernighan_lin_bisection
    except ImportError:
        return None
    g = nx.Graph()
    g.add_nodes_from(graph.weights)
    for (u, v), w in graph.edges.items():
        g.add_edge(u, v, weight=w)
    place: Dict[Any, int] = {}

    def split(nodes: List[Any], first: int, count: int) -> None:
        if count == 1 or len(nodes) <= 1:
            for v in nodes:
                place[v] = first
            return
        left_n = count // 2
        a, b = kernighan_lin_bisection(g.subgraph(nodes), weight="weight", seed=seed)
        a, b = sorted(a, key=str), sorted(b, key=str)
        split(a, first, left_n)
        split(b, first + left_n, count - left_n)

    split(sorted(graph.weights, key=str), 0, servers)
    return place


class _Tracker:
    """The cost of a placement, kept up to date move by move: a move costs O(degree + servers),
    not a walk over every edge (a 1,000-AS map has thousands of candidate moves per round)."""

    def __init__(self, graph: Graph, adj, place: Dict[Any, int], servers: int, cap: int, tos: bool):
        self.graph, self.adj, self.place, self.cap, self.tos = graph, adj, place, cap, tos
        self.load = [0] * servers
        self.sizes: List[Dict[int, int]] = [dict() for _ in range(servers)]   # weight -> how many
        for v, srv in place.items():
            self._add(v, srv)
        self.pairs = pair_counts(graph, place) if tos else {}
        self.cost = _cost(graph, place, servers, cap, tos)

    def _add(self, v: Any, srv: int, sign: int = 1) -> None:
        w = self.graph.weights[v]
        self.load[srv] += sign * w
        sizes = self.sizes[srv]
        sizes[w] = sizes.get(w, 0) + sign
        if not sizes[w]:
            del sizes[w]

    def _over(self, srv: int) -> int:
        return max(0, self.load[srv] - max(self.cap, max(self.sizes[srv], default=0)))

    def move(self, v: Any, to: int) -> None:
        """Move `v` to server `to`, updating the cost."""
        home = self.place[v]
        if home == to:
            return
        over, excess, remote = self.cost
        over -= self._over(home) + self._over(to)
        self._add(v, home, -1)
        self._add(v, to)
        over += self._over(home) + self._over(to)
        for w, links in self.adj[v].items():
            there = self.place[w]
            remote += links * ((there != to) - (there != home))
            if self.tos:
                for srv, sign in ((home, -1), (to, 1)):
                    if srv == there:
                        continue
                    key = (min(srv, there), max(srv, there))
                    before = self.pairs.get(key, 0)
                    after = before + sign * links
                    excess += (max(0, after - MAX_TOS_LINKS_PER_PAIR) - max(0, before - MAX_TOS_LINKS_PER_PAIR))
                    self.pairs[key] = after
        self.place[v] = to
        self.cost = (over, excess, remote)


def _refine(graph: Graph, adj, place: Dict[Any, int], servers: int, cap: int, tos: bool) -> Dict[Any, int]:
    """Best-improvement moves and swaps until no change lowers the cost."""
    t = _Tracker(graph, adj, dict(place), servers, cap, tos)
    place = t.place
    best = t.cost
    verts = sorted(graph.weights, key=str)
    edges = sorted(graph.edges, key=str)
    for _ in range(200):
        improved = False
        # single moves
        for v in verts:
            home = place[v]
            for s in range(servers):
                if s == home:
                    continue
                current = place[v]
                t.move(v, s)
                if t.cost < best:
                    best, home, improved = t.cost, s, True
                else:
                    t.move(v, current)
            t.move(v, home)
        if improved:
            continue
        # swaps of neighbouring vertices' ASes (across a cut edge) keep the balance
        by_server: Dict[int, List[Any]] = {}
        for x in verts:
            by_server.setdefault(place[x], []).append(x)
        for (u, v) in edges:
            if place[u] == place[v]:
                continue
            for x in by_server.get(place[v], ()):
                if place[x] != place[v] or x == v:
                    continue
                pu, px = place[u], place[x]
                t.move(u, px)
                t.move(x, pu)
                if t.cost < best:
                    best, improved = t.cost, True
                    break
                t.move(x, px)
                t.move(u, pu)
            if improved:
                break
        if not improved:
            break
    return place


@dataclass(frozen=True)
class Result:
    place: Dict[Any, int]
    servers: int
    remote: int
    loads: Tuple[int, ...]
    cap: int
    round_robin: int
    random_mean: float
    round_robin_largest: int
    random_largest: float
    feasible: bool
    tos_ok: bool

    def report(self, what: str = "") -> str:
        mean = sum(self.loads) / self.servers
        top = max(self.loads)
        lines = [f"{what}placed on {self.servers} servers: routers per server {list(self.loads)} "
                 f"(mean {mean:.1f}, largest {top}, {100 * (top / mean - 1) if mean else 0:+.1f} % vs mean; "
                 f"limit {self.cap})",
                 f"remote links: {self.remote}  (round-robin: {self.round_robin}, largest server "
                 f"{self.round_robin_largest}; random: {self.random_mean:.1f}, largest server "
                 f"{self.random_largest:.1f}, mean of {RANDOM_TRIALS} seeds)"]
        if top > self.cap and self.feasible:
            lines.append(f"note: an AS of more than {self.cap} "
                         f"routers sits alone on its server; "
                         f"no placement can be within {int(BALANCE * 100)} % of the mean")
        if not self.feasible:
            lines.append(f"warning: no placement keeps every server within {int(BALANCE * 100)} % of the mean "
                         f"(AS sizes do not divide evenly); this is the closest found")
        if not self.tos_ok:
            lines.append(f"warning: some server pair carries more than {MAX_TOS_LINKS_PER_PAIR} remote links "
                         f"(tos isolation cannot mark them; use fabric.isolation: key)")
        return "\n".join(lines)


def partition(graph: Graph, servers: int, *, tos: bool = False, seed: int = 1) -> Result:
    if servers < 1:
        raise ValueError("servers must be at least 1")
    adj = graph.adjacency()
    cap = capacity(graph, servers)
    verts = sorted(graph.weights, key=str)
    starts: List[Dict[Any, int]] = []
    if servers == 1 or not verts:
        starts.append({v: 0 for v in verts})
    else:
        rng = random.Random(seed)
        by_degree = sorted(verts, key=lambda v: (-sum(adj[v].values()), str(v)))
        seeds = by_degree[:STARTS // 2] + rng.sample(verts, min(len(verts), STARTS // 2))
        starts += [_grow(graph, adj, servers, s) for s in dict.fromkeys(seeds)]
        kl = _kl(graph, servers, seed)
        if kl is not None:
            starts.append(kl)
        starts.append(round_robin(graph, servers))
    best: Optional[Dict[Any, int]] = None
    best_cost = None
    for start in starts:
        refined = _refine(graph, adj, start, servers, cap, tos) if servers > 1 else start
        c = _cost(graph, refined, servers, cap, tos)
        if best_cost is None or c < best_cost:
            best, best_cost = refined, c
    assert best is not None and best_cost is not None
    best = _renumber(best)
    rr_place = round_robin(graph, servers)
    randoms = [random_placement(graph, servers, seed + i) for i in range(RANDOM_TRIALS)]
    return Result(place=best, servers=servers, remote=best_cost[2], loads=tuple(loads(graph, best, servers)),
                  cap=cap, round_robin=cut(graph, rr_place), random_mean=sum(cut(graph, r) for r in randoms) / RANDOM_TRIALS,
                  round_robin_largest=max(loads(graph, rr_place, servers)),
                  random_largest=sum(max(loads(graph, r, servers)) for r in randoms) / RANDOM_TRIALS,
                  feasible=best_cost[0] == 0, tos_ok=best_cost[1] == 0)


def _renumber(place: Dict[Any, int]) -> Dict[Any, int]:
    """Servers numbered in order of their first AS (stable output)."""
    order: Dict[int, int] = {}
    for v in sorted(place, key=str):
        order.setdefault(place[v], len(order))
    missing = [s for s in sorted(set(place.values())) if s not in order]
    for s in missing:
        order[s] = len(order)
    return {v: order[s] for v, s in place.items()}


# ---- topology dicts -------------------------------------------------------------------------

def _asn_of_ref(ref: Any) -> Optional[int]:
    if isinstance(ref, str) and "." in ref and ref.split(".", 1)[0].isdigit():
        return int(ref.split(".", 1)[0])
    return None


def graph_of(topology: Dict[str, Any]) -> Graph:
    """The AS graph of a topology given as a dict (as read from YAML, before validation)."""
    weights: Dict[Any, int] = {}
    for asn, spec in (topology.get("ases") or {}).items():
        routers = spec.get("routers") if isinstance(spec, dict) else None
        weights[asn] = len(routers) if isinstance(routers, list) and routers else 1
    edges: Dict[Tuple[Any, Any], int] = {}

    def add(u: Any, v: Any) -> None:
        if u is None or v is None or u == v or u not in weights or v not in weights:
            return
        key = (u, v) if str(u) <= str(v) else (v, u)
        edges[key] = edges.get(key, 0) + 1

    for link in topology.get("links") or []:
        if isinstance(link, dict):
            add(_asn_of_ref(link.get("a")), _asn_of_ref(link.get("b")))
    for ixp, spec in (topology.get("ixps") or {}).items():
        key = f"ixp{ixp}"
        weights[key] = 1
        for m in (spec or {}).get("members") or []:
            ref = m.get("router") if isinstance(m, dict) else m
            add(key, _asn_of_ref(ref))
    return Graph(weights=weights, edges=edges)


def place_dict(topology: Dict[str, Any], servers: int, seed: int = 1) -> str:
    """Assign every AS (and IXP) of `topology` a server, in place; returns the report text.
    An IXP is a vertex of its own: a member placed on another server costs one remote segment,
    exactly as a remote link does, so members stay with their IXP when balance allows."""
    graph = graph_of(topology)
    tos = (topology.get("fabric") or {}).get("isolation") == "tos"
    result = partition(graph, servers, tos=tos, seed=seed)
    old = topology.get("servers")
    if isinstance(old, dict) and len(old) == servers:
        names = list(old)
    elif isinstance(old, list) and len(old) == servers:
        names = list(old)
    else:
        names = [f"VM{i}" for i in range(1, servers + 1)]
        topology["servers"] = names
    for asn, spec in (topology.get("ases") or {}).items():
        if isinstance(spec, dict):
            spec["server"] = names[result.place[asn]]
    for ixp, spec in (topology.get("ixps") or {}).items():
        if isinstance(spec, dict):
            spec["server"] = names[result.place[f"ixp{ixp}"]]
    return result.report()


def partition_file(path: str, servers: int, seed: int = 1) -> Tuple[str, Dict[str, Any]]:
    """Read a topology file (servers and server keys may be absent), place it, return (report, dict).
    The placed topology is validated by the caller before it is written."""
    import os
    from .loader import TopologyError, _Problems, _read_yaml
    source = os.path.basename(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise TopologyError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise TopologyError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    p = _Problems(source)
    data = _read_yaml(p, text)
    if p.lines:
        raise TopologyError(p.lines)
    if not isinstance(data, dict) or not isinstance(data.get("ases"), dict) or not data["ases"]:
        raise TopologyError([f"{source}: ases: a topology to partition needs its ases mapping"])
    report = place_dict(data, servers, seed=seed)
    return f"{source}: " + report, data


def placed_copy(path: str, servers: int, seed: int = 1) -> str:
    """`lab up FILE --servers N`: write FILE placed on N servers beside it (STEM-Nservers.yaml) and
    return that path; ValueError (one line per problem) when FILE or the result is not valid."""
    import os
    import sys
    from ..importers import to_yaml
    from .loader import TopologyError, parse_topology
    if servers < 1:
        raise ValueError(f"--servers {servers}: must be at least 1")
    try:
        report, data = partition_file(path, servers, seed=seed)
        text = to_yaml(data)
        stem = os.path.splitext(path)[0]
        out = f"{stem}-{servers}servers.yaml"
        parse_topology(text, os.path.basename(out))
    except TopologyError as exc:
        raise ValueError("\n".join(exc.problems)) from None
    tmp = out + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except OSError as exc:
        raise ValueError(f"{out}: cannot write: {exc.strerror or exc}") from None
    print(report, file=sys.stderr)
    print(f"{os.path.basename(path)}: placed copy written to {out} (use it for lab status/down)", file=sys.stderr)
    return out
