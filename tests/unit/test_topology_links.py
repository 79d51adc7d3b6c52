"""Explicit intra-AS links, per-link shaping and `servers:` as a list of names."""
import pytest

from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import TopologyError, parse_topology
from minet_sdn.topology.addressing import as_addressing
from minet_sdn.topology.model import Shaping

BASE = """
name: t
servers: {VM1: {underlay_ip: 192.0.2.1}, VM2: {underlay_ip: 192.0.2.2}}
ases:
  1:
    server: VM1
    routers: [A, B, C, D]
%s
  2: {server: VM2, routers: [X]}
links:
  - {a: 1.A, b: 2.X, rel: peer%s}
"""


def topo(as_extra="", link_extra=""):
    return parse_topology(BASE % (as_extra, link_extra), "t.yaml")


def problems(as_extra="", link_extra=""):
    with pytest.raises(TopologyError) as info:
        topo(as_extra, link_extra)
    return info.value.problems


def test_no_links_keeps_the_ring():
    a = as_addressing(topo().ases[1])
    assert [(l.a, l.b) for l in a.links] == [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")]
    assert all(l.shaping is None for l in a.links)


def test_explicit_links_are_numbered_in_written_order_with_their_shaping():
    t = topo("    links:\n      - {a: A, b: C, throughput: 10mbit, delay: 2.5ms, buffer: 50ms}\n"
             "      - {a: C, b: B}\n      - {a: C, b: D, throughput: 100000}\n")
    a = as_addressing(t.ases[1])
    assert [(l.a, l.b) for l in a.links] == [("A", "C"), ("C", "B"), ("C", "D")]
    assert (a.links[0].a_ip, a.links[0].b_ip, a.links[1].a_ip) == ("10.0.1.65", "10.0.1.66", "10.0.1.69")
    assert a.links[0].shaping == Shaping(rate_bps=10_000_000, delay_us=2500, latency_us=50_000)
    assert a.links[2].shaping == Shaping(rate_bps=100_000_000)        # bare number: kbit/s
    assert a.links[1].shaping is None
    plan = build_plan(t, "VM1")
    rings = {(v.a.node, v.a.ifname, v.b.node, v.b.ifname) for v in plan.veths if v.kind == "ring"}
    assert rings == {("1.A", "to_C", "1.C", "to_A"), ("1.C", "to_B", "1.B", "to_C"), ("1.C", "to_D", "1.D", "to_C")}
    conf = {r.node: r.config for r in plan.routers}
    assert "to_B" not in conf["1.A"] and "to_C" in conf["1.A"]     # OSPF runs on the links that exist


def test_inter_as_link_shaping_and_its_round_trip():
    t = topo(link_extra=", throughput: 1gbit, delay: 250us, buffer: 64kb")
    s = t.links[0].shaping
    assert s == Shaping(rate_bps=10 ** 9, delay_us=250, buffer_bytes=65536)
    assert s.as_dict() == {"throughput": "1gbit", "delay": "250us", "buffer": "64kb"}
    assert s.describe() == "1gbit 250us buf 64kb"
    again = topo(link_extra=", " + ", ".join(f"{k}: {v}" for k, v in s.as_dict().items()))
    assert again.links[0].shaping == s


@pytest.mark.parametrize("extra,line", [
    (", throughput: fast", "t.yaml: links[1].throughput: 'fast' is not a rate in 8kbit..100gbit "
                           "(e.g. 10mbit, 1gbit; a bare number is kbit/s)"),
    (", delay: 5 parsecs", "t.yaml: links[1].delay: '5 parsecs' is not a delay in 0..10s "
                           "(e.g. 5ms, 250us; a bare number is ms)"),
    (", throughput: 1mbit, buffer: 10b", "t.yaml: links[1].buffer: '10b' is not a buffer: a size in 1500b..1gb "
                                         "(e.g. 64kb; a bare number is bytes) or a time (e.g. 50ms)"),
    (", buffer: 64kb", "t.yaml: links[1].buffer: needs a throughput (the buffer is the queue of the rate limiter)"),
    (", throughput: 1mbit, buffer: 20s", "t.yaml: links[1].buffer: '20s' is not a queueing time in 1us..10s"),
])
def test_bad_shaping_is_one_line_with_its_key_path(extra, line):
    assert problems(link_extra=extra) == [line]


@pytest.mark.parametrize("links,line", [
    ("    links: {a: A}\n", "t.yaml: ases.1.links: must be a list of intra-AS links {a: ROUTER, b: ROUTER}, not a mapping"),
    ("    links:\n      - {a: A, b: Q}\n", "t.yaml: ases.1.links[1].b: router Q is not in this AS's routers"),
    ("    links:\n      - {a: A, b: A}\n", "t.yaml: ases.1.links[1]: joins router A to itself"),
    ("    links:\n      - {a: A, b: B}\n      - {a: B, b: A}\n      - {a: C, b: D}\n",
     "t.yaml: ases.1.links[2]: B and A are already joined by ases.1.links[1]"),
    ("    links:\n      - {a: A, b: B}\n      - {a: C, b: D}\n",
     "t.yaml: ases.1.links: routers C, D cannot reach A over these links"),
    ("    links:\n      - {a: A, b: B, mtu: 9000}\n",
     "t.yaml: ases.1.links[1].mtu: unknown key (allowed: a, b, throughput, delay, buffer)"),
])
def test_bad_intra_links_are_one_line_with_their_key_path(links, line):
    assert line in problems(links)


def test_too_many_intra_links_for_the_prefix():
    names = [f"R{i}" for i in range(12)]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]][:17]    # a /24 holds 16
    text = ("name: t\nservers: {VM1: {underlay_ip: 192.0.2.1}}\nases:\n  1:\n    server: VM1\n"
            f"    routers: [{', '.join(names)}]\n    links:\n"
            + "".join(f"      - {{a: {a}, b: {b}}}\n" for a, b in pairs))
    t = parse_topology(text, "t.yaml")
    with pytest.raises(Exception) as info:
        build_plan(t, "VM1")
    assert "ases.1.links: 17 intra-AS links do not fit 10.0.1.0/24 (room for 16" in str(info.value)


