"""Import an AS-level Internet from CAIDA's AS-relationship format.

The format (serial-1 and serial-2 files, one adjacency a line; `#` starts a comment):

  <provider-AS>|<customer-AS>|-1            provider to customer
  <peer-AS>|<peer-AS>|0                     peers
  ...|<source>                              serial-2 adds where the relationship was seen

The Internet has some 75,000 ASes; a lab keeps N of them, chosen so that the result is connected
and consistent with the policies (`select`):

  core        the N ASes with the largest customer cones (their own plus their customers',
              recursively): the transit core and the tier-1 clique first
  cone:ASN    ASN and its customer cone, largest cones first, up to N
  random      a seeded sample of stubs and transit ASes, each kept with the provider chain that
              connects it upwards

Whatever the rule, an AS is kept only if it has no provider at all or one of its providers is kept
(an AS with no way up would be cut off from everything outside its own cone); every adjacency
between two kept ASes is kept. Real AS numbers stay; each AS gets `routers_per_as` routers (a ring)
and the adjacencies spread over them in turn. Prefixes: the default plan where the AS number allows
it (10.x.y.0/24 up to AS 65535), else a /24 from 172.16.0.0/12 and a /48 from fd0b::/16.
"""
from __future__ import annotations

import ipaddress
import os
import random
from collections import defaultdict
from typing import Any, Dict, List, Optional, Set, Tuple

from ..topology.addressing import default_prefix
from ..topology.loader import MAX_ASN
from ..topology.policy import Relations
from . import ImportProblem, Imported, instance_name, read_input

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_PROBLEMS = 20
BIG_PREFIX_POOL = ipaddress.ip_network("172.16.0.0/12")     # 4,096 /24s
BIG_PREFIX6_POOL = ipaddress.ip_network("fd0b::/16")
SELECT_RULES = ("core", "cone:ASN", "random")


class AsGraph:
    """Providers, customers and peers, as read from the file."""

    def __init__(self) -> None:
        self.customers: Dict[int, Set[int]] = defaultdict(set)
        self.providers: Dict[int, Set[int]] = defaultdict(set)
        self.peers: Dict[int, Set[int]] = defaultdict(set)
        self.ases: Set[int] = set()

    def rel(self, a: int, b: int) -> Optional[str]:
        """a's relationship to b (provider | customer | peer), or None when not adjacent."""
        if b in self.customers.get(a, ()):
            return "provider"
        if b in self.providers.get(a, ()):
            return "customer"
        if b in self.peers.get(a, ()):
            return "peer"
        return None

    def cone_sizes(self) -> Dict[int, int]:
        """{AS: size of its customer cone (itself and every customer, recursively)}."""
        sizes: Dict[int, int] = {}
        for asn in self.ases:
            if not self.customers.get(asn):
                sizes[asn] = 1
                continue
            seen = {asn}
            stack = [asn]
            while stack:
                for c in self.customers.get(stack.pop(), ()):
                    if c not in seen:
                        seen.add(c)
                        stack.append(c)
            sizes[asn] = len(seen)
        return sizes


