"""Layer 2 (topology/layer2.py, provision/layer2.py, provision/l2ctl.py): model, validation, plan, and
the students' ovs-vsctl, without root."""
import json

import pytest
import yaml

from minet_sdn.provision import l2ctl
from minet_sdn.provision import layer2 as pl2
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import layer2 as l2m
from minet_sdn.topology.loader import TopologyError, parse_topology


def topo_text(configure=True, layer2=None, asn=1):
    l2 = layer2 if layer2 is not None else {
        "datacenters": ["DCN", "DCS"],
        "switches": {"S1": {"dc": "DCN", "router": "ZURI", "stp_priority": 1, "stp_system_id": "11:11:11:11:11:11"},
                     "S2": {"dc": "DCN", "router": "BASE"}, "S3": {"dc": "DCN"},
                     "S4": {"dc": "DCS", "router": "GENE"}},
        "hosts": {"FIFA_1": {"switch": "S1", "vlan": 10, "throughput": "10mbit", "delay": "1ms", "buffer": "50ms"},
                  "UEFA_1": {"switch": "S1", "vlan": 20},
                  "vpn_1": {"switch": "S1", "vlan": 10, "vpn": True},
                  "FIFA_2": {"switch": "S2", "vlan": 10},
                  "FIFA_4": {"switch": "S4", "vlan": 10}},
        "links": [{"a": "S1", "b": "S2", "throughput": "10mbit"}, {"a": "S1", "b": "S3"}, {"a": "S2", "b": "S3"}],
        "tunnel": {"a": "ZURI", "b": "GENE"},
    }
    return yaml.safe_dump({
        "name": "l2t", "servers": ["VM1"],
        "ases": {asn: {"server": "VM1", "routers": ["ZURI", "BASE", "GENE"], "configure": configure, "layer2": l2},
                 200: {"server": "VM1", "routers": ["PARI"]}},
        "links": [{"a": f"{asn}.ZURI", "b": "200.PARI", "rel": "peer"}],
    }, sort_keys=False)


def problems(l2) -> list:
    with pytest.raises(TopologyError) as info:
        parse_topology(topo_text(layer2=l2), "t.yaml")
    return info.value.problems


BASE = {"switches": {"S1": {"dc": "DCN", "router": "ZURI"}}, "hosts": {"H1": {"switch": "S1", "vlan": 10}}}


def with_(**changes):
    out = json.loads(json.dumps(BASE))
    out.update(changes)
    return out


# ---- model and validation -------------------------------------------------------------------

def test_layer2_section_is_read():
    l2 = parse_topology(topo_text(), "t.yaml").ases[1].layer2
    assert l2.datacenters == ("DCN", "DCS")
    assert [s.name for s in l2.switches] == ["S1", "S2", "S3", "S4"]
    assert l2.switch("S1").stp_system_id == "11:11:11:11:11:11" and l2.switch("S3").router is None
    assert l2.vlans == (10, 20)
    assert l2.tunnel == l2m.L2Tunnel("ZURI", "GENE")
    assert l2.hosts[0].shaping.rate_bps == 10_000_000
    assert l2.gateways("DCN", ("ZURI", "BASE", "GENE")) == ["ZURI", "BASE"]
    assert "vpn_1" not in l2.node_names and "S3" in l2.node_names


def test_topologies_without_layer2_are_unchanged():
    topo = parse_topology(yaml.safe_dump({"name": "x", "servers": ["VM1"], "ases": {1: {"server": "VM1", "routers": ["A"]}}}))
    assert topo.ases[1].layer2 is None
    assert build_plan(topo, "VM1", root="/tmp/none").layer2 is None


