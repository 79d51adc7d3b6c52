"""minet-provision for real, inside an emulated server (namespace + own OvS + underlay on an OvS port).

Topology (all on VM1 except AS 4, so a remote bridge towards VM2 exists):

    AS1 [ZURI, GENE] --peer-- AS2 [PARI] --peer-- AS5 [ROMA] --provider of-- AS6 [OSLO] (configure: false)
    AS1.GENE is AS3's provider, AS2.PARI is AS3's provider; AS3 = [LOND, MANC, BIRM] (a ring)
    AS1.ZURI --peer-- AS4.NEWY (on VM2), AS3.BIRM is AS4's customer (remote links)

Needs root, Open vSwitch, FRR; skipped otherwise. Everything is removed in finally.
"""
from __future__ import annotations

import json
import os

import pytest

from provision_fixtures import (NETNS_DIR, Site, emulated_servers, frr_processes, frr_run_dirs, ns_inode,
                                pids_in_namespaces, provision_command, sh, skip_reason, topology_yaml,
                                write_topology)

from minet_sdn import host

from tests.polling import wait_until

pytestmark = [pytest.mark.root, pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))]

ROUTERS = ["1.ZURI", "1.GENE", "2.PARI", "3.LOND", "3.MANC", "3.BIRM", "5.ROMA", "6.OSLO"]
CONFIGURED = [r for r in ROUTERS if not r.startswith("6.")]
ALONE = ["2.PARI", "5.ROMA"]        # one-router ASes: no link inside the AS, so no OSPF (frr.py)


def main_topology(name: str) -> str:
    return topology_yaml(
        name, {"VM1": {"underlay_ip": "192.0.2.1"}, "VM2": {"underlay_ip": "192.0.2.2"}},
        {1: {"server": "VM1", "routers": ["ZURI", "GENE"]}, 2: {"server": "VM1", "routers": ["PARI"]},
         3: {"server": "VM1", "routers": ["LOND", "MANC", "BIRM"]}, 4: {"server": "VM2", "routers": ["NEWY"]},
         5: {"server": "VM1", "routers": ["ROMA"]}, 6: {"server": "VM1", "routers": ["OSLO"], "configure": False}},
        [{"a": "1.ZURI", "b": "2.PARI", "rel": "peer"},          # 1
         {"a": "1.GENE", "b": "3.LOND", "rel": "provider"},      # 2: AS1 is AS3's provider
         {"a": "2.PARI", "b": "3.MANC", "rel": "provider"},      # 3: AS2 is AS3's provider
         {"a": "1.ZURI", "b": "4.NEWY", "rel": "peer"},          # 4: remote
         {"a": "3.BIRM", "b": "4.NEWY", "rel": "customer"},      # 5: remote, AS3 is AS4's customer
         {"a": "2.PARI", "b": "5.ROMA", "rel": "peer"},          # 6
         {"a": "5.ROMA", "b": "6.OSLO", "rel": "provider"}])     # 7


@pytest.fixture(scope="module")
def site():
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        path = write_topology(vm1, main_topology(prefix.value))
        res = vm1.provision(path, "--json")
        assert res.returncode == 0, res.stderr
        s = Site(prefix, vm1, path)
        s.first_report = json.loads(res.stdout)
        yield s
        res = vm1.provision(path, "--down")
        assert res.returncode == 0, res.stderr


