"""FRR configuration text: OSPF, iBGP mesh, eBGP with Gao-Rexford policy per relationship, timers,
configure:false, and FRR's own parser (`vtysh --dryrun`) accepting every generated file."""
import shutil
import subprocess
from pathlib import Path

import pytest

from minet_sdn.provision import frr
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import load_topology
from tests.support.topologies import one_router_ases

from .test_provision_plan import generated

ROOT = Path(__file__).resolve().parents[2]


def minimal():
    return load_topology(str(ROOT / "topologies" / "minimal.yaml"))


def configs(topo, tmp_path):
    out = {}
    for server in topo.servers:
        for r in build_plan(topo, server, root=str(tmp_path)).routers:
            out[r.node] = r.config
    return out


def block(config, header):
    """The lines of the block that starts with `header` (up to the next top-level line)."""
    lines = config.splitlines()
    i = lines.index(header)
    out = []
    for line in lines[i + 1:]:
        if not line.startswith(" "):
            break
        out.append(line.strip())
    return out


def test_far_role_reads_rel_from_a_to_b():
    # rel is a's relationship to b
    assert frr.far_role("peer", True) == frr.far_role("peer", False) == "peer"
    assert frr.far_role("provider", True) == "customer"     # a is b's provider: b is a's customer
    assert frr.far_role("provider", False) == "provider"
    assert frr.far_role("customer", True) == "provider"     # a is b's customer: b is a's provider
    assert frr.far_role("customer", False) == "customer"


def test_minimal_configs_by_relationship(tmp_path):
    c = configs(minimal(), tmp_path)
    zuri, gene, pari = c["1.ZURI"], c["1.GENE"], c["2.PARI"]
    # link 1: ZURI -- PARI peer; link 2: GENE is PARI's provider; link 3: PARI is LOND's customer
    assert " neighbor 100.64.0.2 remote-as 2" in zuri.splitlines()
    assert "  neighbor 100.64.0.2 route-map MINET-IN-PEER in" in zuri.splitlines()
    assert "  neighbor 100.64.0.2 route-map MINET-OUT-UP out" in zuri.splitlines()
    assert "  neighbor 100.64.0.6 route-map MINET-IN-CUSTOMER in" in gene.splitlines()
    assert "  neighbor 100.64.0.6 route-map MINET-OUT-CUSTOMER out" in gene.splitlines()
    pari_lines = pari.splitlines()
    assert "  neighbor 100.64.0.5 route-map MINET-IN-PROVIDER in" in pari_lines      # GENE is PARI's provider
    assert "  neighbor 100.64.0.5 route-map MINET-OUT-UP out" in pari_lines
    assert "  neighbor 100.64.0.10 route-map MINET-IN-PROVIDER in" in pari_lines     # LOND is PARI's provider
    assert "  neighbor 100.64.0.1 route-map MINET-IN-PEER in" in pari_lines


def test_import_policy_sets_local_pref_and_tags(tmp_path):
    c = configs(generated(), tmp_path)
    seen = set()
    for node, text in c.items():
        asn = int(node.split(".")[0])
        for role, lp in (("customer", 300), ("peer", 200), ("provider", 100)):
            name = f"MINET-IN-{role.upper()}"
            if f"route-map {name} permit 20" not in text:
                continue
            seen.add(role)
            assert block(text, f"route-map {name} permit 10") == ["set large-comm-list MINET-OURS delete",
                                                                  "on-match next"]
            assert block(text, f"route-map {name} permit 20") == [f"set large-community {asn}:1:{lp} additive",
                                                                  f"set local-preference {lp}"]
    assert seen == {"customer", "peer", "provider"}


def test_export_policy_up_is_own_and_customer_routes_only(tmp_path):
    c = configs(generated(), tmp_path)
    ups = [(n, t) for n, t in c.items() if "route-map MINET-OUT-UP permit 10" in t]
    downs = [(n, t) for n, t in c.items() if "route-map MINET-OUT-CUSTOMER permit 10" in t]
    assert ups and downs
    for node, text in ups:
        asn = int(node.split(".")[0])
        assert block(text, "route-map MINET-OUT-UP permit 10") == ["match large-community MINET-FROM-CUSTOMER",
                                                                   "set large-comm-list MINET-OURS delete"]
        assert block(text, "route-map MINET-OUT-UP permit 20") == ["match as-path MINET-LOCAL"]
        assert "route-map MINET-OUT-UP permit 30" not in text           # everything else: implicit deny
        assert f"bgp large-community-list standard MINET-FROM-CUSTOMER seq 5 permit {asn}:1:300" in text
        assert "bgp as-path access-list MINET-LOCAL seq 5 permit ^$" in text
    for node, text in downs:
        assert block(text, "route-map MINET-OUT-CUSTOMER permit 10") == ["set large-comm-list MINET-OURS delete"]


