"""Values the model derives from a topology: link ids, addresses, MACs, datapath ids, bridges, OpenFlow
ports, cookies and MTUs."""
import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minet_sdn.topology import parse_topology
from minet_sdn.topology.model import (COOKIE_MAGIC_MASK, MAGIC, MAX_LINKS, MAX_OFPORT, TUNNEL_OFPORT, Fabric,
                                      cookie_link_id, link_cookie, link_ofport)

# Four servers: VM1-VM2 share three remote links (one written VM2 -> VM1), VM2-VM3 and VM3-VM1 one each;
# VM1, VM2 and VM4 also have local links (both ASes on one server); VM4 has nothing but a local link.
TOPOLOGY = """
name: {name}
fabric: {{link_subnet: {subnet}}}
servers:
  VM1: {{underlay_ip: 192.0.2.1}}
  VM2: {{underlay_ip: 192.0.2.2}}
  VM3: {{underlay_ip: 192.0.2.3}}
  VM4: {{underlay_ip: 192.0.2.4}}
ases:
  1: {{server: VM1, routers: [ZURI, GENE]}}
  2: {{server: VM2, routers: [PARI]}}
  3: {{server: VM2, routers: [LOND]}}
  4: {{server: VM3, routers: [ROMA]}}
  5: {{server: VM1, routers: [BERN]}}
  6: {{server: VM4, routers: [OSLO]}}
  7: {{server: VM4, routers: [RIGA]}}
links:
  - {{a: 1.ZURI, b: 2.PARI, rel: peer}}        # 1  VM1-VM2
  - {{a: 1.GENE, b: 2.PARI, rel: provider}}    # 2  VM1-VM2
  - {{a: 2.PARI, b: 3.LOND, rel: customer}}    # 3  local on VM2
  - {{a: 3.LOND, b: 4.ROMA, rel: peer}}        # 4  VM2-VM3
  - {{a: 5.BERN, b: 1.ZURI, rel: customer}}    # 5  local on VM1
  - {{a: 4.ROMA, b: 1.GENE, rel: provider}}    # 6  VM3-VM1
  - {{a: 6.OSLO, b: 7.RIGA, rel: peer}}        # 7  local on VM4
  - {{a: 2.PARI, b: 1.ZURI, rel: peer}}        # 8  VM2-VM1
"""
REMOTE = {1: ("VM1", "VM2"), 2: ("VM1", "VM2"), 4: ("VM2", "VM3"), 6: ("VM3", "VM1"), 8: ("VM2", "VM1")}
LOCAL = {3, 5, 7}


def make(name="demo", subnet="100.64.0.0/10"):
    return parse_topology(TOPOLOGY.format(name=name, subnet=subnet), "model.yaml")


@pytest.fixture(scope="module")
def topo():
    return make()


# ---- links ------------------------------------------------------------------------------------

def test_link_ids_are_1_based_positions(topo):
    assert [link.id for link in topo.links] == list(range(1, 9))
    assert [(link.a.router, link.b.router) for link in topo.links][:2] == [("1.ZURI", "2.PARI"), ("1.GENE", "2.PARI")]
    assert topo.links[7].a.router == "2.PARI" and topo.links[7].b.router == "1.ZURI"
    for link in topo.links:
        assert topo.link(link.id) is link
        assert link.a.ifname == link.b.ifname == f"ext{link.id}"
        assert link.a.server == topo.server_of(link.a.router)
        assert link.a.asn == int(link.a.router.split(".")[0]) and link.a.name == link.a.router.split(".")[1]


def test_remote_and_local_links(topo):
    assert {link.id for link in topo.links if link.remote} == set(REMOTE)
    assert {link.id for link in topo.links if not link.remote} == LOCAL
    assert [link.id for link in topo.remote_links] == sorted(REMOTE)
    for link_id, servers in REMOTE.items():
        link = topo.link(link_id)
        assert link.servers() == servers
        x, y = servers
        assert link.side(x).server == x and link.far(x).server == y
        assert link.side(y).server == y and link.far(y).server == x


def test_addresses_are_distinct_and_each_link_is_one_30_and_one_64(topo):
    v4 = [ip for link in topo.links for ip in (link.a.ip, link.b.ip)]
    v6 = [ip for link in topo.links for ip in (link.a.ip6, link.b.ip6)]
    assert len(set(v4)) == len(v4) and len(set(v6)) == len(v6)
    subnet = ipaddress.ip_network(topo.fabric.link_subnet)
    nets4, nets6 = set(), set()
    for link in topo.links:
        assert (link.prefixlen, link.prefixlen6) == (30, 64)
        net = ipaddress.ip_interface(f"{link.a.ip}/30").network
        assert net == ipaddress.ip_interface(f"{link.b.ip}/30").network
        assert list(net.hosts()) == [ipaddress.ip_address(link.a.ip), ipaddress.ip_address(link.b.ip)]
        assert net.subnet_of(subnet)
        net6 = ipaddress.ip_interface(f"{link.a.ip6}/64").network
        assert net6 == ipaddress.ip_interface(f"{link.b.ip6}/64").network
        assert net6.subnet_of(ipaddress.ip_network(topo.fabric.link_subnet6))
        nets4.add(net)
        nets6.add(net6)
    assert len(nets4) == len(nets6) == len(topo.links)


def test_addresses_follow_a_custom_link_subnet_to_its_last_slot():
    head = TOPOLOGY.format(name="demo", subnet="10.9.0.0/29").split("links:")[0]      # room for two /30s
    small = parse_topology(head + "links:\n  - {a: 1.ZURI, b: 2.PARI, rel: peer}\n"
                                  "  - {a: 1.GENE, b: 4.ROMA, rel: peer}\n")
    assert [(link.a.ip, link.b.ip) for link in small.links] == [("10.9.0.1", "10.9.0.2"), ("10.9.0.5", "10.9.0.6")]


