"""topology/places.py: the one node-id rule and every node's place, from the topology plus the
state root and backend passed in (a real server's single root, or the lab's one per server)."""
import pytest

from minet_sdn.topology import names, parse_topology
from minet_sdn.topology.places import (FRR_KINDS, ROUTE_SERVER, ROUTER, ROUTER_HOST, AmbiguousNode, NodePlace,
                                       NodeRef, build_places, host_id, node_id, parse_node_id, router_of)

TOPO = """
name: placetest
servers: [VM1, VM2]
ases:
  1: {server: VM1, routers: [A, B]}
  2: {server: VM2, routers: [A]}
  3: {server: VM1, routers: [C], configure: false}
ixps:
  100: {server: VM2, members: [1.A, 2.A]}
links:
  - {a: 1.A, b: 2.A, rel: peer}
  - {a: 1.B, b: 3.C, rel: provider}
"""


def test_node_id_rule_and_its_parser():
    assert node_id(1, "ZURI") == "1.ZURI" and node_id(1, "ZURI", host=True) == "1.ZURI.host"
    assert parse_node_id("65001.R_2-x.host") == NodeRef(65001, "R_2-x", True)
    assert parse_node_id("1.ZURI") == NodeRef(1, "ZURI", False) and str(parse_node_id("1.ZURI.host")) == "1.ZURI.host"
    assert parse_node_id("1.ZURI.host").router == "1.ZURI"
    for bad in ("ZURI", "1.", "x.ZURI", "1.ZU RI", "1.ZURI.hostx", "1.A.B", "ixp100", ""):
        with pytest.raises(ValueError):
            parse_node_id(bad)
    assert host_id("1.A") == "1.A.host"
    assert router_of("1.A.host") == "1.A" and router_of("1.A") == "1.A" and router_of("ixp100") == "ixp100"


def test_places_on_a_real_server_one_root():
    topo = parse_topology(TOPO, "t.yaml")
    places = build_places(topo, "/var/lib/minet-sdn", "docker")
    assert list(places) == ["1.A", "1.A.host", "1.B", "1.B.host", "3.C", "3.C.host", "2.A", "2.A.host", "ixp100"]
    r = places["1.A"]
    assert (r.kind, r.asn, r.server, r.ns, r.router) == (ROUTER, 1, "VM1", f"{topo.tag}-1.A", "1.A")
    assert r.frr_dir == "/var/lib/minet-sdn/placetest/VM1/frr/1.A"
    h = places["1.A.host"]
    assert (h.kind, h.frr_dir, h.router, h.runs_frr) == (ROUTER_HOST, None, "1.A", False)
    rs = places["ixp100"]
    assert (rs.kind, rs.server, rs.runs_frr) == (ROUTE_SERVER, "VM2", True) and rs.kind in FRR_KINDS
    assert [p.id for p in places.on("VM2")] == ["2.A", "2.A.host", "ixp100"]
    assert [p.id for p in places.of_kind(ROUTE_SERVER)] == ["ixp100"]
    # docker: commands run in the container, vtysh too (its FRR directory is at the same path inside)
    assert r.exec_prefix() == ["docker", "exec", r.container]
    assert r.vtysh_argv("show x") == ["docker", "exec", r.container] + names.vtysh_argv(r.frr_dir, "show x")
    with pytest.raises(ValueError, match="runs no FRR"):
        h.vtysh_argv("show x")
    with pytest.raises(KeyError):
        places.router("1.A.host")
    assert places.router("ixp100") is rs
    assert r.user_argv(["vtysh", "-c", "x"])[:3] == ["vtysh", "--vty_socket", r.frr_dir]
    assert h.user_argv(["vtysh", "-c", "x"]) == ["vtysh", "-c", "x"]


def test_places_in_the_lab_one_root_per_server():
    topo = parse_topology(TOPO, "t.yaml")
    places = build_places(topo, lambda server: f"/lab/{server}/provision")
    assert places["2.A"].frr_dir == "/lab/VM2/provision/placetest/VM2/frr/2.A"
    assert places.server_state_dir("VM1") == "/lab/VM1/provision/placetest/VM1"
    assert places["2.A"].exec_prefix() == ["ip", "netns", "exec", f"{topo.tag}-2.A"]
    assert places["2.A"].vtysh_argv("show x") == names.vtysh_argv(places["2.A"].frr_dir, "show x")
    only = build_places(topo, "/r", servers=["VM2"])
    assert list(only) == ["2.A", "2.A.host", "ixp100"]
    with pytest.raises(ValueError, match="backend"):
        build_places(topo, "/r", "kvm")


def test_find_by_bare_name():
    topo = parse_topology(TOPO, "t.yaml")
    places = build_places(topo, "/r")
    assert places.find("1.B") is places["1.B"] and places.find("B") is places["1.B"]
    assert places.find("B.host") is places["1.B.host"] and places.find("C") is places["3.C"]
    assert places.find("ixp100") is places["ixp100"]
    assert places.find("NOPE") is None and places.find("9.Z") is None
    with pytest.raises(AmbiguousNode, match="1.A, 2.A"):
        places.find("A")
    with pytest.raises(AmbiguousNode, match="1.A.host, 2.A.host"):
        places.find("A.host")


def test_places_are_plain_values():
    p = NodePlace("1.A", ROUTER, 1, "VM1", "t-1.A", "/d")
    assert p == NodePlace(id="1.A", kind=ROUTER, asn=1, server="VM1", ns="t-1.A", frr_dir="/d", backend="netns")
    with pytest.raises(AttributeError):
        p.ns = "x"