def test_up_creates_every_node(site):
    assert site.first_report["ok"] and site.first_report["n_changes"] > 100
    for router in ROUTERS:
        for node in (router, f"{router}.host"):
            assert os.path.exists(os.path.join(NETNS_DIR, site.ns(node))), node
            marker = os.path.join(site.server.state_dir, site.tag, "VM1", "nodes", f"{site.ns(node)}.json")
            assert json.load(open(marker))["instance"] == site.tag
        # the FRR daemons its config uses (no static routes: no staticd), each inside its namespace
        # (a student's router, configure: false, gets every daemon)
        configured = router in CONFIGURED
        assert os.path.exists(os.path.join(site.confdir(router), "staticd.pid")) is not configured
        ospf = () if router in ALONE else ("ospfd",)
        assert os.path.exists(os.path.join(site.confdir(router), "ospfd.pid")) is bool(ospf)
        for daemon in ("zebra", "bgpd") + ospf + (() if configured else ("staticd",)):
            pid = int(open(os.path.join(site.confdir(router), f"{daemon}.pid")).read())
            assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{_any_pid_in(site, router)}/ns/net")
    assert not os.path.exists(os.path.join(NETNS_DIR, site.ns("4.NEWY")))    # lives on VM2


def _any_pid_in(site, router):
    return pids_in_namespaces({ns_inode(os.path.join(NETNS_DIR, site.ns(router)))})[0]


def test_sessions_establish(site):
    lo = {"1.ZURI": "10.0.1.1", "1.GENE": "10.0.1.2", "3.LOND": "10.0.3.1", "3.MANC": "10.0.3.2",
          "3.BIRM": "10.0.3.3"}
    expect = {   # same-server sessions only (NEWY on VM2 is not provisioned here)
        "1.ZURI": {lo["1.GENE"], "100.64.0.2"},
        "1.GENE": {lo["1.ZURI"], "100.64.0.6"},
        "2.PARI": {"100.64.0.1", "100.64.0.10", "100.64.0.22"},
        "3.LOND": {lo["3.MANC"], lo["3.BIRM"], "100.64.0.5"},
        "3.MANC": {lo["3.LOND"], lo["3.BIRM"], "100.64.0.9"},
        "3.BIRM": {lo["3.LOND"], lo["3.MANC"]},
        "5.ROMA": {"100.64.0.21"},
    }
    got = wait_until(lambda: all(expect[r] <= site.established(r) for r in expect) and
                     {r: site.established(r) for r in expect}, 45, interval=0.5)
    assert got, {r: site.established(r) for r in expect}
    neighbors = site.vtysh_json("3.BIRM", "show ip ospf neighbor json").get("neighbors", {})
    assert len(neighbors) == 2


def best_path(site, router, prefix):
    doc = site.vtysh_json(router, f"show bgp ipv4 unicast {prefix} json")
    for path in doc.get("paths", []):
        if path.get("bestpath", {}).get("overall"):
            return path
    return None


def test_gao_rexford_policy(site):
    wait_until(lambda: all(best_path(site, r, "10.0.3.0/24") for r in ("1.ZURI", "2.PARI", "5.ROMA")), 40,
               interval=0.5)
    # AS1 hears AS3's prefix from its customer (via GENE, iBGP) and from its peer AS2: customer wins
    zuri = wait_until(lambda: (p := best_path(site, "1.ZURI", "10.0.3.0/24")) and p.get("locPrf") == 300 and p,
                      40, interval=0.5)
    assert zuri, best_path(site, "1.ZURI", "10.0.3.0/24")
    assert zuri["aspath"]["string"] == "3"
    # AS3 gets AS1's prefix from its provider: local-pref 100
    assert best_path(site, "3.LOND", "10.0.1.0/24")["locPrf"] == 100
    # AS2 learns AS1's prefix from peer AS1 only: AS3 does not re-export a provider route to AS2
    paths = site.vtysh_json("2.PARI", "show bgp ipv4 unicast 10.0.1.0/24 json").get("paths", [])
    assert [p["aspath"]["string"] for p in paths] == ["1"]
    assert paths[0]["locPrf"] == 200
    # AS5 (AS2's peer) gets AS2's customer AS3, but not AS2's peer AS1 (valley-free)
    assert best_path(site, "5.ROMA", "10.0.3.0/24")["aspath"]["string"] == "2 3"
    assert best_path(site, "5.ROMA", "10.0.2.0/24") is not None
    assert site.vtysh_json("5.ROMA", "show bgp ipv4 unicast 10.0.1.0/24 json").get("paths") in (None, [])
    # our internal tags never leave the AS
    roma = best_path(site, "5.ROMA", "10.0.3.0/24")
    assert "2:1:" not in json.dumps(roma.get("largeCommunity", {}))


