"""The topology loader: every malformed file is refused with exactly its expected problem lines,
valid files load, defaults apply, and no input whatsoever escapes as anything but TopologyError."""
import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minet_sdn.topology import Topology, TopologyError, load_topology, parse_topology
from minet_sdn.topology.model import MAX_TOS_LINKS_PER_PAIR

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.yaml"))


def problems_of(text, source="t.yaml"):
    with pytest.raises(TopologyError) as info:
        parse_topology(text, source)
    return info.value.problems


def two_server_topology(n_links, isolation="key", routers_per_as=10):
    """Two ASes on two servers joined by `n_links` links (all between one server pair)."""
    ra = [f"A{i}" for i in range(routers_per_as)]
    rb = [f"B{i}" for i in range(routers_per_as)]
    return {
        "name": "pair",
        "fabric": {"isolation": isolation},
        "servers": {"VM1": {"underlay_ip": "192.0.2.1"}, "VM2": {"underlay_ip": "192.0.2.2"}},
        "ases": {1: {"server": "VM1", "routers": ra}, 2: {"server": "VM2", "routers": rb}},
        "links": [{"a": f"1.{ra[i % len(ra)]}", "b": f"2.{rb[(i // len(ra)) % len(rb)]}", "rel": "peer"}
                  for i in range(n_links)],
    }


# ---- the corpus of malformed files ----------------------------------------------------------

def test_corpus_is_complete():
    assert len(CORPUS_FILES) >= 35
    for path in CORPUS_FILES:
        assert path.with_suffix(".expect").is_file(), f"{path.name} has no .expect"
    for expect in CORPUS.glob("*.expect"):
        assert expect.with_suffix(".yaml").is_file(), f"{expect.name} has no .yaml"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_corpus_file_gives_exactly_its_expected_problems(path):
    expected = path.with_suffix(".expect").read_text(encoding="utf-8").splitlines()
    with pytest.raises(TopologyError) as info:
        load_topology(str(path))
    assert info.value.problems == expected
    assert str(info.value) == "\n".join(expected)


def test_missing_file_is_a_topology_error(tmp_path):
    assert problems_of_file(tmp_path / "nope.yaml") == ["nope.yaml: cannot read: No such file or directory"]


def test_directory_is_a_topology_error(tmp_path):
    assert problems_of_file(tmp_path) == [f"{tmp_path.name}: cannot read: Is a directory"]


def problems_of_file(path):
    with pytest.raises(TopologyError) as info:
        load_topology(str(path))
    return info.value.problems


def test_source_name_defaults_and_is_used_verbatim():
    with pytest.raises(TopologyError) as info:
        parse_topology("[]")
    assert info.value.problems[0].startswith("<topology>: ")
    assert problems_of("[]", "x/y.yaml")[0].startswith("x/y.yaml: ")


# ---- valid files ------------------------------------------------------------------------------

def test_minimal_topology_loads():
    topo = load_topology(str(ROOT / "topologies" / "minimal.yaml"))
    assert topo.name == "minimal"
    assert topo.source == "minimal.yaml"
    assert list(topo.servers) == ["VM1", "VM2"]
    assert [s.index for s in topo.servers.values()] == [1, 2]
    assert topo.servers["VM2"].interface == "ens4"
    assert topo.servers["VM2"].ssh == "root@vm2.example.org:22"
    assert topo.servers["VM1"].interface is None and topo.servers["VM1"].ssh is None
    assert sorted(topo.ases) == [1, 2, 3]
    assert topo.ases[1].routers == ("ZURI", "GENE")
    assert topo.ases[3].configure is False and topo.ases[1].configure is True
    assert [(l.id, l.a.router, l.b.router, l.rel) for l in topo.links] == [
        (1, "1.ZURI", "2.PARI", "peer"), (2, "1.GENE", "2.PARI", "provider"), (3, "2.PARI", "3.LOND", "customer")]
    assert [l.remote for l in topo.links] == [True, True, False]
    assert topo.server_of("3.LOND") == "VM2"


def test_defaults():
    topo = parse_topology(yaml.safe_dump(two_server_topology(1, isolation="key")).replace("isolation: key", ""))
    assert topo.fabric.isolation == "key"
    assert topo.fabric.encapsulation == "gre"
    assert topo.fabric.underlay_mtu == 1500
    assert topo.fabric.link_mtu == 1458
    assert topo.fabric.link_subnet == "100.64.0.0/10"
    assert (topo.controller.ofp_host, topo.controller.ofp_port) == ("127.0.0.1", 6653)
    assert (topo.controller.rest_host, topo.controller.rest_port) == ("127.0.0.1", 8080)
    assert topo.controller.rest_url == "http://127.0.0.1:8080"
    assert topo.ases[1].prefix is None and topo.ases[1].configure is True


