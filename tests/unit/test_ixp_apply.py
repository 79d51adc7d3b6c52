"""provision/ixp.py against a fake `ip`/`bridge`: the peering LAN's bridge, port flags, static FDB
and ARP from the plan; a second run with nothing changed issues no change."""
import json
import os

from minet_sdn.provision import ixp
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import parse_topology

TOPO = """
name: t
servers: [VM1]
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM1, routers: [B]}
ixps:
  100: {server: VM1, members: [1.A, 2.B]}
"""


class FakeIp:
    def __init__(self):
        self.calls = []
        self.bridge = False
        self.ports = set()

    def __call__(self, ns, args):
        self.calls.append((ns, args))
        if args[:4] == ["ip", "-j", "link", "show"]:
            if args[4] == "dev":
                return (0, "[{}]") if self.bridge else (1, "Device does not exist")
            return 0, json.dumps([{"ifname": p} for p in sorted(self.ports)])
        if args[:4] == ["ip", "link", "show", "dev"]:
            return (0, "") if self.bridge else (1, "Device does not exist")
        if args[:3] == ["ip", "link", "add"]:
            self.bridge = True
        if args[:3] == ["ip", "link", "set"] and "master" in args:
            self.ports.add(args[3])
        return 0, ""


def test_builds_the_lan_then_changes_nothing(tmp_path):
    plan = build_plan(parse_topology(TOPO, "t.yaml"), "VM1", root=str(tmp_path))
    os.makedirs(plan.state_dir)
    fake = FakeIp()
    changes = ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake)
    assert changes == ["IXP 100: peering LAN with 2 members"]
    cmds = [(ns, " ".join(a)) for ns, a in fake.calls]
    assert ("/ns/ixp100", "ip link add lan address 02:69:00:01:00:00 type bridge stp_state 0 mcast_snooping 0") in cmds
    assert ("/ns/ixp100", "ip addr replace 198.18.0.1/24 dev lan") in cmds
    assert ("/ns/ixp100", "bridge link set dev m1 learning off flood off mcast_flood off bcast_flood off") in cmds
    assert ("/ns/ixp100", "bridge fdb replace 02:69:00:01:00:02 dev m2 master static") in cmds
    assert ("/ns/1.A", "ip neigh replace 198.18.0.3 lladdr 02:69:00:01:00:02 dev ixp100 nud permanent") in cmds
    assert ("/ns/1.A", "ip neigh replace 198.18.0.1 lladdr 02:69:00:01:00:00 dev ixp100 nud permanent") in cmds
    assert not any(ns == "/ns/1.A" and "198.18.0.2 " in c for ns, c in cmds)       # not itself
    fake.calls.clear()
    assert ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake) == []
    assert all(a[:2] == ["ip", "-j"] for _, a in fake.calls)                        # reads only
    fake.ports.discard("m2")                                                        # a port lost its master
    assert ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake) == ["IXP 100: peering LAN with 2 members"]


TWO = """
name: t
servers: [VM1, VM2]
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM2, routers: [B]}
  3: {server: VM1, routers: [C]}
links:
  - {a: 1.A, b: 2.B, rel: peer}
ixps:
  100: {server: VM1, members: [1.A, {router: 2.B, throughput: 20mbit}, 3.C]}
"""


