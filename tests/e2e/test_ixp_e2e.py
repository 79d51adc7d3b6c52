"""End to end: an IXP whose members sit on both servers of a small lab.

VM1 holds IXP 100 (route server + peering LAN) and members 1.A and 2.B; VM2 holds members 3.C and
4.D, which reach the LAN through IXP segments over the remote bridges (tunnel key or DSCP, as any
remote link), and link 1 (1.A - 3.C) is an ordinary remote link beside them. 2.B announces to AS 1
only. Checked: every session with the route server Established, routes learned through it with the
other member as next hop (transparent), announce_to honoured (AS 2's prefix reaches AS 1 only),
member-to-member reachability through the IXP (VM2 to VM1 and VM2 to VM2 through VM1's LAN),
full-size packets, all of it in IPv4 and IPv6 (the LAN is dual stack), ARP for LAN addresses
answered by the datapath (not static; IPv6 neighbours are static, from the topology), and isolation by
capture: nothing of the LAN on link 1's ports, a member's traffic absent from other members'
ports, the segment's key or DSCP on the underlay. Needs root, OvS, FRR, sshd, tcpdump.
"""
from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from typing import List

import pytest

from e2e_support import capture, captured, require_lab, stop_capture
from tests.polling import wait_until
from minet_sdn.importers import to_yaml
from minet_sdn.lab import convergence, paths, places, quiet
from minet_sdn.lab.lab import Lab
from minet_sdn.topology import names
from minet_sdn.topology import load_topology
from minet_sdn.topology.addressing import topology_addressing
from minet_sdn.topology.model import ixp_mac

pytestmark = pytest.mark.root

require_lab("vtysh", "ping", "tcpdump")

LAN = "198.18.0"          # IXP 100's default peering LAN: RS .1, members .2 .. .5 in order
LAN6 = "fd00:6978:0:1:"   # and its IPv6 LAN (dual stack): RS ::1, members ::2 .. ::5


def topology(name: str, isolation: str) -> dict:
    return {"name": name, "fabric": {"isolation": isolation},
            "servers": ["VM1", "VM2"],
            "ases": {1: {"server": "VM1", "routers": ["A"]}, 2: {"server": "VM1", "routers": ["B"]},
                     3: {"server": "VM2", "routers": ["C"]}, 4: {"server": "VM2", "routers": ["D"]}},
            "links": [{"a": "1.A", "b": "3.C", "rel": "peer"}],
            "ixps": {100: {"server": "VM1",
                           "members": ["1.A", {"router": "2.B", "announce_to": [1]}, "3.C", "4.D"]}}}


@pytest.fixture(scope="module", params=("key", "tos"))
def lab(request, tmp_path_factory):
    path = str(tmp_path_factory.mktemp(f"ixp-{request.param}") / "ixp.yaml")
    with open(path, "w") as fh:
        fh.write(to_yaml(topology(f"ix{secrets.token_hex(2)}", request.param)))
    topo = load_topology(path)
    try:
        t0 = time.monotonic()
        summary = Lab(path, progress=lambda m: print(m, flush=True)).up()
        print(f"lab up ({request.param}): {time.monotonic() - t0:.1f} s", flush=True)
        yield path, topo, summary
    finally:
        Lab(path, progress=quiet).remove()


def run(topo, node: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", places.resolve_node(topo, node)[0], *argv], capture_output=True,
                          text=True, timeout=timeout)


def ping(topo, node: str, dst: str, count: int = 3, size: int = 56, df: bool = False) -> int:
    argv = ["ping", "-6" if ":" in dst else "-4", "-n", "-c", str(count), "-i", "0.2", "-W", "1", "-s", str(size)] + (["-M", "do"] if df else [])
    m = re.search(r"(\d+) received", run(topo, node, *argv, dst).stdout)
    return int(m.group(1)) if m else 0


def vtysh_json(topo, router: str, cmd: str):
    out = convergence.vtysh(places.router_place(topo, router), cmd, timeout=20)
    return json.loads(out) if out else {}


def test_the_lab_has_members_on_both_servers(lab):
    _, topo, _ = lab
    assert [(s.a.router, s.a.server, s.b.server) for s in topo.ixp_segments] == [("3.C", "VM2", "VM1"),
                                                                                ("4.D", "VM2", "VM1")]
    assert len(topo.remote_links) == 1 and set(topo.bridge("VM2", "VM1").link_ids) == {1, 2, 3}


def test_every_member_has_its_route_server_session_established(lab):
    path, topo, summary = lab
    s = summary["bgp_sessions"]
    # link 1: both ends in two families; each member with the route server in two families
    assert s["expected"] == 2 * 2 + 4 * 2 and s["established"] == s["expected"]
    for m in topo.ixps[100].members:
        sessions = {x["peer"]: x for x in convergence.bgp_sessions(topo, m.router)["sessions"]}
        for rs, family in ((f"{LAN}.1", "ipv4Unicast"), (f"{LAN6}:1", "ipv6Unicast")):
            assert sessions[rs]["state"] == "Established" and sessions[rs]["remote_as"] == 100, (m.router, rs)
            assert sessions[rs]["family"] == family