def test_ospf_ibgp_timers_and_announcement(tmp_path):
    topo = generated()
    c = configs(topo, tmp_path)
    big = next(as_ for as_ in topo.ases.values() if len(as_.routers) >= 3)
    rid = f"{big.asn}.{big.routers[0]}"
    text = c[rid]
    lines = text.splitlines()
    plan = build_plan(topo, big.server, root=str(tmp_path))
    addr = plan.addressing[big.asn]
    assert not any(l.startswith("ip route") for l in lines)        # the blackhole is a kernel route
    assert f"  network {addr.prefix}" in lines
    # eBGP keepalive 10 / hold 30 like iBGP: a keepalive every 3 s on every session woke bgpd and
    # every Open vSwitch a remote link crosses (docs/scale.md, Steady CPU)
    assert " timers bgp 10 30" in lines
    passive = ["ip ospf area 0", "ip ospf passive", "ipv6 ospf6 area 0", "ipv6 ospf6 passive"]
    assert block(text, "interface lo") == passive
    # the host link is point-to-point: its timers fire with the ring links' (one wake-up, not two)
    assert block(text, "interface host") == ["ip ospf area 0", "ip ospf network point-to-point", "ip ospf passive",
                                             "ipv6 ospf6 area 0", "ipv6 ospf6 network point-to-point",
                                             "ipv6 ospf6 passive"]
    ring_ifaces = [l.split()[1] for l in lines if l.startswith("interface to_")]
    assert len(ring_ifaces) == 2                                   # a ring of >= 3 routers: two neighbours
    for ifname in ring_ifaces:
        assert block(text, f"interface {ifname}") == ["ip ospf area 0", "ip ospf network point-to-point",
                                                      "ip ospf hello-interval 4", "ip ospf dead-interval 40",
                                                      "ipv6 ospf6 area 0", "ipv6 ospf6 network point-to-point",
                                                      "ipv6 ospf6 hello-interval 4", "ipv6 ospf6 dead-interval 40"]
    assert f" ospf router-id {addr.routers[big.routers[0]].loopback}" in lines
    others = [r for r in big.routers[1:]]
    if len(big.routers) >= 4:                 # route reflection: the first router reflects to the rest
        assert [l for l in lines if l.endswith("route-reflector-client")]
    for other in others:
        lo = addr.routers[other].loopback
        for want in (f" neighbor {lo} remote-as {big.asn}", f" neighbor {lo} update-source lo", f" neighbor {lo} timers 10 30",
                     f" neighbor {lo} timers connect 5", f" neighbor {lo} advertisement-interval 0",
                     f"  neighbor {lo} next-hop-self"):
            assert want in lines
    for link in topo.links:
        if rid in (link.a.router, link.b.router):
            far = link.b if link.a.router == rid else link.a
            assert f" neighbor {far.ip} remote-as {far.asn}" in lines
            assert f" neighbor {far.ip} timers connect 5" in lines
            assert f" neighbor {far.ip} advertisement-interval 0" in lines
    assert "no bgp ebgp-requires-policy" not in text               # every eBGP session has policies
    assert "\nexit\n" not in text                                  # see frr.py: daemons share one file


def test_configure_false_gives_an_empty_config(tmp_path):
    c = configs(minimal(), tmp_path)
    assert c["3.LOND"] == "hostname 3.LOND\n"
    assert "router bgp" in c["2.PARI"]


