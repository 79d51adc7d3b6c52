"""The mini-Internet addressing plans: exact addresses of an imported fixture (IPv4 and IPv6), the
provisioning plan built from them, and refusals with the file and key."""
from pathlib import Path

import pytest

from minet_sdn.importers import to_yaml
from minet_sdn.importers.mini_internet import import_folder
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import TopologyError, parse_topology
from minet_sdn.topology.addressing import l2_address, topology_addressing, topology_addressing6, twin6

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "mini_internet"


@pytest.fixture(scope="module")
def current():
    return parse_topology(to_yaml(import_folder(str(FIX / "current")).topology), "current.yaml")


def test_inter_as_links_take_the_subnet_column_with_asn_host_parts(current):
    # 21 HUB - 22 NORD on 179.21.22.0/24: AS 21 is .21, AS 22 is .22 (upstream's subnet%????${grp})
    l1 = current.links[0]
    assert (l1.a.router, l1.a.ip, l1.b.router, l1.b.ip, l1.prefixlen) == ("21.HUB", "179.21.22.21", "22.NORD",
                                                                           "179.21.22.22", 24)
    assert (l1.a.ip6, l1.b.ip6, l1.prefixlen6) == ("179:21:22::21", "179:21:22::22", 48)


def test_routers_hosts_loopbacks_and_intra_links_follow_the_plan(current):
    a = topology_addressing(current)[22]
    assert a.prefix == "22.0.0.0/8"
    nord, mitte, sued = (a.routers[n] for n in ("NORD", "MITTE", "SUED"))
    assert [r.loopback for r in (nord, mitte, sued)] == ["22.151.0.1", "22.152.0.1", "22.153.0.1"]
    # host .1, router .2 (subnet_host_router)
    assert (mitte.host_ip, mitte.host_router_ip, mitte.host_prefixlen) == ("22.102.0.1", "22.102.0.2", 24)
    # intra-AS link n (file order) is 22.0.(n+1).0/24, its first router .1
    assert [(l.a, l.b, l.a_ip, l.b_ip) for l in a.links] == [("NORD", "MITTE", "22.0.1.1", "22.0.1.2"),
                                                             ("MITTE", "SUED", "22.0.2.1", "22.0.2.2")]
    a6 = topology_addressing6(current, topology_addressing(current))[22]
    assert a6.prefix == "22::/16"
    assert (a6.routers["MITTE"].loopback, a6.routers["MITTE"].host_ip, a6.routers["MITTE"].host_router_ip) == (
        "22:152::1", "22:102::1", "22:102::2")
    assert a6.links[2] == ("22:0:2::1", "22:0:2::2")


def test_ixp_lan_route_server_and_members(current):
    x = current.ixps[95]
    assert (x.peering_lan, x.route_server_ip, x.peering_lan6, x.route_server_ip6) == (
        "180.95.0.0/24", "180.95.0.95", "180:95::/48", "180:95::95")
    assert [(m.router, m.ip, m.ip6) for m in x.members] == [("21.HUB", "180.95.0.21", "180:95::21"),
                                                            ("23.MITTE", "180.95.0.23", "180:95::23")]


def test_layer2_addresses_and_twins():
    assert l2_address(3, 0, 10, 1) == ("3.200.10.1/24", "3:200:10::1/48")
    assert l2_address(3, 1, 20, 4) == ("3.201.20.4/24", "3:201:20::4/48")
    assert twin6("3.0.0.0", 8) == "3::/16"


def test_provisioning_plan_uses_the_plan_everywhere(current):
    plan = build_plan(current, "VM1", root="/nonexistent")
    by_iface = {(v.a.node, v.a.ifname): v for v in plan.veths}
    host = by_iface[("22.MITTE", "host")]
    assert host.a.addresses == ("22.102.0.2/24", "22:102::2/48")
    assert host.b.addresses == ("22.102.0.1/24", "22:102::1/48")
    hnode = plan.node_by_id["22.MITTE.host"]
    assert [r.via for r in hnode.routes] == ["22.102.0.2", "22:102::2"]
    assert plan.node_by_id["22.MITTE"].lo_addresses == ("22.152.0.1/32", "22:152::1/128")
    ext = [v for v in plan.veths if v.kind == "inter" and v.link_id == 1][0]
    assert ext.a.addresses == ("179.21.22.21/24", "179:21:22::21/48")
    hub = next(r for r in plan.routers if r.node == "21.HUB").config
    assert " neighbor 179.21.22.22 remote-as 22" in hub
    assert " neighbor 180.95.0.95 remote-as 95" in hub
    assert "bgp router-id 21.151.0.1" in hub and "  network 21.0.0.0/8" in hub
    lan = next(x for x in plan.ixps if x.number == 95)
    assert (lan.ip, [p.ip for p in lan.ports]) == ("180.95.0.95", ["180.95.0.21", "180.95.0.23"])


BASE = """
name: t
addressing: {plan: mini-internet}
servers: [VM1]
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM1, routers: [B]}
  3: {server: VM1, routers: [C]}
links:
  - {a: 1.A, b: 2.B, rel: peer, subnet: 179.0.1.0/24}
  - {a: 2.B, b: 3.C, rel: peer%s}
"""


def test_default_link_numbering_without_a_subnet():
    t = parse_topology(BASE % "", "t.yaml")
    # link 2 has no subnet: 179.(2 div 100).(2 mod 100).0/24, a .1 and b .2 (subnet_router_router_extern)
    assert (t.links[1].a.ip, t.links[1].b.ip) == ("179.0.2.1", "179.0.2.2")