def test_macs_are_unique_locally_administered_unicast(topo):
    macs = [mac for link in topo.links for mac in (link.a.mac, link.b.mac)]
    assert len(set(macs)) == len(macs)
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x01 == 0, f"{mac} is multicast"
        assert first & 0x02 == 0x02, f"{mac} is not locally administered"
        assert len(mac.split(":")) == 6


# ---- datapaths and bridges --------------------------------------------------------------------

def test_dpids_are_unique_per_ordered_server_pair_and_ours(topo):
    pairs = list(itertools.permutations(topo.servers, 2))
    dpids = [topo.dpid(x, y) for x, y in pairs]
    assert len(set(dpids)) == len(dpids)
    for dpid in dpids:
        assert dpid >> 48 == MAGIC and dpid < 2 ** 64


def test_dpids_differ_between_two_instance_names():
    alpha, beta = make("alpha"), make("beta")
    for x, y in itertools.permutations(alpha.servers, 2):
        assert alpha.dpid(x, y) != beta.dpid(x, y)
    assert not set(alpha.bridges) & set(beta.bridges)


def test_bridges_exist_only_for_pairs_with_remote_links_in_both_directions(topo):
    expected = set()
    for x, y in REMOTE.values():
        expected |= {(x, y), (y, x)}
    assert {(b.server, b.peer) for b in topo.bridges.values()} == expected
    assert len(topo.bridges) == 6
    for dpid, bridge in topo.bridges.items():
        assert dpid == bridge.dpid == topo.dpid(bridge.server, bridge.peer)
        assert topo.bridge(bridge.server, bridge.peer) is bridge
        assert topo.peer_bridge(bridge).server == bridge.peer and topo.peer_bridge(bridge).peer == bridge.server
        assert bridge.tunnel_ofport == TUNNEL_OFPORT


def test_bridge_link_ids_are_exactly_the_remote_links_of_the_pair(topo):
    for bridge in topo.bridges.values():
        pair = {bridge.server, bridge.peer}
        assert bridge.link_ids == tuple(sorted(i for i, servers in REMOTE.items() if set(servers) == pair))
        assert topo.peer_bridge(bridge).link_ids == bridge.link_ids
    assert topo.bridge("VM1", "VM2").link_ids == (1, 2, 8)
    assert topo.bridge("VM3", "VM1").link_ids == (6,)


def test_local_links_get_no_bridge(topo):
    assert all(bridge.server != bridge.peer for bridge in topo.bridges.values())
    assert not any("VM4" in (bridge.server, bridge.peer) for bridge in topo.bridges.values())
    for link_id in LOCAL:
        assert all(link_id not in bridge.link_ids for bridge in topo.bridges.values())
    with pytest.raises(KeyError):
        topo.bridge("VM1", "VM1")
    with pytest.raises(KeyError):
        topo.bridge("VM1", "VM4")


def test_link_ofports_are_unique_per_bridge_and_clear_of_the_tunnel_port(topo):
    for bridge in topo.bridges.values():
        ports = [topo.link(i).ofport for i in bridge.link_ids]
        assert len(set(ports)) == len(ports)
        assert TUNNEL_OFPORT not in ports
        assert all(port == link_ofport(i) for port, i in zip(ports, bridge.link_ids))
    assert link_ofport(1) != TUNNEL_OFPORT
    assert link_ofport(MAX_LINKS) == MAX_OFPORT


@pytest.mark.parametrize("name", ["a", "demo", "sixsix", "seven77", "twelve-chars"])
def test_kernel_names_fit_15_characters(name):
    topo = make(name)
    assert len(topo.tag) <= 6
    for bridge in topo.bridges.values():
        assert len(bridge.name) <= 15 and len(bridge.tunnel_port) <= 15
    assert len(topo.link_port_name(MAX_LINKS)) <= 15


def test_router_index(topo):
    assert topo.routers["1.GENE"].asn == 1
    assert topo.server_of("4.ROMA") == "VM3"
    assert len(topo.routers) == 8


# ---- cookies ----------------------------------------------------------------------------------

@given(st.integers(0, MAX_LINKS))
def test_cookie_round_trip(link_id):
    assert cookie_link_id(link_cookie(link_id)) == link_id


@given(st.integers(0, 2 ** 64 - 1).filter(lambda c: c & COOKIE_MAGIC_MASK != MAGIC << 48))
def test_foreign_cookies_are_not_ours(cookie):
    assert cookie_link_id(cookie) is None


def test_cookie_examples(topo):
    assert cookie_link_id(0) is None                  # another application's default cookie
    assert cookie_link_id(link_cookie(0)) == 0        # our bridge-wide flows
    assert cookie_link_id(0xFFFFFFFFFFFFFFFF) is None
    assert all(cookie_link_id(link.cookie) == link.id for link in topo.links)


# ---- MTU ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("encap, underlay, expected", [
    ("gre", 1500, 1458),       # 1500 - (20 IPv4 + 8 GRE with key + 14 inner Ethernet)
    ("vxlan", 1500, 1450),     # 1500 - (20 IPv4 + 8 UDP + 8 VXLAN + 14 inner Ethernet)
    ("gre", 9000, 1500),       # jumbo underlay: routers keep the standard 1500
    ("vxlan", 9000, 1500),
    ("gre", 1542, 1500),
])
def test_link_mtu(encap, underlay, expected):
    assert Fabric(encapsulation=encap, underlay_mtu=underlay).link_mtu == expected
