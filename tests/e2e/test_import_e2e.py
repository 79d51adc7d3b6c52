"""End to end: a mini-Internet folder imported, placed on two servers and brought up.

`minet import mini-internet tests/fixtures/mini_internet/small --servers 2` -> validate -> `lab up`:
every BGP session establishes over the imported intra-AS links (as written, not a ring) and with
the IXP's route server (partition places the IXP like an AS: here a member lands on the other
server and reaches the peering LAN over an IXP segment), the
links carry their shaping (tbf at the imported rates on every router end; the delay flagged where
the kernel has no netem), and `lab status` / `minet link list` show it. Needs root, OvS, FRR, sshd.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from e2e_support import imported_lab, require_lab
from minet_sdn.cli.main import main
from minet_sdn.lab import convergence, places
from minet_sdn.lab.lab import Lab
from minet_sdn.provision.shaping import netem_available
from minet_sdn.topology import load_topology

pytestmark = pytest.mark.root

require_lab("vtysh", "tc")

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "mini_internet" / "small"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with imported_lab(SMALL, tmp_path_factory.mktemp("import"), "im") as (path, summary):
        yield path, load_topology(path), summary


def test_imported_topology_comes_up(lab):
    path, topo, summary = lab
    assert len(topo.servers) == 2
    (ixp,) = topo.ixps.values()
    # placement is free: both servers hold routers, and each member apart from the IXP has a segment
    assert {a.server for a in topo.ases.values()} == {"VM1", "VM2"}
    apart = [m.router for m in ixp.members if topo.server_of(m.router) != ixp.server]
    assert apart and [s.a.router for s in topo.ixp_segments] == apart
    s = summary["bgp_sessions"]
    families = 2 if topo.fabric.ipv6 else 1                   # dual stack: an IPv4 and an IPv6 session each
    assert s["expected"] == (families * (2 * len(topo.links) + sum(len(a.routers) * (len(a.routers) - 1)
                                                                   for a in topo.ases.values()))
                             + families * len(ixp.members))  # each member with the route server (dual-stack LAN)
    assert s["established"] == s["expected"]
    st = Lab(path).status(json=True)
    for report in st["bgp"]:
        if report["router"] in {m.router for m in ixp.members}:
            assert {"peer": ixp.route_server_ip, "remote_as": 100, "state": "Established", "expected": True,
                    "afi": "ipv4", "family": "ipv4Unicast"} in report["sessions"]
    # OSPF runs over the imported links: AS 1's triangle gives ZURI two OSPF neighbours
    place = places.router_place(topo, "1.ZURI")
    out = convergence.vtysh(place, "show ip ospf neighbor")
    assert out is not None and out.count("Full") == 2


def test_status_and_link_list_show_the_shaping(lab, capsys):
    path, topo, _ = lab
    st = Lab(path).status(json=True)
    rows = {r["link"]: r for r in st["shaping"]}
    assert set(rows) == {"link 1", "link 2", "link 3", "1.ZURI-1.GENE", "1.GENE-1.BASE", "1.BASE-1.ZURI",
                         "2.PARI-2.LYON", "ixp100 1.BASE", "ixp100 2.PARI", "ixp100 3.LOND"}
    assert rows["link 3"]["configured"] == "1mbit 1ms buf 64kb"
    assert all(v.startswith("tbf 1mbit") for v in rows["link 3"]["ends"].values())
    assert all(v.startswith("tbf 20mbit") for v in rows["1.BASE-1.ZURI"]["ends"].values())
    assert len(rows["link 1"]["ends"]) == 2                    # both ends, whichever servers they are on
    assert all(r["delay_applied"] is netem_available() for r in rows.values())
    text = Lab(path).status()
    assert "shaped links" in text
    assert main(["link", "list", path]) == 0
    out = capsys.readouterr().out
    assert "throughput 1mbit delay 1ms buffer 64kb" in out


def test_imported_lab_uses_the_mini_internet_addresses(lab):
    """The imported folder's plan, not minet's: 1.ZURI has 179.1.2.1 on its link to 2.PARI (the
    Subnet column 179.1.2.0/24, AS number as host part), its loopback 1.151.0.1, its host 1.101.0.1;
    the eBGP session on 179.1.2.2 is Established."""
    import json
    import subprocess
    path, topo, _ = lab
    assert topo.plan == "mini-internet"
    link = topo.links[0]
    assert (link.a.router, link.a.ip, link.b.router, link.b.ip) == ("1.ZURI", "179.1.2.1", "2.PARI", "179.1.2.2")
    place = places.router_place(topo, "1.ZURI")
    out = subprocess.run(place.exec_prefix() + ["ip", "-j", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    addrs = {(i["ifname"], f"{a['local']}/{a['prefixlen']}") for i in json.loads(out) for a in i.get("addr_info", [])}
    assert (link.a.ifname, "179.1.2.1/24") in addrs and ("lo", "1.151.0.1/32") in addrs
    assert ("host", "1.101.0.2/24") in addrs
    report = next(r for r in Lab(path).status(json=True)["bgp"] if r["router"] == "1.ZURI")
    assert [(s["peer"], s["state"]) for s in report["sessions"] if s["peer"] == "179.1.2.2"] == [
        ("179.1.2.2", "Established")]
    # the host reaches another AS's host (2.PARI's: 2.101.0.1) across the mini-Internet addresses
    host = places.node_place(topo, "1.ZURI.host")
    ping = subprocess.run(host.exec_prefix() + ["ping", "-c", "3", "-w", "20", "2.101.0.1"],
                          capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr
