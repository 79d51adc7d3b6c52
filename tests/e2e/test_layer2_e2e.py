"""End to end: layer 2 in a two-server lab (docs/layer2.md).

VM1 holds AS 1 (configured) with data centre DCN: switch S1 (gateway ZURI) and S2, joined by a
trunk; host H10 in VLAN 10 on S1, H20 in VLAN 20 on S2; and AS 3 (`configure: false`, a students'
AS) with switch S1 (gateway GENE) and host H3. VM2 holds AS 2 (configured, no layer 2). Checked:
AS 1's hosts in both VLANs reach their gateway and AS 2's host, in IPv4 and IPv6, and AS 2's host
reaches them (the VLAN networks are announced); in AS 3 nothing is configured, so once a student
gives GENE's subinterface and H3 their addresses the host still cannot reach its gateway, until
`minet exec FILE 3.S1 -- ovs-vsctl set port 3-H3 tag=10` (the students' ovs-vsctl) puts its port in
VLAN 10; that ovs-vsctl refuses what is not the student's; `lab down` leaves no namespace and no
layer-2 Open vSwitch of the lab. Needs root, OvS, FRR, sshd.
"""
from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest

from e2e_support import lab_namespaces, live_processes, require_lab
from tests.polling import wait_until
from minet_sdn.importers import to_yaml
from minet_sdn.lab import quiet
from minet_sdn.lab.lab import Lab
from minet_sdn.topology import load_topology

pytestmark = pytest.mark.root

require_lab("ping")


def topology(name: str) -> dict:
    return {
        "name": name, "servers": ["VM1", "VM2"],
        "ases": {
            1: {"server": "VM1", "routers": ["ZURI", "BASE"],
                "layer2": {"switches": {"S1": {"dc": "DCN", "router": "ZURI", "stp_priority": 1},
                                        "S2": {"dc": "DCN"}},
                           "hosts": {"H10": {"switch": "S1", "vlan": 10}, "H20": {"switch": "S2", "vlan": 20}},
                           "links": [{"a": "S1", "b": "S2"}]}},
            2: {"server": "VM2", "routers": ["PARI"]},
            3: {"server": "VM1", "routers": ["GENE"], "configure": False,
                "layer2": {"switches": {"S1": {"dc": "DCN", "router": "GENE"}},
                           "hosts": {"H3": {"switch": "S1", "vlan": 10}}}},
        },
        "links": [{"a": "1.ZURI", "b": "2.PARI", "rel": "peer"}, {"a": "2.PARI", "b": "3.GENE", "rel": "provider"}],
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("layer2") / "l2.yaml")
    with open(path, "w") as fh:
        fh.write(to_yaml(topology(f"l2{secrets.token_hex(2)}")))
    lab = Lab(path, progress=lambda m: print(m, flush=True))
    try:
        lab.up()
        yield path, lab
    finally:
        Lab(path, progress=quiet).remove()


def minet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def sh(lab: Lab, node: str, *argv: str) -> subprocess.CompletedProcess:
    ns = lab.resolve(node)[0]
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60)


def reaches(lab: Lab, node: str, dst: str) -> bool:
    out = sh(lab, node, "ping", "-6" if ":" in dst else "-4", "-n", "-c", "1", "-W", "1", dst).stdout
    return bool(re.search(r"\b1 received", out))