def test_hosts_ping_across_ases(site):
    pairs = [("1.ZURI.host", "10.0.3.138"),   # AS1 -> AS3 BIRM host (via the customer link, then OSPF ring)
             ("3.BIRM.host", "10.0.2.130"),   # AS3 -> AS2
             ("5.ROMA.host", "10.0.3.130"),   # AS5 -> AS3 via peer AS2
             ("2.PARI.host", "10.0.1.134")]   # AS2 -> AS1 GENE host
    def all_ok():
        return all(site.in_node(src, "ping", "-c1", "-W1", dst).returncode == 0 for src, dst in pairs)
    assert wait_until(all_ok, 30, interval=1)
    # and valley-free routing leaves AS5 without a route to AS1
    assert site.in_node("5.ROMA.host", "ping", "-c1", "-W1", "10.0.1.130").returncode != 0


def test_configure_false_router_is_addressed_with_empty_frr(site):
    running = site.vtysh("6.OSLO", "show running-config")
    assert "hostname 6.OSLO" in running and "router bgp" not in running and "router ospf" not in running
    addrs = site.in_node("6.OSLO", "ip", "-o", "addr", "show", "dev", "ext7").stdout
    assert "100.64.0.26/30" in addrs
    assert open(os.path.join(site.confdir("6.OSLO"), "frr.conf")).read() == "hostname 6.OSLO\n"
    # the link itself works: ROMA reaches OSLO's address
    assert site.in_node("5.ROMA", "ping", "-c1", "-W2", "100.64.0.26").returncode == 0


def test_a_students_saved_config_survives_reprovisioning(site):
    """`write memory` on a configure:false router saves its own frr.conf (never the host's), and
    running provisioning again neither overwrites it nor restarts that router's FRR."""
    conf = os.path.join(site.confdir("6.OSLO"), "frr.conf")
    host_conf = open("/etc/frr/frr.conf", "rb").read() if os.path.exists("/etc/frr/frr.conf") else None
    zebra = open(os.path.join(site.confdir("6.OSLO"), "zebra.pid")).read()
    try:
        d = site.confdir("6.OSLO")
        out = sh("ip", "netns", "exec", site.ns("6.OSLO"), "vtysh", "--vty_socket", d, "--config_dir", d,
                 "-c", "configure terminal", "-c", "ip route 10.99.0.0/24 Null0", "-c", "end",
                 "-c", "write memory", check=False)
        assert out.returncode == 0, out.stderr
        assert "ip route 10.99.0.0/24 Null0" in open(conf).read()
        if host_conf is not None:
            assert open("/etc/frr/frr.conf", "rb").read() == host_conf
        res = site.provision("--json")
        assert res.returncode == 0, res.stderr
        assert "ip route 10.99.0.0/24 Null0" in open(conf).read()
        assert open(os.path.join(site.confdir("6.OSLO"), "zebra.pid")).read() == zebra
    finally:
        os.unlink(conf)              # back to the planned config for the other tests
        site.provision()