def test_routes_through_the_route_server_keep_the_members_next_hop_and_honour_announce_to(lab):
    _, topo, _ = lab
    prefix = {asn: a.prefix for asn, a in topology_addressing(topo).items()}
    member_ip = {m.asn: m.ip for m in topo.ixps[100].members}

    def table(router):
        return vtysh_json(topo, router, "show ip bgp json").get("routes", {})

    def via_lan(router, asn):
        paths = table(router).get(prefix[asn], [])
        return [p for p in paths if any(h.get("ip") == member_ip[asn] for h in p.get("nexthops", []))]

    def learns(router, asn, via=via_lan, table=table, prefix=prefix):
        paths = wait_until(lambda: via(router, asn), 30, interval=0.5)
        assert paths, (router, asn, table(router).get(prefix[asn]))
        return paths

    # 4.D (VM2) learns AS 1 and AS 3 from the route server, next hop the member itself, no AS 100
    for asn in (1, 3):
        paths = learns("4.D", asn)
        assert paths[0]["path"].split()[:1] == [str(asn)] and "100" not in paths[0]["path"].split()
    learns("3.C", 4)
    learns("2.B", 4)
    # announce_to: 2.B's prefix reaches AS 1 through the route server, and nobody else
    learns("1.A", 2)
    time.sleep(2)          # deliberately: the withheld route would have spread by now
    for router in ("3.C", "4.D"):
        assert prefix[2] not in table(router), router
    # while 2.B itself, with no list for the others, learns everyone's
    assert prefix[3] in table("2.B") and prefix[1] in table("2.B")
    # the same in IPv6, over the IPv6 sessions of the LAN
    from minet_sdn.topology.addressing import topology_addressing6
    prefix6 = {asn: a.prefix for asn, a in topology_addressing6(topo, topology_addressing(topo)).items()}
    member_ip6 = {m.asn: m.ip6 for m in topo.ixps[100].members}

    def table6(router):
        return vtysh_json(topo, router, "show bgp ipv6 unicast json").get("routes", {})

    def via_lan6(router, asn):
        return [p for p in table6(router).get(prefix6[asn], [])
                if any(h.get("ip") == member_ip6[asn] for h in p.get("nexthops", []))]
    for router, asn in (("4.D", 1), ("3.C", 4), ("1.A", 2)):
        learns(router, asn, via_lan6, table6, prefix6)
    for router in ("3.C", "4.D"):
        assert prefix6[2] not in table6(router), router


def test_members_reach_each_other_through_the_ixp_with_full_size_packets(lab):
    path, topo, _ = lab
    # the lab's own underlay (jumbo unless the file sets one) decides the links' MTU
    mtu = Lab(path, progress=quiet).effective.fabric.link_mtu
    a4 = topology_addressing(topo)
    host = lambda asn, name: a4[asn].routers[name].host_ip    # noqa: E731
    assert ping(topo, "4.D.host", host(1, "A")) == 3          # VM2 -> VM1 over 4.D's segment
    assert ping(topo, "3.C.host", host(4, "D")) == 3          # VM2 -> VM2, through VM1's LAN
    assert ping(topo, "1.A.host", host(2, "B")) == 3          # both on the IXP's server
    route = run(topo, "4.D", "ip", "-4", "route", "get", host(1, "A")).stdout
    assert f"via {LAN}.2 dev ixp100" in route, route
    for src, dst in (("3.C", f"{LAN}.2"), ("3.C", f"{LAN}.5"), ("4.D", f"{LAN}.1"), ("1.A", f"{LAN}.4")):
        assert ping(topo, src, dst, count=2, size=mtu - 28, df=True) == 2, (src, dst)
        assert ping(topo, src, dst, count=1, size=mtu - 27, df=True) == 0, (src, dst)   # the MTU is real
    # IPv6: hosts through the IXP, and full-size packets on the LAN's IPv6 addresses
    from minet_sdn.topology.addressing import topology_addressing6
    a6 = topology_addressing6(topo, a4)
    assert ping(topo, "4.D.host", a6[1].routers["A"].host_ip) == 3
    assert ping(topo, "3.C.host", a6[4].routers["D"].host_ip) == 3
    for src, dst in (("3.C", f"{LAN6}:2"), ("3.C", f"{LAN6}:5"), ("4.D", f"{LAN6}:1"), ("1.A", f"{LAN6}:4")):
        assert ping(topo, src, dst, count=2, size=mtu - 48, df=True) == 2, (src, dst)