def test_servers_as_a_list_of_names():
    t = parse_topology("name: t\nservers: [VM1, VM2]\nases:\n  1: {server: VM2, routers: [A]}\n", "t.yaml")
    assert [(s.name, s.index, s.underlay_ip) for s in t.servers.values()] == [
        ("VM1", 1, "192.0.2.1"), ("VM2", 2, "192.0.2.2")]
    with pytest.raises(TopologyError) as info:
        parse_topology("name: t\nservers: [VM1, VM1]\nases:\n  1: {server: VM1, routers: [A]}\n", "t.yaml")
    assert info.value.problems == ["t.yaml: servers[2]: server VM1 is listed twice"]


IXP_BASE = """
name: t
servers: [VM1, VM2]
ases:
  1: {server: VM1, routers: [A, B]}
  2: {server: VM1, routers: [C]}
  3: {server: VM2, routers: [D]}
  4: {server: VM2, routers: [E]}
ixps:
%s
"""


def ixp_problems(text):
    with pytest.raises(TopologyError) as info:
        parse_topology(IXP_BASE % text, "t.yaml")
    return info.value.problems


def test_ixps_members_lan_and_route_server():
    t = parse_topology(IXP_BASE % ("  100:\n    server: VM1\n    members:\n      - 1.B\n"
                                   "      - {router: 2.C, announce_to: [1], throughput: 10mbit}\n"
                                   "  101: {server: VM2, members: [3.D, 4.E], peering_lan: 192.168.7.0/28, "
                                   "route_server_asn: 65101}\n"), "t.yaml")
    x = t.ixps[100]
    assert (x.server, x.peering_lan, x.route_server_asn, x.route_server_ip, x.ifname) == (
        "VM1", "198.18.0.0/24", 100, "198.18.0.1", "ixp100")
    assert [(m.router, m.ip, m.announce_to) for m in x.members] == [("1.B", "198.18.0.2", None),
                                                                   ("2.C", "198.18.0.3", (1,))]
    assert x.members[1].shaping.rate_bps == 10_000_000
    y = t.ixps[101]
    assert (y.peering_lan, y.route_server_asn, [m.ip for m in y.members]) == (
        "192.168.7.0/28", 65101, ["192.168.7.2", "192.168.7.3"])


