"""Topology picture: DOT structure (clusters per server, provider -> customer arrows, dashed
peers, remote links stand out, states coloured) and real renders through Graphviz."""
from __future__ import annotations

import importlib
import os
import re
import shutil

import pytest

from minet_sdn.cli.main import main
from minet_sdn.topology import load_topology
from minet_sdn.watch import graph as G

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DEMO = os.path.join(ROOT, "topologies", "demo.yaml")
LARGE = os.path.join(ROOT, "topologies", "large.yaml")
importlib.import_module("graphviz")     # a declared dependency: missing = broken install, must fail
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")


def edges(src: str):
    """{(tail, head): attribute text} of every edge line of DOT source."""
    out = {}
    for m in re.finditer(r'^\s*"?([\w.]+)"?\s*->\s*"?([\w.]+)"?\s*\[(.*)\]\s*$', src, re.M):
        out.setdefault((m.group(1), m.group(2)), []).append(m.group(3))
    return out


def test_as_level_dot():
    topo = load_topology(DEMO)
    src = G.build_graph(topo, states={1: "failed", 8: "down"}).source
    for server in ("VM1", "VM2", "VM3"):
        assert f"subgraph cluster_srv_{server}" in src
    e = edges(src)
    # link 4: 1.GENE provider of 3.BERN (local): arrow AS1 -> AS3, thin grey
    assert any("arrowhead=normal" in a and G.LOCAL_COLOR in a for a in e[("AS1", "AS3")])
    # link 10: 6.OSLO customer of 5.ROMA: the arrow goes from the provider AS5 to AS6
    assert ("AS5", "AS6") in e and ("AS6", "AS5") not in e
    # three parallel peer links AS1 - AS2, remote: dashed, no arrow, thick purple; link 1 failed = red
    peer = e[("AS1", "AS2")]
    assert len(peer) == 3 and all("dir=none" in a and "dashed" in a for a in peer)
    assert sum(G.STATE_COLOR["failed"] in a and "failed" in a for a in peer) == 1
    assert sum(G.REMOTE_COLOR in a and "penwidth=2.6" in a for a in peer) == 2
    assert any(G.STATE_COLOR["down"] in a for a in e[("AS3", "AS4")])
    assert "(unconfigured)" in src and "1 link not up" not in src and "2 links not up" in src


def test_router_level_dot():
    topo = load_topology(DEMO)
    src = G.build_graph(topo, routers=True).source
    assert "subgraph cluster_as_1" in src and "link states unknown" in src
    e = edges(src)
    assert ("1.ZURI", "1.GENE") in e                # AS1's internal link
    assert ("1.ZURI", "5.ROMA") in e                # link 6, provider -> customer