def _vtysh_dryrun_ok():
    if not shutil.which("vtysh"):
        return False
    try:
        res = subprocess.run(["vtysh", "--dryrun", "-f", "/dev/null"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


@pytest.mark.skipif(not _vtysh_dryrun_ok(), reason="vtysh --dryrun is not available here")
def test_frr_parser_accepts_every_config(tmp_path):
    topos = [minimal(), generated(), generated(isolation="tos", encapsulation="vxlan", seed=3)]
    checked = 0
    for topo in topos:
        for node, text in configs(topo, tmp_path / topo.name).items():
            path = tmp_path / f"{topo.name}-{node}.conf"
            path.write_text(text)
            res = subprocess.run(["vtysh", "--dryrun", "-f", str(path)], capture_output=True, text=True, timeout=30)
            assert res.returncode == 0, f"{node}: {res.stdout}{res.stderr}"
            checked += 1
    assert checked > 20


@pytest.mark.skipif(not _vtysh_dryrun_ok(), reason="vtysh --dryrun is not available here")
def test_frr_parser_catches_a_bad_line(tmp_path):
    """The check above can fail: a misspelt command is refused."""
    path = tmp_path / "bad.conf"
    path.write_text("router bgp 1\n neighbor 10.0.0.1 remote-ass 2\n")
    res = subprocess.run(["vtysh", "--dryrun", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0


# ---- IPv6 (dual stack) ------------------------------------------------------------------------

def af_block(config, family):
    """Lines of `address-family <family> unicast` inside router bgp (up to exit-address-family)."""
    lines = [l.strip() for l in config.splitlines()]
    i = lines.index(f"address-family {family} unicast")
    return lines[i + 1:lines.index("exit-address-family", i)]


def neighbor_settings(af_lines, neighbor):
    return sorted(l.split(None, 2)[2] for l in af_lines if l.startswith(f"neighbor {neighbor} "))


def test_ipv6_sessions_mirror_ipv4_with_the_same_policy(tmp_path):
    topo = generated()
    checked = 0
    for server in topo.servers:
        plan = build_plan(topo, server, root=str(tmp_path))
        for r in plan.routers:
            if not r.configure:
                continue
            asn, name = r.asn, r.node.split(".", 1)[1]
            text, lines = r.config, r.config.splitlines()
            v4, v6 = af_block(text, "ipv4"), af_block(text, "ipv6")
            a6 = plan.addressing6[asn]
            assert not any(l.startswith("ipv6 route") for l in lines)   # the blackhole is a kernel route
            assert f"network {a6.prefix}" in v6 and f"network {plan.addressing[asn].prefix}" in v4
            if len(a6.routers) > 1:                   # a one-router AS runs no OSPF (test below)
                assert f" ospf6 router-id {plan.addressing[asn].routers[name].loopback}" in lines
            for other, o6 in a6.routers.items():
                if other == name:
                    continue
                lo4, lo6 = plan.addressing[asn].routers[other].loopback, o6.loopback
                if f" neighbor {lo4} remote-as {asn}" not in lines:     # route reflection: no session
                    assert lo6 not in text
                    continue
                assert f" neighbor {lo6} remote-as {asn}" in lines
                assert f" neighbor {lo6} timers 10 30" in lines
                assert f" neighbor {lo6} update-source lo" in lines
                assert f"no neighbor {lo6} activate" in v4              # no IPv4 routes over an IPv6 session
                assert neighbor_settings(v6, lo6) == sorted(["activate", *neighbor_settings(v4, lo4)])
            for link in topo.links:
                if r.node not in (link.a.router, link.b.router):
                    continue
                far = link.b if link.a.router == r.node else link.a
                assert f" neighbor {far.ip6} remote-as {far.asn}" in lines
                assert f" neighbor {far.ip6} timers connect 5" in lines
                assert f"no neighbor {far.ip6} activate" in v4
                # the same route-maps (communities, local-pref, export filter) in both families
                # (the import prefix-lists are per family: MINET-PFX6-* holds the IPv6 prefixes)
                assert [x.replace("MINET-PFX6-", "MINET-PFX-") for x in neighbor_settings(v6, far.ip6)] \
                    == sorted(["activate", *neighbor_settings(v4, far.ip)])
                assert any("route-map MINET-IN-" in s for s in neighbor_settings(v6, far.ip6))
                checked += 1
    assert checked > 10


def test_ipv6_only_when_a_prefix6_is_given():
    p = frr.RouterPolicy(hostname="1.A", asn=1, router_id="10.0.1.1", prefix="10.0.1.0/24",
                         ospf_ifaces=("to_B",), passive_ifaces=("lo",),
                         ibgp=(frr.IbgpPeer("1.B", "10.0.1.2", loopback6="fd0a:0:1::2"),),
                         ebgp=(frr.EbgpPeer(1, "2.C", 2, "100.64.0.2", "peer", "fd00:6d6e:0:1::2"),))
    text = frr.router_config(p)
    assert "ospf6" not in text and "ipv6" not in text and "fd0a" not in text and "fd00" not in text
    dual = frr.router_config(frr.RouterPolicy(**{**p.__dict__, "prefix6": "fd0a:0:1::/48"}))
    assert "router ospf6" in dual and " neighbor fd00:6d6e:0:1::2 remote-as 2" in dual.splitlines()
    assert af_block(dual, "ipv4") == af_block(text, "ipv4") + ["no neighbor fd0a:0:1::2 activate",
                                                                "no neighbor fd00:6d6e:0:1::2 activate"]


def test_default_ipv6_prefixes_read_like_the_asn():
    from minet_sdn.topology.addressing import default_prefix6
    assert default_prefix6(1) == "fd0a:0:1::/48"
    assert default_prefix6(100) == "fd0a:0:100::/48"
    assert default_prefix6(65001) == "fd0a:6:5001::/48"
    assert default_prefix6(70000) is None
    assert len({default_prefix6(a) for a in range(1, 65536)}) == 65535     # one per ASN


def test_route_server_filters_each_members_export_by_announce_to(tmp_path):
    topo = one_router_ases(4, more="""ixps:
  100: {server: VM1, members: [{router: 1.A, announce_to: [2]}, 2.B, {router: 3.C, announce_to: [1, 2]},
                               {router: 4.D, announce_to: []}]}
""")
    plan = build_plan(topo, "VM1", root=str(tmp_path))
    (rs,) = [r for r in plan.routers if r.node == "ixp100"]
    conf = rs.config
    # 1's routes go to 2 only; 3's to 1 and 2; 4's to nobody; 2 has no list (everyone)
    assert frr.route_server_exports([frr.RouteServerClient(m.router, m.asn, m.ip, m.announce_to)
                                     for m in topo.ixps[100].members]) == {1: (4,), 2: (4,), 3: (1, 4), 4: (1, 3)}
    for x in (1, 3, 4):
        assert f"bgp as-path access-list MINET-RS-FROM-{x} permit ^{x}_\n" in conf
    assert "MINET-RS-FROM-2" not in conf
    assert ("route-map MINET-RS-TO-3 deny 10\n match as-path MINET-RS-FROM-1\n"
            "route-map MINET-RS-TO-3 deny 20\n match as-path MINET-RS-FROM-4\n"
            "route-map MINET-RS-TO-3 permit 30\n") in conf
    assert "route-map MINET-RS-TO-1 deny 10\n match as-path MINET-RS-FROM-4\nroute-map MINET-RS-TO-1 permit 20\n" in conf
    for y, ip in ((1, "198.18.0.2"), (2, "198.18.0.3"), (3, "198.18.0.4"), (4, "198.18.0.5")):
        assert f"  neighbor {ip} route-server-client\n  neighbor {ip} activate\n" \
               f"  neighbor {ip} route-map MINET-RS-TO-{y} out\n" in conf
    assert "exit\n" not in conf.replace("exit-address-family", "")
    # without any announce_to the route server config has no policy at all (the default)
    plain = one_router_ases(2, more="ixps:\n  100: {server: VM1, members: [1.A, 2.B]}\n")
    (rs2,) = [r for r in build_plan(plain, "VM1", root=str(tmp_path)).routers if r.node == "ixp100"]
    assert "route-map" not in rs2.config and "as-path" not in rs2.config
    if _vtysh_dryrun_ok():                  # and FRR's own parser takes the filtered one
        path = tmp_path / "rs.conf"
        path.write_text(conf)
        res = subprocess.run(["vtysh", "--dryrun", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stdout + res.stderr


def test_a_router_without_a_link_inside_its_as_runs_no_ospf(tmp_path):
    """minimal.yaml: AS 2 is one router (PARI), AS 1 two (ZURI, GENE, linked). PARI has no OSPF
    neighbour to tell anything, so its frr.conf has no OSPF and it runs no ospfd nor ospf6d (each
    would wake up every second for nothing); the two-router AS keeps OSPF on its link."""
    topo = minimal()
    plans = {s: build_plan(topo, s, root=str(tmp_path)) for s in topo.servers}
    routers = {r.node: r for p in plans.values() for r in p.routers}
    pari = routers["2.PARI"]
    assert pari.configure
    assert "ospf" not in pari.config                       # no router ospf/ospf6, no interface lines
    assert pari.daemons == ("zebra", "bgpd")
    assert " neighbor 100.64.0.1 remote-as 1" in pari.config.splitlines()   # BGP as before
    for node in ("1.ZURI", "1.GENE"):
        r = routers[node]
        assert r.daemons == ("zebra", "bgpd", "ospfd", "ospf6d")
        assert "router ospf" in r.config.splitlines() and "router ospf6" in r.config.splitlines()
        assert block(r.config, "interface lo") == ["ip ospf area 0", "ip ospf passive",
                                                   "ipv6 ospf6 area 0", "ipv6 ospf6 passive"]
    policy = frr.RouterPolicy(hostname="9.A", asn=9, router_id="10.0.9.1", prefix="10.0.9.0/24",
                              ospf_ifaces=(), passive_ifaces=("lo", "host"), ibgp=(), ebgp=(),
                              prefix6="fd00:9::/48")
    text = frr.router_config(policy)
    assert "ospf" not in text and frr.daemons_for(text) == ("zebra", "bgpd")