def test_a_member_on_another_server_is_an_ixp_segment_built_on_both_servers(tmp_path):
    topo = parse_topology(TWO, "t.yaml")
    (seg,) = topo.ixp_segments
    assert seg.id == 2 and seg.a.router == "2.B" and seg.servers() == ("VM2", "VM1")
    mtu = topo.fabric.link_mtu
    vm1, vm2 = (build_plan(topo, s, root=str(tmp_path)) for s in ("VM1", "VM2"))
    # the IXP's server: the member's LAN port leads to the remote bridge towards VM2
    (v,) = [v for v in vm1.veths if v.link_id == 2]
    assert v.kind == "ixp-segment" and (v.a.node, v.a.ifname, v.a.mtu) == ("ixp100", "m2", mtu)
    assert (v.b.node, v.b.ifname) == (None, topo.link_port_name(2)) and v.a.shaping is None
    (br,) = vm1.bridges
    assert {p.name: p.ofport for p in br.ports if not p.type} == {"t-l1": 101, "t-l2": 102}
    assert [p.remote for p in vm1.ixps[0].ports] == [False, True, False]
    assert all(v.a.mtu == v.b.mtu == mtu for v in vm1.veths if v.kind == "ixp")
    assert "2.B" not in vm1.node_by_id
    # the member's server: its ixp100 interface is a remote-bridge port, shaped, with its LAN MAC
    (v,) = [v for v in vm2.veths if v.link_id == 2]
    assert v.kind == "ixp-member" and (v.a.node, v.a.ifname, v.a.mac) == ("2.B", "ixp100", seg.a.mac)
    assert v.a.addresses == ("198.18.0.3/24", "fd00:6978:0:1::3/64") and v.a.mtu == mtu
    assert v.a.shaping.rate_bps == 20_000_000
    # its IPv6 neighbours come from the topology (IPv4 from the controller's proxy ARP)
    (nb,) = vm2.ixp_neighbours
    assert (nb.node, nb.ifname) == ("2.B", "ixp100") and nb.entries == (
        ("fd00:6978:0:1::1", "02:69:00:01:00:00"), ("fd00:6978:0:1::2", "02:69:00:01:00:01"),
        ("fd00:6978:0:1::4", "02:69:00:01:00:03"))
    assert vm1.ixp_neighbours == ()
    assert (v.b.node, v.b.ifname) == (None, "t-l2") and vm2.ixps == ()
    (br,) = vm2.bridges
    assert {p.name for p in br.ports if not p.type} == {"t-l1", "t-l2"}
    # the member still peers with the route server (a peer), wherever it sits
    (b,) = [r for r in vm2.routers if r.node == "2.B"]
    assert "neighbor 198.18.0.1 remote-as 100" in b.config
    (rs,) = [r for r in vm1.routers if r.node == "ixp100"]
    assert "neighbor 198.18.0.3 remote-as 2" in rs.config
    # dual stack on the LAN: an IPv6 session too, in its own family
    assert "neighbor fd00:6978:0:1::1 remote-as 100" in b.config
    assert "neighbor fd00:6978:0:1::3 remote-as 2" in rs.config
    v6 = rs.config.split(" address-family ipv6 unicast\n", 1)[1]
    assert "  neighbor fd00:6978:0:1::3 route-server-client\n  neighbor fd00:6978:0:1::3 activate\n" in v6
    assert "  no neighbor fd00:6978:0:1::3 activate\n" in rs.config.split(" address-family ipv6", 1)[0]


def test_an_ipv4_only_fabric_has_an_ipv4_only_lan(tmp_path):
    topo = parse_topology(TWO + "fabric: {ipv6: false}\n", "t.yaml")
    assert topo.ixps[100].peering_lan6 is None and all(m.ip6 is None for m in topo.ixps[100].members)
    vm2 = build_plan(topo, "VM2", root=str(tmp_path))
    assert vm2.ixp_neighbours == () and "fd00" not in "".join(r.config for r in vm2.routers)


def test_a_remote_members_port_gets_flags_and_fdb_but_its_arp_comes_from_the_controller(tmp_path):
    plan = build_plan(parse_topology(TWO, "t.yaml"), "VM1", root=str(tmp_path))
    os.makedirs(plan.state_dir)
    fake = FakeIp()
    assert ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake) == ["IXP 100: peering LAN with 3 members"]
    cmds = [(ns, " ".join(a)) for ns, a in fake.calls]
    assert ("/ns/ixp100", "bridge link set dev m2 learning off flood off mcast_flood off bcast_flood off") in cmds
    assert ("/ns/ixp100", "bridge fdb replace 02:69:00:01:00:02 dev m2 master static") in cmds
    assert ("/ns/ixp100", "ip neigh replace 198.18.0.3 lladdr 02:69:00:01:00:02 dev lan nud permanent") in cmds
    assert ("/ns/1.A", "ip neigh replace 198.18.0.3 lladdr 02:69:00:01:00:02 dev ixp100 nud permanent") in cmds
    assert not any(ns == "/ns/2.B" for ns, _ in cmds)        # not on this server: nothing done there
    assert ("/ns/ixp100", "ip -6 addr replace fd00:6978:0:1::1/64 dev lan nodad") in cmds
    assert ("/ns/ixp100", "ip neigh replace fd00:6978:0:1::3 lladdr 02:69:00:01:00:02 dev lan nud permanent") in cmds
    assert ("/ns/1.A", "ip neigh replace fd00:6978:0:1::3 lladdr 02:69:00:01:00:02 dev ixp100 nud permanent") in cmds
    assert not any(ns == "/ns/1.A" and "fd00:6978:0:1::2 " in c for ns, c in cmds)   # not itself