@pytest.mark.parametrize("text,line", [
    ("  1: {server: VM1, members: [1.A]}", "t.yaml: ixps.1: 1 is also an AS number; an IXP needs a number of its own"),
    ("  100: {server: VM9, members: [1.A]}", "t.yaml: ixps.100.server: server VM9 is not defined under servers"),
    ("  100: {server: VM1, members: [1.A, 1.B]}",
     "t.yaml: ixps.100.members[2]: AS 1 is already a member (members[1]); one router per AS and IXP"),
    ("  100: {server: VM1, members: [1.Q]}", "t.yaml: ixps.100.members[1]: router 1.Q is not defined"),
    ("  100: {server: VM1, members: [{router: 1.A, announce_to: [3]}]}",
     "t.yaml: ixps.100.members[1].announce_to: AS 3 is not a member of this IXP"),
    ("  100: {server: VM1, members: [1.A], peering_lan6: 'fd00:6d6e:9::/64'}",
     "t.yaml: ixps.100.peering_lan6: fd00:6d6e:9::/64 overlaps fabric.link_subnet6 (fd00:6d6e::/32)"),
    ("  100: {server: VM1, members: [1.A], route_server_asn: 2}",
     "t.yaml: ixps.100.route_server_asn: 2 is a member AS's number; the route server needs its own"),
    ("  100: {server: VM1, members: [1.A, 2.C, 3.D], peering_lan: 10.9.0.0/30}",
     "t.yaml: ixps.100.peering_lan: 10.9.0.0/30 is too small: the prefix length must be /29 or shorter"),
    ("  100: {server: VM1, members: [1.A], peering_lan: 100.64.0.0/24}",
     "t.yaml: ixps.100.peering_lan: 100.64.0.0/24 overlaps fabric.link_subnet (100.64.0.0/10)"),
    ("  abc: {server: VM1, members: [1.A]}",
     "t.yaml: ixps.abc: 'abc' is not an IXP number (an integer in 1..4294967294)"),
    ("  100: {server: VM1, members: [1.A], route_server_asn: 0}",
     "t.yaml: ixps.100.route_server_asn: the number 0 is not an AS number (1..4294967294)"),
    ("  100: {server: VM1, members: [1.A], peering_lan: 192.168.0.0/24}\n"
     "  200: {server: VM2, members: [3.D], peering_lan: 192.168.0.128/25}",
     "t.yaml: ixps.200.peering_lan: 192.168.0.128/25 overlaps the peering LAN of IXP 100 (192.168.0.0/24)"),
    ("  100: {server: VM1, members: [1.A], peering_lan6: 'fd00:99::/64'}\n"
     "  200: {server: VM2, members: [3.D], peering_lan6: 'fd00:99::/64'}",
     "t.yaml: ixps.200.peering_lan6: fd00:99::/64 overlaps the IPv6 peering LAN of IXP 100 (fd00:99::/64)"),
    ("  100: {server: VM1, members: [1.A], colour: red}",
     "t.yaml: ixps.100.colour: unknown key (allowed: server, members, peering_lan, route_server_asn, "
     "peering_lan6)"),
])
def test_bad_ixps_are_one_line_with_their_key_path(text, line):
    assert line in ixp_problems(text)


