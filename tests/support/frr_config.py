"""Reading the FRR configurations the plan generates, as FRR reads them (unit tests of the BGP
import filters and of hardening)."""
from __future__ import annotations

import ipaddress
import re
from typing import Dict, List, Tuple

from minet_sdn.provision.plan import build_plan

ENTRY = re.compile(r"(ip|ipv6) prefix-list (\S+) seq (\d+) (permit|deny) (\S+)(?: le (\d+))?$")

Entry = Tuple[int, str, "ipaddress._BaseNetwork", int]       # (seq, action, network, le)


def router_configs(topo) -> Dict[str, str]:
    """{router node id: its frr.conf} over every server of `topo` (no state root needed)."""
    return {r.node: r.config for s in topo.servers for r in build_plan(topo, s, root="/nonexistent").routers}


def prefix_lists(config: str) -> Dict[str, List[Entry]]:
    """Every prefix-list of a config, its entries in sequence order."""
    lists: Dict[str, List[Entry]] = {}
    for line in config.splitlines():
        m = ENTRY.match(line)
        if m:
            _, name, seq, action, net, le = m.groups()
            net = ipaddress.ip_network(net)
            lists.setdefault(name, []).append((int(seq), action, net, int(le) if le else net.prefixlen))
    return {n: sorted(e) for n, e in lists.items()}


def accepts(entries: List[Entry], prefix: str) -> bool:
    """FRR's reading: the first entry matching decides; nothing matching is a deny."""
    p = ipaddress.ip_network(prefix)
    for _, action, net, le in entries:
        if p.version == net.version and p.subnet_of(net) and net.prefixlen <= p.prefixlen <= le:
            return action == "permit"
    return False
