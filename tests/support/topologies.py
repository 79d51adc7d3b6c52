"""Small topologies written in a line: every AS on one server VM1 with one router named by its
number's letter (AS 1 has router A, AS 2 has B, ...)."""
from __future__ import annotations

from typing import Sequence, Tuple

from minet_sdn.topology import Topology, parse_topology


def one_router_ases_text(n: int, links: Sequence[Tuple[str, str, str]] = (), more: str = "") -> str:
    """The YAML of ASes 1..n on VM1, `links` as (a, b, rel), then `more` (e.g. an ixps: block)."""
    lines = ["name: t", "servers: [VM1]", "ases:"]
    lines += [f"  {i}: {{server: VM1, routers: [{chr(64 + i)}]}}" for i in range(1, n + 1)]
    if links:
        lines += ["links:"] + [f"  - {{a: {a}, b: {b}, rel: {rel}}}" for a, b, rel in links]
    return "\n".join(lines) + "\n" + more


def one_router_ases(n: int, links: Sequence[Tuple[str, str, str]] = (), more: str = "") -> Topology:
    """one_router_ases_text parsed (as file t.yaml)."""
    return parse_topology(one_router_ases_text(n, links, more), "t.yaml")