def test_remote_bridge(site):
    vs = site.server.vsctl
    tag = site.tag
    bridge = f"{tag}-br2"
    assert vs("get", "bridge", bridge, "fail_mode").strip() == "secure"
    assert vs("get", "bridge", bridge, "datapath_type").strip() == "netdev"
    assert vs("get", "bridge", bridge, "protocols").strip() == '[OpenFlow13]'
    assert vs("get", "bridge", bridge, "stp_enable").strip() == "false"
    other = vs("get", "bridge", bridge, "other_config").strip()
    assert 'disable-in-band="true"' in other
    dpid = vs("get", "bridge", bridge, "datapath_id").strip().strip('"')
    assert other.count(dpid) == 1 and dpid.startswith("6d6e")
    ext = vs("get", "bridge", bridge, "external_ids").strip()
    assert f"minet-instance={tag}" in ext and "minet-server=VM1" in ext
    assert vs("get", "controller", bridge, "connection_mode").strip() == "out-of-band"
    assert vs("get", "controller", bridge, "target").strip() == '"tcp:127.0.0.1:6653"'
    tunnel = f"{tag}-t2"
    assert vs("get", "interface", tunnel, "type").strip() == "gre"
    assert vs("get", "interface", tunnel, "options").strip() == '{key=flow, remote_ip="192.0.2.2"}'
    assert vs("get", "interface", tunnel, "bfd").strip() == '{enable="true", min_rx="100", min_tx="100"}'
    assert vs("get", "interface", tunnel, "ofport").strip() == "1"
    ports = set(vs("list-ports", bridge).split())
    assert ports == {tunnel, f"{tag}-l4", f"{tag}-l5"}
    for lid in (4, 5):
        port = f"{tag}-l{lid}"
        assert vs("get", "interface", port, "ofport").strip() == str(100 + lid)
        assert vs("get", "interface", port, "error").strip() == "[]"
        features = site.server.run("ethtool", "-k", port).stdout
        assert "tx-checksumming: off" in features and "tcp-segmentation-offload: off" in features
        assert "mtu 1458" in site.server.run("ip", "link", "show", port).stdout
    # the router ends: the model's MAC, addresses and MTU
    link = site.in_node("1.ZURI", "ip", "-o", "link", "show", "ext4").stdout
    assert "mtu 1458" in link and "02:6d:00:00:04:01" in link
    addrs = site.in_node("1.ZURI", "ip", "-o", "addr", "show", "dev", "ext4").stdout
    assert "100.64.0.13/30" in addrs and "fd00:6d6e:0:4::1/64" in addrs
    assert "tx-checksumming: off" in site.in_node("1.ZURI", "ethtool", "-k", "ext4").stdout


def daemon_pids(site):
    """{router/daemon.pid: the pid in it} for every FRR daemon of the site's routers."""
    out = {}
    for router in ROUTERS:
        for name in sorted(os.listdir(site.confdir(router))):
            if name.endswith(".pid"):
                with open(os.path.join(site.confdir(router), name)) as fh:
                    out[f"{router}/{name}"] = fh.read().strip()
    return out