def test_empty_fabric_and_controller_sections_mean_defaults():
    doc = two_server_topology(1)
    doc["fabric"] = None
    doc["controller"] = None
    topo = parse_topology(yaml.safe_dump(doc))
    assert topo.fabric.isolation == "key" and topo.controller.ofp_port == 6653


def test_explicit_settings_are_kept():
    doc = two_server_topology(3)
    doc["fabric"] = {"isolation": "tos", "encapsulation": "vxlan", "underlay_mtu": 9000, "bfd_interval_ms": 300,
                     "link_subnet": "10.200.0.0/16", "link_subnet6": "fd00:1::/48"}
    doc["controller"] = {"ofp": "10.0.0.1", "rest": "[::1]:9090"}
    doc["ases"][1]["prefix"] = "203.0.113.0/24"
    topo = parse_topology(yaml.safe_dump(doc))
    assert topo.fabric.isolation == "tos" and topo.fabric.encapsulation == "vxlan"
    assert topo.fabric.underlay_mtu == 9000 and topo.fabric.link_mtu == 1500
    assert topo.fabric.bfd_interval_ms == 300
    assert (topo.controller.ofp_host, topo.controller.ofp_port) == ("10.0.0.1", 6653)
    assert (topo.controller.rest_host, topo.controller.rest_port) == ("::1", 9090)
    assert topo.controller.rest_url == "http://[::1]:9090"
    assert topo.ases[1].prefix == "203.0.113.0/24"
    assert topo.links[0].a.ip == "10.200.0.1"
    assert topo.links[0].a.ip6.startswith("fd00:1:0:1::")


def test_anchors_and_merge_keys_are_plain_yaml():
    text = """
name: anchors
servers:
  VM1: &vm {underlay_ip: 192.0.2.1, interface: ens4}
  VM2: {<<: *vm, underlay_ip: 192.0.2.2}
ases:
  1: {server: VM1, routers: &r [R1, R2]}
  2: {server: VM2, routers: *r}
links:
  - {a: 1.R1, b: 2.R2, rel: peer}
"""
    topo = parse_topology(text)
    assert topo.servers["VM2"].interface == "ens4"
    assert topo.servers["VM2"].underlay_ip == "192.0.2.2"
    assert topo.ases[2].routers == ("R1", "R2")


def test_no_links_is_valid():
    doc = two_server_topology(0)
    del doc["links"]
    assert parse_topology(yaml.safe_dump(doc)).links == ()


def test_key_mode_takes_thousands_of_links_between_one_pair():
    # no wall-clock bound here (the machine may be busy): load speed is measured in bench/
    topo = parse_topology(yaml.safe_dump(two_server_topology(5000, isolation="key")))
    assert len(topo.links) == 5000 and topo.links[-1].id == 5000
    assert len(topo.bridges) == 2


def test_tos_mode_takes_63_links_between_one_pair():
    topo = parse_topology(yaml.safe_dump(two_server_topology(MAX_TOS_LINKS_PER_PAIR, isolation="tos")))
    assert len(topo.links) == 63


def test_tos_mode_refuses_64_links_between_one_pair():
    assert problems_of(yaml.safe_dump(two_server_topology(64, isolation="tos"))) == [
        "t.yaml: links: 64 links between VM1 and VM2; tos isolation marks each with a DSCP in 1..63, "
        "so at most 63 fit (use fabric.isolation: key)"]


def test_tos_limit_is_per_server_pair_and_ignores_local_links():
    doc = two_server_topology(63, isolation="tos")
    doc["servers"]["VM3"] = {"underlay_ip": "192.0.2.3"}
    doc["ases"][3] = {"server": "VM3", "routers": ["C"]}
    doc["ases"][4] = {"server": "VM1", "routers": ["D"]}
    doc["links"] += [{"a": "3.C", "b": "1.A0", "rel": "peer"}] * 63     # another pair, also at the limit
    doc["links"] += [{"a": "4.D", "b": "1.A0", "rel": "peer"}] * 100    # local links: no DSCP needed
    topo = parse_topology(yaml.safe_dump(doc))
    assert len(topo.links) == 226


