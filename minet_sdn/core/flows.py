"""The flows a remote bridge should hold, as plain hashable values (no datapath, no os-ken).

Table 0 only, by priority:
  200  proxy ARP: a request on link L's port for L's far-end IP is turned into the reply and sent
       back out of the in-port (Neutron's ARP responder trick; the far MAC comes from the topology);
       on an IXP member's side of an IXP segment, one such flow per other address of the peering LAN
  150  any other ARP: dropped (no ARP ever crosses the tunnel, no ARP storm)
  100  link L: port -> tunnel with L's mark, tunnel with L's mark -> port; the mark is tunnel
       key L (key mode: any frame) or DSCP = L's number within its server pair (tos mode: IP only)
    0  everything else: dropped (no NORMAL, no FLOOD)
"""
from __future__ import annotations

from operator import itemgetter
from types import MappingProxyType
from typing import Any, Dict, FrozenSet, Iterable, Iterator, Mapping, NamedTuple, Tuple

from ..topology.model import Bridge, Link, Topology, link_cookie

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2

PRIO_ARP_REPLY = 200
PRIO_ARP_DROP = 150
PRIO_LINK = 100
PRIO_DROP = 0

IN_PORT = "IN_PORT"   # symbolic output port; converted to OFPP_IN_PORT when sent

Action = Tuple[Any, ...]   # ("output", port) | ("set_field", field, value) | ("move", src, dst, n_bits)
FlowKey = Tuple[int, int, Tuple[Tuple[str, Any], ...]]


class Flow(NamedTuple):
    """A flow as a plain value (a tuple: built, hashed and compared in C, which matters when a
    sync handles tens of thousands of them)."""
    priority: int
    match: Tuple[Tuple[str, Any], ...]     # sorted (field, value) pairs
    actions: Tuple[Action, ...]            # empty: drop
    cookie: int
    table_id: int = 0

    # What identifies a flow in an OpenFlow table (an ADD with the same key replaces it):
    # (table_id, priority, match), taken by itemgetter, in C (read 60,000 times in a large sync)
    key = property(itemgetter(4, 0, 1), doc="(table_id, priority, match): what identifies a flow in a table")

    @staticmethod
    def make(priority: int, match: Dict[str, Any], actions: Iterable[Action], cookie: int) -> "Flow":
        return Flow(priority=priority, match=tuple(sorted(match.items())), actions=tuple(actions), cookie=cookie)


def base_flows(bridge: Bridge) -> Iterator[Flow]:
    cookie = link_cookie(0)
    yield Flow.make(PRIO_DROP, {}, (), cookie)
    yield Flow.make(PRIO_ARP_DROP, {"eth_type": ETH_TYPE_ARP}, (), cookie)


def proxy_arp_flow(port: int, link: Link, local_server: str) -> Flow:
    far = link.far(local_server)
    return arp_reply_flow(port, far.ip, far.mac, link.cookie)


def arp_reply_flow(port: int, ip: str, mac: str, cookie: int) -> Flow:
    """A request on `port` for `ip` becomes the reply `ip is at mac`, back out of the in-port."""
    return Flow.make(
        PRIO_ARP_REPLY,
        {"in_port": port, "eth_type": ETH_TYPE_ARP, "arp_op": ARP_REQUEST, "arp_tpa": ip},
        (("move", "eth_src", "eth_dst", 48),
         ("set_field", "eth_src", mac),
         ("set_field", "arp_op", ARP_REPLY),
         ("move", "arp_sha", "arp_tha", 48),
         ("move", "arp_spa", "arp_tpa", 32),
         ("set_field", "arp_sha", mac),
         ("set_field", "arp_spa", ip),
         ("output", IN_PORT)),
        cookie)


# The flows of a link on a bridge depend on the topology alone, so they are derived once per
# topology (prepare() does it for every bridge when the controller loads one) and reused by every
# sync, port event and reload: a sync of 10,000 links then only compares.
_MEMO: Dict[str, Any] = {"topo": None, "links": {}}


def _memo(topo: Topology) -> Dict[Any, Any]:
    """(dpid, link id) -> that link's ((key, flow), ...) on that bridge; ("bridge", dpid) -> the
    last (present ports, every flow) bridge_flows computed for it."""
    if _MEMO["topo"] is not topo:
        _MEMO["topo"], _MEMO["links"] = topo, {}
    return _MEMO["links"]


