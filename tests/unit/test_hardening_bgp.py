"""Issue 21 item 7: configured ASes filter what their eBGP neighbours announce and cap how much.

The generated FRR configs (provision/frr.py through the plan) read as FRR reads prefix-lists: the
first matching entry decides, nothing matching is denied. Demo topology: AS 6 (6.OSLO) is a
student's AS (configure: false), customer of AS 4 and AS 5; AS 1 is a provider of AS 3 and AS 5."""
import re
from pathlib import Path

import pytest

from minet_sdn.provision import frr
from minet_sdn.topology import load_topology
from tests.support.frr_config import accepts, prefix_lists, router_configs

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "topologies" / "demo.yaml")


@pytest.fixture(scope="module")
def configs():
    topo = load_topology(DEMO)
    return topo, router_configs(topo)


def inbound(config, neighbor):
    """The prefix-list and the prefix cap of a neighbour's session."""
    pl = re.search(rf"^  neighbor {re.escape(neighbor)} prefix-list (\S+) in$", config, re.M)
    cap = re.search(rf"^  neighbor {re.escape(neighbor)} maximum-prefix (\d+) restart 1$", config, re.M)
    return (pl.group(1) if pl else None), (int(cap.group(1)) if cap else None)


def sessions_with(topo, configs, asn):
    """(configured router, its config, the far address) of every eBGP session with AS `asn`."""
    for link in topo.links:
        for near, far in ((link.a, link.b), (link.b, link.a)):
            if far.asn == asn and topo.ases[near.asn].configure:
                yield near.router, configs[near.router], far.ip, far.ip6


def test_every_configured_router_refuses_what_a_students_as_must_not_announce(configs):
    topo, cfg = configs
    student = 6
    link_ip = topo.link(1).a.ip                                   # a link address of ASes 1 and 2
    seen = 0
    for router, config, ip, ip6 in sessions_with(topo, cfg, student):
        lists = prefix_lists(config)
        name, cap = inbound(config, ip)
        assert name in lists and cap is not None, (router, ip)
        entries = lists[name]
        for bad in ("10.1.0.0/17", "10.1.128.0/17", "10.1.7.0/24",   # more-specifics of AS 1's prefix
                    "0.0.0.0/0", f"{link_ip}/32", "100.64.0.0/30",   # default, link addresses
                    "10.6.0.0/25", "192.0.2.0/24"):                  # too long; nobody's
            assert not accepts(entries, bad), (router, bad)
        for good in ("10.6.0.0/16", "10.6.3.0/24"):                  # its own prefix (and subnets of it)
            assert accepts(entries, good), (router, good)
        name6, cap6 = inbound(config, ip6)
        assert cap6 is not None
        for bad in ("::/0", "fd0a:0:1::/48", "fd0a:0:1:8000::/49", "fd00:6d6e:0:1::/64", "fd0a:0:6::/64"):
            assert not accepts(lists[name6], bad), (router, bad)
        assert accepts(lists[name6], "fd0a:0:6::/48")
        seen += 1
    assert seen == 2                                              # 4.LYON and 5.ROMA


def test_a_customer_may_announce_its_cone_and_a_provider_anything_but_bogons(configs):
    topo, cfg = configs
    config = cfg["1.ZURI"]                      # provider of 5.ROMA (link 6), whose customer is AS 6
    roma = topo.link(6).b.ip
    lists = prefix_lists(config)
    entries = lists[inbound(config, roma)[0]]
    assert accepts(entries, "10.5.0.0/16") and accepts(entries, "10.6.0.0/16")
    assert not accepts(entries, "10.4.0.0/16") and not accepts(entries, "10.1.0.0/16")
    bern = cfg["3.BERN"]                          # AS 1 is its provider (link 4)
    name, cap = inbound(bern, topo.link(4).a.ip)
    up = prefix_lists(bern)[name]
    assert accepts(up, "10.4.0.0/16") and accepts(up, "198.51.100.0/24")        # anything from above...
    for bad in ("0.0.0.0/0", "100.64.0.8/30", "10.3.0.0/17", "203.0.113.0/25"):  # ...but bogons, ours, too long
        assert not accepts(up, bad), bad
    assert cap == 2 * len(topo.ases) + 100


def test_every_ebgp_session_is_capped_in_both_families(configs):
    topo, cfg = configs
    for rid, config in cfg.items():
        if not topo.routers[rid].configure if rid in topo.routers else False:
            continue
        for m in re.finditer(r"^ neighbor (\S+) remote-as (\d+)$", config, re.M):
            ip, asn = m.group(1), int(m.group(2))
            if asn == int(rid.split(".")[0]) if rid[0].isdigit() else False:
                continue                                          # iBGP
            name, cap = inbound(config, ip)
            assert name and cap and cap <= 10 * len(topo.ases) + 100, (rid, ip)


def test_a_route_server_takes_from_each_member_only_its_cone():
    clients = [frr.RouteServerClient("1.A", 1, "198.18.0.1", None, "fd00:6978::1", accept=("10.1.0.0/16",),
                                     accept6=("fd0a:0:1::/48",)),
               frr.RouteServerClient("2.B", 2, "198.18.0.2", None, None, accept=("10.2.0.0/16", "10.3.0.0/16"))]
    conf = frr.route_server_config("ixp100", 100, "198.18.0.100", clients, bogons=("100.64.0.0/10", "198.18.0.0/24"))
    lists = prefix_lists(conf)
    assert inbound(conf, "198.18.0.1") == ("MINET-PFX-AS1", 110)
    assert inbound(conf, "fd00:6978::1") == ("MINET-PFX6-AS1", 110)
    assert inbound(conf, "198.18.0.2") == ("MINET-PFX-AS2", 120)
    assert accepts(lists["MINET-PFX-AS1"], "10.1.0.0/16") and not accepts(lists["MINET-PFX-AS1"], "10.2.0.0/16")
    assert not accepts(lists["MINET-PFX-AS2"], "198.18.0.1/32") and not accepts(lists["MINET-PFX-AS2"], "0.0.0.0/0")
    assert accepts(lists["MINET-PFX-AS2"], "10.3.4.0/24")


def test_customer_cones_follow_the_topology():
    cones = frr.customer_cones([(1, 2, "provider"), (2, 3, "provider"), (4, 3, "customer"), (1, 5, "peer")])
    # 4 is 3's customer: in the cones of 3 and of everything above 3
    assert cones[1] == {1, 2, 3, 4} and cones[2] == {2, 3, 4} and cones[3] == {3, 4} and cones[5] == {5}
    assert cones[4] == {4}
