"""The provisioning plan (pure): names, addresses, MTUs, ofports, the OvS transaction, and the
intra-AS addressing plan, for topologies/minimal.yaml and a bigger generated topology."""
import ipaddress
import random
from collections import Counter
from pathlib import Path

import pytest

from minet_sdn.provision.plan import ROUTER_HOST_IFNAME, HOST_IFNAME, build_plan, frr_pathspace, intra_ifname
from minet_sdn.topology import load_topology, parse_topology
from minet_sdn.topology.addressing import (AddressingError, addressing_problems, as_addressing, default_prefix,
                                           max_routers, ring, topology_addressing)
from minet_sdn.topology.model import AS, DEFAULT_LINK_SUBNET, router_ifname

import yaml

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "topologies" / "minimal.yaml"


def minimal():
    return load_topology(str(MINIMAL))


def generated(n_servers=3, n_ases=12, seed=7, isolation="key", encapsulation="gre"):
    """A bigger topology: ASes of 1-5 routers spread over servers, a provider tree plus peerings."""
    rnd = random.Random(seed)
    servers = {f"S{i}": {"underlay_ip": f"192.0.2.{i}"} for i in range(1, n_servers + 1)}
    ases = {}
    for asn in range(1, n_ases + 1):
        ases[asn * 10] = {"server": f"S{(asn % n_servers) + 1}",
                          "routers": [f"R{asn}x{k}" for k in range(rnd.randint(1, 5))]}
    asns = list(ases)
    links = []
    for i, asn in enumerate(asns[1:], start=1):      # provider tree
        prov = asns[rnd.randrange(i)]
        links.append({"a": f"{prov}.{rnd.choice(ases[prov]['routers'])}",
                      "b": f"{asn}.{rnd.choice(ases[asn]['routers'])}", "rel": "provider"})
    for _ in range(n_ases):                          # peerings, some parallel, some customer-first
        x, y = rnd.sample(asns, 2)
        links.append({"a": f"{x}.{rnd.choice(ases[x]['routers'])}", "b": f"{y}.{rnd.choice(ases[y]['routers'])}",
                      "rel": rnd.choice(["peer", "customer"])})
    doc = {"name": "bigtopo", "fabric": {"isolation": isolation, "encapsulation": encapsulation,
                                         "underlay_mtu": 9000},
           "servers": servers, "ases": ases, "links": links}
    return parse_topology(yaml.safe_dump(doc), "big.yaml")


# ---- addressing -------------------------------------------------------------------------------

def test_default_prefix_is_in_10_8_and_never_in_the_link_subnet():
    link = ipaddress.ip_network(DEFAULT_LINK_SUBNET)
    for asn in (1, 2, 255, 256, 65535):
        net = ipaddress.ip_network(default_prefix(asn))
        assert net.subnet_of(ipaddress.ip_network("10.0.0.0/8")) and not net.overlaps(link)
    assert default_prefix(1) == "10.0.1.0/24"
    assert default_prefix(300) == "10.1.44.0/24"
    assert default_prefix(65536) is None


def test_addressing_layout_follows_the_docstring_table():
    a = as_addressing(AS(asn=1, server="S", routers=("ZURI", "GENE", "BASE")))
    assert a.prefix == "10.0.1.0/24"
    assert [r.loopback for r in a.routers.values()] == ["10.0.1.1", "10.0.1.2", "10.0.1.3"]
    assert [(l.a, l.b, l.a_ip, l.b_ip) for l in a.links] == [
        ("ZURI", "GENE", "10.0.1.65", "10.0.1.66"), ("GENE", "BASE", "10.0.1.69", "10.0.1.70"),
        ("BASE", "ZURI", "10.0.1.73", "10.0.1.74")]
    z = a.routers["ZURI"]
    assert (z.host_router_ip, z.host_ip, z.host_prefixlen) == ("10.0.1.129", "10.0.1.130", 30)
    assert a.routers["BASE"].host_router_ip == "10.0.1.137"