def test_link_count_is_capped_by_the_openflow_port_range():
    doc = two_server_topology(2)
    doc["links"] = doc["links"] * 40000      # one shared dict: the YAML stays small thanks to anchors
    assert problems_of(yaml.safe_dump(doc)) == ["t.yaml: links: 80000 links; at most 65179 fit the OpenFlow port range"]


def test_problem_lines_never_span_lines_even_for_odd_keys_and_values():
    doc = two_server_topology(1)
    doc["servers"]["odd\nname"] = {"underlay_ip": "x\ny"}
    doc["ases"]["a\nb"] = {}
    doc["links"].append({"a": "1.A0\n", "b": "2.B0", "rel": "peer\n"})
    doc["name"] = "pair\n"
    problems = problems_of(yaml.safe_dump(doc))
    assert len(problems) == 5
    assert all("\n" not in line for line in problems)
    assert "t.yaml: name: 'pair\\n' is not a name" in problems[0]


def test_huge_numbers_are_described_not_crashed_on():
    text = yaml.safe_dump(two_server_topology(1)) + "extra: 0x" + "f" * 5000 + "\n"
    text = text.replace("name: pair", "name: 0x" + "f" * 5000)
    problems = problems_of(text)
    assert problems[0] == "t.yaml: extra: unknown key (allowed: name, fabric, controller, servers, ases, links, ixps, addressing, class)"
    assert problems[1].startswith("t.yaml: name: the number 0xfff")
    assert len(problems[1]) < 200


def test_bytes_are_decoded_as_utf8():
    assert isinstance(parse_topology(yaml.safe_dump(two_server_topology(1)).encode()), Topology)
    assert problems_of(b"name: \xc3\x28") == ["t.yaml: not UTF-8 text (byte 6)"]


# ---- fuzzing: nothing but TopologyError ever escapes -------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_outcome(text, source="fuzz.yaml"):
    try:
        result = parse_topology(text, source)
    except TopologyError as exc:
        assert exc.problems, "a TopologyError without problems"
        for line in exc.problems:
            assert line.startswith(f"{source}: "), line
            assert "\n" not in line, line
        return None
    assert isinstance(result, Topology)
    # derived values of an accepted topology must be computable
    assert [link.id for link in result.links] == list(range(1, len(result.links) + 1))
    for bridge in result.bridges.values():
        assert result.peer_bridge(bridge).peer == bridge.server
    return result


YAML_TOKENS = st.sampled_from(list(":-[]{},&*!|>'\"#%@`?<= \n\t.0123456789") + [
    "a", "Z", "\u00e9", "VM1", "1.ZURI", "name", "servers", "ases", "links", "<<", "---", "...", "&x", "*x",
    "!!bool ", "!!int ", "!!float ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ", "!!str ", "!!python/name:x ",
    "2001-02-30", "2001-12-14t21:59:43.10-05:00", "0x", "0o", "0b", "ffffffffffffffffffff", "1:20", ".inf", ".nan"])


@FUZZ
@given(st.text())
def test_fuzz_arbitrary_text(text):
    check_outcome(text)


@FUZZ
@given(st.lists(YAML_TOKENS, max_size=60).map("".join))
def test_fuzz_yaml_looking_text(text):
    check_outcome(text)


@FUZZ
@given(st.binary())
def test_fuzz_arbitrary_bytes(data):
    check_outcome(data)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=100, deadline=None)
@given(data=st.binary())
def test_fuzz_arbitrary_files(fuzz_dir, data):
    path = fuzz_dir / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_topology(str(path))
    except TopologyError as exc:
        assert all(line.startswith("fuzz.yaml: ") and "\n" not in line for line in exc.problems)


VALID = {
    "name": "fuzz",
    "fabric": {"isolation": "key", "encapsulation": "gre", "underlay_mtu": 1500, "bfd_interval_ms": 100,
               "link_subnet": "100.64.0.0/10", "link_subnet6": "fd00:6d6e::/32"},
    "controller": {"ofp": "127.0.0.1:6653", "rest": "127.0.0.1:8080"},
    "servers": {"VM1": {"underlay_ip": "192.0.2.1", "interface": "ens3"},
                "VM2": {"underlay_ip": "192.0.2.2", "ssh": "root@vm2:22"},
                "VM3": {"underlay_ip": "192.0.2.3"}},
    "ases": {1: {"server": "VM1", "routers": ["ZURI", "GENE"], "prefix": "10.1.0.0/16"},
             2: {"server": "VM2", "routers": ["PARI"], "configure": False},
             3: {"server": "VM3", "routers": ["LOND"]},
             4: {"server": "VM1", "routers": ["BERN"]}},
    "links": [{"a": "1.ZURI", "b": "2.PARI", "rel": "peer"},
              {"a": "1.GENE", "b": "3.LOND", "rel": "provider"},
              {"a": "2.PARI", "b": "3.LOND", "rel": "customer"},
              {"a": "1.ZURI", "b": "4.BERN", "rel": "peer"}],
}