@pytest.mark.parametrize("l2, expected", [
    (with_(switches={"ZURI": {"dc": "DCN"}}, hosts={}),
     "t.yaml: ases.1.layer2.switches.ZURI: switch ZURI has the name of a router of this AS (node ids <asn>.<NAME> must be unique)"),
    (with_(hosts={"S1": {"switch": "S1", "vlan": 10}}),
     "t.yaml: ases.1.layer2.hosts.S1: host S1 has the name of a switch of this AS (node ids <asn>.<NAME> must be unique)"),
    (with_(hosts={"H1": {"switch": "S9", "vlan": 10}}), "t.yaml: ases.1.layer2.hosts.H1.switch: 'S9' is not a switch of this AS"),
    (with_(hosts={"H1": {"switch": "S1", "vlan": 4095}}),
     "t.yaml: ases.1.layer2.hosts.H1.vlan: the number 4095 is not a VLAN id in 0..4094 (0: untagged)"),
    (with_(hosts={"H1": {"switch": "S1"}}), "t.yaml: ases.1.layer2.hosts.H1.vlan: is required"),
    (with_(switches={"S1": {"dc": "DCN", "router": "ZURI"}, "S2": {"dc": "DCN", "router": "ZURI"}}),
     "t.yaml: ases.1.layer2.switches.S2.router: router ZURI is already attached to switch S1 (one trunk per router)"),
    (with_(switches={"S1": {"dc": "DCN", "router": "NOPE"}}),
     "t.yaml: ases.1.layer2.switches.S1.router: 'NOPE' is not a router of this AS"),
    (with_(links=[{"a": "S1", "b": "S1"}]), "t.yaml: ases.1.layer2.links[1]: joins switch S1 to itself"),
    (with_(switches={"S1": {"dc": "DCN"}, "S2": {"dc": "DCN"}}, hosts={},
           links=[{"a": "S1", "b": "S2"}, {"a": "S2", "b": "S1"}]),
     "t.yaml: ases.1.layer2.links[2]: S2 and S1 are already joined by ases.1.layer2.links[1]"),
    (with_(tunnel={"a": "ZURI", "b": "MARS"}), "t.yaml: ases.1.layer2.tunnel.b: 'MARS' is not a router of this AS"),
    (with_(datacenters=["DCS"]), "t.yaml: ases.1.layer2.switches.S1.dc: data centre DCN is not in ases.1.layer2.datacenters"),
    (with_(switches={"S1": {"dc": "DCN", "stp_system_id": "11:11"}}, hosts={}),
     "t.yaml: ases.1.layer2.switches.S1.stp_system_id: '11:11' is not a MAC address (xx:xx:xx:xx:xx:xx)"),
    (with_(vlans=[10]), "t.yaml: ases.1.layer2.vlans: unknown key (allowed: datacenters, prefix, switches, hosts, links, tunnel)"),
    ({"hosts": {}}, "t.yaml: ases.1.layer2.switches: is required"),
])
def test_bad_layer2_gives_one_line_naming_the_key(l2, expected):
    assert expected in problems(l2)


# ---- addressing -------------------------------------------------------------------------------

def test_mini_internet_plan_numbers_as_upstream():
    as_ = parse_topology(topo_text(asn=3), "t.yaml").ases[3]
    a = l2m.layer2_addressing(3, as_.routers, as_.layer2, "mini-internet")
    # DCN is data centre 0: ZURI .1 and BASE .2 (router order), then hosts; vpn_1 takes its number
    assert a.routers["ZURI"][10] == ("3.200.10.1/24", "3:200:10::1/48")
    assert a.routers["BASE"][20] == ("3.200.20.2/24", "3:200:20::2/48")
    assert a.routers["GENE"][10] == ("3.201.10.1/24", "3:201:10::1/48")
    assert a.hosts["FIFA_1"].addresses == ("3.200.10.3/24", "3:200:10::3/48")
    assert a.hosts["FIFA_2"].addresses[0] == "3.200.10.5/24"          # after FIFA_1 and vpn_1
    assert a.hosts["FIFA_4"].addresses[0] == "3.201.10.2/24" and a.hosts["FIFA_4"].gateway4 == "3.201.10.1"


def test_default_plan_uses_the_as_slice_of_the_pool_and_the_ipv6_prefix():
    as_ = parse_topology(topo_text(), "t.yaml").ases[1]
    a = l2m.layer2_addressing(1, as_.routers, as_.layer2, "default", "fd0a:0:1::/48")
    assert l2m.default_l2_prefix(1) == "172.16.16.0/20"
    assert a.nets[("DCN", 10)].net4 == "172.16.16.0/24" and a.nets[("DCN", 20)].net4 == "172.16.17.0/24"
    assert a.nets[("DCS", 10)].net4 == "172.16.18.0/24"
    assert a.nets[("DCN", 10)].net6 == "fd0a:0:1:1::/64"
    assert a.hosts["UEFA_1"].gateway6 == "fd0a:0:1:2::1"