@needs_dot
@pytest.mark.parametrize("fmt,magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("html", b"<!doctype html>")])
def test_renders(fmt, magic):
    data = G.render(load_topology(DEMO), fmt)
    assert magic in data[:400]
    if fmt == "html":
        assert b"<svg" in data and b"<script" not in data


@needs_dot
def test_large_renders_both_levels(tmp_path):
    topo = load_topology(LARGE)
    svg = G.render(topo, "svg").decode()
    assert svg.count('class="node"') == len(topo.ases) + 1          # + legend
    svg_r = G.render(topo, "svg", routers=True).decode()
    assert svg_r.count('class="node"') == len(topo.routers) + 1


@needs_dot
def test_cli(tmp_path, capsys):
    out = tmp_path / "demo.svg"
    assert main(["graph", DEMO, "-o", str(out)]) == 0
    assert out.read_bytes().lstrip().startswith(b"<?xml") or b"<svg" in out.read_bytes()[:500]
    assert main(["graph", DEMO, "-o", str(tmp_path / "x.gif")]) == 2
    assert "unknown format" in capsys.readouterr().err


@needs_dot
def test_60_ases_of_8_routers(tmp_path):
    """The size the issue names: 60 ASes x 8 routers (480), both views render, every node drawn."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("watch_bench", os.path.join(ROOT, "bench", "watch_matrix.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "w60x8.yaml"
    path.write_text(bench.generate(60, 4, "w60x8", per_as=8))
    topo = load_topology(str(path))
    assert len(topo.ases) == 60 and len(topo.routers) == 480
    svg = G.render(topo, "svg").decode()
    assert svg.count('class="node"') == 61 and "AS144" in svg
    svg_r = G.render(topo, "svg", routers=True).decode()
    assert svg_r.count('class="node"') == 481


IXPS = """
name: ixps
servers: [VM1, VM2]
ases:
  1: {server: VM1, routers: [A, B]}
  2: {server: VM1, routers: [C]}
  3: {server: VM2, routers: [D]}
  4: {server: VM2, routers: [E]}
links:
  - {a: 1.A, b: 3.D, rel: provider}
ixps:
  100: {server: VM1, members: [1.B, 2.C]}
  200: {server: VM2, members: [3.D, {router: 4.E, announce_to: [3]}]}
"""


def _cluster(src: str, name: str) -> str:
    """The text of `subgraph <name> { ... }` (its nested subgraphs included)."""
    start = src.index(f"subgraph {name} {{")
    depth, i = 0, src.index("{", start)
    for j in range(i, len(src)):
        depth += {"{": 1, "}": -1}.get(src[j], 0)
        if depth == 0:
            return src[start:j + 1]
    raise AssertionError(name)


def _node(src: str, name: str) -> str:
    m = re.search(rf'^\s*"?{re.escape(name)}"?\s*\[(.*?)\]\s*$', src, re.M | re.S)     # labels span lines
    assert m, f"no node {name}"
    return m.group(1)


def test_ixps_are_hexagons_of_their_own_colour_joined_to_their_members():
    from minet_sdn.topology import parse_topology
    topo = parse_topology(IXPS, "ixps.yaml")
    for routers, members in ((False, {"IXP100": {"AS1", "AS2"}, "IXP200": {"AS3", "AS4"}}),
                             (True, {"IXP100": {"1.B", "2.C"}, "IXP200": {"3.D", "4.E"}})):
        src = G.build_graph(topo, routers=routers).source
        a, b = _node(src, "IXP100"), _node(src, "IXP200")
        assert "shape=hexagon" in a and "shape=hexagon" in b and "2 members" in a
        colors = G.ixp_colors(topo)
        assert colors[100] != colors[200] and colors[100][0] in a and colors[200][0] in b
        assert "IXP100" in _cluster(src, "cluster_srv_VM1") and "IXP200" not in _cluster(src, "cluster_srv_VM1")
        assert "IXP200" in _cluster(src, "cluster_srv_VM2")
        e = edges(src)
        for ixp, want in members.items():
            got = {h for (t, h) in e if t == ixp}
            assert got == want, (routers, ixp, got)
            color = colors[int(ixp[3:])][1]
            assert all("dir=none" in x and color in x for h in want for x in e[(ixp, h)])
        assert any("routes passed to AS3" in x for x in e[("IXP200", "4.E" if routers else "AS4")])
        assert "2 IXPs" in src and "IXP (peering LAN" in src
    plain = G.build_graph(load_topology(DEMO)).source           # no IXPs: none drawn, no legend row
    assert "IXP" not in plain


@needs_dot
def test_imported_ixp_fixture_renders_with_its_route_server():
    from minet_sdn.importers import to_yaml
    from minet_sdn.importers.mini_internet import import_folder
    from minet_sdn.topology import parse_topology
    data = import_folder(os.path.join(ROOT, "tests", "fixtures", "mini_internet", "small")).topology
    topo = parse_topology(to_yaml(data), "small.yaml")
    assert list(topo.ixps) == [100]
    e = edges(G.build_graph(topo).source)
    assert {h for (t, h) in e if t == "IXP100"} == {"AS1", "AS2", "AS3"}
    for routers, n in ((False, len(topo.ases)), (True, len(topo.routers))):
        svg = G.render(topo, "svg", routers=routers).decode()
        assert svg.count('class="node"') == n + 1 + 1               # + the IXP + legend
        assert "<title>IXP100</title>" in svg
