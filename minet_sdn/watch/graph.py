"""The topology as a picture, laid out by Graphviz (`dot`) through its Python binding.

AS level (default): one box per AS, inside one cluster per server, coloured by server. Router
level (`routers=True`): each AS is a cluster of its routers (with its internal ring), inside its
server's cluster. Inter-AS links: an arrow from provider to customer, a dashed line without arrows
between peers; remote links (crossing servers through a GRE tunnel) are thick and purple, local
ones thin and grey; with link states (from the controller) a failed link is red, a down one
orange, and both carry the word. An IXP is a hexagon of its own colour in its server's cluster,
joined by a line of that colour to each member AS (to each member router at router level).
`build_graph` is pure (DOT source); `render` runs Graphviz.
"""
from __future__ import annotations

import html
from typing import Dict, Optional

from ..topology import Topology
from ..topology.addressing import ring
from ..topology.places import node_id

# fill of an AS / router, and the pale background of its server's cluster
PALETTE = [("#8ab4f8", "#e8f0fe"), ("#81c995", "#e6f4ea"), ("#fdd663", "#fef7e0"), ("#f6aea9", "#fce8e6"),
           ("#d7aefb", "#f3e8fd"), ("#78d9ec", "#e4f7fb"), ("#fcad70", "#feefe3"), ("#c6c6c6", "#f1f3f4")]
REMOTE_COLOR, LOCAL_COLOR = "#6a1b9a", "#5f6368"
STATE_COLOR = {"failed": "#d93025", "down": "#f29900"}
# one colour per IXP (fill, line), apart from the servers' pastels and the link colours
IXP_PALETTE = [("#00897b", "#00695c"), ("#c2185b", "#ad1457"), ("#6d4c41", "#4e342e"), ("#3949ab", "#283593"),
               ("#7cb342", "#558b2f"), ("#f4511e", "#d84315")]
FORMATS = ("svg", "png", "html", "dot")


def server_colors(topo: Topology) -> Dict[str, tuple]:
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(topo.servers)}


def ixp_colors(topo: Topology) -> Dict[int, tuple]:
    return {n: IXP_PALETTE[i % len(IXP_PALETTE)] for i, n in enumerate(sorted(topo.ixps))}


def ixp_node(number: int) -> str:
    return f"IXP{number}"


def _provider_customer(link):
    """(provider end, customer end) of a transit link, or None for peers."""
    if link.rel == "provider":
        return link.a, link.b
    if link.rel == "customer":
        return link.b, link.a
    return None


def build_graph(topo: Topology, routers: bool = False, states: Optional[Dict[int, str]] = None,
                title: Optional[str] = None):
    """A graphviz.Digraph of the topology. `states`: {link id: "up"|"down"|"failed"} or None."""
    import graphviz
    colors = server_colors(topo)
    g = graphviz.Digraph(name=topo.name, engine="dot")
    n_nodes = (len(topo.routers) if routers else len(topo.ases)) + len(topo.ixps)
    xcolors = ixp_colors(topo)
    g.attr(rankdir="TB", newrank="true", fontname="Helvetica", fontsize="12", splines="spline",
           nodesep="0.25" if n_nodes > 40 else "0.4", ranksep="0.6", outputorder="edgesfirst",
           label=title or _title(topo, routers, states), labelloc="t", labeljust="l")
    g.attr("node", fontname="Helvetica", fontsize="10")
    g.attr("edge", fontname="Helvetica", fontsize="8")
    for server in topo.servers:
        fill, pale = colors[server]
        ases = [a for a in sorted(topo.ases) if topo.ases[a].server == server]
        with g.subgraph(name=f"cluster_srv_{server}") as c:
            c.attr(label=f"server {server} ({len(ases)} ASes)", style="rounded,filled", fillcolor=pale,
                   color=fill, penwidth="2", fontsize="12")
            for asn in ases:
                as_ = topo.ases[asn]
                student = "" if as_.configure else "\n(unconfigured)"
                style = "rounded,filled" + ("" if as_.configure else ",dashed")
                if not routers:
                    c.node(f"AS{asn}", label=f"AS{asn}\n{len(as_.routers)} router{'s' * (len(as_.routers) != 1)}{student}",
                           shape="box", style=style, fillcolor=fill, tooltip=", ".join(as_.router_ids()))
                    continue
                with c.subgraph(name=f"cluster_as_{asn}") as a:
                    a.attr(label=f"AS{asn}{student}", style="rounded,filled", fillcolor="white", color=fill,
                           penwidth="1.5", fontsize="10")
                    for r in as_.routers:
                        a.node(node_id(asn, r), label=r, shape="ellipse", style="filled", fillcolor=fill,
                               tooltip=f"{node_id(asn, r)} on {server}")
                    for x, y in ring(as_.routers):
                        a.edge(node_id(asn, x), node_id(asn, y), dir="none", color="#9aa0a6", penwidth="0.8")
            for number in sorted(n for n, x in topo.ixps.items() if x.server == server):
                x = topo.ixps[number]
                c.node(ixp_node(number), label=f"IXP {number}\n{len(x.members)} members", shape="hexagon",
                       style="filled,bold", fillcolor=xcolors[number][0], color=xcolors[number][1],
                       fontcolor="white", tooltip=f"IXP {number} on {server}: peering LAN {x.peering_lan}, "
                                                  f"route server AS{x.route_server_asn} at {x.route_server_ip}")
    for number in sorted(topo.ixps):                # member ports on the peering LAN (local or a segment)
        x = topo.ixps[number]
        for m in x.members:
            policy = "" if m.announce_to is None else f", routes passed to AS{', AS'.join(map(str, m.announce_to))}"
            g.edge(ixp_node(number), m.router if routers else f"AS{m.asn}", dir="none",
                   color=xcolors[number][1], penwidth="1.8", style="bold",
                   tooltip=f"IXP {number} member {m.router} at {m.ip}{policy}")
    show_ids = len(topo.links) <= 80
    for link in topo.links:
        state = (states or {}).get(link.id)
        pc = _provider_customer(link)
        tail, head = (pc[0], pc[1]) if pc else (link.a, link.b)
        t = tail.router if routers else f"AS{tail.asn}"
        h = head.router if routers else f"AS{head.asn}"
        attrs = {"color": STATE_COLOR.get(state or "", REMOTE_COLOR if link.remote else LOCAL_COLOR),
                 "penwidth": "2.6" if link.remote else "1.2",
                 "tooltip": f"link {link.id}: {link.a.router} - {link.b.router}, {link.rel}, "
                            f"{'remote ' + '-'.join(link.servers()) if link.remote else 'local ' + link.a.server}"
                            + (f", {state}" if state else "")}
        if pc is None:
            attrs.update(dir="none", style="dashed", constraint="false")
        else:
            attrs.update(arrowhead="normal", arrowsize="0.7")
        label = (str(link.id) if show_ids else "") + (f" {state}" if state in STATE_COLOR else "")
        if label.strip():
            attrs["xlabel"] = label.strip()
            if state in STATE_COLOR:
                attrs["fontcolor"] = STATE_COLOR[state]
        g.edge(t, h, **attrs)
    _legend(g, bool(topo.ixps))
    return g