def test_ring_shapes():
    assert ring(("A",)) == []
    assert ring(("A", "B")) == [("A", "B")]
    assert ring(("A", "B", "C", "D")) == [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")]


def test_explicit_prefix_scales_the_layout():
    a = as_addressing(AS(asn=7, server="S", routers=tuple(f"R{i}" for i in range(20)), prefix="172.16.0.0/23"))
    assert a.routers["R0"].loopback == "172.16.0.1"
    assert a.links[0].a_ip == "172.16.0.129" and a.routers["R0"].host_router_ip == "172.16.1.1"
    assert max_routers("172.16.0.0/23") == 32 and max_routers("10.0.0.0/24") == 16


def test_addressing_problems_are_lines_naming_file_and_key():
    with pytest.raises(AddressingError) as info:
        as_addressing(AS(asn=70000, server="S", routers=("A",)))
    assert "ases.70000.prefix" in info.value.problems[0]
    topo = parse_topology(yaml.safe_dump({
        "name": "t", "fabric": {"link_subnet": "10.0.0.0/16"},
        "servers": {"S": {"underlay_ip": "192.0.2.1"}},
        "ases": {1: {"server": "S", "routers": [f"R{i}" for i in range(17)]},
                 2: {"server": "S", "routers": ["A"]},
                 70000: {"server": "S", "routers": ["C"]}}}), "t.yaml")
    problems = addressing_problems(topo)
    assert problems == [
        "t.yaml: ases.1.routers: 17 routers do not fit 10.0.1.0/24 (room for 16; set a shorter prefix)",
        "t.yaml: ases.70000.prefix: is required for AS numbers above 65535",
        "t.yaml: ases.2: 10.0.2.0/24 (default prefix 10.0.2.0/24) overlaps fabric.link_subnet 10.0.0.0/16",
        "t.yaml: ases.70000.prefix6: is required for AS numbers above 65535"]
    clash = parse_topology(yaml.safe_dump({
        "name": "t", "servers": {"S": {"underlay_ip": "192.0.2.1"}},
        "ases": {2: {"server": "S", "routers": ["A"]},
                 3: {"server": "S", "routers": ["B"], "prefix": "10.0.2.0/24"}}}), "t.yaml")
    assert addressing_problems(clash) == [
        "t.yaml: ases.3.prefix: 10.0.2.0/24 overlaps the prefix of AS 2 (10.0.2.0/24)"]
    with pytest.raises(AddressingError):
        topology_addressing(topo)


# ---- the plan for minimal.yaml ----------------------------------------------------------------

def test_minimal_plan_vm1_nodes_and_names(tmp_path):
    topo = minimal()
    plan = build_plan(topo, "VM1", root=str(tmp_path))
    assert plan.state_dir == str(tmp_path / "minimal" / "VM1")
    assert [(n.id, n.kind, n.ns) for n in plan.nodes] == [
        ("1.ZURI", "router", f"{topo.tag}-1.ZURI"), ("1.ZURI.host", "host", f"{topo.tag}-1.ZURI.host"),
        ("1.GENE", "router", f"{topo.tag}-1.GENE"), ("1.GENE.host", "host", f"{topo.tag}-1.GENE.host")]
    nodes = plan.node_by_id
    assert nodes["1.ZURI"].lo_addresses == ("10.0.1.1/32", "fd0a:0:1::1/128")
    assert [(r.dst, r.via) for r in nodes["1.ZURI.host"].routes] == [("default", "10.0.1.129"),
                                                                      ("default", "fd0a:0:1:8000::1")]
    assert [r.node for r in plan.routers] == ["1.ZURI", "1.GENE"]
    assert plan.routers[0].confdir == str(tmp_path / "minimal" / "VM1" / "frr" / "1.ZURI")
    assert plan.routers[0].daemons == ("zebra", "bgpd", "ospfd", "ospf6d")   # no static route: no staticd


def test_minimal_plan_vm1_veths(tmp_path):
    topo = minimal()
    plan = build_plan(topo, "VM1", root=str(tmp_path))
    by_kind = Counter(v.kind for v in plan.veths)
    assert by_kind == {"host": 2, "ring": 1, "remote": 2}
    ring_veth = next(v for v in plan.veths if v.kind == "ring")
    assert (ring_veth.a.node, ring_veth.a.ifname, ring_veth.a.addresses) == (
        "1.ZURI", "to_GENE", ("10.0.1.65/30", "fd0a:0:1:4000::1/64"))
    assert (ring_veth.b.node, ring_veth.b.ifname, ring_veth.b.addresses) == (
        "1.GENE", "to_ZURI", ("10.0.1.66/30", "fd0a:0:1:4000::2/64"))
    host = next(v for v in plan.veths if v.kind == "host" and v.a.node == "1.ZURI")
    assert host.a.addresses == ("10.0.1.129/30", "fd0a:0:1:8000::1/64")
    assert host.b.addresses == ("10.0.1.130/30", "fd0a:0:1:8000::2/64")
    host = next(v for v in plan.veths if v.kind == "host")
    assert (host.a.ifname, host.b.ifname, host.a.mtu) == (ROUTER_HOST_IFNAME, HOST_IFNAME, 1500)
    for veth in plan.veths:
        if veth.kind != "remote":
            continue
        link = topo.link(veth.link_id)
        end = link.side("VM1")
        assert veth.a.node == end.router and veth.a.ifname == router_ifname(link.id) == end.ifname
        assert veth.a.addresses == (f"{end.ip}/{link.prefixlen}", f"{end.ip6}/{link.prefixlen6}")
        assert veth.a.mac == end.mac and veth.a.mtu == topo.fabric.link_mtu == 1458
        assert veth.b.node is None and veth.b.ifname == topo.link_port_name(link.id)
        assert veth.b.mtu == 1458 and veth.b.alias == "minet:minimal:VM1"
        assert veth.a.offloads_off and veth.b.offloads_off


def test_minimal_plan_vm2_has_a_local_inter_as_link(tmp_path):
    topo = minimal()
    plan = build_plan(topo, "VM2", root=str(tmp_path))
    inter = [v for v in plan.veths if v.kind == "inter"]
    assert len(inter) == 1
    link = topo.link(inter[0].link_id)
    assert (inter[0].a.node, inter[0].b.node) == ("2.PARI", "3.LOND")
    assert inter[0].a.mac == link.a.mac and inter[0].b.mac == link.b.mac
    assert inter[0].a.addresses[0] == f"{link.a.ip}/30" and inter[0].b.addresses[0] == f"{link.b.ip}/30"
    assert inter[0].a.mtu == inter[0].b.mtu == topo.fabric.link_mtu


def test_minimal_plan_bridge(tmp_path):
    topo = minimal()
    plan = build_plan(topo, "VM1", root=str(tmp_path))
    (bridge,) = plan.bridges
    model = topo.bridge("VM1", "VM2")
    assert (bridge.name, bridge.dpid, bridge.peer) == (model.name, model.dpid, "VM2")
    tunnel, *ports = bridge.ports
    assert (tunnel.name, tunnel.ofport, tunnel.type) == (model.tunnel_port, 1, "gre")
    assert dict(tunnel.options) == {"remote_ip": "192.0.2.2", "key": "flow"}
    assert dict(tunnel.bfd) == {"enable": "true", "min_tx": "100", "min_rx": "100"}
    assert [(p.name, p.ofport) for p in ports] == [(topo.link_port_name(i), topo.link(i).ofport)
                                                   for i in model.link_ids]
    assert plan.underlay.ip == "192.0.2.1" and plan.underlay.bridge == f"{topo.tag}-phy"
    assert build_plan(topo, "VM2", root=str(tmp_path)).underlay.interface == "ens4"


def split_transaction(args):
    cmds, cur = [], []
    for a in args:
        if a == "--":
            cmds.append(cur)
            cur = []
        else:
            cur.append(a)
    cmds.append(cur)
    return cmds


def test_vsctl_transaction_is_one_chained_command(tmp_path):
    topo = minimal()
    (bridge,) = build_plan(topo, "VM1", root=str(tmp_path)).bridges
    args = bridge.vsctl_args()
    cmds = split_transaction(args)
    assert cmds[0] == ["--may-exist", "add-br", bridge.name]
    set_br = cmds[1]
    for want in ("datapath_type=netdev", "fail_mode=secure", "stp_enable=false", "protocols=OpenFlow13",
                 f"other-config:datapath-id={bridge.dpid:016x}", "other-config:disable-in-band=true",
                 "external_ids:minet-instance=minimal", "external_ids:minet-server=VM1"):
        assert want in set_br
    assert ["set-controller", bridge.name, "tcp:127.0.0.1:6653"] in cmds
    assert any(c[:3] == ["set", "controller", bridge.name] and "connection-mode=out-of-band" in c for c in cmds)
    tunnel_set = next(c for c in cmds if c[:3] == ["set", "interface", topo.bridge("VM1", "VM2").tunnel_port])
    for want in ("type=gre", "options:remote_ip=192.0.2.2", "options:key=flow", "bfd:enable=true",
                 "bfd:min_tx=100", "bfd:min_rx=100", "ofport_request=1"):
        assert want in tunnel_set
    for lid in topo.bridge("VM1", "VM2").link_ids:
        name = topo.link_port_name(lid)
        assert ["--may-exist", "add-port", bridge.name, name] in cmds
        assert f"ofport_request={100 + lid}" in next(c for c in cmds if c[:3] == ["set", "interface", name])
    assert args.count("--may-exist") == 1 + len(bridge.ports)


def test_vsctl_transaction_tos_mode_has_no_key_and_vxlan_type(tmp_path):
    topo = generated(isolation="tos", encapsulation="vxlan")
    plan = build_plan(topo, "S1", datapath="system", root=str(tmp_path))
    assert plan.bridges
    for bridge in plan.bridges:
        args = bridge.vsctl_args()
        assert not any("key=flow" in a for a in args)
        assert "type=vxlan" in args and "datapath_type=system" in args
    assert not any(i.offloads_off for v in plan.veths for i in (v.a, v.b))     # system datapath: no need
    key_args = build_plan(generated(), "S1", root=str(tmp_path)).bridges[0].vsctl_args()
    assert "options:key=flow" in key_args and "type=gre" in key_args


def test_vsctl_transaction_removes_stale_ports_it_is_told_about(tmp_path):
    (bridge,) = build_plan(minimal(), "VM1", root=str(tmp_path)).bridges
    cmds = split_transaction(bridge.vsctl_args(remove_ports=("old-l9",)))
    assert ["--if-exists", "del-port", bridge.name, "old-l9"] in cmds


# ---- a bigger generated topology: global invariants ---------------------------------------------

def test_generated_plan_invariants(tmp_path):
    topo = generated()
    plans = {s: build_plan(topo, s, root=str(tmp_path)) for s in topo.servers}
    all_ns = [n.ns for p in plans.values() for n in p.nodes]
    assert len(all_ns) == len(set(all_ns)) == 2 * len(topo.routers)
    addrs = Counter()
    for server, plan in plans.items():
        nodes = plan.node_by_id
        # every interface name is unique within its node, and fits the kernel's 15 characters
        per_node = Counter((i.node, i.ifname) for v in plan.veths for i in (v.a, v.b))
        assert max(per_node.values()) == 1
        assert all(len(ifname) <= 15 for _, ifname in per_node)
        for veth in plan.veths:
            for end in (veth.a, veth.b):
                assert end.node is None or end.node in nodes
                for cidr in end.addresses:
                    addrs[str(ipaddress.ip_interface(cidr).ip)] += 1
                if veth.kind in ("ring", "host") and end.node:
                    asn = nodes[end.node].asn
                    prefixes = (ipaddress.ip_network(plan.addressing[asn].prefix),
                                ipaddress.ip_network(plan.addressing6[asn].prefix))
                    assert all(any(ipaddress.ip_interface(c).ip in p for p in prefixes) for c in end.addresses)
                    assert sorted(ipaddress.ip_interface(c).version for c in end.addresses) == [4, 6]
                    assert end.mtu == 1500
                if veth.kind in ("inter", "remote"):
                    assert end.mtu == topo.fabric.link_mtu == 1500      # 9000-byte underlay
        for node in plan.nodes:
            for cidr in node.lo_addresses:
                addrs[str(ipaddress.ip_interface(cidr).ip)] += 1
        # each server's bridges are exactly the model's, with every remote link of the pair
        assert {b.dpid for b in plan.bridges} == {b.dpid for b in topo.bridges.values() if b.server == server}
        remote_ids = {v.link_id for v in plan.veths if v.kind == "remote"}
        assert remote_ids == {l.id for l in topo.remote_links if server in l.servers()}
        for bridge in plan.bridges:
            model = topo.bridges[bridge.dpid]
            assert [p.name for p in bridge.ports[1:]] == [topo.link_port_name(i) for i in model.link_ids]
            assert [p.ofport for p in bridge.ports[1:]] == [topo.link(i).ofport for i in model.link_ids]
            assert dict(bridge.ports[0].options)["remote_ip"] == topo.servers[model.peer].underlay_ip
        # every link of this server appears once; local links are one veth between two routers
        local_ids = [v.link_id for v in plan.veths if v.kind == "inter"]
        assert sorted(local_ids) == sorted(l.id for l in topo.links if l.servers() == (server, server))
    assert max(addrs.values()) == 1, [a for a, n in addrs.items() if n > 1]


def test_long_router_names_get_index_ifnames():
    assert intra_ifname("SHORT", 2) == "to_SHORT"
    assert intra_ifname("ABCDEFGHIJKLMNOP", 3) == "to_3"
    assert frr_pathspace("mnt123-1.ZURI.host") == "mnt123-1_ZURI_host"


def test_unknown_server_and_backend_are_refused(tmp_path):
    with pytest.raises(ValueError):
        build_plan(minimal(), "VM9", root=str(tmp_path))
    with pytest.raises(ValueError):
        build_plan(minimal(), "VM1", backend="lxc", root=str(tmp_path))


def test_state_root_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MINET_STATE_DIR", str(tmp_path / "st"))
    assert build_plan(minimal(), "VM1").state_dir == str(tmp_path / "st" / "minimal" / "VM1")
    monkeypatch.delenv("MINET_STATE_DIR")
    assert build_plan(minimal(), "VM1").state_dir == "/var/lib/minet-sdn/minimal/VM1"


def test_plan_is_deterministic(tmp_path):
    a = build_plan(generated(), "S2", root=str(tmp_path))
    b = build_plan(generated(), "S2", root=str(tmp_path))
    assert a == b


def test_plan_is_the_same_under_any_hash_seed(tmp_path):
    """Set and dict order change with PYTHONHASHSEED: build the plan in separate processes with
    different seeds, so an order that leaks from hashing into the plan shows as a difference."""
    import os
    import subprocess
    import sys
    script = ("import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
              "from test_provision_plan import generated; from minet_sdn.provision.plan import build_plan;"
              "print(repr(build_plan(generated(), 'S2', root=sys.argv[3])))")
    outputs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent), str(ROOT), str(tmp_path)],
                             env=env, capture_output=True, text=True, check=True).stdout
        assert len(out) > 1000                       # a real plan was printed, not an empty repr
        outputs.add(out)
    assert len(outputs) == 1


