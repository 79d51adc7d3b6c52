"""The lab's pure parts: names, addresses, the effective topology, BGP parsing, the CLI's errors.

No root needed: nothing here touches the machine (state goes to a temporary MINET_LAB_ROOT).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap

import pytest

from minet_sdn.cli import lab as lab_parsers
from minet_sdn.lab import cli as lab_cli
from minet_sdn.lab import LabError, convergence, effective, networks, paths, places, sshd
from minet_sdn.topology import load_topology, names, parse_topology

TOPO = textwrap.dedent("""\
    name: {name}
    controller: {{ofp: "127.0.0.1:6633", rest: "127.0.0.1:8181"}}
    servers:
      VM1: {{underlay_ip: 192.0.2.1}}
      VM2: {{underlay_ip: 192.0.2.2, interface: ens4, ssh: root@vm2.example.org:22}}
      VM3: {{underlay_ip: 192.0.2.3}}
    ases:
      1: {{server: VM1, routers: [ZURI, GENE]}}
      2: {{server: VM2, routers: [PARI]}}
      3: {{server: VM3, routers: [LOND], configure: false}}
    links:
      - {{a: 1.ZURI, b: 2.PARI, rel: peer}}
      - {{a: 1.GENE, b: 2.PARI, rel: provider}}
      - {{a: 2.PARI, b: 3.LOND, rel: customer}}
    """)


@pytest.fixture
def topo_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "root"))
    path = tmp_path / "t.yaml"
    path.write_text(TOPO.format(name="naming"))
    return str(path)


def test_names_and_paths(topo_path, tmp_path):
    topo = load_topology(topo_path)
    assert paths.state_dir(topo) == str(tmp_path / "root" / "naming")
    assert names.mgmt_ns(topo) == "naming-mgmt" and names.underlay_ns(topo) == "naming-ul"
    assert names.server_ns(topo, "VM2") == "naming-VM2"
    assert names.phy_bridge(topo) == "naming-phy"
    assert paths.server_env(topo, "VM1") == {
        "OVS_RUNDIR": paths.server_dir(topo, "VM1"), "OVS_DBDIR": paths.server_dir(topo, "VM1"),
        "OVS_LOGDIR": paths.server_dir(topo, "VM1"), "OVS_SYSCONFDIR": paths.server_dir(topo, "VM1"),
        "MINET_STATE_DIR": paths.provision_state_dir(topo, "VM1")}


def test_interface_names_fit_the_kernel_limit():
    servers = "\n".join(f"  S{i}: {{underlay_ip: 10.0.{i // 250}.{i % 250 + 1}}}" for i in range(300))
    topo = parse_topology(f"name: a-long-name\nservers:\n{servers}\nases:\n  1: {{server: S1, routers: [R]}}\n")
    assert len(topo.tag) <= 6
    ifnames = [names.phy_bridge(topo), names.underlay_ifname(topo), names.mgmt_ifname(topo),
               names.mgmt_bridge(topo), names.underlay_bridge(topo)]
    for server in topo.servers:
        ifnames += [names.underlay_peer_ifname(topo, server), names.mgmt_peer_ifname(topo, server)]
    assert max(len(n) for n in ifnames) <= 15
    assert len(set(names.underlay_peer_ifname(topo, s) for s in topo.servers)) == 300


def test_mgmt_addresses(topo_path):
    topo = load_topology(topo_path)
    assert networks.mgmt_addresses(topo) == {"mgmt": "10.254.0.1", "VM1": "10.254.0.2", "VM2": "10.254.0.3",
                                             "VM3": "10.254.0.4"}
    assert networks.mgmt_addresses(topo, "172.31.0.0/29")["VM3"] == "172.31.0.4"
    with pytest.raises(LabError, match="too small"):
        networks.mgmt_addresses(topo, "172.31.0.0/30")
    with pytest.raises(LabError, match="IPv4"):
        networks.mgmt_addresses(topo, "fd00::/64")
    with pytest.raises(LabError):
        networks.mgmt_addresses(topo, "10.254.0.1/24")    # host bits set


def test_addressing_clashes_are_refused(tmp_path):
    path = tmp_path / "clash.yaml"
    path.write_text(TOPO.format(name="clash").replace("192.0.2.3", "10.254.0.9"))
    topo = load_topology(str(path))
    with pytest.raises(LabError, match="servers.VM3.underlay_ip 10.254.0.9 is inside"):
        networks.check_addressing(topo, networks.DEFAULT_MGMT_SUBNET)
    networks.check_addressing(topo, "172.31.0.0/24")
    with pytest.raises(LabError, match="link_subnet"):
        networks.check_addressing(topo, "100.64.0.0/24")


def test_effective_topology(topo_path):
    topo = load_topology(topo_path)
    addresses = networks.mgmt_addresses(topo)
    import os
    os.makedirs(paths.state_dir(topo))
    eff = load_topology(effective.write_effective_topology(topo_path, topo, addresses))
    assert (eff.controller.ofp_host, eff.controller.ofp_port) == ("10.254.0.1", 6633)
    assert (eff.controller.rest_host, eff.controller.rest_port) == ("10.254.0.1", 8181)
    assert {s: v.ssh for s, v in eff.servers.items()} == {
        "VM1": "root@10.254.0.2:22", "VM2": "root@10.254.0.3:22", "VM3": "root@10.254.0.4:22"}
    assert all(v.interface == names.underlay_ifname(topo) for v in eff.servers.values())
    assert eff.name == topo.name and eff.tag == topo.tag
    assert [(l.a, l.b, l.rel) for l in eff.links] == [(l.a, l.b, l.rel) for l in topo.links]
    assert {a: (x.server, x.routers, x.configure) for a, x in eff.ases.items()} == \
           {a: (x.server, x.routers, x.configure) for a, x in topo.ases.items()}
    assert eff.dpid("VM1", "VM2") == topo.dpid("VM1", "VM2")


def test_sshd_config(topo_path):
    topo = load_topology(topo_path)
    text = sshd.sshd_config_text(topo, "VM2", "10.254.0.3")
    lines = text.splitlines()
    assert "ListenAddress 10.254.0.3:22" in lines
    assert "PermitRootLogin prohibit-password" in lines
    assert "PasswordAuthentication no" in lines
    setenv = next(l for l in lines if l.startswith("SetEnv "))
    assert f"OVS_RUNDIR={paths.server_dir(topo, 'VM2')}" in setenv.split()
    assert f"MINET_STATE_DIR={paths.provision_state_dir(topo, 'VM2')}" in setenv.split()
    for line in lines:          # every path absolute
        if line.split(" ")[0] in ("HostKey", "PidFile", "AuthorizedKeysFile"):
            assert line.split(" ", 1)[1].startswith("/")


def _summary_json(peers):
    return json.dumps({"ipv4Unicast": {"as": 1, "peers": peers}})


def test_bgp_sessions_and_convergence(topo_path, monkeypatch):
    dual = load_topology(topo_path)
    topo = dataclasses.replace(dual, fabric=dataclasses.replace(dual.fabric, ipv6=False))   # IPv4 only first
    link1 = topo.link(1)            # 1.ZURI - 2.PARI
    answers = {}
    monkeypatch.setattr(convergence, "vtysh", lambda place, command, timeout=10: answers.get(place.id))

    # dual stack (the default): the IPv6 session over link 1 is expected too
    answers["1.ZURI"] = _summary_json({link1.b.ip: {"remoteAs": 2, "state": "Established"}})
    assert convergence.bgp_sessions(dual, "1.ZURI")["missing"] == [link1.b.ip6]

    answers["1.ZURI"] = _summary_json({
        link1.b.ip: {"remoteAs": 2, "state": "Established"},
        "10.1.0.2": {"remoteAs": 1, "state": "Active"}})
    r = convergence.bgp_sessions(topo, "1.ZURI")
    assert r["reachable"] and r["missing"] == []
    assert not convergence.bgp_converged(r)                    # the iBGP session is not up
    answers["1.ZURI"] = answers["1.ZURI"].replace("Active", "Established")
    assert convergence.bgp_converged(convergence.bgp_sessions(topo, "1.ZURI"))

    # 2.PARI: its session to the unconfigured AS 3 does not count; a missing one does
    link3 = topo.link(3)
    answers["2.PARI"] = _summary_json({
        link1.a.ip: {"remoteAs": 1, "state": "Established"},
        link3.b.ip: {"remoteAs": 3, "state": "Active"}})
    r = convergence.bgp_sessions(topo, "2.PARI")
    assert r["missing"] == [topo.link(2).a.ip]
    assert not convergence.bgp_converged(r)
    assert convergence.count_sessions([r]) == (1, 2)

    r = convergence.bgp_sessions(topo, "1.GENE")               # vtysh does not answer
    assert not r["reachable"] and not convergence.bgp_converged(r)
    assert r["missing"] == [topo.link(2).b.ip]
    assert convergence.configured_routers(topo) == ["1.ZURI", "1.GENE", "2.PARI"]


def test_resolve_node(topo_path, monkeypatch):
    topo = load_topology(topo_path)
    assert places.resolve_node(topo, "mgmt")[0] == "naming-mgmt"
    assert places.resolve_node(topo, "ul")[0] == "naming-ul"
    ns, env, place = places.resolve_node(topo, "VM1")
    assert ns == "naming-VM1" and env["OVS_RUNDIR"] == paths.server_dir(topo, "VM1") and place is None
    ns, _, place = places.resolve_node(topo, "1.ZURI")
    assert place.id == "1.ZURI" and place.server == "VM1" and place.frr_dir
    assert places.resolve_node(topo, "ZURI")[0] == ns            # unique bare name
    _, _, host = places.resolve_node(topo, "PARI.host")
    assert host.id == "2.PARI.host" and host.ns != places.resolve_node(topo, "PARI")[0]
    with pytest.raises(LabError, match="no node"):
        places.resolve_node(topo, "NOPE")


def _parse(argv):
    parser = argparse.ArgumentParser(prog="minet")
    sub = parser.add_subparsers(dest="cmd", required=True)
    lab_parsers.add_lab_commands(sub)
    return parser.parse_args(argv)


def test_cli_parsing():
    a = _parse(["lab", "up", "x.yaml", "--mgmt-subnet", "172.31.0.0/24"])
    assert (a.func, a.file, a.mgmt_subnet) == (lab_cli.cmd_up, "x.yaml", "172.31.0.0/24")
    a = _parse(["lab", "status", "x.yaml", "--json"])
    assert a.func is lab_cli.cmd_status and a.json
    a = _parse(["exec", "x.yaml", "1.ZURI", "--", "vtysh", "-c", "show bgp summary"])
    assert a.func is lab_cli.cmd_exec and a.node == "1.ZURI"
    assert [x for x in a.cmd if x != "--"] == ["vtysh", "-c", "show bgp summary"]


def test_cli_errors_are_one_line_exit_2(topo_path, tmp_path, capsys):
    for argv in (["lab", "status", topo_path], ["exec", topo_path, "VM1", "--", "true"],
                 ["lab", "status", str(tmp_path / "missing.yaml")]):
        args = _parse(argv)
        assert args.func(args) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
