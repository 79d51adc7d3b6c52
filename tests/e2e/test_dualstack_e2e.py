"""End to end: dual stack (IPv4 + IPv6 routing) over {gre, vxlan} x {IPv4, IPv6 underlay}.

One demo-sized lab (topologies/demo.yaml: 3 servers, 8 routers) per combination, each with a
1500-byte underlay so the tunnel overhead the model computes for the real outer header is
checked against a real limit. Isolation alternates between key and tos so both modes run on both
encapsulations and both underlay families. Per lab: IPv4 and IPv6 BGP sessions (eBGP per link,
iBGP per AS) Established, all-pairs host reachability in both families, full-size packets in both
families across remote links, tunnels of the right type and family with BFD up, isolation seen on
the wire (tunnel key / VNI or DSCP per link) and on the bridge ports, failover of a remote link
(both families' sessions drop at once, traffic reroutes) and of a server's underlay (BFD).
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from itertools import permutations
from typing import List

import pytest

from e2e_support import capture, captured, demo_variant, link_failed, require_lab, stop_capture, wait_all
from tests.polling import wait_until
from minet_sdn.lab import controller, convergence, paths, places, quiet, system
from minet_sdn.lab.lab import Lab as MinetLab   # the test's own Lab below is a helper
from minet_sdn.topology import names
from minet_sdn.topology import load_topology
from minet_sdn.topology.addressing import topology_addressing, topology_addressing6

pytestmark = pytest.mark.root

require_lab("vtysh", "ping", "tcpdump")

UNDERLAY6 = {"VM1": "2001:db8:6d6e::1", "VM2": "2001:db8:6d6e::2", "VM3": "2001:db8:6d6e::3"}
COMBOS = [("gre", 4, "key"), ("gre", 6, "tos"), ("vxlan", 4, "tos"), ("vxlan", 6, "key")]


def _variant(encap: str, family: int, isolation: str):
    def change(data: dict) -> None:
        data["fabric"] = {"isolation": isolation, "encapsulation": encap, "underlay_mtu": 1500}
        if family == 6:
            for name, spec in data["servers"].items():
                spec["underlay_ip"] = UNDERLAY6[name]
    return change


class Lab:
    def __init__(self, path: str):
        self.path = path
        self.topo = load_topology(path)
        a4 = topology_addressing(self.topo)
        a6 = topology_addressing6(self.topo, a4)
        configured = [asn for asn, as_ in self.topo.ases.items() if as_.configure]
        self.hosts4 = {f"{asn}.{n}.host": r.host_ip for asn in configured for n, r in a4[asn].routers.items()}
        self.hosts6 = {f"{asn}.{n}.host": r.host_ip for asn in configured for n, r in a6[asn].routers.items()}
        self.loopbacks6 = {f"{asn}.{n}": r.loopback for asn in configured for n, r in a6[asn].routers.items()}

    def ns(self, node: str) -> str:
        return places.resolve_node(self.topo, node)[0]

    def run(self, node: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns(node), *argv], capture_output=True,
                              text=True, timeout=timeout)

    def ping(self, node: str, dst: str, count: int = 1, size: int = 56, df: bool = False,
             interval: str = "0.2") -> int:
        argv = ["ping", "-6" if ":" in dst else "-4", "-n", "-c", str(count), "-i", interval, "-W", "1",
                "-s", str(size)] + (["-M", "do"] if df else [])
        m = re.search(r"(\d+) received", self.run(node, *argv, dst).stdout)
        return int(m.group(1)) if m else 0

    def sessions(self, router: str) -> dict:
        return {s["peer"]: s["state"] for s in convergence.bgp_sessions(self.topo, router)["sessions"]}

    def vsctl(self, server: str, *args: str) -> str:
        return system.ovs_vsctl(paths.server_dir(self.topo, server), *args)


@pytest.fixture(scope="module", params=COMBOS, ids=lambda c: f"{c[0]}-ipv{c[1]}-underlay-{c[2]}")
def lab(request, tmp_path_factory):
    encap, family, isolation = request.param
    path = demo_variant(tmp_path_factory.mktemp(f"ds-{encap}{family}"), "dl",
                        "demo.yaml", _variant(encap, family, isolation))
    try:
        t0 = time.monotonic()
        summary = MinetLab(path, progress=lambda m: print(m, flush=True)).up()
        print(f"lab up ({encap}, IPv{family} underlay, {isolation}): {time.monotonic() - t0:.1f} s", flush=True)
        yield Lab(path), summary, request.param
    finally:
        MinetLab(path, progress=quiet).remove()


def _expected_sessions(topo) -> int:
    """Per family: eBGP on every link between configured ASes (both ends) + iBGP full mesh."""
    n = sum(2 for l in topo.links if topo.ases[l.a.asn].configure and topo.ases[l.b.asn].configure)
    n += sum(len(a.routers) * (len(a.routers) - 1) for a in topo.ases.values() if a.configure)
    return 2 * n


def test_ipv4_and_ipv6_sessions_established(lab):
    lab, summary, _ = lab
    topo = lab.topo
    assert summary["bgp_sessions"]["established"] == summary["bgp_sessions"]["expected"] == _expected_sessions(topo)
    for router in convergence.configured_routers(topo):
        sessions = lab.sessions(router)
        asn = topo.routers[router].asn
        for link in topo.links:
            for me, far in ((link.a, link.b), (link.b, link.a)):
                if me.router == router and topo.ases[far.asn].configure:
                    assert sessions.get(far.ip) == "Established", (router, link.id, sessions)
                    assert sessions.get(far.ip6) == "Established", (router, link.id, sessions)
        for other, lo6 in lab.loopbacks6.items():
            if other != router and topo.routers[other].asn == asn:
                assert sessions.get(lo6) == "Established", (router, other, sessions)
    # `lab status` lists the IPv6 sessions, with their family
    st = MinetLab(lab.path).status(json=True)
    afis = {s["afi"] for r in st["bgp"] for s in r["sessions"]}
    assert afis == {"ipv4", "ipv6"}
    assert topo.link(1).b.ip6 in MinetLab(lab.path).status()


def test_all_pairs_reachable_in_both_families(lab):
    lab, _, _ = lab
    hosts = {"4": lab.hosts4, "6": lab.hosts6}
    pairs = [(a, b, fam) for fam, of in hosts.items() for a, b in permutations(of, 2)]
    # sessions are up; routes may still be spreading
    wait_all(pairs, lambda p: lab.ping(p[0], hosts[p[2]][p[1]]) == 1, 40, "every host pair to reach each other")


def test_full_size_packets_and_tunnels_of_the_underlay_family(lab):
    lab, _, (encap, family, _) = lab
    topo = lab.topo
    mtu = topo.fabric.link_mtu
    overhead = {("gre", 4): 42, ("gre", 6): 62, ("vxlan", 4): 50, ("vxlan", 6): 70}[(encap, family)]
    assert mtu == 1500 - overhead                   # measured by hand on OvS 3.1 userspace (README)
    # the tunnel ports: the planned type, a remote_ip of the underlay family, BFD up
    for bridge in topo.bridges.values():
        row = lab.vsctl(bridge.server, "--format=json", "--columns=type,options,bfd_status", "list",
                        "Interface", bridge.tunnel_port)
        doc = json.loads(row)
        data = dict(zip(doc["headings"], doc["data"][0]))
        assert data["type"] == encap
        options = dict(data["options"][1])
        assert (":" in options["remote_ip"]) == (family == 6)
        assert dict(data["bfd_status"][1]).get("state") == "up", (bridge.name, data)
    # full-size packets (the link MTU, DF set) across remote links, host to host, both families
    pairs = [("1.ZURI.host", "2.PARI.host"), ("5.ROMA.host", "1.ZURI.host"), ("2.PARI.host", "5.ROMA.host")]
    for src, dst in pairs:
        assert lab.ping(src, lab.hosts4[dst], count=2, size=mtu - 28, df=True) == 2, (src, dst, mtu)
        assert lab.ping(src, lab.hosts6[dst], count=2, size=mtu - 48, df=True) == 2, (src, dst, mtu)
    # and on a remote link itself (link 8, BERN - LYON, VM1 - VM2)
    l8 = topo.link(8)
    assert lab.ping(l8.a.router, l8.b.ip, count=2, size=mtu - 28, df=True) == 2
    assert lab.ping(l8.a.router, l8.b.ip6, count=2, size=mtu - 48, df=True) == 2


def test_isolation_on_the_wire_and_on_the_bridge_ports(lab):
    lab, _, (encap, family, isolation) = lab
    topo = lab.topo
    l8 = topo.link(8)                               # BERN (VM1) - LYON (VM2)
    # on the underlay: VM1's port of the underlay bridge carries link 8's packets with its mark
    outer = "udp port 4789" if encap == "vxlan" else ("ip6 proto 47" if family == 6 else "ip proto 47")
    wire = capture(names.underlay_ns(topo), names.underlay_peer_ifname(topo, "VM1"), outer, verbose=True,
                   ethernet=False)
    # on the bridge ports: link 8's frames never reach another link's port on the far server
    mine = f"host {l8.a.ip} or host {l8.b.ip} or host {l8.a.ip6} or host {l8.b.ip6}"
    others = [capture(names.server_ns(topo, "VM2"), topo.link_port_name(lid), mine, ethernet=False)
              for lid in topo.bridge("VM2", "VM1").link_ids if lid != 8]

    def of_link(text: str) -> List[str]:
        # tcpdump -vv prints the outer header, then the inner packet on the following line(s)
        packets = re.split(r"\n(?=\d\d:\d\d:\d\d\.)", text)
        return [p for p in packets if f"{l8.a.ip} > {l8.b.ip}" in p or f"{l8.a.ip6} > {l8.b.ip6}" in p]
    try:
        assert lab.ping(l8.a.router, l8.b.ip, count=5, interval="0.05") == 5
        assert lab.ping(l8.a.router, l8.b.ip6, count=5, interval="0.05") == 5
        # until tcpdump has printed the 10 echo requests on the wire: the other ports had as long
        wait_until(lambda: len(of_link(captured(wire))) >= 10, 5, interval=0.2,
                   what="tcpdump to print link 8's echo requests")
    finally:
        text = stop_capture(wire)
        leaked = [stop_capture(h).strip() for h in others]
    assert leaked == [""] * len(others), leaked
    mark = topo.link_marks[8]
    for p in of_link(text):
        if isolation == "key":
            want = f"vni {l8.id}" if encap == "vxlan" else f"key=0x{l8.id:x}"
            assert want in p, p
        else:
            # the inner packet's traffic class carries the link's DSCP (tcpdump shows the byte)
            inner = p.split("\n", 1)[1] if "\n" in p else p
            assert re.search(r"(tos|class) 0x%x\b" % (mark << 2), inner), p


def test_remote_link_failover_drops_both_families_and_reroutes(lab):
    lab, _, _ = lab
    topo = lab.topo
    l8 = topo.link(8)

    def both_down():
        s = lab.sessions(l8.a.router)
        return s.get(l8.b.ip) != "Established" and s.get(l8.b.ip6) != "Established"
    with link_failed(lab.path, l8.id):
        wait_until(both_down, 10, interval=0.2, what="BERN's IPv4 and IPv6 sessions over the failed link 8 to drop")
        # AS3 still reaches AS4 through AS1 and AS2, in both families
        wait_until(lambda: lab.ping("3.BERN.host", lab.hosts4["4.LYON.host"]) == 1
                   and lab.ping("3.BERN.host", lab.hosts6["4.LYON.host"]) == 1, 30, interval=0.2,
                   what="AS3 to reach AS4 around the failed link in both families")
    ok, reports = convergence.wait_bgp(topo, timeout=60)
    assert ok, [r for r in reports if not convergence.bgp_converged(r)]


def test_underlay_cut_is_seen_by_bfd_and_heals(lab):
    lab, _, _ = lab
    topo = lab.topo
    hit = {l.id for l in topo.remote_links if "VM3" in l.servers()}
    ul_ns, veth = names.underlay_ns(topo), names.underlay_peer_ifname(topo, "VM3")
    subprocess.run(["ip", "-n", ul_ns, "link", "set", veth, "down"], check=True, timeout=10)
    try:
        def hit_down():
            code, body = controller.rest_call(lab.path, "GET", "/v1/links")
            states = {l["id"]: l["state"] for l in body["links"]} if code == 200 else {}
            return all(states.get(i) == "down" for i in hit) and states
        states = wait_until(hit_down, 5, interval=0.2, what="BFD to take the VM3 links down")
        assert {i for i, s in states.items() if s != "up"} == hit
    finally:
        subprocess.run(["ip", "-n", ul_ns, "link", "set", veth, "up"], check=True, timeout=10)
    ok, reports = convergence.wait_bgp(topo, timeout=60)
    assert ok, [r for r in reports if not convergence.bgp_converged(r)]
    # sessions Established is not routes installed: allow the routes a moment to come back
    wait_until(lambda: lab.ping("5.ROMA.host", lab.hosts4["1.ZURI.host"]) == 1
               and lab.ping("5.ROMA.host", lab.hosts6["1.ZURI.host"]) == 1, 30, interval=0.2,
               what="AS5 to reach AS1 again in both families")