def _parse(path: str) -> Tuple[str, AsGraph]:
    label = os.path.basename(path)
    raw = read_input(path, label, MAX_FILE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ImportProblem([f"{label}: line {line}: not UTF-8 text"]) from None
    graph = AsGraph()
    problems: List[str] = []
    seen: Dict[Tuple[int, int], Tuple[str, int]] = {}

    def problem(line: int, col: int, message: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(f"{label}: line {line}, column {col}: {message}")

    for number, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        fields = body.split("|")
        if len(fields) not in (3, 4):
            problem(number, 1, f"expected AS1|AS2|REL or AS1|AS2|REL|SOURCE, got {len(fields)} fields")
            continue
        asns: List[int] = []
        col = 1
        for k in range(2):
            f = fields[k].strip()
            if not f.isdigit() or not 1 <= int(f) <= MAX_ASN:
                problem(number, col, f"{f[:20]!r} is not an AS number (1..{MAX_ASN})")
            else:
                asns.append(int(f))
            col += len(fields[k]) + 1
        relation = fields[2].strip()
        if relation not in ("-1", "0"):
            problem(number, col, f"relationship {relation[:10]!r} is not -1 (provider|customer) or 0 (peers)")
            continue
        if len(asns) < 2:
            continue
        a, b = asns
        if a == b:
            problem(number, 1, f"AS {a} is related to itself")
            continue
        rel = "provider" if relation == "-1" else "peer"
        key = (min(a, b), max(a, b))
        wanted = f"{a} provides {b}" if rel == "provider" else "peers"
        if key in seen:
            if seen[key][0] != wanted:
                problem(number, 1, f"AS {a} and AS {b} are already related differently on line {seen[key][1]}")
            continue
        seen[key] = (wanted, number)
        graph.ases.update((a, b))
        if rel == "provider":
            graph.customers[a].add(b)
            graph.providers[b].add(a)
        else:
            graph.peers[a].add(b)
            graph.peers[b].add(a)
    if problems:
        raise ImportProblem(problems)
    if not graph.ases:
        raise ImportProblem([f"{label}: no AS relationship in the file"])
    return label, graph


def _keepable(graph: AsGraph, asn: int, kept: Set[int]) -> bool:
    providers = graph.providers.get(asn, ())
    return not providers or any(p in kept for p in providers)


def _select(graph: AsGraph, count: int, rule: str, seed: int, label: str) -> List[int]:
    """The kept ASes, in the order they were chosen."""
    sizes = graph.cone_sizes()
    order = sorted(graph.ases, key=lambda a: (-sizes[a], a))
    if rule == "core":
        pool = order
    elif rule.startswith("cone:"):
        root_text = rule[5:]
        if not root_text.isdigit() or int(root_text) not in graph.ases:
            raise ImportProblem([f"{label}: --select {rule}: AS {root_text} is not in the file"])
        root = int(root_text)
        cone = {root}
        stack = [root]
        while stack:
            for c in graph.customers.get(stack.pop(), ()):
                if c not in cone:
                    cone.add(c)
                    stack.append(c)
        pool = [a for a in order if a in cone]
        # inside the cone the root stands for "up": its customers need no provider beyond it
        kept: List[int] = []
        kept_set: Set[int] = set()
        for asn in pool:
            if len(kept) >= count:
                break
            if asn == root or any(p in kept_set for p in graph.providers.get(asn, ())):
                kept.append(asn)
                kept_set.add(asn)
        return kept
    elif rule == "random":
        rng = random.Random(seed)
        kept_set: Set[int] = set()
        kept: List[int] = []
        candidates = sorted(graph.ases)
        rng.shuffle(candidates)
        for asn in candidates:
            if len(kept) >= count:
                break
            if asn in kept_set:
                continue
            chain = [asn]            # climb to a kept AS or a top AS, through the best-connected provider
            while not _keepable(graph, chain[-1], kept_set) and len(chain) < 64:
                above = sorted(graph.providers[chain[-1]], key=lambda p: (-sizes[p], p))
                nxt = next((p for p in above if p not in chain), None)
                if nxt is None:
                    break
                chain.append(nxt)
            if not _keepable(graph, chain[-1], kept_set) or len(kept) + len(chain) > count:
                continue
            for a in reversed(chain):
                if a not in kept_set:
                    kept.append(a)
                    kept_set.add(a)
        return kept
    else:
        raise ImportProblem([f"{label}: --select {rule!r}: expected one of {', '.join(SELECT_RULES)}"])
    kept = []
    kept_set = set()
    for asn in pool:        # largest cones first: an AS's providers come before it
        if len(kept) >= count:
            break
        if _keepable(graph, asn, kept_set):
            kept.append(asn)
            kept_set.add(asn)
    return kept


def import_as_rel(path: str, *, ases: int = 100, select: str = "core", seed: int = 1,
                  routers_per_as: int = 1, name: Optional[str] = None) -> Imported:
    """A topology of `ases` ASes from an AS-relationship file (see the module's text)."""
    label, graph = _parse(path)
    kept = _select(graph, ases, select, seed, label)
    kept_set = set(kept)
    notes: List[str] = []
    if len(kept) < ases:
        notes.append(f"{label}: kept {len(kept)} ASes (asked for {ases}): no more fit the rule {select}")

    routers = {asn: [f"R{i}" for i in range(1, routers_per_as + 1)] for asn in kept}
    turn: Dict[int, int] = defaultdict(int)

    def next_router(asn: int) -> str:
        name_ = routers[asn][turn[asn] % routers_per_as]
        turn[asn] += 1
        return f"{asn}.{name_}"

    links: List[Dict[str, Any]] = []
    relations = Relations()
    for a in sorted(kept):
        for b in sorted(graph.customers.get(a, ())):
            if b in kept_set:
                links.append({"a": next_router(a), "b": next_router(b), "rel": "provider"})
                relations.add(a, b, "provider")
        for b in sorted(graph.peers.get(a, ())):
            if b in kept_set and a < b:
                links.append({"a": next_router(a), "b": next_router(b), "rel": "peer"})
                relations.add(a, b, "peer")
    relations.ases.update(kept)

    if routers_per_as * 16 > 256:
        raise ImportProblem([f"{label}: --routers-per-as {routers_per_as}: at most 16 routers fit an AS's /24"])
    spec_ases: Dict[int, Dict[str, Any]] = {}
    v4 = iter(BIG_PREFIX_POOL.subnets(new_prefix=24))
    v6 = iter(BIG_PREFIX6_POOL.subnets(new_prefix=48))
    for asn in sorted(kept):
        spec: Dict[str, Any] = {"server": "VM1", "routers": routers[asn]}
        if default_prefix(asn) is None:
            try:
                spec["prefix"] = str(next(v4))
                spec["prefix6"] = str(next(v6))
            except StopIteration:
                raise ImportProblem([f"{label}: more ASes above 65535 than {BIG_PREFIX_POOL} has /24s"]) from None
        spec_ases[asn] = spec

    unreachable = relations.unreachable_pairs()
    total = len(kept) * (len(kept) - 1)
    if unreachable:
        notes.append(f"{len(unreachable)} of {total} AS pairs have no valley-free path between them "
                     f"(e.g. AS {unreachable[0][0]} and AS {unreachable[0][1]}): the policies cut them off")
    notes.append(f"{label}: {len(graph.ases)} ASes in the file; kept {len(kept)} by {select}, "
                 f"{len(links)} adjacencies among them")
    topo: Dict[str, Any] = {"name": name or instance_name(os.path.splitext(label)[0]),
                            "servers": ["VM1"], "ases": spec_ases, "links": links}
    return Imported(topology=topo, notes=notes)