def test_default_plan_refuses_what_does_not_fit():
    l2 = with_(prefix="172.20.0.0/24", hosts={"H1": {"switch": "S1", "vlan": 10}, "H2": {"switch": "S1", "vlan": 20}})
    assert problems(l2) == ["t.yaml: ases.1.layer2: layer2.prefix 172.20.0.0/24 holds 1 VLAN networks (/24), "
                            "1 data centres x 2 VLANs need more"]
    bare = parse_topology(topo_text(), "t.yaml").ases[1].layer2
    with pytest.raises(ValueError, match="required for AS numbers above 255"):
        l2m.default_plan(300, bare, 0, 10, 0, None)


def test_the_plan_is_chosen_by_the_topology():
    class Topo:
        plan = "mini-internet-2019"
    assert l2m.plan_name(Topo()) == "mini-internet"
    Topo.plan = "minet"
    assert l2m.plan_name(Topo()) == "default"
    assert l2m.plan_name(parse_topology(topo_text(), "t.yaml")) == "default"


# ---- the provisioning plan --------------------------------------------------------------------

def plan_of(configure=True, backend="netns"):
    return build_plan(parse_topology(topo_text(configure=configure), "t.yaml"), "VM1", root="/tmp/l2root",
                      backend=backend)


def test_configured_as_is_wired_and_configured():
    p = plan_of()
    ids = {n.id: n for n in p.nodes}
    assert {"l2-1", "1.S1", "1.S2", "1.S3", "1.S4", "1.FIFA_1", "1.UEFA_1", "1.FIFA_2", "1.FIFA_4"} <= set(ids)
    assert "1.vpn_1" not in ids
    assert {(r.dst, r.via) for r in ids["1.FIFA_1"].routes} == {("default", "172.16.16.1"), ("default", "fd0a:0:1:1::1")}
    s1 = next(b for b in p.layer2.bridges if b.switch == "1.S1")
    ports = {x.student: x for x in s1.ports}
    assert set(ports) == {"1-FIFA_1", "1-UEFA_1", "1-S2", "1-S3", "ZURIrouter"}
    assert ports["1-FIFA_1"].tag == 10 and ports["1-UEFA_1"].tag == 20
    assert ports["1-S2"].trunks == (10, 20) and ports["1-S2"].peer == "s2x1"
    assert ports["ZURIrouter"].trunks == (10, 20) and ports["ZURIrouter"].peer == "d1"
    veth = next(v for v in p.veths if v.kind == "l2-router" and v.a.ifname == "ZURI-L2.10")
    assert veth.a.node == "1.ZURI" and veth.a.addresses == ("172.16.16.1/24", "fd0a:0:1:1::1/64")
    zuri = next(r for r in p.routers if r.node == "1.ZURI")
    assert "interface ZURI-L2.20\n ip ospf area 0\n ip ospf passive" in zuri.config
    assert "  network 172.16.16.0/20\n" in zuri.config        # outside 10.0.1.0/24: announced
    assert ("1.ZURI", "172.16.16.0/20") in p.layer2.blackholes
    assert [t.router for t in p.layer2.tunnels] == ["1.ZURI", "1.GENE"]
    assert p.layer2.tunnels[0].routes6 == ("fd0a:0:1:3::/64", "fd0a:0:1:4::/64")   # DCS's VLANs
    flows = pl2.demux_flows(p.layer2.instances[0])
    of = pl2.demux_ofports(p.layer2.instances[0])
    assert (of["d1"], of["d1v10"], of["d1v20"], of["d2"]) == (1, 2, 3, 4)
    assert "priority=100,in_port=1,dl_vlan=10 actions=strip_vlan,output:2" in flows
    assert "priority=100,in_port=2 actions=mod_vlan_vid:10,output:1" in flows


def test_students_as_is_wired_but_left_to_them():
    p = plan_of(configure=False)
    for b in p.layer2.bridges:
        assert all(x.tag is None and not x.trunks for x in b.ports)
    assert all(not v.a.addresses for v in p.veths if v.kind in ("l2-host", "l2-router"))
    assert not p.layer2.tunnels and not p.layer2.blackholes
    assert all(not n.routes for n in p.nodes if n.kind == pl2.KIND_L2HOST)
    args = pl2.bridge_args(p.layer2.bridges[0], p.layer2.marks, ())
    assert not any(a.startswith(("tag=", "trunks=")) for a in args)
    assert "stp_enable=true" in args and "fail_mode=standalone" in args
    assert any(n.kind == pl2.KIND_SWITCH for n in p.nodes)