def test_a_remote_members_arp_answers_come_from_the_datapath(lab):
    _, topo, _ = lab
    x = topo.ixps[100]
    seg = topo.ixp_segment(100, "3.C")
    assert ping(topo, "3.C", f"{LAN}.2", count=1) == 1 and ping(topo, "3.C", f"{LAN}.1", count=1) == 1
    neigh = json.loads(run(topo, "3.C", "ip", "-j", "neigh", "show", "dev", x.ifname).stdout or "[]")
    got = {n["dst"]: n for n in neigh}
    for ip, mac in seg.lan:
        if ip in (f"{LAN}.1", f"{LAN}.2"):
            assert got[ip]["lladdr"] == mac and "PERMANENT" not in got[ip]["state"], got[ip]
    # IPv6 neighbour discovery is not proxied: the topology's entries, permanent, on both servers
    neigh6 = {n["dst"]: n for n in json.loads(run(topo, "3.C", "ip", "-j", "-6", "neigh", "show", "dev",
                                                  x.ifname).stdout or "[]")}
    for j, m in enumerate(x.members, start=1):
        if m.router != "3.C":
            assert neigh6[m.ip6]["lladdr"] == ixp_mac(1, j) and "PERMANENT" in neigh6[m.ip6]["state"], neigh6
    assert "PERMANENT" in neigh6[x.route_server_ip6]["state"]
    # and the responder flows on VM2's bridge matched them (the LAN bridge floods nothing)
    flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows",
                            f"unix:{paths.server_dir(topo, 'VM2')}/{topo.bridge('VM2', 'VM1').name}.mgmt",
                            f"arp,in_port={seg.ofport}"], capture_output=True, text=True, timeout=20).stdout
    hits = {m.group(2): int(m.group(1)) for m in re.finditer(r"n_packets=(\d+).*arp_tpa=([\d.]+)", flows)}
    assert set(hits) == {ip for ip, _ in seg.lan}, flows
    assert hits[f"{LAN}.1"] >= 1 and hits[f"{LAN}.2"] >= 1, flows


def test_isolation_nothing_of_the_lan_leaks_and_members_see_each_other_only_inside_it(lab):
    _, topo, _ = lab
    c, d = topo.ixp_segment(100, "3.C"), topo.ixp_segment(100, "4.D")
    lan_net = "net 198.18.0.0/24 or net fd00:6978::/48 or ether[6:2] == 0x0269 or ether[0:2] == 0x0269"
    c_to_a = f"(host {c.a.ip} and host {LAN}.2) or (host {c.a.ip6} and host {LAN6}:2)"

    def of_c(text: str) -> List[str]:
        """3.C's packets to 1.A as tcpdump -vv printed them (outer header, then the inner packet)."""
        return [p for p in re.split(r"\n(?=\d\d:\d\d:\d\d\.)", text) if f"{c.a.ip} > {LAN}.2" in p]
    caps = {
        # link 1's ports on both servers: nothing of the peering LAN
        "link 1 on VM1": capture(names.server_ns(topo, "VM1"), topo.link_port_name(1), lan_net),
        "link 1 on VM2": capture(names.server_ns(topo, "VM2"), topo.link_port_name(1), lan_net),
        # 3.C <-> 1.A traffic never reaches another member: not 4.D's segment (either server), not 2.B's port
        "4.D's segment on VM2": capture(names.server_ns(topo, "VM2"), topo.link_port_name(d.id), c_to_a),
        "4.D's segment on VM1": capture(names.server_ns(topo, "VM1"), topo.link_port_name(d.id), c_to_a),
        "2.B's LAN port": capture(places.resolve_node(topo, "2.B")[0], "ixp100", c_to_a),
    }
    wire = capture(names.underlay_ns(topo), names.underlay_peer_ifname(topo, "VM2"), "ip proto 47", verbose=True)
    try:
        assert ping(topo, "3.C", f"{LAN}.2", count=5) == 5
        assert ping(topo, "3.C", f"{LAN6}:2", count=3) == 3
        assert ping(topo, "4.D", f"{LAN}.1", count=3) == 3
        assert ping(topo, "4.D", f"{LAN6}:5", count=3) == 3
        # until tcpdump has printed 3.C's echo requests on the wire: the other ports had as long
        wait_until(lambda: len(of_c(captured(wire))) >= 5, 5, what="tcpdump to print 3.C's echo requests to 1.A")
    finally:
        text = stop_capture(wire)
        leaked = {k: stop_capture(v) for k, v in caps.items()}
    assert leaked == {k: "" for k in caps}, leaked
    # on the underlay: 3.C's packets to 1.A carry its segment's key (or DSCP mark), not link 1's
    for p in of_c(text):
        if topo.fabric.isolation == "key":
            assert f"key=0x{c.id:x}" in p, p
        else:
            inner = p.split("\n", 1)[1] if "\n" in p else p
            assert re.search(r"tos 0x%x\b" % (topo.link_marks[c.id] << 2), inner), p


def test_link_list_shows_the_segments_up(lab, capsys):
    from minet_sdn.cli.main import main
    path, topo, _ = lab
    assert main(["link", "list", path]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    segs = {r[0]: r for r in rows if r[3] == "ixp"}
    assert set(segs) == {str(s.id) for s in topo.ixp_segments}
    for s in topo.ixp_segments:
        r = segs[str(s.id)]
        assert (r[1], r[2], r[4], r[5], r[6]) == (s.a.router, "ixp100", "VM2-VM1", "up", "live"), r
        assert int(r[7]) > 0              # its flows counted the traffic of the tests above
