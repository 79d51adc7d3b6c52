"""End to end: a folder in the shape of the mini-Internet's current configuration, imported and up
with its layer 2, its addressing plan and its services.

tests/fixtures/mini_internet_lab/ (written for this test): AS 1, a one-router tier 1 whose ALL rows
place DNS, MATRIX, MATRIX_TARGET and MEASUREMENT (and an RPKI image, reported as not emulated);
AS 2, configured, with layer 2 in two data centres (S1+S2 behind NORD, S3 behind SUED, hosts in
VLANs 10 and 20, an L2 tunnel); AS 3, NoConfig, with one switch and one host (wired, left to the
students); AS 4, a configured stub. `minet import mini-internet --servers 2` -> validate -> `lab
up`, which returns only once the configured routers have converged with the students' AS silent.
Checked: the layer-2 hosts of AS 2 carry the plan's addresses (X.(200+dc).VLAN.n) and reach their
gateway and a host of AS 4 across AS 1; AS 3's switch and host exist and are unconfigured; the DNS
server answers a layer-2 host, forward and reverse; `lab down` leaves no namespace and no process.
Needs root, OvS, FRR, sshd, nsd (the DNS part skips without it).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from e2e_support import imported_lab, lab_namespaces, live_processes, require_lab
from minet_sdn.lab import quiet
from minet_sdn.lab.lab import Lab
from minet_sdn.topology import load_topology
from tests.polling import wait_until

pytestmark = pytest.mark.root

require_lab("ping")

FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "mini_internet_lab"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    # imported, validated, up on 2 servers; removed also when up() or a test failed
    with imported_lab(FOLDER, tmp_path_factory.mktemp("milab"), "mi") as (path, summary):
        yield path, Lab(path, progress=quiet), summary


def sh(lab: Lab, node: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    ns = lab.resolve(node)[0]
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)


def reaches(lab: Lab, node: str, dst: str) -> bool:
    out = sh(lab, node, "ping", "-n", "-c", "1", "-W", "1", dst).stdout
    return bool(re.search(r"\b1 received", out))


def test_up_with_every_configured_session_established(lab):
    path, _, summary = lab
    topo = load_topology(path)
    assert {asn: a.configure for asn, a in topo.ases.items()} == {1: True, 2: True, 3: False, 4: True}
    s = summary["bgp_sessions"]
    assert s["expected"] > 0 and s["established"] == s["expected"]
    # the folder's layer 2 is the topology's: switches of both layer-2 ASes, the students' too
    assert [sw.name for sw in topo.ases[2].layer2.switches] == ["S1", "S2", "S3"]
    assert [sw.name for sw in topo.ases[3].layer2.switches] == ["SX"]


def test_layer2_hosts_have_the_plans_addresses_and_reach_their_gateway_and_another_as(lab):
    _, lab, _ = lab
    # X.(200+dc).VLAN.0/24: DCA is data centre 0, DCB 1; the gateway router .1, then the hosts
    assert "2.200.10.2/24" in sh(lab, "2.web_1", "ip", "-br", "addr").stdout
    assert "2.200.20.2/24" in sh(lab, "2.db_1", "ip", "-br", "addr").stdout
    assert "2.201.10.2/24" in sh(lab, "2.web_2", "ip", "-br", "addr").stdout
    for node, gw in (("2.web_1", "2.200.10.1"), ("2.db_1", "2.200.20.1"), ("2.web_2", "2.201.10.1")):
        assert wait_until(lambda: reaches(lab, node, gw), 60, 0.5), f"{node} does not reach its gateway {gw}"
    # AS 4's host (4.101.0.1) is two AS hops away, through the tier 1
    for node in ("2.web_1", "2.db_1", "2.web_2"):
        assert wait_until(lambda: reaches(lab, node, "4.101.0.1"), 90, 0.5), f"{node} does not reach AS 4's host"


def test_students_layer2_is_wired_not_configured(lab):
    _, lab, _ = lab
    shown = sh(lab, "3.desk_1", "ip", "-o", "-4", "addr", "show", "dev", "3-SX")
    assert shown.returncode == 0 and shown.stdout.strip() == ""
    shown = sh(lab, "3.MUNI", "ip", "-o", "-4", "addr", "show", "dev", "MUNI-L2.10")
    assert shown.returncode == 0 and shown.stdout.strip() == ""


@pytest.mark.skipif(shutil.which("nsd") is None or shutil.which("host") is None, reason="nsd or host not installed")
def test_dns_answers_a_layer2_host(lab):
    _, lab, _ = lab

    def answer(*query: str) -> str:
        return sh(lab, "2.web_1", "host", "-W", "2", *query).stdout

    assert wait_until(lambda: "179.1.2.1" in answer("zuri.group1"), 60, 1), answer("zuri.group1")
    assert "zuri.group1" in answer("179.1.2.1")


def test_lab_down_leaves_nothing(lab):
    path, _, _ = lab
    topo = load_topology(path)
    Lab(path, progress=quiet).remove()
    assert lab_namespaces(topo) == []
    assert live_processes(lambda cmd: f"/{topo.name}/" in cmd or f"{topo.tag}-" in cmd) == []
