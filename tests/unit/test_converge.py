"""provision.converge: waiting for BGP on a set of routers through any way of asking them (here a
fake answering like FRR's JSON), the one-line account of what is missing, and `minet-provision
--wait` refusing what it cannot do."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from minet_sdn.provision import converge
from minet_sdn.topology import load_topology
from minet_sdn.topology.addressing import topology_addressing, topology_addressing6

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DEMO = os.path.join(ROOT, "topologies", "demo.yaml")
MINIMAL = os.path.join(ROOT, "topologies", "minimal.yaml")


class FakeRouters:
    """Answers `show bgp summary json` and the route tables as FRR would once the topology has
    converged, except for what a test holds back: sessions still Active, routers that do not
    answer (for a number of polls, or for ever)."""

    def __init__(self, topo):
        self.topo = topo
        self.a4 = topology_addressing(topo)
        self.a6 = topology_addressing6(topo, self.a4)
        self.active = {}          # router -> polls left with its sessions Active
        self.silent = set()
        self.asked = []

    def peers(self, router):
        out = {}
        unconfigured = {asn for asn, a in self.topo.ases.items() if not a.configure}
        for link in self.topo.links:
            for me, far in ((link.a, link.b), (link.b, link.a)):
                if me.router == router:
                    state = "Active" if self.active.get(router) or far.asn in unconfigured else "Established"
                    out[far.ip] = {"remoteAs": far.asn, "state": state}
                    out[far.ip6] = {"remoteAs": far.asn, "state": state}
        return out

    def __call__(self, router, command, timeout):
        self.asked.append((router, command))
        if router in self.silent:
            return None
        if command == "show bgp summary json":
            left = self.active.get(router, 0)
            peers = self.peers(router)
            self.active[router] = max(0, left - 1)
            return json.dumps({"ipv4Unicast": {"peers": peers}})
        table = self.a4 if command == "show ip route json" else self.a6
        return json.dumps({a.prefix: [{}] for a in table.values()})


@pytest.fixture
def demo():
    return load_topology(DEMO)


def configured(topo):
    return [r for r, a in topo.routers.items() if a.configure]


def test_waits_until_every_session_and_route_and_asks_converged_routers_no_more(demo):
    fake = FakeRouters(demo)
    routers = configured(demo)
    slow = routers[0]
    fake.active[slow] = 3                               # its sessions come up at the 4th poll
    notes = []
    ok, reports = converge.wait_converged(demo, routers, fake, timeout=30, interval=0, routes=True,
                                          progress=notes.append)
    assert ok and [r["router"] for r in reports] == routers
    assert all(converge.bgp_converged(r) and r["routes_missing"] == [] for r in reports)
    polls = {r: sum(1 for x, c in fake.asked if x == r and c == "show bgp summary json") for r in routers}
    assert polls[slow] == 4 and all(n == 1 for r, n in polls.items() if r != slow)
    up, total = converge.count_sessions(reports)
    assert up == total > 0
    assert notes[-1].startswith(f"BGP: all {total} sessions established on {len(routers)} routers")


def test_gives_up_at_the_deadline_and_says_why_in_one_line(demo):
    fake = FakeRouters(demo)
    routers = configured(demo)
    fake.silent.add(routers[1])
    fake.active[routers[0]] = 10 ** 6
    ok, reports = converge.wait_converged(demo, routers, fake, timeout=0.2, interval=0.05)
    assert not ok
    line = converge.not_converged(reports)
    assert "\n" not in line
    assert line.startswith(f"2 of {len(routers)} routers not converged: {routers[0]} sessions not established: ")
    assert f"; {routers[1]} does not answer" in line


def test_routes_missing_names_the_ases(demo):
    fake = FakeRouters(demo)
    router = configured(demo)[0]
    own = demo.routers[router].asn
    other = next(a for a, x in demo.ases.items() if x.configure and a != own)
    gone = fake.a6[other].prefix

    def table(command):
        doc = json.loads(fake(router, command, 1))
        doc.pop(gone, None)
        return json.dumps(doc)
    assert converge.routes_missing(demo, router, table) == [other]            # IPv4 complete, IPv6 not
    report = converge.bgp_sessions(demo, router, fake(router, "show bgp summary json", 1))
    report["routes_missing"] = [other]
    assert converge.not_converged([report]) == f"1 of 1 routers not converged: {router} no route to AS {other}"


@pytest.mark.parametrize("args", [["--wait", "soon"], ["--wait", "0"], ["--wait", "1e9"],
                                  ["--wait", "5", "--down"], ["--wait", "--plan"]])
def test_bad_wait_values_are_one_line_and_exit_2(args):
    res = subprocess.run([sys.executable, "-m", "minet_sdn.cli.provision", "--topology", MINIMAL, "--server", "VM1",
                          *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("minet-provision: ") and "--wait" in line
