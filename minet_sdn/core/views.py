"""What the REST API and the metrics endpoint show, computed from the core's state (pure)."""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from ..topology.model import Link, cookie_link_id
from .damping import SUPPRESS
from .fabric import FabricCore

Counters = Dict[int, Dict[str, Dict[str, int]]]   # link id -> server -> {"packets", "bytes"}
# A server is present for every link of each bridge that answered, even with zero counts.


def link_view(core: FabricCore, link: Link, counters: Optional[Counters] = None) -> dict:
    x, y = link.servers()
    view = {
        "id": link.id,
        "a": {"router": link.a.router, "server": x, "ip": link.a.ip, "ip6": link.a.ip6, "mac": link.a.mac},
        "b": {"router": link.b.router, "server": y, "ip": link.b.ip, "ip6": link.b.ip6, "mac": link.b.mac},
        "rel": link.rel,
        "remote": link.remote,
        "state": core.link_state(link),
        "tunnel_live": core.pair_live(x, y) if link.remote else None,
        "tunnel_flaps": _pair_flaps(core, x, y) if link.remote else None,
        "shaping": link.shaping.as_dict() if link.shaping else None,
    }
    if link.ixp is not None:
        view["ixp"] = link.ixp       # an IXP segment: a = the member, b = the IXP's side (rel "ixp")
    if link.remote:
        # None: that server's bridge did not answer (not connected, or too slow), which is not zero
        per_side = (counters or {}).get(link.id, {})
        view["counters"] = {server: per_side.get(server) for server in (x, y)}
    return view


def _pair_flaps(core: FabricCore, x: str, y: str) -> dict:
    """BFD transitions of the pair's tunnel (both bridges), and whether a BFD-down is being held
    (core/damping.py: a flapping tunnel's short downs do not fail its links)."""
    views = [core.damper.view(core.topo.dpid(s, p), core.now) for s, p in ((x, y), (y, x))]
    return {"bfd_transitions": sum(v["bfd_transitions"] for v in views),
            "held": any(v["bfd_held"] for v in views),
            "flapping": any(v["bfd_penalty"] >= SUPPRESS for v in views)}


def switch_view(core: FabricCore) -> List[dict]:
    out = []
    for dpid, st in core.bridges.items():
        b = st.bridge
        out.append({"dpid": f"{dpid:016x}", "name": b.name, "server": b.server, "peer": b.peer,
                    "connected": st.connected, "synced": st.connected and st.synced and st.table_ok, "tunnel_live": core.tunnel_live(dpid),
                    "links": len(b.link_ids), "flows": len(st.installed), "refusals": st.refusals,
                    "repairs": st.repairs, **core.damper.view(dpid, core.now)})
    return out


def _labels(**kw) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in kw.items()) + "}"


def metrics_text(core: FabricCore, counters: Counters, extra: Dict[str, int]) -> str:
    lines: List[str] = []

    def family(name: str, kind: str, help_: str) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")

    family("minet_switch_connected", "gauge", "1 if the remote bridge is connected to the controller")
    for dpid, st in core.bridges.items():
        lines.append(f"minet_switch_connected{_labels(dpid=f'{dpid:016x}', server=st.bridge.server, peer=st.bridge.peer)} {int(st.connected)}")
    family("minet_tunnel_live", "gauge", "1 if the bridge's tunnel port is live (BFD), when known")
    for dpid, st in core.bridges.items():
        live = core.tunnel_live(dpid)
        if live is not None:
            lines.append(f"minet_tunnel_live{_labels(server=st.bridge.server, peer=st.bridge.peer)} {int(live)}")
    family("minet_tunnel_bfd_transitions_total", "counter",
           "BFD liveness changes of the bridge's tunnel port (a flapping tunnel counts up)")
    lines.extend(f"minet_tunnel_bfd_transitions_total{_labels(server=st.bridge.server, peer=st.bridge.peer)} "
                 f"{core.damper.view(dpid, core.now)['bfd_transitions']}" for dpid, st in core.bridges.items())
    family("minet_tunnel_bfd_held", "gauge", "1 while a BFD-down of a flapping tunnel is held before it fails links")
    lines.extend(f"minet_tunnel_bfd_held{_labels(server=st.bridge.server, peer=st.bridge.peer)} "
                 f"{int(core.damper.view(dpid, core.now)['bfd_held'])}" for dpid, st in core.bridges.items())
    links = core.topo.tunnelled           # remote links, then IXP segments
    family("minet_link_up", "gauge", "1 if the remote link (or IXP segment) is up")
    for link in links:
        lines.append(f"minet_link_up{_labels(link=link.id)} {int(core.link_state(link) == 'up')}")
    family("minet_link_failed", "gauge", "1 if an operator failed the link")
    for link in links:
        lines.append(f"minet_link_failed{_labels(link=link.id)} {int(link.id in core.failed)}")
    for what in ("packets", "bytes"):
        family(f"minet_link_{what}_total", "counter", f"{what} matched by the link's flows, per server")
        for link in links:
            for server, c in counters.get(link.id, {}).items():
                lines.append(f"minet_link_{what}_total{_labels(link=link.id, server=server)} {c[what]}")
    family("minet_controller_messages_total", "counter", "messages the controller sent or received, by kind")
    for kind, value in sorted({**core.counters, **extra}.items()):
        lines.append(f"minet_controller_messages_total{_labels(kind=kind)} {value}")
    return "\n".join(lines) + "\n"


def link_counters(stats: Iterable[object]) -> Dict[int, Dict[str, int]]:
    """Sum packet/byte counters of our flows per link id, from flow stats entries (os-ken's
    OFPFlowStats or wire.WireFlowStats: cookie, packet_count, byte_count)."""
    out: Dict[int, Dict[str, int]] = {}
    for s in stats:
        lid = cookie_link_id(s.cookie)
        if lid:
            c = out.setdefault(lid, {"packets": 0, "bytes": 0})
            c["packets"] += s.packet_count
            c["bytes"] += s.byte_count
    return out