def _keyed_link_flows(topo: Topology, bridge: Bridge, link: Link) -> Tuple[Tuple[FlowKey, Flow], ...]:
    memo = _memo(topo)
    got = memo.get((bridge.dpid, link.id))
    if got is None:
        got = memo[(bridge.dpid, link.id)] = tuple((f.key, f) for f in _link_flows(topo, bridge, link))
    return got


def prepare(topo: Topology) -> int:
    """Derive the flows of every link on every bridge of `topo` now (and each bridge's table with
    every link present, the usual case of a sync); returns how many flows."""
    for bridge in topo.bridges.values():
        bridge_table(topo, bridge, [topo.link(lid).ofport for lid in bridge.link_ids])
    return sum(len(_keyed_link_flows(topo, bridge, topo.link(lid)))
               for bridge in topo.bridges.values() for lid in bridge.link_ids)


def link_flows(topo: Topology, bridge: Bridge, link: Link) -> Iterator[Flow]:
    """Flows that carry `link` across `bridge`'s tunnel, isolated from every other link."""
    return iter([f for _, f in _keyed_link_flows(topo, bridge, link)])


def _link_flows(topo: Topology, bridge: Bridge, link: Link) -> Iterator[Flow]:
    port, tunnel, cookie, lid = link.ofport, bridge.tunnel_ofport, link.cookie, link.id
    if link.ixp is not None and link.a.server == bridge.server:
        # an IXP member's side: it talks to everyone on the peering LAN, so every address of the
        # LAN is answered (the IXP's side answers for the member alone, like a link's far end)
        for ip, mac in link.lan:
            yield arp_reply_flow(port, ip, mac, cookie)
    else:
        yield proxy_arp_flow(port, link, bridge.server)
    if topo.fabric.isolation == "key":
        yield Flow.make(PRIO_LINK, {"in_port": port},
                        (("set_field", "tunnel_id", lid), ("output", tunnel)), cookie)
        yield Flow.make(PRIO_LINK, {"in_port": tunnel, "tunnel_id": lid}, (("output", port),), cookie)
    else:
        # tos: the mark is always overwritten on the way in, so a router cannot forge another link's
        # mark; IP only (the original scheme), so the routers' own DSCP does not survive the tunnel
        mark = topo.link_marks[lid]
        for eth_type in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
            yield Flow.make(PRIO_LINK, {"in_port": port, "eth_type": eth_type},
                            (("set_field", "ip_dscp", mark), ("output", tunnel)), cookie)
            yield Flow.make(PRIO_LINK, {"in_port": tunnel, "eth_type": eth_type, "ip_dscp": mark},
                            (("set_field", "ip_dscp", 0), ("output", port)), cookie)


def bridge_flows(topo: Topology, bridge: Bridge, present_ports: Iterable[int]) -> Dict[FlowKey, Flow]:
    """Every flow `bridge` should hold when the ports `present_ports` exist on it."""
    return dict(_bridge_table(topo, bridge, present_ports)[1])    # a copy: the caller owns (and changes) it


def bridge_table(topo: Topology, bridge: Bridge,
                 present_ports: Iterable[int]) -> Tuple[Mapping[FlowKey, Flow], FrozenSet[Flow]]:
    """bridge_flows as a read-only view of the memo (no copy: a caller that changes the table
    copies it first) and the same flows as a set, built (and every flow hashed) once per table: a
    resync that finds the table as it should be checks each flow read by one lookup."""
    entry = _bridge_table(topo, bridge, present_ports)
    if entry[2] is None:
        entry[2] = frozenset(entry[1].values())
    return entry[3], entry[2]


def _bridge_table(topo: Topology, bridge: Bridge, present_ports: Iterable[int]) -> list:
    """[present link ids, {key: flow}, frozenset of the flows or None, read-only view of the
    dict], memoised per bridge."""
    ports = set(present_ports)
    links = topo.link_by_id
    present = tuple(lid for lid in bridge.link_ids if links[lid].ofport in ports)
    memo = _memo(topo)
    cached = memo.get(("bridge", bridge.dpid))
    if cached is not None and cached[0] == present:
        return cached
    flows = {f.key: f for f in base_flows(bridge)}
    for lid in present:
        flows.update(_keyed_link_flows(topo, bridge, links[lid]))
    cached = memo[("bridge", bridge.dpid)] = [present, flows, None, MappingProxyType(flows)]
    return cached