def test_ipv6_false_gives_an_ipv4_only_plan(tmp_path):
    """fabric.ipv6: false: no IPv6 inside ASes, no OSPFv3, no IPv6 sessions; IPv4 unchanged."""
    doc = yaml.safe_load(MINIMAL.read_text())
    doc.setdefault("fabric", {})["ipv6"] = False
    v4 = parse_topology(yaml.safe_dump(doc), "v4.yaml")
    dual = minimal()
    assert v4.fabric.ipv6 is False and dual.fabric.ipv6 is True
    for server in v4.servers:
        p4, p46 = build_plan(v4, server, root=str(tmp_path)), build_plan(dual, server, root=str(tmp_path))
        assert p4.addressing6 == {} and p46.addressing6
        for n4, n46 in zip(p4.nodes, p46.nodes):
            assert n4.lo_addresses == tuple(a for a in n46.lo_addresses if ":" not in a)
            assert [r.via for r in n4.routes] == [r.via for r in n46.routes if ":" not in r.via]
        for v, w in zip(p4.veths, p46.veths):
            for i4, i46 in ((v.a, w.a), (v.b, w.b)):
                if v.kind in ("host", "ring"):
                    assert i4.addresses == tuple(a for a in i46.addresses if ":" not in a)
                else:                                 # inter-AS links keep their /64 (link_subnet6)
                    assert i4.addresses == i46.addresses
        for r4, r46 in zip(p4.routers, p46.routers):
            if not r4.configure:
                continue
            assert "ospf6" not in r4.config and "ipv6" not in r4.config and "fd" not in r4.config
            if "router ospf" in r4.config:            # a one-router AS runs no OSPF (test_provision_frr)
                assert r4.daemons == ("zebra", "bgpd", "ospfd")
                assert "ospf6d" in r46.daemons
            else:
                assert r4.daemons == r46.daemons == ("zebra", "bgpd")
            # dual stack only adds lines: the IPv4-only config is a subsequence of it
            rest = iter(r46.config.splitlines())
            assert all(any(l == m for m in rest) for l in r4.config.splitlines())


def test_share_memory_starts_frr_with_aslr_off_only_when_page_merging_is_on(tmp_path):
    """fabric.share_memory (default true) marks every router; the argv gets `setarch -R` only when
    provisioning has KSM on (apply passes merging=True), and never with share_memory: false."""
    shared = build_plan(minimal(), "VM1", root=str(tmp_path)).routers[0]
    doc = yaml.safe_load(MINIMAL.read_text())
    doc.setdefault("fabric", {})["share_memory"] = False
    private = build_plan(parse_topology(yaml.safe_dump(doc), "p.yaml"), "VM1", root=str(tmp_path)).routers[0]
    assert shared.share_memory is True and private.share_memory is False
    plain = shared.daemon_args("bgpd", "ns")
    assert plain[0] == "env" and "setarch" not in plain
    merged = shared.daemon_args("bgpd", "ns", merging=True)
    assert merged[:2] == ["setarch", "-R"] and merged[2:] == plain
    assert private.daemon_args("bgpd", "ns", merging=True) == private.daemon_args("bgpd", "ns")
