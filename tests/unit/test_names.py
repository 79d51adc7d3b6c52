"""topology/names.py: the one place names are derived. What the lab computes without a plan must
be exactly what provisioning builds, on every server, IXP route servers included."""
import pytest

from minet_sdn.lab import paths, places, system
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import load_topology, names, parse_topology
from minet_sdn.topology.places import build_places

TOPO = """
name: namestest
servers: [VM1, VM2]
ases:
  1: {server: VM1, routers: [A, LONGROUTERNAME]}
  2: {server: VM2, routers: [B]}
  3: {server: VM1, routers: [C], configure: false}
ixps:
  100: {server: VM1, members: [1.A, 3.C]}
links:
  - {a: 1.A, b: 2.B, rel: peer}
  - {a: 1.A, b: 3.C, rel: provider}
"""


@pytest.mark.parametrize("source", ["inline", "topologies/demo.yaml", "topologies/large.yaml"])
def test_server_nodes_match_the_plan(tmp_path, source):
    """The plan's nodes and FRR directories are the places', in the same order, on every server."""
    topo = parse_topology(TOPO, "t.yaml") if source == "inline" else load_topology(source)
    root = str(tmp_path)
    every = build_places(topo, root)
    for server in topo.servers:
        plan = build_plan(topo, server, root=root)
        confdirs = {r.node: r.confdir for r in plan.routers}
        want = [(n.id, n.ns, confdirs.get(n.id)) for n in plan.nodes]
        assert [(p.id, p.ns, p.frr_dir) for p in every.on(server)] == want
        assert every.server_state_dir(server) == plan.state_dir


def test_node_names():
    topo = parse_topology(TOPO, "t.yaml")
    assert names.node_ns(topo, "1.A") == f"{topo.tag}-1.A"
    assert names.container_name("t-1.A.host") == "t-1.A.host"
    assert names.container_name("a b/c") == "a_b_c"
    assert names.frr_pathspace("t-1.A.host") == "t-1_A_host"
    assert names.bridge_name(topo, "VM1", "VM2") == topo.bridge_name("VM1", "VM2")


def test_lab_server_names():
    """Every name of the embedded lab's servers and networks, spelled out."""
    topo = parse_topology(TOPO, "t.yaml")
    tag = topo.tag
    assert [names.mgmt_ns(topo), names.underlay_ns(topo), names.mgmt_bridge(topo), names.underlay_bridge(topo),
            names.phy_bridge(topo), names.underlay_ifname(topo), names.mgmt_ifname(topo)] == [
        f"{tag}-mgmt", f"{tag}-ul", f"{tag}-mbr", f"{tag}-ubr", f"{tag}-phy", f"{tag}-ul", f"{tag}-mg"]
    assert names.phy_bridge_of_tag(tag) == f"{tag}-phy"
    assert [(names.server_ns(topo, s), names.underlay_peer_ifname(topo, s), names.mgmt_peer_ifname(topo, s))
            for s in ("VM1", "VM2")] == [(f"{tag}-VM1", f"{tag}-u1", f"{tag}-m1"), (f"{tag}-VM2", f"{tag}-u2", f"{tag}-m2")]
    assert names.ownership_alias("inst", "VM2") == "minet:inst:VM2"


def test_argv():
    assert names.exec_prefix("netns", "t-1.A") == ["ip", "netns", "exec", "t-1.A"]
    assert names.exec_prefix("netns", "t-VM1", env={"A": "1"}) == ["ip", "netns", "exec", "t-VM1", "env", "A=1"]
    assert names.exec_prefix("docker", "t-1.A") == ["docker", "exec", "t-1.A"]
    assert names.exec_prefix("docker", "t-1.A", interactive=True, tty=True) == ["docker", "exec", "-i", "-t", "t-1.A"]
    with pytest.raises(ValueError):
        names.exec_prefix("kvm", "x")
    assert names.vtysh_argv("/d", "show a", "show b") == [
        "vtysh", "--vty_socket", "/d", "--config_dir", "/d", "-c", "show a", "-c", "show b"]
    assert names.with_vtysh_dirs(["vtysh", "-c", "x"], "/d") == ["vtysh", "--vty_socket", "/d", "--config_dir", "/d", "-c", "x"]
    assert names.with_vtysh_dirs(["vtysh", "--vty_socket", "/o"], "/d") == ["vtysh", "--vty_socket", "/o"]
    assert names.with_vtysh_dirs(["ping", "x"], "/d") == ["ping", "x"]


def test_lab_places_use_the_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path))
    topo = parse_topology(TOPO, "t.yaml")
    place = places.router_place(topo, "2.B")
    plan = build_plan(topo, "VM2", root=paths.provision_state_dir(topo, "VM2"))
    router = next(r for r in plan.routers if r.node == "2.B")
    assert place.ns == names.node_ns(topo, "2.B") and place.frr_dir == router.confdir
    assert place.vtysh_argv("show x") == router.vtysh_args("show x")
    assert places.node_place(topo, "1.A.host").ns == names.node_ns(topo, "1.A.host")
    assert places.node_place(topo, "9.Z") is None


def test_nsenter_prefix():
    assert names.nsenter_prefix("/run/netns/t-VM1") == ["nsenter", "--net=/run/netns/t-VM1", "--"]
    assert system.nsenter_argv("t-VM1", ["ip", "a"]) == ["nsenter", "--net=/run/netns/t-VM1", "--", "ip", "a"]


def test_node_places_need_no_plan(tmp_path, monkeypatch):
    """`lab down` and exec learn namespace names from names.py, not by building every FRR config."""
    import minet_sdn.provision.plan as plan_mod
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path))
    monkeypatch.setattr(plan_mod, "build_plan", lambda *a, **k: pytest.fail("built a plan"))
    places._CACHE.clear()
    topo = parse_topology(TOPO, "t.yaml")
    assert places.node_place(topo, "1.A.host").ns == names.node_ns(topo, "1.A.host")
    assert places.router_place(topo, "3.C").frr_dir.endswith("/frr/3.C")