def test_second_run_changes_nothing(site):
    before = daemon_pids(site)
    res = site.provision("--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["n_changes"] == 0, report["changes"]
    assert daemon_pids(site) == before           # no daemon restarted behind the report's back


def test_a_bridge_port_set_down_by_the_controller_stays_down(site):
    """A PortMod PORT_DOWN (link failure) is the controller's business: a re-run does not undo it."""
    port = f"{site.tag}-l5"
    site.server.run("ovs-ofctl", "-O", "OpenFlow13", "mod-port", f"{site.tag}-br2", port, "down")
    try:
        res = site.provision("--json")
        assert res.returncode == 0 and json.loads(res.stdout)["n_changes"] == 0
        assert ",UP" not in site.server.run("ip", "link", "show", port).stdout.split(">")[0]
    finally:
        site.server.run("ovs-ofctl", "-O", "OpenFlow13", "mod-port", f"{site.tag}-br2", port, "up")


def test_repairs_what_was_broken(site):
    """Apply converges: a deleted veth, a lost address and a killed daemon come back (and only they)."""
    site.in_node("3.LOND", "ip", "link", "del", "to_MANC")
    site.in_node("1.GENE.host", "ip", "addr", "flush", "dev", "eth0")
    pid = int(open(os.path.join(site.confdir("3.MANC"), "ospfd.pid")).read())
    os.kill(pid, 9)
    assert wait_until(lambda: not host.pid_alive(pid), 10), f"ospfd {pid} still alive after SIGKILL"  # a zombie is gone
    res = site.provision("--json")
    assert res.returncode == 0, res.stderr
    changes = json.loads(res.stdout)["changes"]
    assert any("3.LOND:to_MANC" in c for c in changes)
    assert any(c == "1.GENE.host:eth0: address 10.0.1.134/30" for c in changes)
    assert any(c.startswith("created 3.MANC: ospfd") for c in changes)
    assert json.loads(site.provision("--json").stdout)["n_changes"] == 0
    assert wait_until(lambda: site.in_node("1.GENE.host", "ping", "-c1", "-W1", "10.0.3.130").returncode == 0,
                      40, interval=0.5)


# ---- down, foreign things, conflicts, rollback: each on its own server ----------------------------

def small_topology(name, **as1):
    return topology_yaml(
        name, {"VM1": {"underlay_ip": "192.0.2.1"}, "VM2": {"underlay_ip": "192.0.2.2"}},
        {1: {"server": "VM1", "routers": ["A", "B"], **as1}, 2: {"server": "VM1", "routers": ["C"]},
         3: {"server": "VM2", "routers": ["D"]}},
        [{"a": "1.A", "b": "2.C", "rel": "peer"}, {"a": "1.B", "b": "3.D", "rel": "provider"}])


def leftovers(prefix, server, foreign=()):
    """Everything of the instance still on the server (foreign names excluded)."""
    out = [n for n in prefix.namespaces() if n != server.ns and n not in foreign]
    bridges = [b for b in server.vsctl("list-br").split() if b not in ("ul-br", *foreign)]
    out += [f"bridge {b}" for b in bridges]
    links = server.run("ip", "-o", "link", "show").stdout
    out += [f"link {l.split(':')[1].strip()}" for l in links.splitlines() if f" {prefix.value}-l" in l]
    if os.path.exists(os.path.join(server.state_dir, prefix.value)):
        out.append("state dir")
    out += [f"frr run dir {d}" for d in frr_run_dirs(prefix)]
    out += [f"FRR process {pid}" for pid in frr_processes(prefix)]
    return out


def test_down_removes_exactly_ours_and_foreign_lookalikes_survive():
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        tag = prefix.value
        path = write_topology(vm1, small_topology(tag))
        # look-alikes: a namespace and a bridge with our prefix, not ours
        foreign_ns = f"{tag}-1.A-foreign"
        foreign_br = f"{tag}-br9"
        sh("ip", "netns", "add", foreign_ns)
        vm1.vsctl("add-br", foreign_br, "--", "set", "bridge", foreign_br, "datapath_type=netdev")
        res = vm1.provision(path)
        assert res.returncode == 0, res.stderr
        assert leftovers(prefix, vm1, foreign=(foreign_ns, foreign_br))
        res = vm1.provision(path, "--down", "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["n_changes"] > 0
        assert leftovers(prefix, vm1, foreign=(foreign_ns, foreign_br)) == []
        assert os.path.exists(os.path.join(NETNS_DIR, foreign_ns))
        assert foreign_br in vm1.vsctl("list-br").split()
        # down again: nothing left to do
        res = vm1.provision(path, "--down", "--json")
        assert res.returncode == 0 and json.loads(res.stdout)["n_changes"] == 0


def test_a_namespace_of_the_same_name_that_is_not_ours_is_refused_and_kept():
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        tag = prefix.value
        path = write_topology(vm1, small_topology(tag))
        squatter = f"{tag}-2.C"
        sh("ip", "netns", "add", squatter)
        res = vm1.provision(path)
        assert res.returncode == 1
        assert f"VM1: {squatter} exists but is not ours" in res.stderr and "Traceback" not in res.stderr
        assert leftovers(prefix, vm1, foreign=(squatter,)) == []
        assert os.path.exists(os.path.join(NETNS_DIR, squatter))
        res = vm1.provision(path, "--down")          # and down does not touch it either
        assert res.returncode == 0 and os.path.exists(os.path.join(NETNS_DIR, squatter))


def test_failure_half_way_rolls_back_what_this_run_created(tmp_path):
    """bgpd of one router cannot start: the error names the server and router, and nothing is left."""
    fake = tmp_path / "frr"
    fake.mkdir()
    for daemon in ("zebra", "staticd", "ospfd", "ospf6d"):
        os.symlink(f"/usr/lib/frr/{daemon}", fake / daemon)
    (fake / "bgpd").write_text('#!/bin/sh\ncase "$*" in *2_C*) echo "bgpd: cannot bind" >&2; exit 1;; esac\n'
                               'exec /usr/lib/frr/bgpd "$@"\n')
    (fake / "bgpd").chmod(0o755)
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        path = write_topology(vm1, small_topology(prefix.value))
        res = vm1.provision(path, "--json", extra_env={"MINET_FRR_DIR": str(fake)})
        assert res.returncode == 1
        assert "error: VM1: 1 of " in res.stderr
        assert " daemons did not start: bgpd (1); first: router 2.C bgpd: bgpd: cannot bind" in res.stderr
        assert len([l for l in res.stderr.splitlines() if l.startswith("error:")]) == 1
        assert "Traceback" not in res.stderr
        report = json.loads(res.stdout)
        assert not report["ok"] and len(report["rolled_back"]) > 10
        assert leftovers(prefix, vm1) == []
        assert frr_processes(prefix) == []


def test_missing_package_is_reported_before_anything_is_made(tmp_path):
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        path = write_topology(vm1, small_topology(prefix.value))
        res = vm1.provision(path, extra_env={"MINET_FRR_DIR": str(tmp_path / "nowhere")})
        assert res.returncode == 1
        assert f"VM1: FRR daemon {tmp_path}/nowhere/zebra is missing (package frr)" in res.stderr
        assert leftovers(prefix, vm1) == []


def test_underlay_interface_is_moved_onto_an_ovs_bridge_and_back():
    """netdev datapath: the underlay IP sits on a plain interface and servers.VM1.interface names it."""
    with emulated_servers(("VM1", "192.0.2.1"), underlay_on_ovs=False) as (prefix, (vm1,)):
        tag = prefix.value
        text = small_topology(tag).replace("VM1: {underlay_ip: 192.0.2.1}",
                                           "VM1: {underlay_ip: 192.0.2.1, interface: uplink0}")
        path = write_topology(vm1, text)
        vm1.run("ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.254", "dev", "uplink0")
        res = vm1.provision(path)
        assert res.returncode == 0, res.stderr
        phy = f"{tag}-phy"
        assert "uplink0" in vm1.vsctl("list-ports", phy).split()
        assert "192.0.2.1/24" in vm1.run("ip", "-o", "addr", "show", "dev", phy).stdout
        assert "192.0.2.1" not in vm1.run("ip", "-o", "addr", "show", "dev", "uplink0").stdout
        assert f"dev {phy}" in vm1.run("ip", "route", "show", "198.51.100.0/24").stdout
        res = vm1.provision(path, "--json")
        assert res.returncode == 0 and json.loads(res.stdout)["n_changes"] == 0
        res = vm1.provision(path, "--down")
        assert res.returncode == 0, res.stderr
        assert phy not in vm1.vsctl("list-br").split()
        assert "192.0.2.1/24" in vm1.run("ip", "-o", "addr", "show", "dev", "uplink0").stdout
        assert "dev uplink0" in vm1.run("ip", "route", "show", "198.51.100.0/24").stdout


def test_underlay_on_a_plain_interface_without_interface_key_is_an_error():
    with emulated_servers(("VM1", "192.0.2.1"), underlay_on_ovs=False) as (prefix, (vm1,)):
        path = write_topology(vm1, small_topology(prefix.value))
        res = vm1.provision(path)
        assert res.returncode == 1
        assert "underlay_ip 192.0.2.1 is on uplink0, which is not an Open vSwitch port" in res.stderr
        assert "servers.VM1.interface: uplink0" in res.stderr
        assert leftovers(prefix, vm1) == []


def test_a_changed_topology_converges():
    """Re-running with an edited topology adds what is new, restarts routers whose config changed,
    and removes what is no longer planned (nodes, bridge ports, interfaces)."""
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        tag = prefix.value
        path = write_topology(vm1, small_topology(tag))
        assert vm1.provision(path).returncode == 0
        old_pid = int(open(os.path.join(vm1.state_dir, tag, "VM1", "frr", "1.A", "bgpd.pid")).read())
        edited = topology_yaml(
            tag, {"VM1": {"underlay_ip": "192.0.2.1"}, "VM2": {"underlay_ip": "192.0.2.2"}},
            {1: {"server": "VM1", "routers": ["A", "B"]}, 3: {"server": "VM2", "routers": ["D"]},
             4: {"server": "VM1", "routers": ["E"]}},
            [{"a": "1.A", "b": "4.E", "rel": "provider"}])       # link 1 now A--E; the remote link is gone
        path = write_topology(vm1, edited)
        res = vm1.provision(path, "--json")
        assert res.returncode == 0, res.stderr
        changes = json.loads(res.stdout)["changes"]
        assert f"removed stale node {tag}-2.C" in changes and f"removed stale node {tag}-2.C.host" in changes
        assert f"created node {tag}-4.E" in changes
        assert "1.A: FRR restarted for the new configuration" in changes
        assert f"removed stale bridge {tag}-br2" in changes
        assert not os.path.exists(os.path.join(NETNS_DIR, f"{tag}-2.C"))
        assert f"{tag}-br2" not in vm1.vsctl("list-br").split()
        assert f"{tag}-l2" not in vm1.run("ip", "-o", "link", "show").stdout
        new_pid = int(open(os.path.join(vm1.state_dir, tag, "VM1", "frr", "1.A", "bgpd.pid")).read())
        assert new_pid != old_pid
        assert json.loads(vm1.provision(path, "--json").stdout)["n_changes"] == 0
        assert vm1.provision(path, "--down").returncode == 0
        assert leftovers(prefix, vm1) == []


def hung_bgpd(prefix):
    """The fake bgpd that never daemonizes (`sleep 60`) runs in one of the prefix's namespaces."""
    inodes = {ns_inode(os.path.join(NETNS_DIR, n)) for n in prefix.namespaces()} - {None}
    for pid in pids_in_namespaces(inodes):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read() == b"sleep\x0060\x00":
                    return True
        except OSError:
            pass
    return False


def test_sigterm_half_way_rolls_back(tmp_path):
    """Killed (SIGTERM) while daemons start: what the run created is removed, then it exits."""
    import subprocess
    fake = tmp_path / "frr"
    fake.mkdir()
    for daemon in ("zebra", "staticd", "ospfd", "ospf6d"):
        os.symlink(f"/usr/lib/frr/{daemon}", fake / daemon)
    (fake / "bgpd").write_text("#!/bin/sh\nexec sleep 60\n")      # never daemonizes
    (fake / "bgpd").chmod(0o755)
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        path = write_topology(vm1, small_topology(prefix.value))
        env = vm1.env
        env["MINET_FRR_DIR"] = str(fake)
        proc = subprocess.Popen(["nsenter", f"--net={NETNS_DIR}/{vm1.ns}", "--", *provision_command(),
                                 "--topology", path, "--server", "VM1"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            for line in proc.stderr:
                if "FRR routers" in line:
                    break
            # daemons are starting once the fake bgpd hangs in a router's namespace
            wait_until(lambda: proc.poll() is not None or hung_bgpd(prefix), 30)
            assert proc.poll() is None, proc.stderr.read()
            proc.terminate()
            err = proc.stderr.read()
            assert proc.wait(timeout=60) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "error: VM1: interrupted" in err and "Traceback" not in err
        assert leftovers(prefix, vm1) == []
