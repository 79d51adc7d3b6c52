"""`minet import gml`: names, ASes, links, condensation that keeps each AS connected, clear errors."""
from pathlib import Path

import networkx as nx
import pytest

from minet_sdn.cli.main import main
from minet_sdn.importers import ImportProblem, to_yaml
from minet_sdn.importers.gml import import_gml
from minet_sdn.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "fixtures" / "gml" / "small.gml"
GEANT = ROOT / "topologies" / "geant-like.gml"


def load(path, **kw):
    imp = import_gml(str(path), **kw)
    return imp, parse_topology(to_yaml(imp.topology), "out.yaml")


def intra_graph(topo, asn):
    g = nx.Graph()
    g.add_nodes_from(topo.ases[asn].routers)
    g.add_edges_from((l.a, l.b) for l in (topo.ases[asn].links or ()))
    return g


def test_small_map_names_ases_and_links():
    imp, t = load(SMALL)
    assert t.ases[10].routers == ("Zurich", "Bern", "Basel", "Geneve", "Lugano")   # best-connected first
    assert set(t.ases[20].routers) == {"Paris", "Paris_2", "Lyon"}                  # duplicate label made unique
    assert "R9_Manchester" in t.ases[30].routers                                     # must start with a letter
    links10 = {frozenset((l.a, l.b)): l for l in t.ases[10].links}
    assert len(links10) == 6                                 # parallel Zurich-Geneve merged, self-loop dropped
    assert links10[frozenset(("Zurich", "Geneve"))].shaping.rate_bps == 10 ** 10   # LinkSpeedRaw
    assert {(l.a.router, l.b.router, l.rel) for l in t.links} == {
        ("10.Zurich", "20.Paris", "provider"), ("10.Zurich", "30.R9_Manchester", "customer"),
        ("10.Basel", "20.Lyon", "peer"), ("20.Paris", "30.London", "peer")}
    # AS 30 has no edge inside it in the map: one link is added, and said so
    assert [(l.a, l.b) for l in t.ases[30].links] == [("London", "R9_Manchester")]
    assert any("AS 30: 2 parts" in n for n in imp.notes)


def test_rel_default_can_be_changed():
    _, t = load(SMALL, rel="customer")
    assert {l.rel for l in t.links if l.a.router == "10.Basel"} == {"customer"}


def test_condensation_keeps_the_best_connected_and_every_as_connected():
    full_imp, full = load(GEANT)
    _, small = load(GEANT, max_routers=6)
    g = nx.Graph()
    for asn, as_ in full.ases.items():
        g.add_nodes_from(f"{asn}.{r}" for r in as_.routers)
        g.add_edges_from((f"{asn}.{l.a}", f"{asn}.{l.b}") for l in as_.links or ())
    g.add_edges_from((l.a.router, l.b.router) for l in full.links)
    geant = [n.split(".", 1)[1] for n in sorted((n for n in g if n.startswith("20965.")),
                                                 key=lambda n: (-g.degree(n), n.split(".", 1)[1]))]
    assert len(full.ases[20965].routers) == 28
    assert set(small.ases[20965].routers) == set(geant[:6])
    for asn, as_ in small.ases.items():
        assert len(as_.routers) <= 6
        assert nx.is_connected(intra_graph(small, asn)), asn
    # every inter-AS adjacency of the full map survives as some link between the two ASes
    assert {frozenset((l.a.asn, l.b.asn)) for l in full.links} == {frozenset((l.a.asn, l.b.asn)) for l in small.links}
    assert sum(len(a.routers) for a in small.ases.values()) < sum(len(a.routers) for a in full.ases.values())


def test_single_as_and_big_as_gets_a_prefix_that_fits():
    _, t = load(GEANT, single_as=65000)
    assert list(t.ases) == [65000] and len(t.ases[65000].routers) == 60
    assert t.ases[65000].prefix is not None          # 60 routers do not fit the default /24
    from minet_sdn.topology.addressing import as_addressing
    assert len(as_addressing(t.ases[65000]).routers) == 60


def test_missing_asn_attribute_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "noasn.gml"
    f.write_text('graph [\n node [ id 0 label "A" ]\n node [ id 1 label "B" asn 7 ]\n edge [ source 0 target 1 ]\n]\n')
    with pytest.raises(ImportProblem) as info:
        import_gml(str(f))
    assert info.value.problems == ["noasn.gml: node 0 (A) has no asn attribute "
                                   "(an AS number; use --single-as N for a map of one network)"]
    out = tmp_path / "o.yaml"
    assert main(["import", "gml", str(f), "--single-as", "7", "-o", str(out)]) == 0
    assert list(load_topology(str(out)).ases) == [7]


def test_unreadable_gml_is_one_line(tmp_path, capsys):
    f = tmp_path / "bad.gml"
    f.write_text("graph [ node [ id 0 ")
    assert main(["import", "gml", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bad.gml: not readable GML:")
    assert main(["import", "gml", str(f), "--max-routers-per-as", "0"]) == 2


def test_parallel_edges_without_a_multigraph_header_merge(tmp_path):
    # many Topology Zoo copies repeat an edge without declaring `multigraph 1`
    gml = tmp_path / "par.gml"
    gml.write_text('graph [\n  directed 0\n  node [ id 0 label "A" asn 1 ]\n  node [ id 1 label "B" asn 1 ]\n'
                   '  node [ id 2 label "C" asn 2 ]\n  edge [ source 0 target 1 ]\n  edge [ source 0 target 1 ]\n'
                   '  edge [ source 1 target 2 ]\n  edge [ source 2 target 1 ]\n]\n')
    from minet_sdn.importers.gml import import_gml
    topo = import_gml(str(gml)).topology
    assert topo["links"] == [{"a": "1.B", "b": "2.C", "rel": "peer"}]
    assert sorted(topo["ases"][1]["routers"]) == ["A", "B"]