# Values that are almost right (so validation gets deep) and values that are simply wrong.
NEAR_MISSES = st.sampled_from([
    "1.ZURI", "2.PARI", "9.XYZ", "1.", ".ZURI", "1..ZURI", "VM1", "VM9", "tos", "key", "vxlan", "gre", "peer",
    "customer", "0.0.0.0", "[::]:1", "[::1]", "::1", "127.0.0.1:0", "127.0.0.1:65536", "localhost:1",
    "10.0.0.0/8", "10.0.0.1/8", "100.64.0.0/29", "fd00::/64", "192.0.2.1", "root@h:99999", "", "-", "\u00b2.X",
    "1" * 30, "0x" + "f" * 40, "ZURI\n", "a\nb", "~", "null", "yes",
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2, 70000), st.floats(),
                    st.text(max_size=12), NEAR_MISSES)
KEYS = st.one_of(st.sampled_from(["name", "fabric", "servers", "ases", "links", "a", "b", "rel", "server",
                                  "routers", "underlay_ip", "ofp", "isolation", "underlay_mtu", "prefix"]),
                 st.text(max_size=8), st.integers(-5, 10), st.booleans(), st.none())
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=8)


def containers(node, out):
    """Every (container, key) slot in a document, the document's own slots included."""
    items = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    for key, value in items:
        out.append((node, key))
        containers(value, out)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_structured_mutations_of_a_valid_topology(data):
    doc = copy.deepcopy(VALID)
    assert isinstance(check_outcome(yaml.safe_dump(doc, sort_keys=False)), Topology)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        slots = containers(doc, [])
        if not slots:
            break
        parent, key = data.draw(st.sampled_from(slots), label="slot")
        action = data.draw(st.sampled_from(["replace", "delete", "add", "duplicate"]), label="action")
        if action == "replace":
            parent[key] = data.draw(VALUES, label="value")
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(KEYS, label="new key")] = data.draw(VALUES, label="value")
        elif action == "add":
            parent.insert(key, data.draw(VALUES, label="value"))
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    if data.draw(st.booleans(), label="replace the whole document"):
        doc = data.draw(st.one_of(VALUES, st.just(doc)), label="document")
    check_outcome(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


# ---- IPv6 underlay, encapsulation overhead, prefix6 ------------------------------------------

@pytest.mark.parametrize("encap,family,link_mtu", [("gre", 4, 1458), ("gre", 6, 1438),
                                                    ("vxlan", 4, 1450), ("vxlan", 6, 1430)])
def test_link_mtu_subtracts_the_real_outer_header(encap, family, link_mtu):
    doc = two_server_topology(1)
    doc["fabric"] = {"encapsulation": encap, "underlay_mtu": 1500}
    if family == 6:
        doc["servers"] = {name: {**spec, "underlay_ip": f"2001:db8::{i}"}
                          for i, (name, spec) in enumerate(doc["servers"].items(), start=1)}
    topo = parse_topology(yaml.safe_dump(doc))
    assert topo.fabric.underlay_family == family
    assert topo.fabric.link_mtu == link_mtu          # the largest inner packet measured through 1500 bytes
    assert all((":" in s.underlay_ip) == (family == 6) for s in topo.servers.values())


def test_ipv6_underlay_addresses_are_canonical_and_unique():
    doc = two_server_topology(1)
    names = list(doc["servers"])
    doc["servers"][names[0]]["underlay_ip"] = "2001:DB8:0::1"
    doc["servers"][names[1]]["underlay_ip"] = "2001:db8::1"
    assert problems_of(yaml.safe_dump(doc)) == [f"t.yaml: servers.{names[1]}.underlay_ip: 2001:db8::1 is "
                                                f"already the underlay address of {names[0]}"]


def test_prefix6_is_kept_and_canonical():
    doc = two_server_topology(1)
    doc["ases"][1]["prefix6"] = "2001:DB8:1::/48"
    topo = parse_topology(yaml.safe_dump(doc))
    assert topo.ases[1].prefix6 == "2001:db8:1::/48" and topo.ases[2].prefix6 is None