@pytest.mark.parametrize("extra,line", [
    (", subnet: 179.0.1.0/24", "t.yaml: links[2].subnet: 179.0.1.0/24 overlaps links[1].subnet (179.0.1.0/24)"),
    (", subnet: 2.0.0.0/24", "t.yaml: links[2].subnet: 2.0.0.0/24 lies in AS 2's own 2.0.0.0/8"),
    (", subnet: 179.0.9.0/30", "t.yaml: links[2].subnet: 179.0.9.0/30 has no room for host parts 2 and 3 "
                               "(the mini-internet plan gives each side its AS number)"),
])
def test_overlapping_or_unusable_subnets_are_refused_with_file_and_key(extra, line):
    with pytest.raises(TopologyError) as info:
        parse_topology(BASE % extra, "t.yaml")
    assert line in info.value.problems


def test_plan_refuses_explicit_prefixes_and_large_asns():
    text = BASE.replace("1: {server: VM1, routers: [A]}", "1: {server: VM1, routers: [A], prefix: 10.0.0.0/24}")
    with pytest.raises(TopologyError) as info:
        parse_topology(text % "", "t.yaml")
    assert info.value.problems[0].startswith("t.yaml: ases.1.prefix: is set by the mini-internet addressing plan")
    text = BASE.replace("3: {server: VM1, routers: [C]}", "300: {server: VM1, routers: [C]}").replace("3.C", "300.C")
    with pytest.raises(TopologyError) as info:
        parse_topology(text % "", "t.yaml")
    assert "t.yaml: ases.300: the mini-internet addressing plan numbers ASes 1..254 only (AS X owns X.0.0.0/8)" \
        in info.value.problems


def test_minet_plan_stays_the_default_and_takes_a_link_subnet_override():
    text = BASE.replace("addressing: {plan: mini-internet}\n", "")
    t = parse_topology(text % "", "t.yaml")
    assert t.plan == "minet"
    assert topology_addressing(t)[1].prefix == "10.0.1.0/24"
    assert (t.links[0].a.ip, t.links[0].b.ip, t.links[0].prefixlen) == ("179.0.1.1", "179.0.1.2", 24)
    assert (t.links[1].a.ip, t.links[1].prefixlen) == ("100.64.0.5", 30)
    with pytest.raises(TopologyError) as info:
        parse_topology(text.replace("name: t", "name: t\naddressing: {plan: other}") % "", "t.yaml")
    assert info.value.problems == ["t.yaml: addressing.plan: 'other' is not one of minet, mini-internet, "
                                   "mini-internet-2019"]


def test_minet_plan_link_subnet_overlaps_are_refused():
    text = (BASE.replace("addressing: {plan: mini-internet}\n", "") % ", subnet: 179.0.1.0/25")
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "t.yaml")
    assert info.value.problems == ["t.yaml: links[2].subnet: 179.0.1.0/25 overlaps links[1].subnet (179.0.1.0/24)"]
    text = (BASE.replace("addressing: {plan: mini-internet}\n", "") % ", subnet: 10.0.2.0/30")
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "t.yaml")
    assert info.value.problems == ["t.yaml: links[2].subnet: 10.0.2.0/30 overlaps the prefix of AS 2 (10.0.2.0/24)"]


def test_layer2_numbering_follows_upstream(current):
    from minet_sdn.topology.addressing import layer2_addresses
    a = layer2_addresses(22, current.ases[22].imported_layer2)
    # DCA (index 0) has router NORD (device 1) and VLANs 10 and 20; DCB (index 1) SUED and VLAN 30
    assert a.routers == {("NORD", 10): ("22.200.10.1/24", "22:200:10::1/48"),
                         ("NORD", 20): ("22.200.20.1/24", "22:200:20::1/48"),
                         ("SUED", 30): ("22.201.30.1/24", "22:201:30::1/48")}
    # hosts after the DC's routers, counted per (DC, VLAN); vpn_1 takes a number but no address
    assert a.hosts == {"web_1": ("22.200.10.2/24", "22:200:10::2/48", "22.200.10.1", "22:200:10::1"),
                       "db_1": ("22.200.20.2/24", "22:200:20::2/48", "22.200.20.1", "22:200:20::1"),
                       "web_2": ("22.200.10.3/24", "22:200:10::3/48", "22.200.10.1", "22:200:10::1")}


def test_folders_before_mid_2023_number_subnet_links_by_end():
    # ixp2022 has neither hijacks.txt nor a Buffer column: the platform of its time gave the first AS
    # .1 and the second .2 of the Subnet column (subnet%????1/24, subnet%????2/24)
    t = parse_topology(to_yaml(import_folder(str(FIX / "ixp2022")).topology), "ixp2022.yaml")
    assert [(l.a.ip, l.b.ip) for l in t.links] == [("179.11.12.1", "179.11.12.2"), ("179.12.13.1", "179.12.13.2")]
    # a link with Subnet N/A is numbered by its line in the file (0-based): lists2020 line 1 -> 179.0.0.0/24
    t = parse_topology(to_yaml(import_folder(str(FIX / "lists2020")).topology), "lists2020.yaml")
    assert (t.links[0].a.ip, t.links[0].b.ip) == ("179.0.0.1", "179.0.0.2")
    text = BASE.replace("{plan: mini-internet}", "{plan: mini-internet, link_hosts: ends}") % ""
    assert parse_topology(text, "t.yaml").links[0].b.ip == "179.0.1.2"
    with pytest.raises(TopologyError) as info:
        parse_topology(BASE.replace("{plan: mini-internet}", "{link_hosts: ends}") % "", "t.yaml")
    assert info.value.problems == ["t.yaml: addressing.link_hosts: applies to the mini-internet plans only"]
