"""The BGP import filters take their facts from where the plan takes them (issue 21 item 7, the
depth of it): what each AS may announce is what the plan has its routers announce (the AS prefix,
and the layer-2 prefix of a configured AS with layer 2), and "nothing inside the link subnets" uses
the subnets the links really have: fabric.link_subnet in the minet plan, each link's Subnet
column (or default /24) in the mini-Internet plan, where fabric.link_subnet is nobody's."""
import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from minet_sdn.importers import to_yaml
from minet_sdn.importers.mini_internet import import_folder
from minet_sdn.provision.plan import ImportFilters, link_subnets
from minet_sdn.topology import parse_topology
from minet_sdn.topology.addressing import topology_addressing, topology_addressing6
from tests.support.frr_config import accepts, prefix_lists, router_configs

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "mini_internet"
def filters_of(topo):
    v4 = topology_addressing(topo)
    return ImportFilters(topo, v4, topology_addressing6(topo, v4) if topo.fabric.ipv6 else {})


# ---- the minet plan, an AS with layer 2 ------------------------------------------------------------

def layer2_topology():
    l2 = {"switches": {"S1": {"dc": "DCN", "router": "ZURI"}}, "hosts": {"H1": {"switch": "S1", "vlan": 10}}}
    return parse_topology(yaml.safe_dump({
        "name": "ift", "servers": ["VM1"],
        "ases": {1: {"server": "VM1", "routers": ["ZURI", "GENE"], "layer2": l2},
                 2: {"server": "VM1", "routers": ["PARI"]},
                 3: {"server": "VM1", "routers": ["OSLO"]}},
        "links": [{"a": "1.ZURI", "b": "2.PARI", "rel": "customer"},       # AS 1 is AS 2's customer
                  {"a": "1.GENE", "b": "3.OSLO", "rel": "peer"}],
    }, sort_keys=False), "ift.yaml")


def test_each_as_may_announce_exactly_what_the_plan_has_its_routers_announce():
    topo = layer2_topology()
    conf = router_configs(topo)
    announced = set(re.findall(r"^  network (\d+\.\S+)$", conf["1.ZURI"], re.M))
    assert announced == {"10.0.1.0/24", "172.16.16.0/20"}           # the AS prefix and its layer-2 prefix
    assert set(filters_of(topo).accept(1)) == announced             # one source, not a special case
    for router, far in (("2.PARI", "1.ZURI"), ("3.OSLO", "1.GENE")):
        far_ip = next(e.ip for l in topo.links for e in (l.a, l.b) if e.router == far)
        name = re.search(rf"^  neighbor {re.escape(far_ip)} prefix-list (\S+) in$", conf[router], re.M).group(1)
        entries = prefix_lists(conf[router])[name]
        assert accepts(entries, "172.16.16.0/20") and accepts(entries, "172.16.16.0/24")   # a VLAN's /24
        assert not accepts(entries, "172.16.32.0/20")               # another AS's slice of the pool
        assert accepts(entries, "10.0.1.0/24") and not accepts(entries, "10.0.3.0/24")


def test_the_minet_plan_keeps_fabric_link_subnet_and_adds_a_link_of_its_own_subnet():
    topo = layer2_topology()
    assert link_subnets(topo, True) == (topo.fabric.link_subnet, topo.fabric.link_subnet6)
    text = yaml.safe_load(open(Path(__file__).resolve().parents[2] / "topologies" / "demo.yaml"))
    text["name"] = "ift2"
    text["links"][0]["subnet"] = "198.51.100.0/30"                  # outside fabric.link_subnet
    topo = parse_topology(yaml.safe_dump(text, sort_keys=False), "ift2.yaml")
    assert "198.51.100.0/30" in link_subnets(topo, True)
    conf = router_configs(topo)
    entries = prefix_lists(conf["3.BERN"])["MINET-PFX-ANY"]        # from its provider: anything but bogons
    assert not accepts(entries, "198.51.100.1/32") and not accepts(entries, "100.64.0.4/30")
    assert accepts(entries, "198.51.100.0/24")                       # around the link: someone's network


# ---- the mini-Internet plan ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mini():
    topo = parse_topology(to_yaml(import_folder(str(FIX / "current")).topology), "current.yaml")
    return topo, router_configs(topo)


def test_the_mini_internet_plan_refuses_its_links_subnets_not_fabric_link_subnet(mini):
    topo, conf = mini
    subnets = link_subnets(topo, topo.fabric.ipv6)
    assert topo.fabric.link_subnet not in subnets
    for link in topo.links:
        net = ipaddress.ip_interface(f"{link.a.ip}/{link.prefixlen}").network
        assert any(net.subnet_of(ipaddress.ip_network(s)) for s in subnets if ":" not in s), (link.id, net)
    checked = 0
    for router, config in conf.items():
        for name, entries in prefix_lists(config).items():
            if name.startswith("MINET-PFX6"):
                continue
            checked += 1
            for link in topo.links:                # a link address's /32 (it would steal the session)
                assert not accepts(entries, f"{link.a.ip}/32"), (router, name, link.id)
            # 100.64.0.0/10 is nobody's link subnet here: AS 100 would own 100.0.0.0/8
            assert not any(a == "deny" and n == ipaddress.ip_network(topo.fabric.link_subnet)
                           for _, a, n, _ in entries), (router, name)
    assert checked > 0
    hub = prefix_lists(conf["21.HUB"])
    any_list = hub.get("MINET-PFX-ANY")
    if any_list is not None:                       # HUB has a provider: a /24 of 100.64/10 passes
        assert accepts(any_list, "100.64.5.0/24")
    six = [e for c in conf.values() for n, e in prefix_lists(c).items() if n.startswith("MINET-PFX6")]
    assert six and all(not accepts(e, f"{topo.links[0].a.ip6}/128") for e in six)