def test_a_peering_lan_over_an_explicit_as_prefix_is_reported_in_each_family():
    text = IXP_BASE.replace("1: {server: VM1, routers: [A, B]}",
                            "1: {server: VM1, routers: [A, B], prefix: 10.1.0.0/16, prefix6: 'fd0a:1::/48'}")
    with pytest.raises(TopologyError) as info:
        parse_topology(text % "  100: {server: VM1, members: [2.C], peering_lan: 10.1.2.0/24, "
                              "peering_lan6: 'fd0a:1:0:5::/64'}", "t.yaml")
    assert info.value.problems == [
        "t.yaml: ixps.100.peering_lan6: fd0a:1:0:5::/64 overlaps the IPv6 prefix of AS 1 (fd0a:1::/48)",
        "t.yaml: ixps.100.peering_lan: 10.1.2.0/24 overlaps the prefix of AS 1 (10.1.0.0/16)"]


def test_a_member_on_another_server_than_its_ixp_is_accepted():
    t = parse_topology(IXP_BASE % "  100: {server: VM1, members: [1.A, 3.D]}", "t.yaml")
    assert [(s.a.router, s.servers()) for s in t.ixp_segments] == [("3.D", ("VM2", "VM1"))]


def test_plan_builds_the_route_server_the_lan_ports_and_member_sessions(tmp_path):
    t = parse_topology(IXP_BASE % "  100: {server: VM1, members: [1.B, {router: 2.C, throughput: 10mbit}]}", "t.yaml")
    plan = build_plan(t, "VM1", root=str(tmp_path))
    assert "ixp100" in plan.node_by_id
    (lan,) = plan.ixps
    assert (lan.ip, lan.prefixlen, lan.mac) == ("198.18.0.1", 24, "02:69:00:01:00:00")
    assert [(p.ifname, p.member, p.member_ifname, p.ip, p.mac) for p in lan.ports] == [
        ("m1", "1.B", "ixp100", "198.18.0.2", "02:69:00:01:00:01"),
        ("m2", "2.C", "ixp100", "198.18.0.3", "02:69:00:01:00:02")]
    veths = [v for v in plan.veths if v.kind == "ixp"]
    assert [(v.a.node, v.a.ifname, v.a.addresses, v.b.node, v.b.ifname) for v in veths] == [
        ("1.B", "ixp100", ("198.18.0.2/24", "fd00:6978:0:1::2/64"), "ixp100", "m1"),
        ("2.C", "ixp100", ("198.18.0.3/24", "fd00:6978:0:1::3/64"), "ixp100", "m2")]
    assert veths[1].a.shaping.rate_bps == 10_000_000
    conf = {r.node: r for r in plan.routers}
    rs = conf["ixp100"]
    assert rs.daemons == ("zebra", "bgpd") and rs.asn == 100
    assert "neighbor 198.18.0.2 remote-as 1" in rs.config and "neighbor 198.18.0.3 route-server-client" in rs.config
    assert "exit\n" not in rs.config
    assert "neighbor 198.18.0.1 remote-as 100" in conf["1.B"].config
    assert "neighbor 198.18.0.1 route-map MINET-OUT-UP out" in conf["1.B"].config     # own + customer routes
    assert "neighbor 198.18.0.1 route-map MINET-IN-PEER in" in conf["1.B"].config     # learn everything
    assert "198.18.0.1" not in conf["1.A"].config
    assert build_plan(t, "VM2", root=str(tmp_path)).ixps == ()


def test_validate_tells_how_many_members_sit_apart_from_their_ixp(tmp_path, capsys):
    from minet_sdn.cli.main import main
    path = tmp_path / "t.yaml"
    path.write_text(IXP_BASE % "  100: {server: VM1, members: [1.A, 3.D]}")
    assert main(["validate", str(path)]) == 0
    assert "1 IXPs (1 members on other servers, over IXP segments)" in capsys.readouterr().out
