"""`minet import as-rel`: CAIDA's AS-relationship format in, a policy-consistent topology out; and the
valley-free model (topology/policy.py) the matrix is checked against."""
from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys

import pytest

from minet_sdn.importers import ImportProblem
from minet_sdn.importers.as_rel import import_as_rel
from minet_sdn.importers.cli import write_topology
from minet_sdn.topology import parse_topology
from minet_sdn.topology.policy import Relations, expected_pairs

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "..", "fixtures", "as_rel", "small.txt")
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from gen_as_rel import generate  # noqa: E402


def _write(tmp_path, text, name="rel.txt"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _asn(ref: str) -> int:
    return int(ref.split(".")[0])


def test_the_small_fixture_imports_whole_with_real_as_numbers_and_relationships():
    imported = import_as_rel(SMALL, ases=100)
    topo = imported.topology
    assert sorted(topo["ases"]) == [174, 1299, 3356, 6939, 20940, 64501, 64502, 64503, 64504, 64505, 4200000001]
    rels = {(_asn(l["a"]), _asn(l["b"])): l["rel"] for l in topo["links"]}
    assert rels[(3356, 6939)] == "provider"          # 3356|6939|-1: 3356 provides 6939
    assert rels[(174, 1299)] == "peer"
    assert rels[(6939, 20940)] == "peer"
    assert len(topo["links"]) == 14
    # an AS above 65535 has no default prefix: it gets one from the pools, both families
    assert topo["ases"][4200000001]["prefix"].startswith("172.")
    assert topo["ases"][4200000001]["prefix6"].startswith("fd0b:")
    loaded = parse_topology(write_topology(topo, os.devnull, "small.txt"), "small.yaml")
    assert len(loaded.routers) == 11


def test_core_keeps_the_largest_cones_and_every_kept_as_has_a_way_up():
    imported = import_as_rel(SMALL, ases=5)
    kept = set(imported.topology["ases"])
    # cones: 6939 and 1299 have 4 and 4 ASes below them... the tier-1s come first
    assert {174, 1299, 3356} <= kept
    assert len(kept) == 5
    providers = {}
    for l in imported.topology["links"]:
        if l["rel"] == "provider":
            providers.setdefault(_asn(l["b"]), set()).add(_asn(l["a"]))
    for asn in kept - {174, 1299, 3356}:
        assert providers.get(asn), f"AS {asn} was kept without any of its providers"


def test_cone_selection_keeps_one_as_and_its_customers_only():
    imported = import_as_rel(SMALL, ases=100, select="cone:20940")
    assert sorted(imported.topology["ases"]) == [20940, 64503, 4200000001]


def test_random_selection_is_seeded_and_upward_closed(tmp_path):
    path = _write(tmp_path, generate(600, seed=3))
    a = import_as_rel(path, ases=80, select="random", seed=7).topology
    b = import_as_rel(path, ases=80, select="random", seed=7).topology
    c = import_as_rel(path, ases=80, select="random", seed=8).topology
    assert a == b and a != c
    assert len(a["ases"]) <= 80
    rel = Relations()
    for l in a["links"]:
        rel.add(_asn(l["a"]), _asn(l["b"]), l["rel"])
    rel.ases.update(a["ases"])
    # every kept AS climbs to a kept tier-1, and the generator's tier-1s form a clique: all pairs reach
    assert all(rel.providers.get(x) or x < 1000 + 12 for x in rel.ases)
    assert rel.unreachable_pairs() == []


@pytest.mark.parametrize("line, where, what", [
    ("1|2", "line 1, column 1", "expected AS1|AS2|REL"),
    ("1|x|-1", "line 1, column 3", "'x' is not an AS number"),
    ("1|2|1", "line 1, column 5", "relationship '1' is not -1"),
    ("7|7|0", "line 1, column 1", "related to itself"),
    ("1|2|-1\n2|1|-1", "line 2, column 1", "already related differently on line 1"),
    ("1|4294967295|0", "line 1, column 3", "is not an AS number"),
])
def test_bad_lines_are_refused_with_file_line_and_column(tmp_path, line, where, what):
    path = _write(tmp_path, "# header\n".replace("# header\n", "") + line + "\n")
    with pytest.raises(ImportProblem) as exc:
        import_as_rel(path)
    assert len(exc.value.problems) >= 1
    first = exc.value.problems[0]
    assert first.startswith(f"rel.txt: {where}: "), first
    assert what in first


def test_an_identical_line_twice_is_one_adjacency_and_an_empty_file_is_refused(tmp_path):
    path = _write(tmp_path, "1|2|-1|bgp\n1|2|-1|mlp\n")
    assert len(import_as_rel(path).topology["links"]) == 1
    with pytest.raises(ImportProblem, match="no AS relationship"):
        import_as_rel(_write(tmp_path, "# only a comment\n", "empty.txt"))


def test_the_cli_writes_a_valid_topology_and_refuses_bad_input_in_one_line(tmp_path):
    out = tmp_path / "t.yaml"
    ok = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "import", "as-rel", SMALL,
                         "--ases", "6", "-o", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert len(parse_topology(out.read_text(), "t.yaml").ases) == 6
    bad = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "import", "as-rel",
                          _write(tmp_path, "1|2|9\n")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert "rel.txt: line 1, column 5" in bad.stderr


# ---- the valley-free model ------------------------------------------------------------------

def _brute_force(rel: Relations):
    """Every simple AS path, checked against the valley-free rule: up*, at most one peer, down*."""
    adj = {a: set(rel.providers.get(a, ())) | set(rel.customers.get(a, ())) | set(rel.peers.get(a, ()))
           for a in rel.ases}

    def step(a, b):
        if b in rel.providers.get(a, ()):
            return "up"
        if b in rel.peers.get(a, ()):
            return "peer"
        return "down"

    def valley_free(path):
        phase = 0                   # 0 climbing, 1 after the peer edge or going down
        for a, b in zip(path, path[1:]):
            s = step(a, b)
            if s == "up" and phase:
                return False
            if s == "peer":
                if phase:
                    return False
                phase = 1
            if s == "down":
                phase = 1
        return True

    reach = {a: {a} for a in rel.ases}

    def walk(path):
        for nxt in adj[path[-1]]:
            if nxt in path:
                continue
            cand = path + [nxt]
            if valley_free(cand):
                reach[cand[0]].add(nxt)
                walk(cand)
    for a in rel.ases:
        walk([a])
    return reach


@pytest.mark.parametrize("seed", range(25))
def test_the_fast_model_agrees_with_every_valley_free_path(seed):
    rng = random.Random(seed)
    n = rng.randint(3, 8)
    rel = Relations()
    rel.ases.update(range(1, n + 1))
    for a, b in itertools.combinations(range(1, n + 1), 2):
        kind = rng.choice(["none", "none", "provider", "customer", "peer"])
        if kind != "none":
            rel.add(a, b, kind)
    fast = rel.reachability()
    slow = _brute_force(rel)
    for s in rel.ases:
        # reachability needs both directions; a valley-free path reversed is valley-free
        assert fast[s] == {d for d in rel.ases if d in slow[s]}, (seed, s)
        # and the per-origin announcement walk says the same
        assert fast[s] == {d for d in rel.ases if s in rel.reached_by(d) and d in rel.reached_by(s)}


def test_the_model_on_the_demo_shape():
    # two tier-1 peers, a customer each, a peer link between the customers, a multi-homed stub
    rel = Relations()
    for a, b, r in [(1, 2, "peer"), (1, 3, "provider"), (2, 4, "provider"), (3, 4, "peer"),
                    (1, 5, "provider"), (2, 5, "provider")]:
        rel.add(a, b, r)
    reach = rel.reachability()
    assert reach[3] == {1, 2, 3, 4, 5}
    # a customer of two providers never carries traffic between them
    rel2 = Relations()
    for a, b, r in [(1, 5, "provider"), (2, 5, "provider")]:
        rel2.add(a, b, r)
    assert 2 not in rel2.reachability()[1]


def test_one_way_ixp_announcements_narrow_what_is_reached():
    rel = Relations()
    rel.add(1, 2, "peer")
    rel.add(2, 3, "provider")
    rel.blocked.add((1, 2))          # 1's routes are not passed to 2
    assert 1 not in rel.reachability()[3]
    assert 1 not in rel.reachability()[2]


def test_expected_pairs_leave_the_students_ases_out():
    topo = parse_topology("""
name: t
servers: [VM1]
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM1, routers: [B]}
  3: {server: VM1, routers: [C], configure: false}
  4: {server: VM1, routers: [D]}
links:
  - {a: 1.A, b: 2.B, rel: provider}
  - {a: 2.B, b: 3.C, rel: provider}
  - {a: 3.C, b: 4.D, rel: provider}
""", "t.yaml")
    pairs = expected_pairs(topo)
    assert pairs[(1, 2)] and pairs[(2, 1)]
    assert not pairs[(1, 3)] and not pairs[(3, 1)]
    assert not pairs[(1, 4)]           # 4's only way up runs through the students' AS
