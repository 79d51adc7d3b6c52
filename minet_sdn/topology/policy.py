"""Which ASes should reach which, by the usual (Gao-Rexford) routing policies: a model to check
the measured connectivity matrix against.

The rules the generated FRR configurations follow: an AS passes routes learned from a customer (and
its own) to every neighbour, and routes learned from a peer or a provider only to its customers. A
route announced by AS d therefore climbs provider edges, crosses at most one peer edge, and then
only descends customer edges ("valley-free"). AS s has a route to d exactly when d's announcement
reaches s along such a path; the reply needs the reverse path, which is valley-free too, so the
relation is symmetric.

An IXP's route server joins its members as peers (one peer edge through the LAN; `announce_to`
narrows whom a member's routes reach). ASes left for the students (`configure: false`) run whatever
the students write: the model leaves them out, and routes do not cross them.
"""
from __future__ import annotations

from collections import defaultdict, deque
from typing import Dict, Iterable, List, Optional, Set, Tuple

# a's relationship to b, as links are written: provider = a is b's provider
PROVIDER, CUSTOMER, PEER = "provider", "customer", "peer"


class Relations:
    """The AS-level graph: providers, customers and peers of each AS."""

    def __init__(self) -> None:
        self.providers: Dict[int, Set[int]] = defaultdict(set)
        self.customers: Dict[int, Set[int]] = defaultdict(set)
        self.peers: Dict[int, Set[int]] = defaultdict(set)
        # peers that may pass routes only one way (IXP announce_to): (from, to) pairs that may NOT
        self.blocked: Set[Tuple[int, int]] = set()
        self.ases: Set[int] = set()

    def add(self, a: int, b: int, rel: str) -> None:
        """Record one AS-level adjacency; `rel` is a's relationship to b."""
        if a == b:
            return
        self.ases.update((a, b))
        if rel == PROVIDER:
            self.customers[a].add(b)
            self.providers[b].add(a)
        elif rel == CUSTOMER:
            self.customers[b].add(a)
            self.providers[a].add(b)
        elif rel == PEER:
            self.peers[a].add(b)
            self.peers[b].add(a)
        else:
            raise ValueError(f"unknown relationship {rel!r}")

    def reached_by(self, origin: int) -> Set[int]:
        """The ASes that learn a route to `origin`'s prefixes (origin itself included)."""
        # state "up": the route was learned from a customer (or is the AS's own): exported to all;
        # state "down": learned from a peer or provider: exported to customers only.
        seen_up = {origin}
        seen_down: Set[int] = set()
        queue = deque([(origin, True)])
        while queue:
            asn, up = queue.popleft()
            targets: List[Tuple[int, bool]] = [(c, False) for c in self.customers.get(asn, ())]
            if up:
                targets += [(p, True) for p in self.providers.get(asn, ())]
                targets += [(p, False) for p in self.peers.get(asn, ()) if (asn, p) not in self.blocked]
            for nxt, nxt_up in targets:
                seen = seen_up if nxt_up else seen_down
                if nxt in seen or (not nxt_up and nxt in seen_up):
                    continue        # a route from a customer is preferred and exported more widely
                seen.add(nxt)
                queue.append((nxt, nxt_up))
        return seen_up | seen_down

    def reachability(self) -> Dict[int, Set[int]]:
        """{AS: the ASes it exchanges routes with both ways} (itself included)."""
        if self.blocked:        # one-way peerings: follow each origin's announcement
            heard = {asn: self.reached_by(asn) for asn in self.ases}
            return {s: {d for d in self.ases if s in heard[d] and d in heard[s]} for s in self.ases}
        # Without one-way peerings a valley-free path climbs from s to some u, crosses at most one
        # peer edge u-v, and climbs down to d: s and d reach each other exactly when the ASes above
        # s (itself included) meet the ASes above d or their peers. Bit sets keep it fast at 1,000s.
        order = sorted(self.ases)
        index = {asn: i for i, asn in enumerate(order)}
        up = {asn: 1 << index[asn] for asn in order}
        changed = True
        while changed:          # a fixpoint: provider cycles, which real data can have, converge too
            changed = False
            for asn in order:
                bits = up[asn]
                for p in self.providers.get(asn, ()):
                    bits |= up.get(p, 0)
                if bits != up[asn]:
                    up[asn] = bits
                    changed = True
        own_or_peer = {asn: (1 << index[asn]) | sum(1 << index[p] for p in self.peers.get(asn, ()) if p in index)
                       for asn in order}
        up_or_peer = {}
        for asn in order:
            bits, rest = 0, up[asn]
            while rest:
                low = rest & -rest
                bits |= own_or_peer[order[low.bit_length() - 1]]
                rest ^= low
            up_or_peer[asn] = bits
        return {s: {d for d in order if up[s] & up_or_peer[d]} for s in order}

    def unreachable_pairs(self) -> List[Tuple[int, int]]:
        """Ordered pairs (s, d), s != d, with no valley-free path."""
        reach = self.reachability()
        return [(s, d) for s in sorted(self.ases) for d in sorted(self.ases)
                if s != d and d not in reach[s]]


def relations_of(topo) -> Relations:
    """The policy graph of a loaded topology (minet_sdn.topology.Topology), configured ASes only."""
    configured = {asn for asn, as_ in topo.ases.items() if as_.configure}
    rel = Relations()
    rel.ases.update(configured)
    for link in topo.links:
        if link.ixp is not None:
            continue
        a, b = link.a.asn, link.b.asn
        if a in configured and b in configured:
            rel.add(a, b, link.rel)
    for ixp in getattr(topo, "ixps", {}).values():
        members = [m for m in ixp.members if m.asn in configured]
        for m in members:
            for n in members:
                if m.asn == n.asn:
                    continue
                rel.add(m.asn, n.asn, PEER)
                if m.announce_to is not None and n.asn not in m.announce_to:
                    rel.blocked.add((m.asn, n.asn))
    return rel


def expected_pairs(topo, asns: Optional[Iterable[int]] = None) -> Dict[Tuple[int, int], bool]:
    """{(s, d): should s reach d} for the ASes `asns` (default: every AS of the topology).

    An AS left for the students is expected to reach nothing (and nothing to reach it): what it
    does is the students' work, not the model's."""
    rel = relations_of(topo)
    reach = rel.reachability()
    asns = sorted(topo.ases) if asns is None else sorted(asns)
    return {(s, d): (s in reach and d in reach[s]) for s in asns for d in asns if s != d}