def test_configured_hosts_in_two_vlans_reach_their_gateway_and_another_as(lab):
    path, lab = lab
    # default plan: AS 1's layer 2 is 172.16.16.0/20; DCN VLAN 10 -> .16.0/24, VLAN 20 -> .17.0/24;
    # ZURI (the only gateway) .1, the hosts .2; IPv6: /64 number 1 and 2 of fd0a:0:1::/48
    assert "172.16.16.2/24" in sh(lab, "1.H10", "ip", "-br", "addr").stdout
    pari_host = "10.0.2.130"
    for node, gw, gw6 in (("1.H10", "172.16.16.1", "fd0a:0:1:1::1"), ("1.H20", "172.16.17.1", "fd0a:0:1:2::1")):
        wait_until(lambda: reaches(lab, node, gw), 60, 0.5, f"{node} reaches its gateway {gw}")
        wait_until(lambda: reaches(lab, node, gw6), 30, 0.5, f"{node} reaches its gateway {gw6}")
        wait_until(lambda: reaches(lab, node, pari_host), 90, 0.5, f"{node} reaches AS 2's host")
    wait_until(lambda: reaches(lab, "2.PARI.host", "172.16.17.2"), 60, 0.5, "AS 2's host reaches 1.H20")
    # a host of VLAN 10 and one of VLAN 20 meet only through the router
    out = sh(lab, "1.H10", "traceroute", "-n", "-w", "1", "-q", "1", "172.16.17.2").stdout \
        if subprocess.run(["which", "traceroute"], capture_output=True).returncode == 0 else ""
    if out:
        assert "172.16.16.1" in out


def test_students_switch_is_wired_not_configured_until_the_student_sets_the_vlan(lab):
    path, lab = lab
    # wired, not addressed: the host's interface exists and has no IPv4 address, GENE's subinterface neither
    shown = sh(lab, "3.H3", "ip", "-o", "-4", "addr", "show", "dev", "3-S1")
    assert shown.returncode == 0 and shown.stdout.strip() == ""
    shown = sh(lab, "3.GENE", "ip", "-o", "-4", "addr", "show", "dev", "GENE-L2.10")
    assert shown.returncode == 0 and shown.stdout.strip() == ""
    # what the student does on router and host (upstream leaves both unaddressed too)
    assert sh(lab, "3.GENE", "ip", "addr", "add", "172.16.48.1/24", "dev", "GENE-L2.10").returncode == 0
    assert sh(lab, "3.H3", "ip", "addr", "add", "172.16.48.2/24", "dev", "3-S1").returncode == 0
    show = minet("exec", path, "3.S1", "--", "ovs-vsctl", "show")
    assert show.returncode == 0, show.stderr
    assert "Bridge br0" in show.stdout and "Port 3-H3" in show.stdout and "s1h1" not in show.stdout
    assert "Port GENErouter" in show.stdout and "tag:" not in show.stdout
    # untagged, the host's frames are in no VLAN the router's trunk carries
    assert not any(reaches(lab, "3.H3", "172.16.48.1") for _ in range(3))
    done = minet("exec", path, "3.S1", "--", "ovs-vsctl", "set", "port", "3-H3", "tag=10")
    assert done.returncode == 0, done.stderr
    assert "tag: 10" in minet("exec", path, "3.S1", "--", "ovs-vsctl", "show").stdout
    wait_until(lambda: reaches(lab, "3.H3", "172.16.48.1"), 30, 0.5, "3.H3 reaches GENE once its port is in VLAN 10")


def test_students_ovs_vsctl_refuses_what_is_not_theirs(lab):
    path, _ = lab
    for argv in (["del-br", "br0"], ["add-port", "br0", "x"], ["set", "port", "1-H10", "tag=20"],
                 ["set", "port", "3-H3", "other_config:x=1"], ["--db=unix:/tmp/x", "show"]):
        res = minet("exec", path, "3.S1", "--", "ovs-vsctl", *argv)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, (argv, res.stderr)
    # another group's switch is untouched
    assert "tag: 10" in minet("exec", path, "1.S1", "--", "ovs-vsctl", "show").stdout


def test_lab_down_leaves_nothing(lab):
    path, lab_ = lab
    topo = load_topology(path)
    Lab(path, progress=quiet).remove()
    assert lab_namespaces(topo) == []
    assert live_processes(lambda cmd: "l2ovs" in cmd and f"/{topo.name}/" in cmd) == []