def test_docker_backend_is_refused_in_one_line():
    with pytest.raises(ValueError, match="layer 2 .* needs the netns backend"):
        plan_of(backend="docker")


def test_bridge_diff_sees_what_a_student_cannot_break_and_what_we_configure():
    p = plan_of()
    b = p.layer2.bridges[0]
    bridges = {b.name: {"_uuid": "b", "stp_enable": True, "fail_mode": "standalone",
                        "ports": [f"u{i}" for i in range(len(b.ports))]}}
    ports = {x.name: {"_uuid": f"u{i}", "tag": x.tag if x.tag is not None else [], "trunks": list(x.trunks)}
             for i, x in enumerate(b.ports)}
    ifaces = {x.name: {"options": {"peer": x.peer} if x.peer else {}} for x in b.ports}
    assert pl2.bridge_diff(b, bridges, ports, ifaces) == []
    ports["s1h1"]["tag"] = 30
    assert pl2.bridge_diff(b, bridges, ports, ifaces) == ["switch 1.S1: port 1-FIFA_1 tag"]


# ---- the students' ovs-vsctl ----------------------------------------------------------------

class FakeSwitch(l2ctl.Switch):
    def __init__(self):
        self.rundir, self.switch, self.bridge = "/x", "3.S1", "s1"
        self.ports = {"3-FIFA_1": "s1h1", "3-S2": "s1x2", "ZURIrouter": "s1r"}
        self.names = {v: k for k, v in self.ports.items()}
        self.calls = []

    def vsctl(self, *args):
        self.calls.append(args)
        return ""

    def port_rows(self):
        return {"3-FIFA_1": {"tag": 10, "trunks": [], "vlan_mode": []}, "3-S2": {"tag": [], "trunks": [10, 20]},
                "ZURIrouter": {"tag": [], "trunks": []}}


@pytest.mark.parametrize("argv, call", [
    (["set", "port", "3-FIFA_1", "tag=10"], ("set", "port", "s1h1", "tag=10")),
    (["--", "set", "port", "ZURIrouter", "trunks=10,20,30"], ("set", "port", "s1r", "trunks=[10,20,30]")),
    (["set", "port", "3-S2", "vlan_mode=trunk", "trunks=[10, 20]"], ("set", "port", "s1x2", "vlan_mode=trunk", "trunks=[10,20]")),
    (["clear", "port", "3-FIFA_1", "tag"], ("clear", "port", "s1h1", "tag")),
    (["get", "port", "3-S2", "trunks"], ("get", "port", "s1x2", "trunks")),
    (["remove", "port", "3-S2", "trunks", "20"], ("remove", "port", "s1x2", "trunks", "20")),
])
def test_students_commands_reach_their_own_ports_only(argv, call):
    sw = FakeSwitch()
    l2ctl.run(sw, argv)
    assert sw.calls == [call]


@pytest.mark.parametrize("argv", [
    ["del-port", "br0", "3-FIFA_1"], ["add-br", "evil"], ["add-port", "br0", "x"], ["del-br", "br0"],
    ["set", "port", "3-FIFA_1", "external_ids:x=1"], ["set", "port", "s2h1", "tag=10"],   # a real name of another switch
    ["set", "port", "3-FIFA_1", "tag=10;reboot"], ["set", "port", "3-FIFA_1", "tag=5000"],
    ["set", "bridge", "br0", "stp_enable=false"], ["--db=unix:/run/openvswitch/db.sock", "show"],
    ["set", "port", "3-FIFA_1", "trunks=10,x"], ["list", "interface"], ["set", "controller", "br0", "x"],
    ["list-ports", "s2"], [],
])
def test_anything_else_is_refused_before_ovs_sees_it(argv):
    sw = FakeSwitch()
    with pytest.raises(l2ctl.Refused):
        l2ctl.run(sw, argv)
    assert sw.calls == []


def test_show_presents_the_switch_as_students_know_it():
    out = l2ctl.run(FakeSwitch(), ["show"])
    assert "Bridge br0" in out and "Port 3-FIFA_1\n            tag: 10" in out
    assert "trunks: [10, 20]" in out and "s1h1" not in out and "s1x2" not in out
    assert l2ctl.run(FakeSwitch(), ["list-ports", "br0"]) == "3-FIFA_1\n3-S2\nZURIrouter\n"