def _title(topo: Topology, routers: bool, states: Optional[Dict[int, str]]) -> str:
    remote = len(topo.remote_links)
    st = "link states from the controller" if states is not None else "link states unknown (controller not reached)"
    if states:
        bad = sum(1 for s in states.values() if s in STATE_COLOR)
        st += f": {bad} link{'s' * (bad != 1)} not up" if bad else ": all up"
    ixps = f", {len(topo.ixps)} IXP{'s' * (len(topo.ixps) != 1)}" if topo.ixps else ""
    return (f"{topo.name}: {len(topo.servers)} servers, {len(topo.ases)} ASes, {len(topo.routers)} routers, "
            f"{len(topo.links)} links ({remote} remote){ixps}; {'router' if routers else 'AS'} level; {st}")


def _legend(g, ixps: bool = False) -> None:
    rows = [(REMOTE_COLOR, "━━", "remote link (GRE tunnel between servers)"),
            (LOCAL_COLOR, "──", "local link (same server)"),
            ("#202124", "→", "provider → customer"),
            ("#202124", "╌╌", "peers"),
            (STATE_COLOR["failed"], "━━", "failed (operator)"),
            (STATE_COLOR["down"], "━━", "down")]
    if ixps:
        rows.append((IXP_PALETTE[0][0], "⬢", "IXP (peering LAN + route server), lines to its members"))
    cells = "".join(f'<TR><TD ALIGN="LEFT"><FONT COLOR="{c}"><B>{html.escape(sym)}</B></FONT></TD>'
                    f'<TD ALIGN="LEFT">{html.escape(text)}</TD></TR>' for c, sym, text in rows)
    g.node("legend", label=f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1">{cells}</TABLE>>',
           shape="box", style="rounded", color="#dadce0", fontsize="9")


def render(topo: Topology, fmt: str, routers: bool = False, states: Optional[Dict[int, str]] = None) -> bytes:
    """The picture as bytes: svg, png, dot (source) or html (a page with the SVG inline)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    g = build_graph(topo, routers=routers, states=states)
    if (len(topo.routers) if routers else len(topo.ases)) + len(topo.ixps) > 16:
        g = g.unflatten(stagger=4, fanout=True)     # stagger leaves over ranks: less wide
    if fmt == "dot":
        return g.source.encode()
    if fmt == "html":
        svg = g.pipe(format="svg").decode()
        svg = svg[svg.find("<svg"):]
        return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>minet graph "
                f"{html.escape(topo.name)}</title><style>body{{font:14px system-ui,sans-serif;margin:1em}}"
                f"svg{{max-width:100%;height:auto}}</style></head><body>{svg}</body></html>\n").encode()
    return g.pipe(format=fmt)


def states_from_links(links) -> Dict[int, str]:
    """{link id: state} from the controller's `/v1/links` list."""
    return {int(l["id"]): str(l.get("state")) for l in links if isinstance(l, dict) and "id" in l}