def test_a_remote_members_ipv6_neighbours_are_written_once(tmp_path):
    plan = build_plan(parse_topology(TWO, "t.yaml"), "VM2", root=str(tmp_path))
    fake = FakeIp()
    assert ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake) == ["IXP 100: 3 IPv6 neighbours of 2.B"]
    writes = [" ".join(a) for ns, a in fake.calls if ns == "/ns/2.B" and "replace" in a]
    assert writes[0] == "ip -6 neigh replace fd00:6978:0:1::1 lladdr 02:69:00:01:00:00 dev ixp100 nud permanent"
    assert len(writes) == 3
    have = [{"dst": ip, "lladdr": mac} for ip, mac in plan.ixp_neighbours[0].entries]
    fake2 = FakeIp()
    real = fake2.__call__
    fake2_calls = lambda ns, args: (0, json.dumps(have)) if "neigh" in args and "show" in args else real(ns, args)  # noqa: E731
    assert ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake2_calls) == []
    assert not any("replace" in a for _, a in fake2.calls)


def test_loader_counts_segments_against_the_tos_limit_of_a_pair():
    members = ", ".join(f"{i}.R" for i in range(1, 66))
    ases = "\n".join(f"  {i}: {{server: {'VM1' if i == 1 else 'VM2'}, routers: [R]}}" for i in range(1, 66))
    text = f"name: t\nfabric: {{isolation: tos}}\nservers: [VM1, VM2]\nases:\n{ases}\nixps:\n  100: {{server: VM1, members: [{members}]}}\n"
    import pytest
    from minet_sdn.topology import TopologyError
    with pytest.raises(TopologyError) as exc:
        parse_topology(text, "t.yaml")
    assert exc.value.problems == ["t.yaml: ixps: 64 links and IXP segments between VM1 and VM2; tos isolation "
                                  "marks each with a DSCP in 1..63, so at most 63 fit (use fabric.isolation: key)"]
    assert len(parse_topology(text.replace("isolation: tos", "isolation: key"), "t.yaml").ixp_segments) == 64


def test_a_remote_members_shaping_is_planned_on_its_own_server_under_the_ixp_label(tmp_path):
    from minet_sdn.provision import shaping
    topo = parse_topology(TWO, "t.yaml")
    rows = {(w.node, w.ifname): w for w in shaping.wanted(build_plan(topo, "VM2", root=str(tmp_path)))}
    assert rows[("2.B", "ixp100")].link == "ixp100 2.B" and rows[("2.B", "ixp100")].shaping.rate_bps == 20_000_000
    rows1 = {(w.node, w.ifname) for w in shaping.wanted(build_plan(topo, "VM1", root=str(tmp_path)))}
    assert ("ixp100", "m2") not in rows1 and ("1.A", "ixp100") in rows1


def test_only_a_list_that_leaves_a_member_out_restricts_an_export():
    topo = parse_topology(TWO.replace("{router: 2.B, throughput: 20mbit}", "{router: 2.B, announce_to: [1, 3]}")
                          .replace("3.C]}", "{router: 3.C, announce_to: [1]}]}"), "t.yaml")
    assert topo.restricted_exporters == {3}


def test_peering_lan6_is_derived_or_given_and_checked():
    import pytest
    from minet_sdn.topology import TopologyError
    base = TWO.replace("ixps:\n  100: {server: VM1, ", "ixps:\n  100: {server: VM1, peering_lan6: %s, ")
    t = parse_topology(base % "'2001:db8:6::/64'", "t.yaml")
    assert t.ixps[100].route_server_ip6 == "2001:db8:6::1" and t.ixps[100].members[2].ip6 == "2001:db8:6::4"
    assert t.ixp_segments[0].a.ip6 == "2001:db8:6::3" and t.ixp_segments[0].b.ip6 == "2001:db8:6::1"
    for value, problem in (("'fd0a:0:1::/64'", "overlaps the IPv6 prefix of AS 1 (fd0a:0:1::/48)"),
                           ("'fd00:6d6e:1::/64'", "overlaps fabric.link_subnet6 (fd00:6d6e::/32)"),
                           ("'198.18.0.0/24'", "is not an IPv6 network")):
        with pytest.raises(TopologyError) as exc:
            parse_topology(base % value, "t.yaml")
        assert any(problem in line and "ixps.100.peering_lan6" in line for line in exc.value.problems), exc.value.problems
    with pytest.raises(TopologyError) as exc:
        parse_topology(base % "'2001:db8:6::/64'" + "fabric: {ipv6: false}\n", "t.yaml")
    assert exc.value.problems == ["t.yaml: ixps.100.peering_lan6: needs fabric.ipv6 (IPv6 routing is off)"]