def test_l2ctl_main_refuses_with_one_line_and_exit_2(tmp_path, capsys):
    m = tmp_path / "switches.json"
    m.write_text(json.dumps({"switches": {"3.S1": {"bridge": "s1", "asn": 3, "configure": False, "rundir": str(tmp_path),
                                                                             "ports": {"3-H": "s1h1"}}}}))
    assert l2ctl.main(["--map", str(m), "--switch", "3.S1", "--", "del-br", "br0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ovs-vsctl: not allowed on this switch")
    assert l2ctl.main(["--map", str(m), "--switch", "4.S1", "--", "show"]) == 2
    assert "no switch 4.S1" in capsys.readouterr().err


def test_host_links_are_shaped_at_both_ends():
    from minet_sdn.provision import shaping
    p = plan_of()
    items = {(i.node, i.ifname): i.shaping for i in shaping.wanted(p)}
    assert items[("1.FIFA_1", "1-S1")].rate_bps == 10_000_000
    assert items[("l2-1", "s1h1")].rate_bps == 10_000_000
    assert items[("1.UEFA_1", "1-S1")] is None


def test_numbering_problems_are_topology_errors_naming_the_key():
    text = topo_text(layer2=with_(prefix="10.0.1.0/24"))      # AS 1's own prefix
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "t.yaml")
    assert info.value.problems == [
        "t.yaml: ases.1.layer2.prefix: 10.0.1.0/24 overlaps the prefix of AS 1 (10.0.1.0/24)"]
    text = topo_text(layer2=with_(hosts={"H1": {"switch": "S1", "vlan": 10}}), asn=300)
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "t.yaml")
    assert info.value.problems == ["t.yaml: ases.300.layer2: layer2.prefix is required for AS numbers above 255 "
                                   "(the default plan numbers AS 1..255 in 172.16.0.0/12)"]


def test_places_know_the_layer2_nodes_and_a_switch_runs_the_students_ovs_vsctl():
    import sys
    from minet_sdn.topology import places
    topo = parse_topology(topo_text(), "t.yaml")
    pl = places.build_places(topo, "/srv/state")
    assert pl["1.S1"].kind == places.SWITCH and pl["1.FIFA_1"].kind == places.L2_HOST and pl["l2-1"].kind == places.L2_OVS
    assert "1.vpn_1" not in pl
    assert pl["1.S1"].user_argv(["ovs-vsctl", "show"]) == [
        sys.executable, "-m", "minet_sdn.provision.l2ctl", "--map", "/srv/state/l2t/VM1/l2ovs/switches.json",
        "--switch", "1.S1", "--", "show"]
    assert pl["1.FIFA_1"].user_argv(["ovs-vsctl", "show"]) == ["ovs-vsctl", "show"]
    assert pl.find("FIFA_1").id == "1.FIFA_1"


def test_what_the_importer_keeps_becomes_a_layer2_section():
    imported = {"dcs": {"DCN": {"routers": ["ZURI"]}, "DCS": {"routers": ["GENE"]}},
                "switches": [{"dc": "DCN", "name": "S1", "router": "ZURI", "mac": "11:11:11:11:11:11", "id": 1},
                             {"dc": "DCN", "name": "S3", "mac": "33:33:33:33:33:33", "id": 3},
                             {"dc": "DCS", "name": "S4", "router": "GENE", "mac": "44:44:44:44:44:44", "id": 4}],
                "hosts": [{"name": "FIFA_1", "dc": "DCN", "switch": "S1", "vlan": 10, "throughput": "10mbit",
                           "delay": "1ms", "buffer": "50ms"},
                          {"name": "vpn_1", "dc": "DCN", "switch": "S1", "vlan": 30}],
                "links": [{"dc_a": "DCN", "a": "S1", "dc_b": "DCN", "b": "S3", "throughput": "10mbit"}],
                "tunnel": ["ZURI", "GENE"]}
    spec = l2m.from_imported(imported, ["ZURI", "BASE", "GENE"])
    as_ = parse_topology(topo_text(layer2=spec), "t.yaml").ases[1]
    l2 = as_.layer2
    assert l2.datacenters == ("DCN", "DCS") and l2.switch("S1").stp_priority == 1
    assert l2.switch("S3").router is None and l2.tunnel == l2m.L2Tunnel("ZURI", "GENE")
    assert [h.vpn for h in l2.hosts] == [False, True]
    assert "tunnel" not in l2m.from_imported(dict(imported, tunnel=["ZURI", "MARS"]), ["ZURI", "GENE"])
